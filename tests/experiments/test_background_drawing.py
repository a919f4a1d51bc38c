"""Figures drawn by other processes (``drawing_in_background``): each PNG is the one this process would have
drawn, byte for byte, and is on disk when the block ends; what cannot go to a worker is drawn here; a failure
is raised at the block's end; a script without a main guard is not run again."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path

import numpy as np
import pytest
from matplotlib.ticker import FuncFormatter

from convlens import figure_files
from convlens.figure_files import drawing_in_background, plt, save_figure


def _figure(seed: int, texts: int = 10):
    """A figure with what the study's figures hold: an image, text in cells, tick labels, a legend, a title
    (``texts``: how many cells are labelled; many make it slow to draw)."""
    rng = np.random.default_rng(seed)
    fig, (a, b) = plt.subplots(1, 2, figsize=(6, 3))
    a.imshow(rng.random((10, 10)), cmap="Blues")
    for i in range(texts):
        a.text(i % 10, i // 10 % 10, f"{i}", ha="center", va="center", fontsize=6)
    b.plot(rng.random(5), marker="o", label=f"seed {seed}")
    b.set_xticks(range(5), [f"class {i}" for i in range(5)], rotation=60)
    b.legend()
    fig.suptitle(f"figure {seed}")
    return fig


def _drawn_here(tmp_path: Path, seed: int) -> bytes:
    path = save_figure(_figure(seed), tmp_path / "here" / f"{seed}.png")
    return path.read_bytes()


def test_each_png_is_the_one_drawn_here_and_is_on_disk_when_the_block_ends(tmp_path):
    out = tmp_path / "background"
    with drawing_in_background(1):
        paths = [save_figure(_figure(seed), out / f"{seed}.png") for seed in range(4)]
        assert len(figure_files._BACKGROUND.get().pending) == 4  # handed over, not drawn here
    assert figure_files._BACKGROUND.get() is None
    assert [p.read_bytes() for p in paths] == [_drawn_here(tmp_path, seed) for seed in range(4)]
    assert sorted(p.name for p in out.iterdir()) == ["0.png", "1.png", "2.png", "3.png"]  # no temporary file left


def test_a_figure_drawn_twice_at_one_path_ends_as_the_later_one_however_each_is_drawn(tmp_path):
    # The earlier figure is slow to draw and two workers are free: the later one would land first and be
    # overwritten if it were not handed over only after the earlier one is written.
    slow, later = tmp_path / "slow.png", tmp_path / "later.png"
    with drawing_in_background(2):
        save_figure(_figure(1, texts=600), slow)
        save_figure(_figure(2), slow)
        save_figure(_figure(1, texts=600), later)
        save_figure(_with_a_lambda(_figure(3)), later)  # drawn here: after the pending one at its path
    assert slow.read_bytes() == _drawn_here(tmp_path, 2)
    assert later.read_bytes() == save_figure(_with_a_lambda(_figure(3)), tmp_path / "here.png").read_bytes()


def _with_a_lambda(fig):
    fig.axes[1].yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:.1f}"))  # a lambda does not pickle
    return fig


def test_a_figure_that_does_not_pickle_is_drawn_here_at_once(tmp_path):
    with drawing_in_background(1):
        path = save_figure(_with_a_lambda(_figure(0)), tmp_path / "lambda.png")
        assert path.is_file() and not figure_files._BACKGROUND.get().pending


class ExitsInAnotherProcess:
    """Unpickled in any process but the one that made it, it ends that process: a drawing worker that dies."""

    def __init__(self):
        self.pid = os.getpid()

    def __setstate__(self, state):
        if os.getpid() != state["pid"]:
            os._exit(1)
        self.__dict__.update(state)


def test_figures_whose_worker_died_are_drawn_here(tmp_path):
    fig = _figure(3)
    fig.marker = ExitsInAnotherProcess()
    with drawing_in_background(1):
        path = save_figure(fig, tmp_path / "died.png")
        future, _ = figure_files._BACKGROUND.get().pending[path]
        assert isinstance(future.exception(timeout=120), BrokenProcessPool)  # the worker is gone
        others = [save_figure(_figure(seed), tmp_path / f"{seed}.png") for seed in range(2)]
        assert all(p.is_file() for p in others)  # the pool takes no more: drawn here, at once
    del fig.marker
    assert path.read_bytes() == _drawn_here(tmp_path, 3)
    assert [p.read_bytes() for p in others] == [_drawn_here(tmp_path, seed) for seed in range(2)]


def test_a_figure_that_fails_to_draw_raises_at_the_end_of_the_block(tmp_path):
    fig = _figure(0)
    from matplotlib.ticker import FormatStrFormatter
    # bad mathtext in the tick labels matplotlib formats (texts convlens writes are escaped): an error when drawn
    fig.axes[0].yaxis.set_major_formatter(FormatStrFormatter(r"$\frac%d$"))
    with pytest.raises(ValueError, match="frac"):
        with drawing_in_background(1):
            save_figure(fig, tmp_path / "bad.png")
            save_figure(_figure(1), tmp_path / "next.png")
    # as when drawn here: the study stops at the first figure that fails (what came after it may not be drawn)
    assert {p.name for p in tmp_path.iterdir()} <= {"next.png"}  # no PNG, whole or half, of the failed one
    assert figure_files._BACKGROUND.get() is None


def test_an_error_in_the_block_is_raised_as_it_is_and_leaves_no_worker_and_no_half_png(tmp_path):
    import psutil
    before = {p.pid for p in psutil.Process().children(recursive=True)}
    with pytest.raises(KeyError, match="mine"):
        with drawing_in_background(2):
            for i in range(4):
                save_figure(_figure(i, texts=600), tmp_path / f"{i}.png")
            background = figure_files._BACKGROUND.get()
            workers = {p.pid for p in psutil.Process().children(recursive=True)} - before
            raise KeyError("mine")
    assert workers and figure_files._BACKGROUND.get() is None and not background.pending
    assert not any(psutil.pid_exists(pid) and psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
                   for pid in workers)
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # whole PNGs or none


def test_ctrl_c_with_figures_still_queued_stops_every_worker(tmp_path, monkeypatch):
    """Ctrl-C while figures wait in the pool's queue: every worker stops, and no thread of the pool fails. (Loky's
    shutdown failed each queued figure's future itself; one cancelled first raised InvalidStateError in its manager
    thread, which died before stopping the workers, and the interpreter's exit then waited for them forever.)"""
    import threading

    import psutil
    failures = []
    monkeypatch.setattr(threading, "excepthook", lambda args: failures.append(args.exc_value))
    before = {p.pid for p in psutil.Process().children(recursive=True)}
    with pytest.raises(KeyboardInterrupt):
        with drawing_in_background(1):
            for i in range(12):  # one worker, slow figures: most wait in the queue
                save_figure(_figure(i, texts=600), tmp_path / f"{i}.png")
            workers = {p.pid for p in psutil.Process().children(recursive=True)  # not the resource trackers
                       if "popen_loky_posix" in " ".join(p.cmdline())} - before
            raise KeyboardInterrupt
    assert workers
    _, alive = psutil.wait_procs([psutil.Process(pid) for pid in workers if psutil.pid_exists(pid)], timeout=15)
    assert not [p for p in alive if p.status() != psutil.STATUS_ZOMBIE]
    assert not failures, failures
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # whole PNGs or none


def test_stopping_with_many_short_jobs_queued_fails_no_thread(monkeypatch):
    """Loky's shutdown forgot the queued jobs but kept their ids, and its manager thread then looked one up: a
    KeyError traceback after Ctrl-C (every time in 20 tries with 300 jobs of 2 ms on one worker, before the fix)."""
    import threading
    import time

    failures = []
    monkeypatch.setattr(threading, "excepthook", lambda args: failures.append(args.exc_value))
    for _ in range(3):
        background = figure_files._Background(1)
        futures = [background.pool.submit(time.sleep, 0.002) for _ in range(300)]
        futures[0].result(timeout=120)
        time.sleep(0.05)  # the worker works through the queue meanwhile
        background.abandon()
        assert all(f.done() for f in futures)  # each one ran or was failed by the shutdown: none left waiting
    assert not failures, failures


def test_a_failed_figure_is_raised_at_the_next_figure_handed_over(tmp_path):
    from matplotlib.ticker import FormatStrFormatter
    bad = _figure(0)
    bad.axes[0].yaxis.set_major_formatter(FormatStrFormatter(r"$\frac%d$"))  # fails when drawn
    with pytest.raises(ValueError, match="frac"):
        with drawing_in_background(1):
            save_figure(bad, tmp_path / "bad.png")
            future, _ = figure_files._BACKGROUND.get().pending[tmp_path / "bad.png"]
            future.exception(timeout=120)  # it has failed in its worker
            try:
                save_figure(_figure(1), tmp_path / "next.png")
            except ValueError:
                raised_at_next = True
                raise
    assert raised_at_next


def test_figures_in_a_directory_are_listed_once_written_and_other_threads_draw_here(tmp_path):
    import threading
    with drawing_in_background(1):
        save_figure(_figure(0, texts=600), tmp_path / "plots" / "b.png")
        save_figure(_figure(1), tmp_path / "plots" / "a.png")
        save_figure(_figure(2), tmp_path / "elsewhere" / "c.png")
        assert [p.name for p in figure_files.figures_in(tmp_path / "plots")] == ["a.png", "b.png"]
        assert all(p.parent.name == "elsewhere" for p in figure_files._BACKGROUND.get().pending)
        drawn = []
        thread = threading.Thread(target=lambda: drawn.append(save_figure(_figure(3), tmp_path / "thread.png")
                                                               .is_file()))
        thread.start()
        thread.join()
        assert drawn == [True]  # not handed to this block's workers: on disk when save_figure returned


def test_without_workers_or_inside_another_block_figures_are_drawn_as_before(tmp_path):
    with drawing_in_background(0):
        assert figure_files._BACKGROUND.get() is None
        assert save_figure(_figure(0), tmp_path / "0.png").is_file()
    with drawing_in_background(1):
        outer = figure_files._BACKGROUND.get()
        with drawing_in_background(1):
            assert figure_files._BACKGROUND.get() is outer  # one set of workers
            save_figure(_figure(1), tmp_path / "1.png")
        assert figure_files._BACKGROUND.get() is outer
    assert (tmp_path / "1.png").read_bytes() == _drawn_here(tmp_path, 1)


def test_a_script_without_a_main_guard_is_not_run_again_by_the_workers(tmp_path):
    script = tmp_path / "script.py"
    script.write_text(textwrap.dedent(f"""
        from pathlib import Path
        from convlens.figure_files import drawing_in_background, plt, save_figure
        with open({str(tmp_path / "ran.txt")!r}, "a") as f:
            f.write("ran\\n")
        with drawing_in_background(2):
            for i in range(3):
                fig, ax = plt.subplots()
                ax.plot([0, i])
                save_figure(fig, Path({str(tmp_path)!r}) / f"{{i}}.png")
    """))
    proc = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "ran.txt").read_text() == "ran\n"
    assert all((tmp_path / f"{i}.png").is_file() for i in range(3))
