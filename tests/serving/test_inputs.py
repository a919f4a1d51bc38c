"""Request decoding: every accepted shape and encoding, the scale rule, and a 4xx for each client mistake."""

from __future__ import annotations

import base64
import io
import json

import numpy as np
import pytest
from PIL import Image

from convlens.serving.inputs import MAX_BODY_BYTES, InputError, decode, decode_image, to_batch

RNG = np.random.default_rng(0)
IMG = RNG.random((28, 28)).astype(np.float32)  # floats in [0, 1]


@pytest.mark.parametrize("shape, n", [((28, 28), 1), ((28, 28, 1), 1), ((1, 28, 28), 1), ((784,), 1),
                                      ((3, 28, 28), 3), ((3, 28, 28, 1), 3), ((3, 1, 28, 28), 3), ((3, 784), 3)])
def test_accepted_shapes_become_n_1_28_28(shape, n):
    data = np.broadcast_to(IMG, (n, 28, 28)).reshape(shape)
    batch = to_batch(data)
    assert batch.shape == (n, 1, 28, 28) and batch.dtype == np.float32
    np.testing.assert_allclose(batch[0, 0], IMG, rtol=0, atol=1e-7)


def test_scale_rule_pixels_vs_unit_floats():
    pixels = (IMG * 255).round().astype(np.uint8)
    np.testing.assert_allclose(to_batch(pixels)[0, 0], pixels / 255.0, atol=1e-7)  # integers: always /255
    floats_255 = pixels.astype(np.float64)  # floats above 1: pixels
    np.testing.assert_allclose(to_batch(floats_255)[0, 0], pixels / 255.0, atol=1e-7)
    np.testing.assert_allclose(to_batch(IMG)[0, 0], IMG, atol=1e-7)  # floats within [0, 1]: as they are


@pytest.mark.parametrize("body, content_type, status, message", [
    (b'{"instances": []}', "application/json", 400, "empty batch"),
    (b"[]", "application/json", 400, "empty input"),
    (b'{"images": [1]}', "application/json", 400, '"instances"'),
    (b"not json", "application/json", 400, "not valid JSON"),
    (json.dumps([[1, 2], [3]]).encode(), "application/json", 400, "numeric"),
    (json.dumps([["a"] * 784]).encode(), "application/json", 400, "numeric"),
    (json.dumps([[0.5] * 10]).encode(), "application/json", 400, r"unsupported shape \[1, 10\]"),
    (json.dumps({"instances": [[-1.0] * 784]}).encode(), "application/json", 400, r"within \[0, 1\]"),
    (b'{"instances": [{"b64": "@@@"}]}', "application/json", 400, "base64"),
    (json.dumps({"instances": [{"b64": base64.b64encode(b"no image").decode()}]}).encode(),
     "application/json", 400, "cannot decode the image"),
    (json.dumps({"instances": [[0.1] * 784] * 1001}).encode(), "application/json", 413, "too many instances"),
    (b"\x89PNG broken", "image/png", 400, "cannot decode the image"),
    (b"garbage", "application/x-npy", 400, "not a valid .npy"),
    (b"[1]", "text/csv", 415, "unsupported content type 'text/csv'"),
    (b"", "application/json", 400, "empty body"),
])
def test_client_mistakes_raise_input_errors_with_status(body, content_type, status, message):
    with pytest.raises(InputError, match=message) as info:
        decode(body, content_type)
    assert info.value.status == status


def test_nan_and_oversized_payloads():
    buffer = io.BytesIO()
    np.save(buffer, np.full((28, 28), np.nan, dtype=np.float32))
    with pytest.raises(InputError, match="NaN"):
        decode(buffer.getvalue(), "application/x-npy")
    with pytest.raises(InputError, match="6 MB") as info:
        decode(b"0" * (MAX_BODY_BYTES + 1), "application/json")
    assert info.value.status == 413


def test_npy_with_objects_is_refused_without_unpickling():
    buffer = io.BytesIO()
    np.save(buffer, np.array([{"a": 1}], dtype=object), allow_pickle=True)
    with pytest.raises(InputError, match="not a valid .npy"):
        decode(buffer.getvalue(), "application/x-npy")


def _png(array: np.ndarray, mode: str = "L", size: int = 28) -> bytes:
    img = Image.fromarray(array).convert(mode).resize((size, size))
    out = io.BytesIO()
    img.save(out, format="PNG")
    return out.getvalue()


def test_images_are_converted_like_training_data():
    garment = np.zeros((28, 28), dtype=np.uint8)
    garment[6:22, 8:20] = 200  # light garment on black, as in Fashion-MNIST
    x = decode(_png(garment), "image/png")
    assert x.shape == (1, 1, 28, 28) and x.max() == pytest.approx(200 / 255, abs=0.01) and x[0, 0, 0, 0] == 0
    photo = decode(_png(255 - garment, mode="RGB", size=112), "image/png")  # dark garment on white, RGB, 4x size
    assert photo.shape == (1, 1, 28, 28)
    assert photo[0, 0, 0, 0] == pytest.approx(0, abs=0.02) and photo[0, 0, 14, 14] > 0.7  # inverted
    b64 = json.dumps({"instances": [{"b64": base64.b64encode(_png(garment)).decode()}] * 2}).encode()
    np.testing.assert_allclose(decode(b64, "application/json"), np.concatenate([x, x]))
    np.testing.assert_allclose(decode_image(_png(garment)), x)


def test_the_string_pattern_runs_only_on_a_body_that_parsed(monkeypatch):
    """The pattern that strips JSON strings (to see whether a number is written as a float) rescans to the end from
    each quote of an unclosed string: on '"\\"\\"...' that is quadratic (80 KB took 45 s, holding the GIL). It must
    run only after json.loads has accepted the body, when every string is closed."""
    from convlens.serving import inputs

    class Refuses:
        def sub(self, *args):
            raise AssertionError("the string pattern ran on a body json.loads had not accepted")
    monkeypatch.setattr(inputs, "_JSON_STRING", Refuses())
    with pytest.raises(InputError, match="not valid JSON"):
        decode(b'"' + b'\\"' * 1_000, "application/json")
    monkeypatch.undo()  # a valid body with a string key still gets the float check: 0.5 is a float, not 0.5/255
    assert decode(json.dumps({"instances": [[0.5] * 784]}).encode(), "application/json")[0, 0, 0, 0] == 0.5


def _png(array: np.ndarray, **save) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, "PNG", **save)
    return buffer.getvalue()


def test_a_png_with_a_broken_exif_block_is_decoded_as_without_it():
    # 89 bytes that made the server answer 500 (struct.error from the EXIF parser, while finding the orientation)
    pixels = (IMG * 255).astype(np.uint8)
    broken = _png(pixels, exif=b"Exif\0\0II*\0")
    assert np.array_equal(decode_image(broken), decode_image(_png(pixels)))


def test_a_16_bit_greyscale_png_is_scaled_to_the_8_bit_range_not_clipped():
    deep = (np.arange(28 * 28).reshape(28, 28) * 83).astype(np.uint16)  # 0 .. 65,000
    by_hand = np.rint(deep / 257).astype(np.uint8)  # 65535 -> 255, as an 8-bit export of the same image
    assert Image.open(io.BytesIO(_png(deep))).mode.startswith("I")
    assert np.array_equal(decode_image(_png(deep)), decode_image(_png(by_hand)))
    assert decode_image(_png(deep)).max() < 1.0  # it was 1.0 from the 4th pixel on: every value over 255 clipped
