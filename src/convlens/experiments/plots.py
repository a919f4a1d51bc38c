"""Experiment figures as PNG, from run files and the summary only.

curves.png: validation accuracy per epoch, mean over seeds with a min-max band; accuracy_vs_params.png and
accuracy_vs_time.png: mean with 95% CI bars; per_class.png: mean per-class test accuracy per level.
"""

from __future__ import annotations

import os
import pickle
import queue
import sys
from collections.abc import Iterator
from concurrent.futures import Future
from concurrent.futures.process import BrokenProcessPool
from contextlib import contextmanager
from contextvars import ContextVar
from pathlib import Path

import matplotlib

if "ipykernel" not in sys.modules:  # files only, on servers too; in a notebook its inline backend shows figures
    matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.ticker import MaxNLocator  # noqa: E402

from convlens.experiments.store import RunStore  # noqa: E402


def save_figure(fig, path: Path | None):
    """Write ``fig`` to ``path`` (PNG, atomically) and return the path; without a path, return the figure itself
    (for a notebook: closed in pyplot, so it is shown once, as the cell's value). Inside ``drawing_in_background``
    the PNG is drawn by another process and is on disk when that block ends."""
    plt.close(fig)
    if path is None:
        return fig
    background = _BACKGROUND.get()
    if background is not None and background.submit(fig, path):
        return path
    _write_png(fig, path)
    return path


def figures_in(directory: Path) -> list[Path]:
    """The PNGs in ``directory`` (sorted; no temporary file), once every one handed to the background is written."""
    background = _BACKGROUND.get()
    if background is not None:
        background.finish_under(directory)
    return sorted(p for p in directory.glob("*.png") if not p.name.startswith("."))


def _write_png(fig, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = _temporary(path)
    fig.savefig(tmp, dpi=110, bbox_inches="tight")
    tmp.replace(path)  # atomic: a reader never sees half a PNG


def _temporary(path: Path) -> Path:
    return path.with_name(f".{path.name}.tmp.png")


def background_drawers() -> int:
    """How many processes draw a study's figures: the cores this process may use less the one it works on, at
    most 4 (a study's ~60 figures take 0.1-0.5 s each); 0 on one core (drawn here)."""
    return min(4, len(os.sched_getaffinity(0)) - 1)


class _Background:
    """Figures drawn by worker processes. Most of a figure's cost is in savefig (laying out and rasterising its
    text twice, for bbox_inches="tight", then PNG encoding), single-threaded Python; a matplotlib figure pickles,
    so the study hands it over and goes on with its probes while the other cores draw."""

    def __init__(self, workers: int):
        # loky (joblib's) and not multiprocessing's spawn: its workers start fresh, as spawn's do (a fork of a
        # process running torch's thread pools is not safe), but do not run the user's script again: a script
        # without an `if __name__ == "__main__":` guard is not run once more per worker.
        from joblib.externals.loky import ProcessPoolExecutor
        rc = {k: v for k, v in matplotlib.rcParams.items() if k != "backend"}  # a notebook user's own settings
        self.pool = ProcessPoolExecutor(workers, initializer=_start_drawer, initargs=(rc,))
        self.pending: dict[Path, tuple[Future, bytes]] = {}

    def submit(self, fig, path: Path) -> bool:
        """Hand ``fig`` over (False: it is drawn here: it does not pickle, or the workers are gone). A figure
        drawn earlier that failed raises its error now, as it would have when it was drawn here."""
        for done in [p for p, (future, _) in self.pending.items() if future.done()]:
            self._finish(done)
        if path in self.pending:  # drawn again: the later figure must land last, however it is drawn
            self._finish(path)
        try:
            blob = pickle.dumps(fig)
        except Exception:  # an artist holding a lambda, a generator
            return False
        try:
            self.pending[path] = (self.pool.submit(_draw_pickled, blob, path), blob)
        except (BrokenProcessPool, RuntimeError):  # a worker died earlier: the pool takes no more
            return False
        return True

    def _finish(self, path: Path) -> None:
        future, blob = self.pending.pop(path)
        try:
            future.result()
        except BrokenProcessPool:  # a worker died (killed, out of memory): draw the figure here
            _draw_pickled(blob, path)

    def finish_under(self, directory: Path) -> None:
        for path in [p for p in self.pending if p.parent == directory]:
            self._finish(path)

    def finish(self) -> None:
        """Wait for every PNG; a figure that failed raises its error here."""
        try:
            while self.pending:
                self._finish(next(iter(self.pending)))
        finally:
            self.abandon()

    def abandon(self) -> None:
        """Stop the workers; a PNG one was writing is left neither whole nor half. (The pending futures are not
        cancelled first: loky's shutdown fails each one itself, and on one already cancelled it raised
        InvalidStateError in its manager thread, which then died without stopping the workers, so the interpreter's
        exit waited for them forever: Ctrl-C during a study could hang it.)"""
        # Loky (joblib 1.6.0) fails the queued futures and forgets them, but leaves their ids in its queue, and its
        # manager thread then looked one up: a KeyError traceback on the terminal after Ctrl-C. Empty that queue
        # first, as the standard library's executor does when it cancels.
        work_ids = getattr(self.pool, "_work_ids", None)  # private: another loky may not have it
        while work_ids is not None:
            try:
                work_ids.get_nowait()
            except queue.Empty:
                break
        self.pool.shutdown(wait=True, kill_workers=True)
        for path in self.pending:
            _temporary(path).unlink(missing_ok=True)
        self.pending.clear()


def _start_drawer(rc: dict) -> None:
    import warnings
    with warnings.catch_warnings():  # deprecated keys the parent holds warn when set again
        warnings.simplefilter("ignore")
        matplotlib.rcParams.update(rc)


def _draw_pickled(blob: bytes, path: Path) -> None:
    _write_png(pickle.loads(blob), path)


# Per thread (a context variable): a figure saved by another thread, or by another study's thread, is not handed
# to this block's workers.
_BACKGROUND: ContextVar[_Background | None] = ContextVar("convlens_background_drawing", default=None)


@contextmanager
def drawing_in_background(workers: int | None = None) -> Iterator[None]:
    """Within this block, ``save_figure`` returns at once and ``workers`` processes (``background_drawers()``
    by default; 0: none) draw the PNGs; the block ends when every PNG is written. A figure that failed raises
    its error at the next figure handed over or at the block's end. Inside another such block, figures go to
    the outer block's workers, and the outer block's end waits for them."""
    workers = background_drawers() if workers is None else workers
    if _BACKGROUND.get() is not None or workers < 1:
        yield
        return
    background = _Background(workers)
    token = _BACKGROUND.set(background)
    try:
        yield
    except BaseException:
        background.abandon()
        raise
    finally:
        _BACKGROUND.reset(token)
    background.finish()


def _errorbar(ax, x: list[float], summaries: list[dict], labels: list[str]) -> None:
    for xi, s, label in zip(x, summaries, labels):
        mean = s["mean"] * 100
        lo, hi = s["ci95"]
        yerr = None if lo is None else [[mean - lo * 100], [hi * 100 - mean]]
        ax.errorbar([xi], [mean], yerr=yerr, fmt="o", capsize=4, label=label)


def curves_figure(store: RunStore, summary: dict):
    """Validation accuracy per epoch per level: mean over seeds, band = min-max. Runs without a validation split
    (``val_fraction: 0``, or too few images for one) record none: then the training accuracy, and the title says so."""
    levels = [lv for lv in summary["levels"] if lv["n"] > 0]
    histories = {lv["label"]: [m["history"] for m in store.done_runs(lv["label"], summary["seeds"]).values()]
                 for lv in levels}
    validated = all(h["val_accuracy"] is not None for runs in histories.values() for run in runs for h in run)
    key, name = ("val_accuracy", "validation") if validated else ("train_accuracy", "training")
    fig, ax = plt.subplots(figsize=(7, 4.2))
    for lv in levels:
        curves = [[h[key] for h in run] for run in histories[lv["label"]]]
        length = min(map(len, curves))  # early stopping may shorten some runs
        arr = np.array([c[:length] for c in curves]) * 100
        epochs = np.arange(1, length + 1)
        line, = ax.plot(epochs, arr.mean(0), marker="o", markersize=3, label=lv["label"])
        ax.fill_between(epochs, arr.min(0), arr.max(0), color=line.get_color(), alpha=0.2)
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set(xlabel="epoch", ylabel=f"{name} accuracy (%)",
           title=f"{name.capitalize()} accuracy{'' if validated else ' (no validation split)'}: mean, band = "
                 f"min-max ({_n_note(summary)})")
    ax.legend()
    return fig


def accuracy_figure(summary: dict, against: str):
    """Mean test accuracy with 95% CI bars against ``params`` (log axis) or ``train_seconds`` per level."""
    levels = [lv for lv in summary["levels"] if lv["n"] > 0]
    fig, ax = plt.subplots(figsize=(6, 4))
    x = [lv[against]["mean"] if isinstance(lv[against], dict) else lv[against] for lv in levels]
    _errorbar(ax, x, [lv["test_accuracy"] for lv in levels], [lv["label"] for lv in levels])
    if against == "params":
        ax.set_xscale("log")
    ax.set(xlabel="parameters" if against == "params" else "train time (s, mean)", ylabel="test accuracy (%)",
           title=f"Test accuracy, mean ± 95% CI ({_n_note(summary)})")
    ax.legend(fontsize=8)
    return fig


def per_class_figure(summary: dict, class_names: list[str]):
    """Mean per-class test accuracy, one bar per level."""
    levels = [lv for lv in summary["levels"] if lv["n"] > 0]
    fig, ax = plt.subplots(figsize=(9, 4))
    width = 0.8 / max(len(levels), 1)
    for i, lv in enumerate(levels):
        ax.bar(np.arange(len(class_names)) + i * width, np.array(lv["per_class_accuracy"]) * 100, width,
               label=lv["label"])
    ax.set_xticks(np.arange(len(class_names)) + width * (len(levels) - 1) / 2, class_names, rotation=30, ha="right")
    ax.set(ylabel="test accuracy (%)", title=f"Per-class test accuracy, mean over seeds ({_n_note(summary)})")
    ax.set_ylim(50, 100)
    ax.legend(fontsize=8)
    return fig


def _n_note(summary: dict) -> str:
    return f"n={summary['seeds']} seeds per level"


def figure(kind: str, store: RunStore, summary: dict, class_names: list[str]):
    """One of ``PLOTS`` as a matplotlib figure."""
    if kind == "curves":
        return curves_figure(store, summary)
    if kind in ("accuracy_vs_params", "accuracy_vs_time"):
        return accuracy_figure(summary, "params" if kind == "accuracy_vs_params" else "train_seconds")
    return per_class_figure(summary, class_names)


PLOTS = ("curves", "accuracy_vs_params", "accuracy_vs_time", "per_class")


def write_plots(store: RunStore, summary: dict, class_names: list[str]) -> list[Path]:
    out = store.root / "plots"
    kinds = list(PLOTS)
    if not summary["timing"]["comparable"]:  # times from different conditions are not put on one axis
        kinds.remove("accuracy_vs_time")
        (out / "accuracy_vs_time.png").unlink(missing_ok=True)
    return [save_figure(figure(kind, store, summary, class_names), out / f"{kind}.png") for kind in kinds]
