"""Load an exported model directory and predict class probabilities; no training code is imported.

ONNX Runtime is used when ``model.onnx`` is present and onnxruntime is installed; otherwise the PyTorch
network is rebuilt from config.json and model.safetensors.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from convlens.models.checkpoint import read_config

ONNX_FILE = "model.onnx"


def softmax(logits: np.ndarray) -> np.ndarray:
    z = logits - logits.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


class Predictor:
    """``predict(x)``: x float32 (N, 1, 28, 28) in [0, 1] -> probabilities (N, num_classes)."""

    def __init__(self, model_dir: str | Path, backend: str = "auto"):
        self.model_dir = Path(model_dir)
        self.config = read_config(self.model_dir)
        self.class_names: list[str] = list(self.config["class_names"])
        use_onnx = backend == "onnx" or (backend == "auto" and (self.model_dir / ONNX_FILE).is_file()
                                          and _has_onnxruntime())
        if use_onnx:
            import onnxruntime as ort
            options = ort.SessionOptions()
            options.log_severity_level = 3
            self._session = ort.InferenceSession(str(self.model_dir / ONNX_FILE), options,
                                                 providers=["CPUExecutionProvider"])
            self._input_name = self._session.get_inputs()[0].name
            self.backend = "onnxruntime"
        else:
            import torch

            from convlens.models.checkpoint import load_model
            self._model, _ = load_model(self.model_dir)
            self._torch = torch
            self.backend = "torch"

    def logits(self, x: np.ndarray) -> np.ndarray:
        x = np.ascontiguousarray(x, dtype=np.float32)
        if self.backend == "onnxruntime":
            return self._session.run(None, {self._input_name: x})[0]
        with self._torch.inference_mode():
            return self._model(self._torch.from_numpy(x)).numpy()

    def predict(self, x: np.ndarray) -> np.ndarray:
        return softmax(self.logits(x).astype(np.float64))


def _has_onnxruntime() -> bool:
    try:
        import onnxruntime  # noqa: F401
    except ImportError:
        return False
    return True
