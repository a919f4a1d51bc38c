"""SageMaker training entry point: ``python -m convlens.cloud.sagemaker.train``.

Follows the training-container contract (see REFERENCE.md):
  * hyperparameters from ``$SM_HPS`` (JSON) or ``$SM_INPUT_CONFIG_DIR/hyperparameters.json``
    (default /opt/ml/input/config); values are strings, possibly JSON-encoded (the SageMaker SDK does that);
  * data: the Fashion-MNIST IDX files in ``$SM_CHANNEL_TRAINING`` (.gz or raw);
  * the model is written to ``$SM_MODEL_DIR`` (default /opt/ml/model) in convlens' export format, with a
    ``code/`` directory (inference.py, requirements.txt, the convlens package) so that the job's model.tar.gz
    is what the PyTorch inference image loads as it is (see bundle.py); metrics to ``$SM_OUTPUT_DATA_DIR``
    (default /opt/ml/output/data);
  * on failure the reason goes to ``$SM_OUTPUT_DIR/failure`` (default /opt/ml/output/failure; SageMaker
    shows its first 1024 characters) and the exit code is 1.

Hyperparameters: model, set ("kernel_size=5;filters=16,32" or a JSON object), recipe, epochs, batch-size,
lr, optimizer, schedule, weight-decay, label-smoothing, val-fraction, patience, seed, onnx ("true"/"false"),
train-subset, test-subset (first N images, for quick jobs).
"""

from __future__ import annotations

import json
import os
import re
import sys
import tempfile
import traceback
from pathlib import Path
from typing import TYPE_CHECKING, Any

from convlens.atomic_files import atomic_write_bytes, atomic_write_text
from convlens.errors import ConvlensError, UsageError, first_repeated, format_validation_error

if TYPE_CHECKING:
    from convlens.config import TrainConfig

RECIPE_KEYS = {"epochs", "batch_size", "lr", "optimizer", "schedule", "weight_decay", "label_smoothing",
               "val_fraction", "patience"}
ALIASES = {"learning_rate": "lr"}
VALID_KEYS = {"model", "set", "recipe", "seed", "onnx", "train_subset", "test_subset", "dataset"} | RECIPE_KEYS
# 'dataset': a convlens dataset name, or 'folder' for a training channel holding <class>/ image folders.
FOLDER_CHANNEL = "folder"


def read_hyperparameters() -> dict[str, Any]:
    raw = os.environ.get("SM_HPS")
    if raw is None:
        path = Path(os.environ.get("SM_INPUT_CONFIG_DIR", "/opt/ml/input/config")) / "hyperparameters.json"
        raw = path.read_text() if path.is_file() else "{}"
    try:
        hps = json.loads(raw)
    except json.JSONDecodeError as e:
        raise UsageError(f"hyperparameters are not valid JSON ({e.msg})") from None
    if not isinstance(hps, dict):  # '[1,2]' or 'null' parse, then failed on .items() with a traceback
        raise UsageError(f"hyperparameters must be a JSON object of name: value pairs, not {_json_kind(hps)}")
    return normalize_hyperparameters(hps)


def _json_kind(value: Any) -> str:
    return {list: "an array", str: "a string", bool: "a boolean", int: "a number", float: "a number"}.get(
        type(value), "null")


def _keys_once(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    twice = first_repeated(key for key, _ in pairs)
    if twice is not None:
        raise UsageError(f"hyperparameter JSON gives {twice!r} twice; give it once")
    return dict(pairs)


def normalize_hyperparameters(hps: dict[str, Any]) -> dict[str, Any]:
    """SageMaker's string values (JSON-encoded or not) and dashed keys -> typed values under convlens' names."""
    result, spelled = {}, {}
    for key, value in hps.items():
        if key.startswith("sagemaker_"):  # the SDK's own bookkeeping (program, submit directory, region)
            continue
        if isinstance(value, str):
            try:
                value = json.loads(value, object_pairs_hook=_keys_once)  # the SDK JSON-encodes values: '"cnn"', '15'
            except json.JSONDecodeError:
                pass  # a plain string, as CreateTrainingJob passes it
        name = key.replace("-", "_")
        name = ALIASES.get(name, name)
        if name in result:  # batch-size and batch_size, lr and learning_rate: the last would win
            raise UsageError(f"hyperparameter {name} is given twice ({spelled[name]} and {key}); give it once")
        result[name], spelled[name] = value, key
    unknown = sorted(set(result) - VALID_KEYS)
    if unknown:
        raise UsageError(f"unknown hyperparameter '{unknown[0]}'; valid: {', '.join(sorted(VALID_KEYS))}")
    return result


def parse_set(value: Any) -> dict[str, Any]:
    if value in (None, ""):
        return {}
    if isinstance(value, dict):
        return value
    from convlens.models.registry import parse_overrides
    return parse_overrides((item for item in str(value).split(";") if item.strip()),
                           "--hp 'set=kernel_size=5;filters=16,32'")


def _truthy(value: Any) -> bool:
    """A yes/no hyperparameter; anything else is refused (it silently meant "no" once)."""
    word = str(value).strip().lower()
    if word not in {"1", "true", "yes", "0", "false", "no"}:
        raise UsageError(f"hyperparameter onnx: expected true or false, got {value!r}")
    return word in {"1", "true", "yes"}


def _whole_number(value: Any) -> int:
    """The seed hyperparameter: a whole number, or its digits as SageMaker passes them; int() took 1.9 as 1 and
    true as 1."""
    if isinstance(value, str) and re.fullmatch(r"\s*\d+\s*", value):
        return int(value)
    if isinstance(value, int) and not isinstance(value, bool) or isinstance(value, float) and value.is_integer():
        return int(value)
    raise UsageError(f"hyperparameter seed: expected a whole number, got {value!r}")


def train_config(hps: dict[str, Any], data_dir: Path | None) -> TrainConfig:
    """The run the hyperparameters describe, validated: the container trains it, and the launcher builds it
    before uploading anything, so a bad model or recipe name fails on the user's machine, not in a paid job."""
    from pydantic import ValidationError

    from convlens.config import DEFAULT_RECIPE, TrainConfig, resolve_recipe
    from convlens.models.registry import resolve_spec
    recipe = resolve_recipe(str(hps.get("recipe", DEFAULT_RECIPE)), {k: hps[k] for k in RECIPE_KEYS if k in hps})
    model, overrides = str(hps.get("model", "cnn")), parse_set(hps.get("set"))
    resolve_spec(model, overrides)  # the registry's one-line message for a bad name or override
    _truthy(hps.get("onnx", "false"))  # checked now, read when the model is exported
    seed = _whole_number(hps.get("seed", 0))
    dataset = str(hps.get("dataset", "fashion-mnist"))
    if dataset.startswith("folder:"):
        raise UsageError("hyperparameter dataset: use 'folder' (the training channel is the folder), not a path")
    if dataset == FOLDER_CHANNEL:  # the training channel (or, when launching, --data-dir) is the folder
        if data_dir is None:
            raise UsageError("hyperparameter dataset=folder needs the folder: pass --data-dir")
        dataset = f"folder:{data_dir}"
    try:
        return TrainConfig(model=model, overrides=overrides, recipe=recipe, seed=seed,
                           data_dir=data_dir, train_subset=hps.get("train_subset"), test_subset=hps.get("test_subset"),
                           dataset=dataset)
    except (ValidationError, ValueError) as e:
        detail = format_validation_error(e) if isinstance(e, ValidationError) else str(e)
        raise UsageError(f"invalid hyperparameter: {detail}") from None


# SageMaker's metric definitions for the line run() prints (the launcher sends them with CreateTrainingJob): the
# job's CloudWatch metrics and its console page then show these numbers.
METRIC_DEFINITIONS = [{"Name": name, "Regex": rf"{name}=([0-9.]+)"}
                      for name in ("test_accuracy", "test_loss", "train_seconds")]


def check_onnx_export() -> None:
    """Refuse onnx=true before training when the exporter's packages are missing, instead of after the paid work."""
    from convlens.cloud.sagemaker.bundle import ONNX_MODULES
    for module in ONNX_MODULES:
        try:
            __import__(module)
        except ImportError as e:
            raise UsageError(f"hyperparameter onnx=true needs {' and '.join(ONNX_MODULES)}, which this training "
                             f"image cannot import ({e}): launch the job with 'convlens sagemaker train' (its "
                             "requirements.txt installs them), use an image that has them, or set onnx=false") from None


def run() -> Path:
    """Train, evaluate and export; returns the model directory."""
    from convlens.cloud.sagemaker.bundle import write_model_code
    from convlens.runs import run_training
    from convlens.serving.export import export_run

    hps = read_hyperparameters()
    channel = os.environ.get("SM_CHANNEL_TRAINING")
    if not channel and hps.get("dataset") != "digits":  # scikit-learn's digits come with the package
        raise UsageError("SM_CHANNEL_TRAINING is not set: give the job a 'training' channel with the "
                         "dataset's files (Fashion-MNIST's IDX files by default)")
    model_dir = Path(os.environ.get("SM_MODEL_DIR", "/opt/ml/model"))
    output_data = Path(os.environ.get("SM_OUTPUT_DATA_DIR", "/opt/ml/output/data"))
    cfg = train_config(hps, Path(channel) if channel else None)
    onnx = _truthy(hps.get("onnx", "false"))
    if onnx:
        check_onnx_export()
    with tempfile.TemporaryDirectory() as tmp:
        result = run_training(cfg, Path(tmp) / "run")
        export_run(result.directory, model_dir, onnx=onnx, data_dir=cfg.data_dir)
        write_model_code(model_dir)
        # Atomic: SageMaker uploads output/data when the job ends, and a crash must not leave half a file.
        atomic_write_bytes(output_data / "metrics.json", (result.directory / "metrics.json").read_bytes())
    m = result.metrics
    print(f"test_accuracy={m['test_accuracy']:.4f}; test_loss={m['test_loss']:.4f}; "
          f"train_seconds={m['train_seconds']:.1f}", flush=True)  # read by METRIC_DEFINITIONS
    return model_dir


def main() -> int:
    failure = Path(os.environ.get("SM_OUTPUT_DIR", "/opt/ml/output")) / "failure"
    try:
        run()
        return 0
    except Exception as e:  # noqa: BLE001 - every failure must reach SageMaker's failure file
        expected = isinstance(e, ConvlensError)
        reason = str(e) if expected else f"{type(e).__name__}: {e}"
        # Atomic, so the toolkit (which writes its own failure file only where none exists) never sees half.
        atomic_write_text(failure, reason[:1024] if expected else reason[:1024] + "\n" + traceback.format_exc())
        print(f"convlens training failed: {reason}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
