"""Load an exported model directory and predict class probabilities; no training code is imported.

ONNX Runtime is used when ``model.onnx`` is present and onnxruntime is installed; otherwise the PyTorch
network is rebuilt from config.json and model.safetensors.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from convlens.errors import UsageError
from convlens.models.checkpoint import model_file, read_config
from convlens.records import MODEL_FORMAT
from convlens.run_files import check_finished
from convlens.serving.inputs import ImageShape

ONNX_FILE = "model.onnx"
SMALL_BATCH = 4  # images up to which ONNX Runtime runs on one thread


def softmax(logits: np.ndarray) -> np.ndarray:
    z = logits - logits.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


class Predictor:
    """``predict(x)``: x float32 (N, C, H, W) in [0, 1] (``image``: what config.json says) -> probabilities
    (N, num_classes)."""

    def __init__(self, model_dir: str | Path, backend: str = "auto"):
        self.model_dir = Path(model_dir)
        self.config = read_config(self.model_dir)
        self.class_names = check_servable(self.config, self.model_dir)
        self.image = ImageShape.from_contract(self.config["input"])
        use_onnx = backend == "onnx" or (backend == "auto" and (self.model_dir / ONNX_FILE).is_file()
                                          and _has_onnxruntime())
        if use_onnx:
            import onnxruntime as ort
            onnx_path = model_file(self.model_dir, ONNX_FILE)

            def session(threads: int | None):
                options = ort.SessionOptions()
                options.log_severity_level = 3
                if threads:
                    options.intra_op_num_threads = threads
                return ort.InferenceSession(str(onnx_path), options, providers=["CPUExecutionProvider"])
            try:
                self._session = session(None)  # all cores: batches
                # A few images on one thread: as fast (97 vs 91 us for one image on 2 cores), and the other
                # threads do not spin beside it, so under load it costs half the CPU per request.
                self._small_session = session(1)
            except Exception as e:  # onnxruntime raises its own types (InvalidProtobuf, Fail, ...) for bad files
                raise UsageError(f"{onnx_path}: cannot load the ONNX model ({type(e).__name__}); export it "
                                 "again or delete it to serve the safetensors weights") from None
            self._input_name = self._session.get_inputs()[0].name
            self.backend = "onnxruntime"
        else:
            import torch

            from convlens.models.checkpoint import load_model
            self._model, _ = load_model(self.model_dir)
            self._torch = torch
            self.backend = "torch"
        self._check_answers()

    def _check_answers(self) -> None:
        """One blank image through the network: loads lazily-initialised kernels before the first request, and
        refuses a model whose outputs do not match its class names (e.g. an ONNX file from another export)."""
        try:
            out = self.logits(np.zeros((2, self.image.channels, self.image.size, self.image.size), np.float32))
        except Exception as e:  # an ONNX graph with another input shape fails inside onnxruntime
            raise UsageError(f"{self.model_dir}: the model cannot take the (N, {self.image.channels}, "
                             f"{self.image.size}, {self.image.size}) images its config.json names "
                             f"({type(e).__name__}); export it again") from None
        if out.shape != (2, len(self.class_names)):
            raise UsageError(f"{self.model_dir}: the model answers {out.shape[1:]} values per image but config.json "
                             f"names {len(self.class_names)} classes; export it again")

    def logits(self, x: np.ndarray) -> np.ndarray:
        x = np.ascontiguousarray(x, dtype=np.float32)
        if self.backend == "onnxruntime":
            session = self._small_session if len(x) <= SMALL_BATCH else self._session
            return session.run(None, {self._input_name: x})[0]
        with self._torch.inference_mode():
            return self._model(self._torch.from_numpy(x)).numpy()

    def predict(self, x: np.ndarray) -> np.ndarray:
        return softmax(self.logits(x).astype(np.float64))


def refuse_permuted(config: dict, where: Path | str) -> None:
    """One line when ``config`` (a run's) says its model was trained on pixel-permuted images: what answers plain
    images (export, serve, predict, and ``Run.predict`` in Python) refuses it with this line."""
    data = config.get("data")
    pixels = data.get("pixels", "original") if isinstance(data, dict) else "original"
    if pixels != "original":
        raise UsageError(f"{where} was trained on pixel-permuted images (the locality probe); it cannot answer "
                         "plain images: serve, export or predict with a run trained on original pixels")


def check_servable(config: dict, model_dir: Path) -> list[str]:
    """The class names, once the config says the model takes plain pixels (what every client sends).

    A run trained on pixel-permuted images (the locality probe) would answer plain images with confident
    nonsense; ``export``, ``serve``, ``predict`` and the SageMaker handlers all refuse it here, in one place.
    """
    if config.get("format") != MODEL_FORMAT:  # a run's directory, served as it is
        check_finished(model_dir)
    refuse_permuted(config, model_dir)
    names = config.get("class_names")
    if not (isinstance(names, list) and names and all(isinstance(n, str) for n in names)):
        raise UsageError(f"{model_dir / 'config.json'} has no class_names list; give a directory written by "
                         "'convlens train' or 'convlens export'")
    contract = config.get("input")
    shape = contract.get("shape") if isinstance(contract, dict) else None
    if not (isinstance(shape, list) and len(shape) == 3 and all(type(d) is int for d in shape)
            and shape[0] in (1, 3) and shape[1] == shape[2] and 1 <= shape[1] <= 512):
        raise UsageError(f"{model_dir / 'config.json'}: the model's input is not (1 or 3, S, S) images "
                         f"(input: {str(contract)[:80]})")
    return list(names)


def _has_onnxruntime() -> bool:
    try:
        import onnxruntime  # noqa: F401
    except ImportError:
        return False
    return True
