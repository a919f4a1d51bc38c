"""Export a trained run to a self-contained model directory (the format served and shipped to SageMaker).

    MODEL_DIR/model.safetensors   weights (no pickle)
    MODEL_DIR/config.json         architecture spec, class names, input contract, versions, source run
    MODEL_DIR/model.onnx          optional: the same network for ONNX Runtime (input "input", output "logits")
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import tempfile
import warnings
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from convlens.atomic_files import atomic_write_json, fsync_dir
from convlens.errors import UsageError
from convlens.models.checkpoint import (
    CONFIG_FILE,
    MODEL_FORMAT,
    WEIGHTS_FILE,
    dataset_of,
    load_model,
    read_checked_config,
    stored_format,
)
from convlens.provenance import package_versions
from convlens.run_files import check_finished
from convlens.serving.predictor import ONNX_FILE, check_servable

if TYPE_CHECKING:  # torch is imported where a network is loaded or traced, after the checks
    import torch

    from convlens.data.dataset import ImageDataset

ONNX_OPSET = 18


EXAMPLES_FILE = "examples.npz"  # a few real test images for the web page (uint8 images, int labels; no pickle)
N_EXAMPLES = 10


def model_config(run_config: dict, metrics: dict | None, run_dir: Path, over_seeds: dict | None = None) -> dict:
    """``over_seeds``: the test accuracy of the model's configuration over its seeds ({n, mean, std, ci95}),
    when it came from an experiment; the model card shows it beside this run's own."""
    metrics = metrics or {}
    # a served run directory's files may be odd (/model must still answer): a section that is not an object is none
    section = lambda d, key: d.get(key) if isinstance(d.get(key), dict) else {}  # noqa: E731
    return {
        "format": MODEL_FORMAT,
        "model": run_config["model"],
        "dataset": dataset_of(run_config),
        "class_names": run_config["class_names"],
        "input": run_config["input"],
        "params": section(metrics, "params").get("total"),
        "versions": package_versions(),
        "source_run": {"directory": str(run_dir), "seed": run_config.get("seed"),
                       "recipe": section(run_config, "recipe").get("name"),
                       "test_accuracy": metrics.get("test_accuracy"), "n_test": metrics.get("n_test")},
        "test_accuracy_over_seeds": over_seeds,
    }


def write_examples(run_config: dict, path: Path, data_dir: Path | None = None,
                   dataset: ImageDataset | None = None) -> bool:
    """Up to N_EXAMPLES test images, one per class first, from the run's dataset: ``dataset`` when the caller
    has it loaded, else read from ``data_dir``, else from where the run found it, else from the default places
    (never downloaded for this); False when it is on none of them."""
    from convlens.data import load_named
    from convlens.errors import ConvlensError
    data = run_config.get("data") if isinstance(run_config.get("data"), dict) else {}
    name = dataset_of(run_config)
    if data_dir is not None:
        places = [data_dir]
    else:  # where the run found it (a --data-dir of its own), then the default places
        recorded = data.get("directory")
        places = ([Path(recorded)] if isinstance(recorded, str) and Path(recorded).is_dir() else []) + [None]
    ds = dataset if dataset is not None and dataset.name == name else None
    for place in places if ds is None else []:
        try:
            ds = load_named(name, place, download=False)
            break
        except (ConvlensError, OSError):
            continue
    if ds is None:
        return False
    picks = []
    for c in range(len(ds.class_names)):
        where = np.flatnonzero(ds.test_labels == c)
        if len(where):
            picks.append(int(where[0]))
    picks = sorted(picks)[:N_EXAMPLES]
    with open(path, "wb") as f:
        np.savez(f, images=ds.test_images[picks], labels=ds.test_labels[picks].astype(np.int64))
    return True


def export_onnx(model: torch.nn.Module, path: Path) -> None:
    """Write ``model`` as ONNX with a dynamic batch dimension; atomic (temp file + rename)."""
    import torch
    try:
        import onnx  # noqa: F401
        import onnxscript  # noqa: F401
    except ImportError:
        raise UsageError("ONNX export needs the 'onnx' extra: pip install 'convlens[onnx]'") from None
    model = model.to(memory_format=torch.contiguous_format).eval()
    spec = model.spec
    example = torch.zeros(2, spec.in_channels, spec.image_size, spec.image_size)
    batch = torch.export.Dim("batch", min=1, max=4096)
    # The exporter logs about optional packages (torchvision) it does not need here; keep the CLI quiet.
    logging.getLogger("torch.onnx").setLevel(logging.ERROR)
    with tempfile.TemporaryDirectory(dir=path.parent) as tmp, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        tmp_path = Path(tmp) / ONNX_FILE
        program = torch.onnx.export(model, (example,), dynamo=True, input_names=["input"], output_names=["logits"],
                                    dynamic_shapes=({0: batch},), opset_version=ONNX_OPSET, verbose=False)
        program.save(str(tmp_path))
        os.replace(tmp_path, path)


def _same_source(existing: Path, run_dir: Path) -> bool:
    """Whether the export whose config.json is ``existing`` came from ``run_dir``: its recorded source directory
    is that run (when it was recorded absolute: a relative one was relative to a working directory not recorded,
    so runs/k3 from two directories are two runs), or its weights are the run's, byte for byte (a copy of the
    run, or the same exported model exported again)."""
    import filecmp
    try:
        source = json.loads(existing.read_text()).get("source_run", {}).get("directory")
        if isinstance(source, str) and Path(source).is_absolute() and Path(source).resolve() == run_dir.resolve():
            return True
    except (OSError, ValueError, AttributeError, RecursionError):
        pass
    try:
        return filecmp.cmp(existing.parent / WEIGHTS_FILE, run_dir / WEIGHTS_FILE, shallow=False)
    except OSError:
        return False


def export_run(run_dir: str | Path, out_dir: str | Path, *, onnx: bool = False,
               over_seeds: dict | None = None, data_dir: Path | None = None,
               dataset: ImageDataset | None = None, replace_other: bool = True) -> Path:
    """Copy weights, write the model config (and ONNX) from a finished run into ``out_dir``.

    A crash at any moment leaves ``out_dir`` holding either the old model, the new one, or no config.json
    (which every loader refuses with one line), never new weights under an old config: everything is written
    to temp files first, then config.json is removed, the weights and ONNX file renamed into place, and the
    new config.json renamed in last.

    ``replace_other=False`` (``convlens export`` without --force, ``Run.export`` without force) refuses an
    ``out_dir`` that holds the export of another run; exporting the same run again replaces its export either way.
    """
    run_dir, out_dir = Path(run_dir), Path(out_dir)
    # A run's metrics, checked before torch is imported; an exported model (exported again) has none.
    is_run = (run_dir / CONFIG_FILE).is_file() and stored_format(run_dir / CONFIG_FILE) != MODEL_FORMAT
    metrics = check_finished(run_dir) if is_run else None
    read_checked_config(run_dir)  # the run's record, checked before torch is imported
    model, run_config = load_model(run_dir)  # validates config and weights before anything is written
    check_servable(run_config, run_dir)
    if out_dir.resolve() == run_dir.resolve():
        raise UsageError(f"--out {out_dir} is the run itself; export to another directory (default RUN_DIR/export)")
    existing = out_dir / CONFIG_FILE
    if existing.exists():  # replace an earlier export, never someone's own config.json
        if stored_format(existing) != MODEL_FORMAT:
            raise UsageError(f"{existing} exists and is not an exported convlens model; nothing was written: "
                             "choose another --out")
        if not replace_other and not _same_source(existing, run_dir):
            raise UsageError(f"{out_dir} holds the export of another run; nothing was written: choose another "
                             "directory, or replace it with --force (force=True in Python)")
    out_dir.mkdir(parents=True, exist_ok=True)
    for stale in out_dir.glob(".export-*"):  # what a killed export left
        shutil.rmtree(stale, ignore_errors=True)
    with tempfile.TemporaryDirectory(dir=out_dir, prefix=".export-") as staging:
        staged = Path(staging)
        shutil.copyfile(run_dir / WEIGHTS_FILE, staged / WEIGHTS_FILE)
        if onnx:
            export_onnx(model, staged / ONNX_FILE)
        atomic_write_json(staged / CONFIG_FILE, model_config(run_config, metrics, run_dir, over_seeds))
        write_examples(run_config, staged / EXAMPLES_FILE, data_dir, dataset)
        for name in (WEIGHTS_FILE, ONNX_FILE, EXAMPLES_FILE):
            if (staged / name).exists():
                with open(staged / name, "rb") as f:
                    os.fsync(f.fileno())
        (out_dir / CONFIG_FILE).unlink(missing_ok=True)
        fsync_dir(out_dir)
        os.replace(staged / WEIGHTS_FILE, out_dir / WEIGHTS_FILE)
        if (staged / EXAMPLES_FILE).exists():
            os.replace(staged / EXAMPLES_FILE, out_dir / EXAMPLES_FILE)
        else:
            (out_dir / EXAMPLES_FILE).unlink(missing_ok=True)
        if onnx:
            os.replace(staged / ONNX_FILE, out_dir / ONNX_FILE)
        else:
            (out_dir / ONNX_FILE).unlink(missing_ok=True)  # a stale ONNX file must not shadow new weights
        fsync_dir(out_dir)
        os.replace(staged / CONFIG_FILE, out_dir / CONFIG_FILE)
        fsync_dir(out_dir)
    return out_dir
