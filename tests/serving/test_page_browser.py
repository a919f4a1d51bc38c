"""The web page in headless Chromium (Debian's /usr/bin/chromium, driven by Playwright): upload a real test
image, read the rendered top class; draw on the canvas; no console errors or failed loads; a screenshot.

The page is served with a Content-Security-Policy without 'unsafe-eval': wait_for_function is given functions, as
Playwright evaluates a string predicate with eval in the page each time it polls, which the policy refuses."""

from __future__ import annotations

import json

import numpy as np
from PIL import Image

from convlens.cli import main
from convlens.serving.inputs import decode
from convlens.serving.predictor import Predictor
from tests.conftest import record_page_problems
from tests.serving.test_hostile_requests import serve_process


def test_upload_a_real_test_image_and_read_the_top_class(browser, live_server, exported, fashion, tmp_path):
    image = tmp_path / "test-image-0.png"
    Image.fromarray(fashion.test_images[0]).save(image)  # an ankle boot
    predictor = Predictor(exported[0])
    expected = predictor.class_names[int(predictor.predict(decode(image.read_bytes(), "image/png"))[0].argmax())]

    page = browser.new_page(viewport={"width": 900, "height": 650})
    problems = record_page_problems(page)

    page.goto(f"{live_server}/")
    page.wait_for_function("() => document.getElementById('card').textContent.includes('Fashion-MNIST')")
    card = page.locator("#card").inner_text()
    config = json.loads((exported[0] / "config.json").read_text())
    assert f"{config['params']:,}" in card and "1 x 28 x 28 (grayscale)" in card and "Ankle boot" in card
    assert f"{config['source_run']['test_accuracy'] * 100:.2f}%" in card and "one run, seed 0: no spread" in card
    assert page.locator("h1").inner_text() == "Fashion-MNIST classifier" and page.locator("#pad").is_visible()

    page.wait_for_function("() => document.querySelectorAll('#examples img').length === 10")  # one test image per class
    page.locator("#examples button").first.click()  # test image 0, an ankle boot
    page.wait_for_function("() => document.getElementById('top-class').textContent.length > 0", timeout=15_000)
    assert page.locator("#top-class").get_attribute("data-class") == expected
    page.click("#clear")

    page.set_input_files("#file", str(image))
    page.wait_for_function("() => document.getElementById('top-class').textContent.length > 0", timeout=15_000)
    top = page.locator("#top-class").get_attribute("data-class")
    assert top == expected == "Ankle boot"
    assert page.locator("#bars .bar").count() == 10

    pad = page.locator("#pad").bounding_box()  # draw a vertical stroke, then predict the drawing
    page.mouse.move(pad["x"] + 140, pad["y"] + 40)
    page.mouse.down()
    page.mouse.move(pad["x"] + 140, pad["y"] + 240, steps=12)
    page.mouse.up()
    page.click("#predict")
    page.wait_for_function("() => document.querySelectorAll('#bars .bar').length === 10")
    assert page.locator("#top-class").get_attribute("data-class") in predictor.class_names

    shot = tmp_path / "page.png"
    page.screenshot(path=str(shot))
    assert Image.open(shot).size == (900, 650) and np.asarray(Image.open(shot)).std() > 10  # not a blank page
    assert problems == []
    page.close()


def test_an_rgb_model_gets_an_upload_and_no_drawing_pad(browser, tmp_path):
    rng = np.random.default_rng(0)
    for name, colour in {"red": (220, 30, 30), "blue": (20, 40, 230)}.items():
        (tmp_path / "photos" / name).mkdir(parents=True)
        for k in range(12):
            pixels = np.clip(np.array(colour) + rng.integers(-40, 41, (12, 12, 3)), 0, 255).astype(np.uint8)
            Image.fromarray(pixels).save(tmp_path / "photos" / name / f"{k}.png")
    dataset = f"folder:{tmp_path / 'photos'}"
    assert main(["train", "-m", "cnn-16-32", "--dataset", dataset, "--epochs", "3", "--out", str(tmp_path / "run"),
                 "--quiet"]) == 0
    assert main(["export", str(tmp_path / "run"), "--out", str(tmp_path / "model")]) == 0
    proc, port = serve_process(tmp_path / "model")
    try:
        page = browser.new_page(viewport={"width": 900, "height": 650})
        problems = record_page_problems(page)
        page.goto(f"http://127.0.0.1:{port}/")
        page.wait_for_function("() => document.getElementById('card').textContent.includes('RGB')")
        assert not page.locator("#pad").is_visible() and page.locator("#file").count() == 1
        assert "3 x 12 x 12 (RGB)" in page.locator("#card").inner_text()
        page.wait_for_function("() => document.querySelectorAll('#examples img').length === 2")
        page.locator('#examples button[title="red"]').click()  # the red test image, by its label
        page.wait_for_function("() => document.getElementById('top-class').textContent.length > 0", timeout=15_000)
        assert page.locator("#top-class").get_attribute("data-class") == "red"
        assert problems == []
        page.close()
    finally:
        proc.kill()


def test_a_drawing_of_pure_white_is_sent_as_white(browser, live_server, exported):
    """The pad filled white downscales to pixels of exactly 255. Sent as floats pixel / 255, JSON wrote them 1, which
    the server reads as integer pixels (1/255: black, the scale rule); sent as the integer pixels, they are 1.0."""
    page = browser.new_page()
    problems = record_page_problems(page)
    page.goto(f"{live_server}/")
    page.wait_for_function("() => document.getElementById('card').textContent.includes('Fashion-MNIST')")
    page.evaluate("ctx.fillStyle = '#fff'; ctx.fillRect(0, 0, pad.width, pad.height)")
    with page.expect_request(lambda r: r.url.endswith("/invocations")) as sent:
        page.click("#predict")
    page.wait_for_function("() => document.querySelectorAll('#bars .bar').length === 10")
    x = decode(sent.value.post_data_buffer, "application/json")
    assert x.shape == (1, 1, 28, 28) and np.array_equal(x, np.ones((1, 1, 28, 28), np.float32))
    predictor = Predictor(exported[0])
    expected = predictor.class_names[int(predictor.predict(np.ones((1, 1, 28, 28), np.float32))[0].argmax())]
    assert page.locator("#top-class").get_attribute("data-class") == expected
    assert problems == []
    page.close()
