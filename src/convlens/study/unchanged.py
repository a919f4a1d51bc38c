"""A finished study run again with nothing changed is not redone.

After a study, OUT/.convlens-study.json records two things: a digest of everything its outputs were made from (the
config, the dataset's pixels and labels and where they were read, the study directory's own path, every file of
every run, convlens's own code, the Python and packages that compute or draw, matplotlib's rc file and font list,
the device type, whether the notebook could be executed), and a digest of every output it wrote (results.json, the
reports, the notebook, figures/, model/, each experiment's summary, table and plots). A rerun that has no run to
train compares both: when they match, the analysis would write the same files again (probes, ~60 figures, the ONNX
export and the notebook: 40-60 s on 2 cores), so the study keeps them and says so. Any difference redoes the
analysis, as does deleting an output (e.g. results.json), and so does anything unreadable.

The input digest is keyed with a secret of this user's (HMAC, in convlens's user data directory): a study directory
from elsewhere cannot vouch for its own results or notebook, it is analysed again. Links are not followed: a study
directory holds files, and a link out of it (``figures -> /``) is never read.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import secrets
from collections.abc import Iterable
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

import convlens
from convlens.atomic_files import atomic_write_json
from convlens.provenance import package_versions

if TYPE_CHECKING:
    from convlens.data.dataset import ImageDataset

STATE_FILE = ".convlens-study.json"
STATE_FORMAT = "convlens-study-state/2"
# The packages whose version can change a number, a figure, the exported model or the executed notebook, besides
# those provenance.package_versions() records already (python, convlens, torch, numpy, safetensors, pydantic).
PACKAGES = ("scipy", "statsmodels", "scikit-learn", "pandas", "matplotlib", "pillow", "jinja2", "markdown-it-py",
            "onnx", "onnxscript", "onnxruntime", "nbformat", "nbclient", "ipykernel")
_CODE_SUFFIXES = (".py", ".j2", ".html")
_OUTPUTS = ("results.json", "report.md", "report.html", "report.ipynb", "figures/", "model/")
_EXPERIMENT_OUTPUTS = ("summary.json", "runs.csv", "plots/")


def _key() -> bytes:
    """This user's secret for the digests (created on first use, readable by this user only)."""
    import platformdirs
    path = Path(platformdirs.user_data_dir("convlens")) / "study-key"
    try:
        return path.read_bytes()
    except FileNotFoundError:
        path.parent.mkdir(parents=True, exist_ok=True)
        key = secrets.token_bytes(32)
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:  # another study made it meanwhile
            return path.read_bytes()
        with os.fdopen(fd, "wb") as f:
            f.write(key)
        return key


def _versions() -> dict[str, str]:
    versions = package_versions()  # python, convlens and the core packages, as results.json records them
    for name in PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = "missing"
    return versions


def _files(root: Path, within: str = "") -> list[Path]:
    """The regular files under ``root / within`` (or that one file), sorted; links are neither followed nor read."""
    top = root / within
    if top.is_symlink() or not top.exists():
        return []
    if top.is_file():
        return [top]
    found = []
    for directory, subdirectories, names in os.walk(top):  # does not descend into linked directories
        subdirectories.sort()
        for name in names:
            path = Path(directory) / name
            if not path.is_symlink() and path.is_file():
                found.append(path)
    return sorted(found)


def _drawing_setup() -> list[tuple[str, Path]]:
    """The files besides the code and versions that decide how a figure looks: the matplotlibrc that matplotlib
    reads here (a user's own, the working directory's, or its default) and its font list (the fonts a figure's
    text is set in, cached when matplotlib first looks for fonts)."""
    import matplotlib  # light: pyplot and the font manager are not imported
    files = [("matplotlibrc", Path(matplotlib.matplotlib_fname()))]
    font_lists = sorted(Path(matplotlib.get_cachedir()).glob("fontlist-v*.json"))
    return files + [(f"font list {p.name}", p) for p in font_lists if not p.is_symlink()]


def _add(digest, label: str, data: bytes | memoryview) -> None:
    # Each part is framed by its label and length, so two different sets of parts never hash alike.
    name = label.encode()
    digest.update(len(name).to_bytes(8, "little") + name + len(data).to_bytes(8, "little"))
    digest.update(data)


def _add_file(digest, label: str, path: Path) -> None:
    with path.open("rb") as f:
        _add(digest, label, hashlib.file_digest(f, "sha256").digest())


def study_inputs(config: dict, dataset: ImageDataset, out: Path, experiment_dirs: Iterable[Path], *,
                 device_type: str, notebook_runs: bool) -> str | None:
    """A keyed digest of what a study's outputs are made from (``config``: the study's config as results.json
    records it; ``dataset``: the whole dataset it loaded; ``out``: the study directory; ``experiment_dirs``: its
    run stores); None when a file cannot be read (the study then counts as changed)."""
    try:
        digest = hmac.new(_key(), digestmod="sha256")
        _add(digest, "config", json.dumps(config, sort_keys=True).encode())
        _add(digest, "environment", json.dumps({"versions": _versions(), "device_type": device_type,
                                                "notebook_runs": notebook_runs, "out": str(Path(out).resolve()),
                                                "data": [dataset.source.origin, str(dataset.source.directory)]},
                                               sort_keys=True).encode())
        for label, path in _drawing_setup():
            _add_file(digest, label, path)
        _add(digest, "classes", json.dumps(list(dataset.class_names)).encode())
        for name in ("train_images", "train_labels", "test_images", "test_labels"):
            array = np.ascontiguousarray(getattr(dataset, name))
            _add(digest, f"{name} {array.dtype.str} {array.shape}", memoryview(array).cast("B"))
        package = Path(convlens.__file__).parent
        for path in _files(package):
            if path.suffix in _CODE_SUFFIXES:
                _add_file(digest, f"code/{path.relative_to(package).as_posix()}", path)
        for root in experiment_dirs:
            for path in _files(root, "experiment.json") + _files(root, "runs"):
                _add_file(digest, f"runs/{root.name}/{path.relative_to(root).as_posix()}", path)
        return digest.hexdigest()
    except OSError:
        return None


def study_outputs(out: Path) -> dict[str, str]:
    """Relative path -> sha256 of every file the study writes from its inputs (OSError when one is unreadable)."""
    paths = [p for within in _OUTPUTS for p in _files(out, within)]
    experiments = out / "experiments"
    if experiments.is_dir() and not experiments.is_symlink():
        for store in sorted(experiments.iterdir()):
            if store.is_dir() and not store.is_symlink():
                paths += [p for within in _EXPERIMENT_OUTPUTS for p in _files(store, within)]
    outputs = {}
    for path in paths:
        with path.open("rb") as f:
            outputs[path.relative_to(out).as_posix()] = hashlib.file_digest(f, "sha256").hexdigest()
    return outputs


def forget(out: Path) -> None:
    """The study in ``out`` is about to change: its record no longer holds."""
    try:
        (out / STATE_FILE).unlink(missing_ok=True)
    except OSError:  # a directory of that name, say: then no record can be read from it either
        pass


def remember(out: Path, inputs: str | None) -> None:
    """Record that the outputs now in ``out`` were made from ``inputs`` (nothing when they are unknown)."""
    if inputs is None:
        return
    try:
        atomic_write_json(out / STATE_FILE, {"format": STATE_FORMAT, "inputs": inputs, "outputs": study_outputs(out)})
    except OSError:  # no record: the next run analyses again
        forget(out)


def unchanged(out: Path, inputs: str | None) -> bool:
    """Whether ``out`` holds the outputs of a study made from ``inputs``, every one as that study wrote it."""
    if inputs is None:
        return False
    try:
        state = json.loads((out / STATE_FILE).read_text())
        return (isinstance(state, dict) and state.get("format") == STATE_FORMAT
                and hmac.compare_digest(str(state.get("inputs")), inputs)
                and state.get("outputs") == study_outputs(out))
    except (OSError, ValueError):
        return False
