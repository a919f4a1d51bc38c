"""A training run's directory, the files beside its weights: metrics.json and predictions.npz, their names, the
predictions' writer and the readers.

convlens.runs writes them; the run store, the statistics and the CLI's tables read them through this module, which
imports no torch, so ``convlens experiment table`` and ``convlens compare`` do not pay its ~1 s import.
"""

from __future__ import annotations

import io
import zipfile
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from convlens.atomic_files import atomic_write_bytes
from convlens.errors import DataChanged, UsageError
from convlens.models.checkpoint import model_file, read_json_object
from convlens.records import RunMetrics, checked

if TYPE_CHECKING:
    from convlens.data.dataset import ImageDataset

METRICS_FILE = "metrics.json"
# The predicted and the true class of every test image, in test-set order (npz of two integer arrays, no pickle):
# what per-example comparisons (McNemar's test, the images a change flips) read.
PREDICTIONS_FILE = "predictions.npz"


def refuse_run_or_model(directory: Path, what: str) -> None:
    """One line when ``directory`` holds a training run's or an exported model's files: ``what`` (a study, an
    experiment) written there would be mixed into them."""
    for name in ("config.json", METRICS_FILE):
        if (directory / name).is_file():
            raise UsageError(f"{directory} holds a {name} (a training run or an exported model), not {what}; nothing "
                             "was written: choose another --out")


def experiment_of(run_dir: Path) -> Path | None:
    """The experiment (or study experiment) directory ``run_dir`` is inside, or is: one with an experiment.json,
    ``run_dir`` being it, its runs/ or a level or run directory under runs/. None when it is in none."""
    path = Path(run_dir).absolute()
    for candidate in (path, *list(path.parents)[:3]):
        inside = path.relative_to(candidate).parts
        if (candidate / "experiment.json").is_file() and (not inside or inside[0] == "runs"):
            return candidate
    return None


def check_finished(run_dir: Path) -> dict:
    """A run directory's weights answer requests or are scored only once its metrics.json says it finished: a
    pending run's weights may be an earlier run's (a rerun into the directory removes metrics.json and writes its
    config.json first, the weights last), and a failed run's are whatever it had reached. Returns its metrics."""
    if not model_file(run_dir, METRICS_FILE).exists():  # a link out of the directory is refused, not followed
        experiment = experiment_of(run_dir)
        again = (f"run its experiment again (convlens experiment run ... --out {experiment}: it trains unfinished "
                 "runs)" if experiment else "train it again into the same directory with --force (force=True)")
        raise UsageError(f"{run_dir} is not a finished run (no {METRICS_FILE}: interrupted, or still training); "
                         f"{again}, or give a finished one")
    metrics = read_metrics(run_dir)  # a FIFO or a device is "not found", never opened
    if metrics["status"] != "done":
        raise UsageError(f"{run_dir} is a failed run ({metrics.get('reason')}); give a finished one")
    return metrics


def check_same_data(config: dict, dataset: ImageDataset, splits: tuple[str, ...] = ("test",), *,
                    what: str = "this run was", fix: str = "give the data it was trained on, or train again") -> None:
    """A one-line DataError when ``dataset`` (with the run's subsets taken) holds other images in ``splits`` than
    the run's config.json recorded. Runs recorded before the digests, and exported models, are not checked."""
    data = config.get("data") or {}
    recorded = data.get("digests") or {}
    if not recorded:
        return
    sizes = {"train": len(dataset.train_labels), "test": len(dataset.test_labels)}
    subsets = {split: data.get(f"{split}_subset") for split in ("train", "test")}
    fits = all(subsets[split] is None or subsets[split] <= sizes[split] for split in splits)
    ds = dataset.subset(*(subsets[split] if split in splits else None for split in ("train", "test"))) if fits else None
    changed = [split for split in splits if split in recorded and (ds is None or recorded[split] != ds.digest(split))]
    if changed:
        used = "trained and tested" if len(changed) == 2 else f"{changed[0]}ed"
        name = dataset.name or data.get("dataset")  # what was read: a folder may have moved since
        why = (" (a file added, removed or changed in the folder moves images between the splits; another Pillow "
               "may decode or resize them differently; runs of earlier convlens versions read photos with an EXIF "
               "orientation sideways, or a folder's images class by class, where convlens now turns them upright "
               "and shuffles each split once)" if str(name).startswith("folder:") else "")
        raise DataChanged(f"the {' and '.join(changed)} images of {name} differ from those {what} {used} on{why}; "
                        f"{fix}")


def write_predictions(path: Path, predicted: np.ndarray, label: np.ndarray) -> None:
    buffer = io.BytesIO()
    np.savez(buffer, predicted=predicted.astype(np.int16), label=label.astype(np.int16))
    atomic_write_bytes(path, buffer.getvalue())


def read_predictions(run_dir: Path) -> tuple[np.ndarray, np.ndarray] | None:
    """(predicted, true) class per test image of a finished run, or None for a run that stored none."""
    path = Path(run_dir) / PREDICTIONS_FILE
    if not path.is_file():
        return None
    try:
        with np.load(path, allow_pickle=False) as data:
            return data["predicted"], data["label"]
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as e:  # empty or truncated: EOF, BadZip
        raise UsageError(f"{path}: cannot read the stored predictions ({e or type(e).__name__})") from None


def read_metrics(run_dir: Path) -> dict:
    """A finished run's metrics.json, checked (``convlens.records.RunMetrics``); absent is one line."""
    path = Path(run_dir) / METRICS_FILE
    return checked(read_json_object(path, f"the run in {run_dir} has not finished (or is not a convlens run)"),
                   RunMetrics, path)
