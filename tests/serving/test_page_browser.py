"""The web page in headless Chromium (Debian's /usr/bin/chromium, driven by Playwright): upload a real test
image, read the rendered top class; draw on the canvas; no console errors or failed loads; a screenshot."""

from __future__ import annotations

import numpy as np
from PIL import Image

from convlens.serving.inputs import decode
from convlens.serving.predictor import Predictor
from tests.conftest import record_page_problems


def test_upload_a_real_test_image_and_read_the_top_class(browser, live_server, exported, fashion, tmp_path):
    image = tmp_path / "test-image-0.png"
    Image.fromarray(fashion.test_images[0]).save(image)  # an ankle boot
    predictor = Predictor(exported[0])
    expected = predictor.class_names[int(predictor.predict(decode(image.read_bytes(), "image/png"))[0].argmax())]

    page = browser.new_page(viewport={"width": 900, "height": 650})
    problems = record_page_problems(page)

    page.goto(f"{live_server}/")
    page.wait_for_function("document.getElementById('model-info').textContent.startsWith('Model')")
    page.set_input_files("#file", str(image))
    page.wait_for_function("document.getElementById('top-class').textContent.length > 0", timeout=15_000)
    top = page.locator("#top-class").get_attribute("data-class")
    assert top == expected == "Ankle boot"
    assert page.locator("#bars .bar").count() == 10

    pad = page.locator("#pad").bounding_box()  # draw a vertical stroke, then predict the drawing
    page.mouse.move(pad["x"] + 140, pad["y"] + 40)
    page.mouse.down()
    page.mouse.move(pad["x"] + 140, pad["y"] + 240, steps=12)
    page.mouse.up()
    page.click("#predict")
    page.wait_for_function("document.querySelectorAll('#bars .bar').length === 10")
    assert page.locator("#top-class").get_attribute("data-class") in predictor.class_names

    shot = tmp_path / "page.png"
    page.screenshot(path=str(shot))
    assert Image.open(shot).size == (900, 650) and np.asarray(Image.open(shot)).std() > 10  # not a blank page
    assert problems == []
    page.close()
