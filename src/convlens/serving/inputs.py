"""Decoding inference requests into model input: float32 (N, 1, 28, 28) in [0, 1].

Accepted bodies (the SageMaker / TF-Serving conventions):
  * ``application/json``: ``{"instances": [...]}`` (TF-Serving row form) or a bare nested list (what
    ``predictor.predict(X_test_cnn[0:1])`` sends: shape (1, 28, 28, 1) floats in [0, 1]); an instance may be
    ``{"b64": "<base64 PNG/JPEG>"}``;
  * ``application/x-npy``: one ``.npy`` array (``np.save``), never unpickled;
  * ``image/png``, ``image/jpeg``: one image of any size or mode.

Shapes: one image is (28, 28), (28, 28, 1), (1, 28, 28) or (784,); a batch adds a leading N.
Scale: integer arrays, and any array with a value above 1, are read as pixels 0-255 and divided by 255;
float arrays with every value in [0, 1] are used as they are. Values must be finite and within [0, 255].
Images are converted like the training data: grayscale, resized to 28x28 (Lanczos), and inverted when their
border is mostly light, since Fashion-MNIST garments are light on a black background.
"""

from __future__ import annotations

import base64
import binascii
import io
import json
from typing import Any

import numpy as np

SIDE = 28
MAX_BODY_BYTES = 6_291_456  # SageMaker real-time payload limit: 6 MB
MAX_INSTANCES = 1_000


class InputError(ValueError):
    """A client mistake: becomes HTTP ``status`` with a JSON message."""

    def __init__(self, message: str, status: int = 400):
        super().__init__(message)
        self.status = status


def to_batch(array: np.ndarray) -> np.ndarray:
    """Any accepted shape -> (N, 1, 28, 28) float32 in [0, 1]; see the module docstring for the rules."""
    if array.dtype == object or array.dtype.kind not in "biuf":
        raise InputError("input must be numeric (nested lists of numbers of equal lengths)")
    a = array
    if a.size == 0:
        raise InputError("empty input: send at least one image")
    shape = a.shape
    if shape == (SIDE * SIDE,) or shape == (SIDE, SIDE):
        a = a.reshape(1, SIDE, SIDE)
    elif a.ndim == 2 and shape[1] == SIDE * SIDE:
        a = a.reshape(shape[0], SIDE, SIDE)
    elif shape == (SIDE, SIDE, 1):
        a = a.reshape(1, SIDE, SIDE)
    elif a.ndim == 3 and shape[1:] == (SIDE, SIDE):
        pass
    elif a.ndim == 4 and (shape[1:] == (SIDE, SIDE, 1) or shape[1:] == (1, SIDE, SIDE)):
        a = a.reshape(shape[0], SIDE, SIDE)
    else:
        raise InputError(f"unsupported shape {list(shape)}: send (28, 28), (28, 28, 1), (1, 28, 28) or (784,) "
                         "per image, optionally with a leading batch dimension")
    if len(a) > MAX_INSTANCES:
        raise InputError(f"too many instances ({len(a)}); send at most {MAX_INSTANCES} per request", status=413)
    a = a.astype(np.float32)
    if not np.isfinite(a).all():
        raise InputError("input contains NaN or infinite values")
    lo, hi = float(a.min()), float(a.max())
    if lo < 0 or hi > 255:
        raise InputError(f"pixel values must be within [0, 1] (floats) or [0, 255] (pixels); got {lo:g}..{hi:g}")
    if array.dtype.kind in "biu" or hi > 1.0:
        a = a / 255.0
    return a.reshape(-1, 1, SIDE, SIDE)


def decode_image(data: bytes) -> np.ndarray:
    """PNG/JPEG bytes -> (1, 1, 28, 28) float32, converted like the training data."""
    from PIL import Image, UnidentifiedImageError
    try:
        with Image.open(io.BytesIO(data)) as img:
            img.load()
            gray = img.convert("L").resize((SIDE, SIDE), Image.Resampling.LANCZOS)
    except (UnidentifiedImageError, OSError, ValueError, Image.DecompressionBombError) as e:
        raise InputError(f"cannot decode the image ({type(e).__name__}); send a PNG or JPEG") from None
    a = np.asarray(gray, dtype=np.float32) / 255.0
    border = np.concatenate([a[0], a[-1], a[:, 0], a[:, -1]])
    if border.mean() > 0.5:  # dark garment on a light background: flip to Fashion-MNIST's polarity
        a = 1.0 - a
    return a.reshape(1, 1, SIDE, SIDE)


def _decode_instance_b64(instance: dict) -> np.ndarray:
    try:
        raw = base64.b64decode(instance["b64"], validate=True)
    except (binascii.Error, TypeError, ValueError):
        raise InputError("'b64' must hold a base64-encoded PNG or JPEG") from None
    return decode_image(raw)


def decode_json(body: bytes) -> np.ndarray:
    try:
        payload: Any = json.loads(body)
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise InputError(f"body is not valid JSON ({e})") from None
    if isinstance(payload, dict):
        if "instances" not in payload:
            raise InputError('JSON object must have an "instances" list (TF-Serving row form)')
        payload = payload["instances"]
        if not isinstance(payload, list):
            raise InputError('"instances" must be a list')
        if len(payload) == 0:
            raise InputError("empty batch: 'instances' holds no image")
        if len(payload) > MAX_INSTANCES:
            raise InputError(f"too many instances ({len(payload)}); send at most {MAX_INSTANCES}", status=413)
        if any(isinstance(i, dict) for i in payload):
            if not all(isinstance(i, dict) and set(i) == {"b64"} for i in payload):
                raise InputError('instances must be all numeric arrays or all {"b64": ...} images')
            return np.concatenate([_decode_instance_b64(i) for i in payload])
    if not isinstance(payload, list):
        raise InputError("JSON body must be a nested list of pixel values or {\"instances\": [...]}")
    try:
        array = np.array(payload, dtype=np.float64)
    except (ValueError, TypeError):
        raise InputError("input must be numeric (nested lists of numbers of equal lengths)") from None
    return to_batch(array)


def decode_npy(body: bytes) -> np.ndarray:
    try:
        array = np.load(io.BytesIO(body), allow_pickle=False)  # never unpickle a client's bytes
    except (ValueError, OSError, EOFError) as e:
        raise InputError(f"body is not a valid .npy array ({str(e).splitlines()[0]})") from None
    if not isinstance(array, np.ndarray):
        raise InputError("body must hold one .npy array, not an archive")
    return to_batch(array)


CONTENT_TYPES = {
    "application/json": decode_json,
    "application/x-npy": decode_npy,
    "image/png": decode_image,
    "image/jpeg": decode_image,
}


CONTENT_TYPE_BY_SUFFIX = {".png": "image/png", ".jpg": "image/jpeg", ".jpeg": "image/jpeg", ".npy": "application/x-npy",
                          ".json": "application/json"}  # a .json file holds a request body, e.g. {"instances": ...}


def decode(body: bytes, content_type: str | None) -> np.ndarray:
    """Decode a request body by its content type (parameters such as '; charset=utf-8' are ignored)."""
    if len(body) > MAX_BODY_BYTES:
        raise InputError(f"payload of {len(body):,} bytes exceeds the 6 MB limit ({MAX_BODY_BYTES:,} bytes)",
                         status=413)
    media = (content_type or "").split(";")[0].strip().lower()
    if media not in CONTENT_TYPES:
        raise InputError(f"unsupported content type '{media or 'none'}'; use one of {', '.join(CONTENT_TYPES)}",
                         status=415)
    if not body:
        raise InputError("empty body: send at least one image")
    return CONTENT_TYPES[media](body)
