"""Figures as PNG files, written atomically, and by worker processes while a study goes on with its probes.

Every figure convlens saves goes through ``save_figure``: the experiments' plots and the report's figures alike.
"""

from __future__ import annotations

import os
import pickle
import queue
import re
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

_UNESCAPED_DOLLAR = re.compile(r"(?<!\\)\$")


def show_as_written(fig) -> None:
    """Escape every "$" in the texts of ``fig`` that convlens or its user wrote (titles, labels, legends, captions,
    fixed tick labels such as class names): matplotlib reads "$...$" as a formula, and a class folder named
    "cheap $\\foo$" failed the study's figures. An escaped "\\$" is drawn as "$". Tick labels that matplotlib
    formats itself (a log axis's "$\\mathdefault{10^{3}}$") are left as they are: they need the formula."""
    from matplotlib.text import Text
    from matplotlib.ticker import FixedFormatter, FixedLocator, FuncFormatter
    ticks = set()
    for ax in fig.axes:
        for axis in (ax.xaxis, ax.yaxis):
            major = axis.get_majorticklabels()
            labels = [t.get_text() for t in major]
            # labels given with set_xticks(ticks, labels) (a FuncFormatter over them in matplotlib 3.11) are
            # drawn again from the formatter: it is replaced by one of the escaped labels, at the same fixed ticks
            if (isinstance(axis.get_major_locator(), FixedLocator)
                    and isinstance(axis.get_major_formatter(), (FixedFormatter, FuncFormatter))
                    and any(_UNESCAPED_DOLLAR.search(label) for label in labels)):
                axis.set_major_formatter(FixedFormatter([_UNESCAPED_DOLLAR.sub(r"\\$", label) for label in labels]))
            ticks.update(id(t) for t in (*major, *axis.get_minorticklabels()))
    for text in fig.findobj(Text):
        if id(text) not in ticks:
            text.set_text(_UNESCAPED_DOLLAR.sub(r"\\$", text.get_text()))


def save_figure(fig, path: Path | None):
    """Write ``fig`` to ``path`` (PNG, atomically) and return the path; without a path, return the figure itself
    (for a notebook: closed in pyplot, so it is shown once, as the cell's value). Inside ``drawing_in_background``
    the PNG is drawn by another process and is on disk when that block ends."""
    plt.close(fig)
    show_as_written(fig)
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
