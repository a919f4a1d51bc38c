"""Handlers for the SageMaker PyTorch serving container (``model_fn``, ``transform_fn``; ``input_fn``,
``predict_fn`` and ``output_fn`` are its steps). They share the HTTP server's decoding and predictor, so both
accept the same requests and answer a client mistake the same way: its 4xx status and ``{"error": "..."}``.

How the container answers (sagemaker-inference, ``sagemaker_inference/transformer.py``,
``Transformer.transform``): any exception from a handler becomes ``handle_error``'s response, whose body is
the message followed by the Python traceback, with the status of a ``BaseInferenceToolkitError`` and 500 for
everything else, a plain ValueError included. So ``transform_fn`` catches the client's mistakes itself and
sets the status on the request's context (the one ``handle_error`` uses too), and the steps raise an error
that is also the toolkit's ``BaseInferenceToolkitError`` when the toolkit is installed, which keeps the
status right wherever they are used as handlers on their own.
"""

from __future__ import annotations

import functools
import json
from http import HTTPStatus
from typing import Any

import numpy as np

from convlens.serving.inputs import (
    ANSWER_TYPE,
    FASHION_MNIST_SHAPE,
    SERVER_LIMITS,
    ImageShape,
    InputError,
    check_accept,
    decode,
)
from convlens.serving.predictor import Predictor

JSON = ANSWER_TYPE


def _keep_bodies_as_bytes() -> None:
    """Make the toolkit hand JSON and CSV bodies to ``transform_fn`` as the bytes the client sent.

    ``Transformer.transform`` decodes a body whose content type is in ``content_types.UTF8_TYPES`` (JSON, CSV)
    with ``bytes.decode("utf-8")`` before calling any handler, so a body that is not UTF-8 raised
    UnicodeDecodeError there: a 500 with a traceback instead of our 400 (JSON) or 415 (CSV). Our decoder takes
    bytes and checks the encoding itself. The list is read at each request, and this module is imported (as the
    user module's import) when the handler service initializes, before the first request. The image's default
    handlers read the list too, but they never run: this module's transform_fn replaces them.
    """
    try:
        from sagemaker_inference import content_types
    except ImportError:  # outside the container: nothing decodes before us
        return
    content_types.UTF8_TYPES[:] = [t for t in content_types.UTF8_TYPES if t not in ("application/json", "text/csv")]


_keep_bodies_as_bytes()


@functools.cache
def _client_error_type() -> type[InputError]:
    """InputError, or where sagemaker-inference is importable, an InputError that the toolkit honours too."""
    try:
        from sagemaker_inference.errors import BaseInferenceToolkitError
    except ImportError:  # outside the container: the plain error, with the same message and status
        return InputError

    class ToolkitInputError(InputError, BaseInferenceToolkitError):
        def __init__(self, message: str, status: int = 400):
            InputError.__init__(self, message, status)
            # handle_error answers status_code with phrase as the reason phrase: the standard one, since a
            # reason phrase must not hold CR/LF and the message is in the body.
            self.status_code, self.message, self.phrase = status, message, HTTPStatus(status).phrase

    return ToolkitInputError


def client_error(error: InputError) -> InputError:
    return _client_error_type()(str(error), error.status)


def model_fn(model_dir: str) -> Predictor:
    return Predictor(model_dir)


def input_fn(request_body: bytes | str, request_content_type: str | None) -> np.ndarray:
    # Exactly two parameters: the toolkit passes its context as a third to a handler that takes one
    # (Transformer._run_handler_function). Used alone it decodes for Fashion-MNIST's shape; transform_fn decodes
    # for the model's own.
    return decode_request(request_body, request_content_type, FASHION_MNIST_SHAPE)


def decode_request(request_body: bytes | str, request_content_type: str | None, image: ImageShape) -> np.ndarray:
    # str where a caller decoded the body already (the toolkit did, before _keep_bodies_as_bytes).
    body = request_body.encode() if isinstance(request_body, str) else request_body
    try:
        return decode(body, request_content_type, SERVER_LIMITS, image)
    except InputError as e:
        raise client_error(e) from None


def predict_fn(input_data: np.ndarray, model: Predictor) -> dict[str, Any]:
    return {"predictions": np.round(model.predict(input_data), 6).tolist(), "classes": model.class_names}


def response_type(accept: str | None) -> str:
    """The media type to answer in: JSON, when the Accept header allows it at all (406 otherwise)."""
    try:
        check_accept(accept)
    except InputError as e:
        raise client_error(e) from None
    return JSON


def output_fn(prediction: dict[str, Any], accept: str | None) -> tuple[str, str]:
    return json.dumps(prediction), response_type(accept)


def transform_fn(model: Predictor, request_body: bytes | str, content_type: str | None, accept: str | None,
                 context: Any) -> tuple[str, str]:
    """One request: a client mistake is answered with its status and a one-line JSON body; anything else
    propagates to the toolkit (a 500: a bug or a broken model, not the client's doing).

    ``context`` is the model server's (TorchServe or MMS) context, which the toolkit passes to a handler with
    one parameter more than it calls it with (``Transformer._run_handler_function``); the server keeps one
    context per model and points it at the current request, so its status applies to this request.
    """
    try:
        media = response_type(accept)  # 406 before any decoding or prediction work
        return output_fn(predict_fn(decode_request(request_body, content_type, model.image), model), media)
    except InputError as e:
        if context is None:
            raise client_error(e) from None
        context.set_response_status(code=e.status, phrase=HTTPStatus(e.status).phrase)
        return json.dumps({"error": str(e)}), JSON
