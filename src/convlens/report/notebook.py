"""report.ipynb: the report as a notebook a student can rerun and change.

The same sections as report.md (its generated text, cut at headings and figures, as Markdown cells), each
followed by code that uses the public API on this directory: the headline numbers, each experiment's table and
every figure are drawn again from results.json, the run store and the study's images (study/redraw.py
``figure_drawers``). Plain nbformat 4, a python3 kernel, no extensions: it opens in Jupyter and
Colab. Saved executed (nbclient, real ipykernels) when the notebook extra is installed, so it reads without a kernel.

Executing it draws every figure again, 12-20 s in one kernel. Its code cells depend on nothing but the first one
(which loads the study as ``study``), so they run in several kernels at once (``notebook_kernels``): each kernel
runs the first cell and then its share of the others, in order; the outputs go back into the one notebook, and
the execution counts are numbered in reading order, as one Run All in a single kernel numbers them.
"""

from __future__ import annotations

import asyncio
import copy
import json
import os
import re
import shutil
import signal
import tempfile
import weakref
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from convlens.atomic_files import atomic_write_text

NOTEBOOK_FILE = "report.ipynb"
SETUP = '''# Elsewhere (e.g. Colab): install convlens from its source (`pip install '/path/to/convlens[notebook]'`, or a
# wheel built there with `pip wheel .`), upload this study's directory and name it here.
STUDY = "."  # the study directory: results.json, figures/, experiments/

import convlens

study = convlens.load_study(STUDY)
print(study.headline())'''
# What the notebook's cells import (the API, the figures, pyplot): a kernel started early runs this while the study
# is still busy, so the notebook does not wait for it. Silent: no output, no history. 1.8 s of one core on the AMD
# kind, where importing the model and probe code as well (torch, scipy) took 7 s (bench/README.md, "Where the test
# suite's CPU goes"): only the kernel whose share draws a figure that loads a model (MODEL_FIGURES, drawn from the
# run store's weights) imports that too. In the report they are in the probes section, near the end: the last share.
WARM_UP = "import convlens.api.study, convlens.study.redraw, matplotlib.pyplot"
WARM_UP_MODELS = WARM_UP + ", convlens.study.sections"
MODEL_FIGURES = ("probe_filters", "probe_feature_maps")  # study/redraw.py: the figures that load a model
_MODEL_KERNELS: weakref.WeakSet = weakref.WeakSet()  # the kernels started with WARM_UP_MODELS
# Each kernel's stderr, in a temporary file read only when the kernel dies, to say why (otherwise nobody reads it).
_KERNEL_STDERR: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
_KERNEL_ARGUMENTS = ["--HistoryManager.hist_file=:memory:"]  # nbclient's default: no history file in $HOME
# Kernels that run the notebook at once, at most. Each one boots (3-7 s of one core), imports the API and loads what
# its cells draw from: start-up paid once per kernel, which a share of ~45 cells of 0.1-1 s soon stops paying for.
# Measured with 2 kernels on 2 cores (bench/README.md, "The notebook in parallel kernels"); 4 is not measured.
MAX_KERNELS = 4
_IMAGE = re.compile(r"^!\[(?P<caption>[^\]]*)\]\((?P<path>[^)]+\.png)\)\s*$", re.M)
_EXPERIMENT_PLOT = re.compile(r"^experiments/(?P<name>[\w.-]+)/plots/(?P<kind>\w+)\.png$")
# Names that go into code cells: results.json may come from elsewhere, and a notebook's code is run. Anything
# else (quotes, brackets, newlines) gets no code cell; values are written with repr() in any case.
_SAFE_NAME = re.compile(r"[A-Za-z0-9_.-]{1,100}")  # whole names only: fullmatch


def _figure_code(path: str, rebuilt: set[str]) -> str | None:
    plot = _EXPERIMENT_PLOT.match(path)
    stem = Path(path).stem
    if plot and _SAFE_NAME.fullmatch(plot["name"]):  # rebuilt from the run store
        return f"study.experiment({plot['name']!r}).plot({plot['kind']!r})"
    if not _SAFE_NAME.fullmatch(stem):
        return None
    if stem in rebuilt:
        return f"study.plot({stem!r})  # drawn again from results.json, the run store and the images"
    return f"study.figure({stem!r})  # the saved figure"


def _table_code(name: str) -> str:
    return (f"experiment = study.experiment({name!r})\n"
            "experiment  # per level mean ± std and 95% CI; every comparison: paired difference, Holm p, verdict\n"
            "# experiment.table() and experiment.comparisons() are DataFrames, experiment.runs() one row per run.\n"
            "# More seeds, in place (resumes; then rerun `convlens study` to update the report):\n"
            "# experiment.run_more(seeds=5)")


def notebook_cells(markdown: str, experiments: list[str], rebuilt: set[str] = frozenset()) -> list[tuple[str, str]]:
    """(kind, source) cells from report.md: Markdown between headings and figures, code for each figure and, after
    each experiment's heading, its statistics table."""
    cells: list[tuple[str, str]] = []
    blocks = re.split(r"(?m)^(?=#{1,3} )", markdown)
    for block in blocks:
        heading = block.splitlines()[0] if block.strip() else ""
        name = heading[4:].strip() if heading.startswith("### ") else None
        table = name in experiments and bool(_SAFE_NAME.fullmatch(name))
        position = 0
        for image in _IMAGE.finditer(block):
            text = block[position:image.start()].strip()
            if text:
                cells.append(("markdown", text))
            if table:  # the experiment's statistics first, under its heading and text
                cells.append(("code", _table_code(name)))
                table = False
            code = _figure_code(image["path"], rebuilt)
            if code:
                cells.append(("code", code))
            position = image.end()
        rest = block[position:].strip()
        if rest:
            cells.append(("markdown", rest))
        if table:
            cells.append(("code", _table_code(name)))
        if heading.startswith("# ") and len(cells) == 1:
            cells.append(("code", SETUP))
    return cells


def notebook_kernels() -> int:
    """How many kernels execute the notebook: one per core this process may use, at most MAX_KERNELS."""
    return max(1, min(MAX_KERNELS, len(os.sched_getaffinity(0))))


@contextmanager
def warm_kernels(out: Path, count: int | None = None, *, models_in: int | None = -1) -> Iterator[list[Any]]:
    """``count`` (default: ``notebook_kernels()``) python3 kernels started now in ``out``, importing ``WARM_UP``
    while the caller goes on, for ``write_notebook(..., kernels=...)``; shut down on leaving. Kernel ``models_in``
    (default: the last one, where the report's model figures fall; None: none) imports ``WARM_UP_MODELS``. Yields
    those that started: none when the notebook extra is missing or no kernel starts (``write_notebook`` then starts
    its own).

    The managers are nbclient's own kind (asynchronous): with a blocking one, nbclient's wait for a cell's output
    blocks its event loop, so neither the cell timeout nor a dead kernel nor a signal would end the wait."""
    managers: list[Any] = []
    count = notebook_kernels() if count is None else count
    models = None if models_in is None else models_in % count if count else None
    try:
        for k in range(count):
            manager = _start_warm_kernel(out, WARM_UP_MODELS if k == models else WARM_UP)
            if manager is None:
                break
            if k == models:
                _MODEL_KERNELS.add(manager)
            managers.append(manager)
        yield managers
    finally:
        for manager in managers:
            _shut_down(manager)


def _start_warm_kernel(out: Path, warm_up: str = WARM_UP) -> Any:
    try:
        import ipykernel  # noqa: F401
        import nbclient  # noqa: F401
        from jupyter_client.manager import AsyncKernelManager
        from jupyter_core.utils import run_sync
    except ImportError:
        return None
    manager = AsyncKernelManager(kernel_name="python3", **_kernel_sockets())
    _KERNEL_STDERR[manager] = stderr = tempfile.TemporaryFile()
    try:
        run_sync(manager.start_kernel)(cwd=str(out), stderr=stderr,
                                       extra_arguments=[*_KERNEL_ARGUMENTS, f"--IPKernelApp.exec_lines={warm_up}"])
    except BaseException as e:  # no kernel now: the notebook stage starts one and reports what goes wrong
        _shut_down(manager)  # also on Ctrl-C: the kernel and its socket directory go with it
        if not isinstance(e, Exception):
            raise
        return None
    return manager


# Unix socket paths are at most 107 bytes (sun_path); the kernel's five are IP_PREFIX-1 .. IP_PREFIX-5.
_MAX_SOCKET_PATH = 100


def _kernel_sockets() -> dict[str, Any]:
    """Where a kernel listens: Unix sockets in a new private directory where the OS has them, else local TCP.

    TCP ports are picked by binding port 0 and letting go, so a kernel that another process starts at the same
    moment (a second study, another test run) can take one first and this kernel dies before it replies;
    jupyter_client guards against that within a process only. A socket path in a directory of our own is this
    kernel's alone, and only this user can reach it (a local TCP port is open to every user of the machine)."""
    if os.name != "posix":
        return {}
    folder = tempfile.mkdtemp(prefix="convlens-kernel-")  # mode 0700
    if len(os.fsencode(os.path.join(folder, "kernel-ipc-99999"))) > _MAX_SOCKET_PATH:  # a long TMPDIR
        os.rmdir(folder)
        return {}
    return {"transport": "ipc", "ip": os.path.join(folder, "kernel-ipc"),
            "connection_file": os.path.join(folder, "kernel.json")}


def _shut_down(manager: Any) -> None:
    """Stop the kernel and remove its connection file; the report does not depend on it, so a failure here is
    not the study's."""
    from jupyter_core.utils import run_sync
    try:
        if run_sync(manager.is_alive)():
            run_sync(manager.shutdown_kernel)(now=True)
        else:
            run_sync(manager.cleanup_resources)()
    except Exception:
        pass
    stderr = _KERNEL_STDERR.pop(manager, None)
    if stderr is not None:
        stderr.close()
    if getattr(manager, "transport", "tcp") == "ipc":  # the directory _kernel_sockets made, once it is empty
        shutil.rmtree(os.path.dirname(manager.connection_file), ignore_errors=True)


def last_words(stderr: Any, lines: int = 2, chars: int = 300) -> str:
    """The last ``lines`` non-empty lines a dead kernel wrote to ``stderr`` (a file opened for reading in binary),
    as one line of at most ``chars``: why it died, when it said so (a MemoryError, a module that failed to load)."""
    try:
        stderr.seek(0, os.SEEK_END)
        stderr.seek(max(0, stderr.tell() - 8192))
        tail = stderr.read().decode("utf-8", "replace")
    except (OSError, ValueError):
        return ""
    said = " | ".join([line.strip() for line in tail.splitlines() if line.strip()][-lines:])
    return said if len(said) <= chars else "..." + said[-(chars - 3):]


def kernel_alive(kernel: Any) -> bool:
    """Whether a kernel from ``warm_kernels`` is still running (one that died is not handed to nbclient, which
    would not start another)."""
    from jupyter_core.utils import run_sync
    try:
        return bool(run_sync(kernel.is_alive)())
    except Exception:
        return False


def can_execute() -> bool:
    """Whether the notebook extra is here to execute the notebook (nbclient and ipykernel import)."""
    try:
        import ipykernel  # noqa: F401
        import nbclient  # noqa: F401
    except ImportError:
        return False
    return True


def write_notebook(out: Path, drawn: set[str], *, execute: bool = True, timeout: int = 600,
                   kernels: Sequence[Any] = ()) -> tuple[Path, bool]:
    """Write OUT/report.ipynb from OUT/report.md, with code drawing each figure named in ``drawn`` again; returns
    (path, executed). Not executed when nbclient or ipykernel is missing (or ``execute`` is False): then it is
    saved without outputs. ``kernels``: started ones from ``warm_kernels``, used first (more are started as
    ``notebook_kernels`` asks)."""

    import nbformat
    from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook
    out = Path(out)
    results = json.loads((out / "results.json").read_text())
    cells = [new_code_cell(src) if kind == "code" else new_markdown_cell(src)
             for kind, src in notebook_cells((out / "report.md").read_text(), list(results["experiments"]),
                                             drawn)]
    notebook = new_notebook(cells=cells, metadata={
        "kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"},
        "language_info": {"name": "python"}})
    executed = False
    if execute and can_execute():
        execute_in_parallel(notebook, out, timeout, kernels, notebook_kernels())
        executed = True
    nbformat.validate(notebook)
    atomic_write_text(out / NOTEBOOK_FILE, nbformat.writes(notebook))
    return out / NOTEBOOK_FILE, executed


def cell_shares(notebook: Any, parts: int) -> list[list[int]]:
    """The indices of the code cells after the first, in at most ``parts`` contiguous shares of near-equal size."""
    rest = [i for i, cell in enumerate(notebook.cells) if cell.cell_type == "code"][1:]
    parts = max(1, min(parts, len(rest)))
    return [rest[k * len(rest) // parts:(k + 1) * len(rest) // parts] for k in range(parts)]


def _loads_model(source: str) -> bool:
    return any(f"study.plot({name!r})" in source for name in MODEL_FIGURES)


def execute_in_parallel(notebook: Any, out: Path, timeout: int, kernels: Sequence[Any], parts: int) -> None:
    """Execute ``notebook`` in place in up to ``parts`` kernels at once: each runs the first code cell and then
    one contiguous share of the others (neighbouring cells tend to load the same data). ``kernels``: started
    ones to use (one that died meanwhile is left out); the kernels still missing are started here, so every
    kernel has an owner that shuts it down whatever happens. The first failure (a cell's error, a dead kernel)
    stops the other shares and is raised. Ctrl-C stops every share and raises KeyboardInterrupt (SIGTERM:
    SystemExit 143): nbclient's own handler would only shut the kernel down, and the caller would go on."""
    from jupyter_core.utils import run_sync
    from nbclient import NotebookClient
    from nbclient.exceptions import DeadKernelError
    from nbformat.v4 import new_notebook

    code = [i for i, cell in enumerate(notebook.cells) if cell.cell_type == "code"]
    if not code:
        return
    setup, shares = code[0], cell_shares(notebook, parts)
    parts = len(shares)
    pieces = [new_notebook(cells=[copy.deepcopy(notebook.cells[i]) for i in [setup, *share]],
                           metadata=copy.deepcopy(notebook.metadata)) for share in shares]
    # The share with the model figures (if any) goes to a kernel that imported the model code: one of the given
    # kernels, moved to that share's place, or else the kernel started here for it.
    models = next((k for k, share in enumerate(shares) if any(_loads_model(notebook.cells[i].source) for i in share)),
                  None)
    alive = [kernel for kernel in kernels if kernel_alive(kernel)]
    loaded = next((kernel for kernel in alive if kernel in _MODEL_KERNELS), None)
    if models is not None and loaded is not None:
        alive.remove(loaded)
        alive = alive[:parts - 1]
        alive.insert(min(models, len(alive)), loaded)
    alive = alive[:parts]
    models_in = models - len(alive) if models is not None and models >= len(alive) and loaded not in alive else None
    with warm_kernels(out, parts - len(alive), models_in=models_in) as started:
        managers = alive + started
        # With fewer kernels than shares (one did not start), the first kernels take the rest in turn after theirs.
        lanes = [pieces[k::len(managers)] for k in range(len(managers))] if managers else [pieces]
        # The kernels listen on Unix sockets in a private directory (_kernel_sockets) or on 127.0.0.1 only.
        clients = [[NotebookClient(piece, kernel_name="python3", timeout=timeout,
                                   km=managers[k] if managers else None, extra_arguments=list(_KERNEL_ARGUMENTS),
                                   resources={"metadata": {"path": str(out)}}) for piece in lane]
                   for k, lane in enumerate(lanes)]

        async def run_lane(lane: list[Any]) -> None:
            for client in lane:
                own_stderr = None if client.km is not None else tempfile.TemporaryFile()  # nbclient starts it
                stderr = own_stderr or _KERNEL_STDERR.get(client.km)
                try:
                    await client.async_execute(**({"stderr": own_stderr} if own_stderr else {}))
                except DeadKernelError as e:
                    said = last_words(stderr) if stderr is not None else ""
                    raise DeadKernelError(f"{e}; its stderr ended: {said}" if said else str(e)) from None
                finally:
                    if own_stderr is not None:
                        own_stderr.close()
                    if client.kc is not None and client.km is not None and not client.owns_km:
                        client.kc.stop_channels()  # a kernel we passed in: its owner shuts it down
                    if not signalled:
                        take_the_signals()  # the client's cleanup removed them; other shares still run

        signalled: list[int] = []
        main: asyncio.Task | None = None

        def stop(number: int) -> None:
            signalled.append(number)
            if main is not None:
                main.cancel()  # its finally stops every share; the kernels' owners shut them down

        def take_the_signals(**_: Any) -> None:
            # nbclient registers its own handlers as each client starts (this hook runs just after and replaces
            # them) and removes the loop's handlers, ours too, as each client ends (run_lane puts ours back).
            loop = asyncio.get_running_loop()
            try:
                for number in (signal.SIGINT, signal.SIGTERM):
                    loop.add_signal_handler(number, stop, number)
            except (RuntimeError, ValueError, NotImplementedError):  # not the main thread (e.g. inside Jupyter)
                pass

        before = {number: signal.getsignal(number) for number in (signal.SIGINT, signal.SIGTERM)}

        def give_the_signals_back() -> None:
            try:  # the handlers from before (the console script's for SIGTERM); asyncio would leave the defaults
                for number in (signal.SIGINT, signal.SIGTERM):
                    asyncio.get_running_loop().remove_signal_handler(number)
                    if before[number] is not None:
                        signal.signal(number, before[number])
            except (RuntimeError, ValueError, NotImplementedError):
                pass

        for lane in clients:
            for client in lane:
                client.on_notebook_start = take_the_signals

        async def run_all() -> None:
            nonlocal main
            main = asyncio.current_task()
            take_the_signals()
            tasks = [asyncio.ensure_future(run_lane(lane)) for lane in clients]
            try:
                done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_EXCEPTION)
            finally:  # one share failed (or this was cancelled): the others stop too
                for task in tasks:
                    task.cancel()
                await asyncio.gather(*tasks, return_exceptions=True)
                give_the_signals_back()
            failures = [task.exception() for task in done if not task.cancelled() and task.exception()]
            if failures:  # the one that ended the wait (the others were cancelled because of it)
                raise failures[0]

        try:
            run_sync(run_all)()
        except asyncio.CancelledError:
            if not signalled:
                raise
        if signalled:
            raise KeyboardInterrupt if signalled[0] == signal.SIGINT else SystemExit(128 + signalled[0])
    for k, (share, piece) in enumerate(zip(shares, pieces)):
        for i, cell in zip([setup, *share], piece.cells):
            if i != setup or k == 0:  # the first cell's outputs from the first kernel
                notebook.cells[i].outputs = cell.outputs
                notebook.cells[i].metadata = cell.metadata
    for count, i in enumerate(code, start=1):  # reading order, as one kernel running them all numbers them
        notebook.cells[i].execution_count = count
        for output in notebook.cells[i].outputs:
            if "execution_count" in output:
                output.execution_count = count
