"""Decoding inference requests into model input: float32 (N, C, H, W) in [0, 1] (Fashion-MNIST: (N, 1, 28, 28)).

Accepted bodies (the SageMaker / TF-Serving conventions):
  * ``application/json``: ``{"instances": [...]}`` (TF-Serving row form) or a bare nested list (what
    ``predictor.predict(X_test_cnn[0:1])`` sends: shape (1, 28, 28, 1) floats in [0, 1]); an instance may be
    ``{"b64": "<base64 PNG/JPEG>"}``;
  * ``application/x-npy``: one ``.npy`` array (``np.save``), never unpickled;
  * ``image/png`` (PNG only), ``image/jpeg`` (JPEG only): one image of any size or mode, within the limits.

Shapes (for the model's ImageShape; Fashion-MNIST's here): one image is (28, 28), (28, 28, 1), (1, 28, 28) or
(784,); three-channel models take (H, W, 3) or (3, H, W); a batch adds a leading N.
Scale: integer arrays, and any array with a value above 1, are read as pixels 0-255 and divided by 255;
float arrays with every value in [0, 1] are used as they are. Values must be finite and within [0, 255].
Images are converted like the training data (convlens.images: upright by their EXIF orientation, deep grey
scaled to 8 bits): to the model's channels (grey or RGB), resized to its side (28x28 for Fashion-MNIST, Lanczos),
and, for datasets of light shapes on black such as Fashion-MNIST, inverted when their border is mostly light.

Limits, checked before the work they bound is done (an attacker's body must not cost more than a valid one):
the body (6 MB, SageMaker's limit), images per request, JSON nesting (the decoder's recursion limit), the .npy header's declared size
(against the bytes actually sent), pixels per image (read from the image header, before decoding) and decoded
bytes per request. Every failure is an :class:`InputError` with its HTTP status; nothing else escapes.
"""

from __future__ import annotations

import base64
import binascii
import io
import json
import math
import re
from dataclasses import dataclass
from typing import Any

import numpy as np

from convlens.errors import first_repeated
from convlens.images import DEEP_GREY, MAX_IMAGE_PIXELS, to_8bit_grey, upright

SIDE = 28
MAX_BODY_BYTES = 6_291_456  # SageMaker real-time payload limit: 6 MB
MAX_INSTANCES = 1_000  # images per request, whatever the encoding
MAX_DECODED_BYTES = 256 * 2**20  # decoded image bytes per request (width x height x bands, summed)
IMAGE_FORMATS = {"image/png": ("PNG",), "image/jpeg": ("JPEG",)}
B64_FORMATS = ("PNG", "JPEG")


class InputError(ValueError):
    """A client mistake: becomes HTTP ``status`` with a JSON message."""

    def __init__(self, message: str, status: int = 400):
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class Limits:
    """How much one body may be and hold. The server's are SageMaker's; ``convlens predict`` reads local files,
    which may be larger (it predicts them in batches)."""

    body_bytes: int = MAX_BODY_BYTES
    instances: int = MAX_INSTANCES


SERVER_LIMITS = Limits()
LOCAL_FILE_LIMITS = Limits(body_bytes=2**31, instances=1_000_000)


@dataclass(frozen=True)
class ImageShape:
    """What the model takes (from its config.json "input"): channels x size x size, and whether an uploaded image
    with a light border is inverted (datasets of light shapes on black, like Fashion-MNIST and MNIST)."""

    channels: int = 1
    size: int = SIDE
    invert_light_background: bool = True

    @classmethod
    def from_contract(cls, contract: dict) -> ImageShape:
        c, h, _ = contract["shape"]
        return cls(c, h, bool(contract.get("invert_light_background", c == 1)))

    def describe(self) -> str:
        s = self.size
        return (f"({s}, {s}), ({s}, {s}, 1), (1, {s}, {s}) or ({s * s},)" if self.channels == 1
                else f"({s}, {s}, {self.channels}) or ({self.channels}, {s}, {s})")


FASHION_MNIST_SHAPE = ImageShape()


def _too_many(n: int, limits: Limits) -> InputError:
    return InputError(f"too many instances ({n:,}); send at most {limits.instances:,} per request", status=413)


def to_batch(array: np.ndarray, integers: bool | None = None, limits: Limits = SERVER_LIMITS,
             image: ImageShape = FASHION_MNIST_SHAPE) -> np.ndarray:
    """Any accepted shape -> (N, C, H, W) float32 in [0, 1]; see the module docstring for the rules.
    ``integers``: whether the values were written as integers (JSON), when the dtype cannot say."""
    if array.dtype == object or array.dtype.kind not in "biuf":
        raise InputError("input must be numeric (nested lists of numbers of equal lengths)")
    a = array
    if a.size == 0:
        raise InputError("empty input: send at least one image")
    shape, s, c = a.shape, image.size, image.channels
    if c == 1 and (shape == (s * s,) or shape == (s, s) or shape == (s, s, 1) or shape == (1, s, s)):
        a = a.reshape(1, 1, s, s)
    elif c == 1 and ((a.ndim == 2 and shape[1] == s * s) or (a.ndim == 3 and shape[1:] == (s, s))
                     or (a.ndim == 4 and shape[1:] in ((s, s, 1), (1, s, s)))):
        a = a.reshape(shape[0], 1, s, s)
    elif c > 1 and shape == (c, s, s):
        a = a.reshape(1, c, s, s)
    elif c > 1 and shape == (s, s, c):
        a = a.transpose(2, 0, 1).reshape(1, c, s, s)  # HWC (Keras, PIL) -> CHW
    elif c > 1 and a.ndim == 4 and shape[1:] == (c, s, s):
        pass
    elif c > 1 and a.ndim == 4 and shape[1:] == (s, s, c):
        a = a.transpose(0, 3, 1, 2)  # NHWC (Keras, PIL) -> NCHW
    else:
        raise InputError(f"unsupported shape {list(shape)}: this model takes {image.describe()} per image, "
                         "optionally with a leading batch dimension")
    if len(a) > limits.instances:
        raise _too_many(len(a), limits)
    with np.errstate(over="ignore", invalid="ignore"):  # float64 beyond float32's range becomes inf: refused below
        a = a.astype(np.float32)
    if not np.isfinite(a).all():
        raise InputError("input contains NaN, infinite or out-of-range values; send pixels in [0, 1] or [0, 255]")
    lo, hi = float(a.min()), float(a.max())
    if lo < 0 or hi > 255:
        raise InputError(f"pixel values must be within [0, 1] (floats) or [0, 255] (pixels); got {lo:g}..{hi:g}")
    if (array.dtype.kind in "biu" if integers is None else integers) or hi > 1.0:
        a = a / 255.0
    return np.ascontiguousarray(a)


class _Budget:
    """Decoded bytes left for this request's images."""

    def __init__(self, limit: int = MAX_DECODED_BYTES):
        self.left = limit

    def spend(self, n: int) -> None:
        self.left -= n
        if self.left < 0:
            raise InputError(f"the images decode to more than {MAX_DECODED_BYTES // 2**20} MiB in all; send "
                             "smaller images", status=413)


ANSWER_TYPE = "application/json"  # the only type /invocations answers in
# The ranges that cover the answer, most specific last: the most specific one named decides (RFC 9110 12.5.1), so
# "*/*, application/json;q=0" refuses JSON.
_ANSWER_RANGES = ("*/*", "application/*", ANSWER_TYPE)
_REFUSED_Q = re.compile(r"0(\.0*)?")  # q=0: "not this one"; any other weight (malformed included) allows it


def check_accept(accept: str | None) -> None:
    """406 unless the Accept header allows JSON at all (no header allows anything): the SageMaker handler and the
    local server answer alike. Parameter names are read in any case (Q=0 is q=0)."""
    decided: tuple[int, bool] | None = None  # (specificity, allowed) of the most specific range naming the answer
    for part in (accept or ANSWER_TYPE).split(","):
        media, *params = part.split(";")
        media = media.strip().lower()
        if media not in _ANSWER_RANGES:
            continue
        specificity = _ANSWER_RANGES.index(media)
        weights = [value.strip() for name, _, value in (p.partition("=") for p in params)
                   if name.strip().lower() == "q"]
        allowed = not (weights and _REFUSED_Q.fullmatch(weights[0]))
        if decided is None or specificity > decided[0] or specificity == decided[0] and allowed:
            decided = (specificity, allowed)
    if not (decided and decided[1]):
        raise InputError(f"unsupported accept type '{accept}'; this model answers {ANSWER_TYPE}", status=406)


def decode_image(data: bytes, formats: tuple[str, ...] = B64_FORMATS, budget: _Budget | None = None,
                 image: ImageShape = FASHION_MNIST_SHAPE) -> np.ndarray:
    """PNG/JPEG bytes -> (1, C, H, W) float32, converted like the training data.

    Only ``formats`` are tried (so image/png never reaches the JPEG, TIFF, ... decoders), and the image's
    declared size is checked against the limits before any pixel is decoded.
    """
    from PIL import Image, UnidentifiedImageError
    budget = budget or _Budget()
    names = " or ".join(formats)
    try:
        with Image.open(io.BytesIO(data), formats=list(formats)) as img:
            width, height = img.size
            if width * height > MAX_IMAGE_PIXELS:
                raise InputError(f"image of {width}x{height} pixels exceeds the limit of {MAX_IMAGE_PIXELS:,} "
                                 "pixels; send a smaller image", status=413)
            band_bytes = 4 if img.mode in ("I", "F") else 2 if img.mode.startswith("I;16") else 1
            budget.spend(width * height * max(len(img.getbands()), 1) * band_bytes)
            img.load()
            turned = upright(img)
            if turned.mode in DEEP_GREY:  # scaled to 8 bits as a dataset folder's images are, not clipped
                budget.spend(width * height * 8)  # its working copy: 4 (16-bit) or 8 (32-bit, float) bytes a pixel
                turned = to_8bit_grey(turned)
            resized = turned.convert("L" if image.channels == 1 else "RGB").resize(
                (image.size, image.size), Image.Resampling.LANCZOS)
    except InputError:
        raise
    except Image.DecompressionBombError:  # PIL's own guard, at twice its 89 MP default: far above ours
        raise InputError(f"image exceeds the limit of {MAX_IMAGE_PIXELS:,} pixels; send a smaller image",
                         status=413) from None
    except UnidentifiedImageError:
        raise InputError(f"cannot decode the image: not a {names} image") from None
    except (OSError, ValueError, SyntaxError, EOFError, MemoryError) as e:
        # Truncated or corrupt files end in any of these inside PIL's decoders (SyntaxError: broken PNG chunks).
        raise InputError(f"cannot decode the {names} image ({type(e).__name__}); send a valid {names}") from None
    a = np.asarray(resized, dtype=np.float32).reshape(image.size, image.size, -1).transpose(2, 0, 1) / 255.0
    border = np.concatenate([a[:, 0].ravel(), a[:, -1].ravel(), a[:, :, 0].ravel(), a[:, :, -1].ravel()])
    if image.invert_light_background and border.mean() > 0.5:
        a = 1.0 - a  # a dark garment on a light background: flipped to the training data's polarity
    return a.reshape(1, image.channels, image.size, image.size)


_LINE_WHITESPACE = str.maketrans("", "", " \t\r\n")


def _decode_instance_b64(instance: dict, budget: _Budget, image: ImageShape) -> np.ndarray:
    value = instance["b64"]
    if not isinstance(value, str):
        raise InputError("'b64' must be a string holding a base64-encoded PNG or JPEG")
    try:  # line breaks as MIME encoders write them (`base64 FILE`, base64.encodebytes) are not part of the data
        raw = base64.b64decode(value.translate(_LINE_WHITESPACE), validate=True)  # 12 ms for 6 MB
    except (binascii.Error, ValueError):
        raise InputError("'b64' must hold a base64-encoded PNG or JPEG") from None
    return decode_image(raw, B64_FORMATS, budget, image)


_FLOAT_NUMBER = re.compile(rb"[0-9][.eE]")
_JSON_STRING = re.compile(rb'"(?:[^"\\]|\\.)*"')
# JSON's constants as plain substrings (a word-boundary regex cost ~50 us per 8 KB body, a sixth of a request):
# a numeric body has no letters but its "instances" key and exponents, so a match is a constant.
_JSON_CONSTANTS = (b"true", b"false", b"null")


def _keys_once(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """A JSON object whose key is given twice is refused: which images were meant is not known."""
    twice = first_repeated(key for key, _ in pairs)
    if twice is not None:
        raise InputError(f"JSON key {json.dumps(twice[:40])} is given twice; give it once")
    return dict(pairs)


def decode_json(body: bytes, limits: Limits = SERVER_LIMITS, image: ImageShape = FASHION_MNIST_SHAPE) -> np.ndarray:
    try:
        body.decode("utf-8")  # json.loads would also guess UTF-16/32, past the checks below on the raw bytes
    except UnicodeDecodeError:
        raise InputError("body is not valid JSON (not UTF-8 text)") from None
    try:
        # Integers as floats: a 400-digit integer becomes inf (refused by the range check) instead of
        # overflowing in numpy or hitting Python's int-parsing limit.
        payload: Any = json.loads(body, parse_int=float, object_pairs_hook=_keys_once)
    except InputError:
        raise
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise InputError(f"body is not valid JSON ({e})") from None
    except RecursionError:  # [[[[...]]]] thousands deep: the C decoder stops at the recursion limit
        raise InputError("JSON nested too deeply; send arrays of pixel values") from None
    except ValueError as e:
        raise InputError(f"body is not valid JSON ({e})") from None
    # Whether any number is written as a float (a digit then '.', 'e' or 'E'): integer pixels are divided by 255
    # whatever their values (the scale rule). Read on the bytes outside strings (a key may spell a letter as
    # \u006e), so json's own float parser stays the native one. Only once the body parsed: then every string is
    # closed and the string pattern is linear; on an unclosed '"\\"\\"...' it would rescan to the end from each
    # quote (80 KB took 45 s, holding the GIL against /ping).
    floats_seen = _FLOAT_NUMBER.search(_JSON_STRING.sub(b"", body) if b'"' in body else body) is not None
    if isinstance(payload, dict):
        if "instances" not in payload:
            raise InputError('JSON object must have an "instances" list (TF-Serving row form)')
        if len(payload) > 1:  # named here, not met later as a string where numbers were expected
            extra = ", ".join(json.dumps(key[:40]) for key in sorted(set(payload) - {"instances"})[:3])
            raise InputError(f'JSON object may hold only "instances" (TF-Serving row form); remove {extra}')
        payload = payload["instances"]
        if not isinstance(payload, list):
            raise InputError('"instances" must be a list')
        if len(payload) == 0:
            raise InputError("empty batch: 'instances' holds no image")
        if len(payload) > limits.instances:
            raise _too_many(len(payload), limits)
        if any(isinstance(i, dict) for i in payload):
            if not all(isinstance(i, dict) and set(i) == {"b64"} for i in payload):
                raise InputError('instances must be all numeric arrays or all {"b64": ...} images')
            budget = _Budget()
            return np.concatenate([_decode_instance_b64(i, budget, image) for i in payload])
    if not isinstance(payload, list):
        raise InputError("JSON body must be a nested list of pixel values or {\"instances\": [...]}")
    if b"b64" in body and any(isinstance(i, dict) and "b64" in i for i in payload):  # [{"b64": ...}]: said so
        raise InputError('base64 images go in an object: {"instances": [{"b64": ...}]}')
    # numpy would read true as 1, null as NaN and "1" as 1.0: a numeric body has no constants and no strings
    # (its only quotes are those of the "instances" key).
    quotes_allowed = 2 if body.lstrip().startswith(b"{") else 0
    if any(constant in body for constant in _JSON_CONSTANTS) or body.count(b'"') > quotes_allowed:
        raise InputError("input must be numeric (nested lists of numbers of equal lengths; no strings, "
                         "true/false or null)")
    try:
        array = np.array(payload, dtype=np.float64)
    except (ValueError, TypeError, OverflowError, RecursionError):
        raise InputError("input must be numeric (nested lists of numbers of equal lengths)") from None
    return to_batch(array, integers=not floats_seen, limits=limits, image=image)


def npy_header(fp: io.BytesIO) -> tuple[Any, bool, np.dtype]:
    """(shape, fortran order, dtype) from a .npy header, ``fp`` left at the data; nothing checked but the header's
    syntax (see decode_npy)."""
    try:
        version = np.lib.format.read_magic(fp)
        if version == (1, 0):
            return np.lib.format.read_array_header_1_0(fp)
        if version in ((2, 0), (3, 0)):
            return np.lib.format.read_array_header_2_0(fp)
        raise ValueError(f"unsupported .npy version {version}")
    except Exception as e:  # numpy parses the header with tokenize and ast: TokenError, RecursionError, ...
        raise InputError(f"body is not a valid .npy array ({str(e).splitlines()[0] if str(e) else 'bad header'})"
                         ) from None


def decode_npy(body: bytes, limits: Limits = SERVER_LIMITS, image: ImageShape = FASHION_MNIST_SHAPE) -> np.ndarray:
    """One .npy array. The header is read and checked against the bytes actually sent before any allocation."""
    fp = io.BytesIO(body)
    shape, fortran, dtype = npy_header(fp)
    if dtype.hasobject or dtype.kind not in "biuf":
        raise InputError(f"body is not a valid .npy array: dtype {dtype} is not numeric (object arrays are never "
                         "unpickled)")
    # numpy's header reader accepts negative, boolean and 70-dimensional shapes: check them here, in Python
    # integers, before numpy computes anything from them.
    if not (isinstance(shape, tuple) and len(shape) <= 4
            and all(type(d) is int and 0 <= d <= limits.instances * image.channels * image.size ** 2
                    for d in shape)):
        raise InputError(f"body is not a valid .npy array: shape {str(shape)[:80]} is not an image batch")
    declared = math.prod(shape) * dtype.itemsize
    if declared != len(body) - fp.tell():
        raise InputError(f"body is not a valid .npy array: the header declares shape {list(shape)} of {dtype} "
                         f"({declared:,} bytes) but {len(body) - fp.tell():,} bytes follow it")
    array = np.frombuffer(body, dtype=dtype, offset=fp.tell()).reshape(shape, order="F" if fortran else "C")
    return to_batch(array, limits=limits, image=image)


def decode_png(body: bytes, limits: Limits = SERVER_LIMITS, image: ImageShape = FASHION_MNIST_SHAPE) -> np.ndarray:
    return decode_image(body, IMAGE_FORMATS["image/png"], image=image)


def decode_jpeg(body: bytes, limits: Limits = SERVER_LIMITS, image: ImageShape = FASHION_MNIST_SHAPE) -> np.ndarray:
    return decode_image(body, IMAGE_FORMATS["image/jpeg"], image=image)


CONTENT_TYPES = {
    "application/json": decode_json,
    "application/x-npy": decode_npy,
    "image/png": decode_png,
    "image/jpeg": decode_jpeg,
}


CONTENT_TYPE_BY_SUFFIX = {".png": "image/png", ".jpg": "image/jpeg", ".jpeg": "image/jpeg", ".npy": "application/x-npy",
                          ".json": "application/json"}  # a .json file holds a request body, e.g. {"instances": ...}


def media_type(content_type: str | None) -> str:
    """'Application/JSON; charset=utf-8' -> 'application/json'."""
    return (content_type or "").split(";")[0].strip().lower()


def decode(body: bytes, content_type: str | None, limits: Limits = SERVER_LIMITS,
           image: ImageShape = FASHION_MNIST_SHAPE) -> np.ndarray:
    """Decode a request body by its content type (parameters such as '; charset=utf-8' are ignored)."""
    if len(body) > limits.body_bytes:
        raise InputError(f"payload of {len(body):,} bytes exceeds the {limits.body_bytes / 1e6:g} MB limit "
                         f"({limits.body_bytes:,} bytes)", status=413)
    media = media_type(content_type)
    if media not in CONTENT_TYPES:
        raise InputError(f"unsupported content type '{media or 'none'}'; use one of {', '.join(CONTENT_TYPES)}",
                         status=415)
    if not body:
        raise InputError("empty body: send at least one image")
    return CONTENT_TYPES[media](body, limits, image)
