"""Handlers for the SageMaker PyTorch serving container (``model_fn``, ``input_fn``, ``predict_fn``,
``output_fn``). They share the HTTP server's decoding and predictor, so both accept the same requests.
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np

from convlens.serving.inputs import InputError, decode
from convlens.serving.predictor import Predictor

JSON = "application/json"


def model_fn(model_dir: str) -> Predictor:
    return Predictor(model_dir)


def input_fn(request_body: bytes | str, request_content_type: str) -> np.ndarray:
    body = request_body.encode() if isinstance(request_body, str) else request_body
    return decode(body, request_content_type)


def predict_fn(input_data: np.ndarray, model: Predictor) -> dict[str, Any]:
    return {"predictions": np.round(model.predict(input_data), 6).tolist(), "classes": model.class_names}


def output_fn(prediction: dict[str, Any], accept: str | None) -> tuple[str, str]:
    media = (accept or JSON).split(";")[0].strip().lower()
    if media not in (JSON, "*/*"):
        raise InputError(f"unsupported accept type '{media}'; this model answers {JSON}", status=406)
    return json.dumps(prediction), JSON
