"""A finished study run again with nothing changed is not redone.

After a study, OUT/.convlens-study.json records two things: a digest of everything its outputs were made from
(the config, the dataset's pixels and labels, every file of every run, convlens's own code, the packages that
compute or draw, the device type, whether the notebook could be executed), and a digest of every output it wrote
(results.json, the reports, the notebook, figures/, model/, each experiment's summary, table and plots). A rerun
that has no run to train compares both: when they match, the analysis would write the same files again (probes,
~60 figures, the ONNX export and the notebook: 40-60 s on 2 cores), so the study keeps them and says so. Any
difference redoes the analysis, as does deleting an output (e.g. results.json).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

import convlens
from convlens.atomic_files import atomic_write_json

if TYPE_CHECKING:
    from convlens.data.dataset import ImageDataset

STATE_FILE = ".convlens-study.json"
STATE_FORMAT = "convlens-study-state/1"
# The packages whose version can change a number, a figure, the exported model or the executed notebook.
PACKAGES = ("torch", "numpy", "scipy", "statsmodels", "scikit-learn", "pandas", "matplotlib", "jinja2",
            "markdown-it-py", "safetensors", "onnx", "onnxscript", "onnxruntime", "nbformat", "nbclient", "ipykernel")
_CODE_SUFFIXES = (".py", ".j2", ".html")


def _versions() -> dict[str, str]:
    versions = {}
    for name in PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = "missing"
    return versions


def _files(root: Path, patterns: Iterable[str]) -> list[Path]:
    return sorted({p for pattern in patterns for p in root.glob(pattern) if p.is_file()})


def _add(digest, label: str, data: bytes | memoryview) -> None:
    # Each part is framed by its label and length, so two different sets of parts never hash alike.
    name = label.encode()
    digest.update(len(name).to_bytes(8, "little") + name + len(data).to_bytes(8, "little"))
    digest.update(data)


def study_inputs(config: dict, dataset: ImageDataset, experiment_dirs: Iterable[Path], *, device_type: str,
                 notebook_runs: bool) -> str:
    """sha256 over what a study's outputs are made from (``config``: the study's config as results.json records
    it; ``dataset``: the whole dataset it loaded; ``experiment_dirs``: its run stores)."""
    digest = hashlib.sha256()
    _add(digest, "config", json.dumps(config, sort_keys=True).encode())
    _add(digest, "environment", json.dumps({"versions": _versions(), "device_type": device_type,
                                            "notebook_runs": notebook_runs}, sort_keys=True).encode())
    _add(digest, "classes", json.dumps(list(dataset.class_names)).encode())
    for name in ("train_images", "train_labels", "test_images", "test_labels"):
        _add(digest, name, memoryview(np.ascontiguousarray(getattr(dataset, name))).cast("B"))
    package = Path(convlens.__file__).parent
    for path in _files(package, [f"**/*{suffix}" for suffix in _CODE_SUFFIXES]):
        _add(digest, f"code/{path.relative_to(package).as_posix()}", path.read_bytes())
    for root in experiment_dirs:
        for path in _files(root, ["experiment.json", "runs/**/*"]):
            _add(digest, f"runs/{root.name}/{path.relative_to(root).as_posix()}", path.read_bytes())
    return digest.hexdigest()


def study_outputs(out: Path) -> dict[str, str]:
    """Relative path -> sha256 of every file the study writes from its inputs."""
    patterns = ["results.json", "report.md", "report.html", "report.ipynb", "figures/**/*", "model/**/*",
                "experiments/*/summary.json", "experiments/*/runs.csv", "experiments/*/plots/**/*"]
    return {path.relative_to(out).as_posix(): hashlib.sha256(path.read_bytes()).hexdigest()
            for path in _files(out, patterns)}


def forget(out: Path) -> None:
    """The study in ``out`` is about to change: its record no longer holds."""
    (out / STATE_FILE).unlink(missing_ok=True)


def remember(out: Path, inputs: str) -> None:
    """Record that the outputs now in ``out`` were made from ``inputs``."""
    atomic_write_json(out / STATE_FILE, {"format": STATE_FORMAT, "inputs": inputs, "outputs": study_outputs(out)})


def unchanged(out: Path, inputs: str) -> bool:
    """Whether ``out`` holds the outputs of a study made from ``inputs``, every one as that study wrote it."""
    try:
        state = json.loads((out / STATE_FILE).read_text())
    except (OSError, ValueError):
        return False
    return (isinstance(state, dict) and state.get("format") == STATE_FORMAT and state.get("inputs") == inputs
            and state.get("outputs") == study_outputs(out))
