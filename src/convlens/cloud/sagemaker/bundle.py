"""What the SageMaker containers load: the training source tarball's files and the model's ``code/`` directory.

Shared by the launcher (on the user's machine) and the training entry point (in the container).

Why the model carries its own code: the AWS PyTorch inference images 2.x start
``sagemaker_pytorch_serving_container.serving.main`` (deep-learning-containers,
pytorch/inference/docker/build_artifacts/torchserve-entrypoint.py), which never reads
SAGEMAKER_SUBMIT_DIRECTORY. sagemaker-pytorch-inference's ``torchserve._set_python_path`` puts
``/opt/ml/model/code`` (``sagemaker_inference.environment.code_dir``) on PYTHONPATH, ``start_torchserve``
pip-installs ``/opt/ml/model/code/requirements.txt`` (``sagemaker_inference.model_server.REQUIREMENTS_PATH``)
and the handler service's Transformer imports the module SAGEMAKER_PROGRAM names from there
(``Transformer._validate_user_module_and_set_functions``). Without ``code/inference.py`` in model.tar.gz it
falls back to the default handlers, which look for a TorchScript ``model.pt`` and fail to load the model.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import convlens
from convlens.serving.predictor import ONNX_FILE

ENTRY_SCRIPT = "convlens_entry.py"
INFERENCE_SCRIPT = "inference.py"
CODE_DIR = "code"

# Installed in the training container next to its own torch (so no torch pin here: the image brings it).
TRAINING_REQUIREMENTS = ["numpy", "pydantic>=2.6", "pyyaml", "safetensors", "platformdirs", "typer>=0.12",
                         "rich", "scipy", "matplotlib", "pillow"]
# What export_onnx imports (onnx, and onnxscript for torch.onnx.export(dynamo=True)), added for onnx=true: the
# training image has neither. Pinned to versions that export every registered model correctly under the default
# image's torch 2.5.1 (numpy 1.26, protobuf 4.25): with onnxscript 0.1-0.4 its exporter fails on the flatten of a
# dynamic batch, with 0.5.4 and later on BatchNorm; onnx-ir is onnxscript's IR package, pinned so that a newer
# one cannot break this onnxscript.
ONNX_TRAINING_REQUIREMENTS = ["onnx==1.17.0", "onnxscript==0.5.3", "onnx-ir==0.1.10"]
ONNX_MODULES = ("onnx", "onnxscript")
# What serving imports beyond the image's torch and numpy (tests/cloud checks the modules an inference
# actually loads against this list); pillow decodes image/png and image/jpeg requests.
INFERENCE_REQUIREMENTS = ["numpy", "pydantic>=2.6", "safetensors", "pillow"]

ENTRY_SOURCE = (b"import sys\nfrom convlens.cloud.sagemaker.train import main\n\n"
                b"if __name__ == '__main__':\n    sys.exit(main())\n")
# Only model_fn and transform_fn: the toolkit refuses a module that has transform_fn together with input_fn,
# predict_fn or output_fn (Transformer._validate_user_module_and_set_functions).
INFERENCE_SOURCE = b"from convlens.cloud.sagemaker.inference import model_fn, transform_fn  # noqa: F401\n"


def package_files() -> Iterator[tuple[str, Path]]:
    """(name under the code root, file) for every file of the convlens package, bytecode caches left out."""
    package = Path(convlens.__file__).parent
    for path in sorted(package.rglob("*")):
        if path.is_file() and "__pycache__" not in path.parts:
            yield f"convlens/{path.relative_to(package).as_posix()}", path


def requirements_text(requirements: list[str]) -> bytes:
    return ("\n".join(requirements) + "\n").encode()


def training_requirements(onnx: bool) -> list[str]:
    return TRAINING_REQUIREMENTS + (ONNX_TRAINING_REQUIREMENTS if onnx else [])


def inference_requirements(model_dir: Path) -> list[str]:
    # With model.onnx the predictor serves through ONNX Runtime when it can import it; the image has none.
    return INFERENCE_REQUIREMENTS + (["onnxruntime"] if (model_dir / ONNX_FILE).is_file() else [])


def write_model_code(model_dir: str | os.PathLike) -> Path:
    """Write ``code/`` (inference.py, requirements.txt and the convlens package) into an exported model
    directory, so that the training job's model.tar.gz is what the inference image loads as it is."""
    model_dir = Path(model_dir)
    code, staging = model_dir / CODE_DIR, model_dir / f".{CODE_DIR}.tmp"
    shutil.rmtree(staging, ignore_errors=True)
    for name, path in package_files():
        (staging / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, staging / name)
    (staging / INFERENCE_SCRIPT).write_bytes(INFERENCE_SOURCE)
    (staging / "requirements.txt").write_bytes(requirements_text(inference_requirements(model_dir)))
    # Built aside and renamed into place: an interrupted job never leaves a half-written code/ behind.
    shutil.rmtree(code, ignore_errors=True)
    os.replace(staging, code)
    return code
