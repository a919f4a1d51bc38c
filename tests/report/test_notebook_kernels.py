"""report.ipynb's execution in several kernels at once (convlens.report.notebook.execute_in_parallel), on small
notebooks written here: the same outputs as one kernel, every kernel shut down, a failure stopping the others."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import pytest
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

from convlens.report import notebook


def small_notebook(*cells: str):
    """A markdown cell, then ``cells`` as code cells: the first one is the setup every kernel runs."""
    return new_notebook(cells=[new_markdown_cell("# title"), *(new_code_cell(c) for c in cells)])


SETUP = "import os\nbase = 40"
CELLS = [f"print(base + {k}, os.getpid())" for k in range(1, 6)]


def printed(nb) -> list[list[str]]:
    return [[o.get("text", "") for o in c.outputs] for c in nb.cells if c.cell_type == "code"]


@pytest.mark.parametrize("parts", [1, 3])
def test_shares_of_the_cells_give_what_one_kernel_gives_numbered_in_reading_order(tmp_path, parts):
    nb = small_notebook(SETUP, *CELLS)
    notebook.execute_in_parallel(nb, tmp_path, 60, [], parts)
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert [c.execution_count for c in code] == list(range(1, len(code) + 1))
    values = [int(text[0].split()[0]) for text in printed(nb)[1:]]
    assert values == [41, 42, 43, 44, 45]  # base + k: each share ran the setup cell first
    pids = [text[0].split()[1] for text in printed(nb)[1:]]
    # 5 cells in 3 shares: 1, 2, 2 cells, each share in its own kernel (process), in order
    assert len(set(pids)) == parts and pids == sorted(pids, key=pids.index)
    if parts == 3:
        assert [pids.count(p) for p in dict.fromkeys(pids)] == [1, 2, 2]


def test_with_fewer_kernels_than_shares_the_started_ones_take_the_rest(tmp_path, monkeypatch):
    real, calls = notebook._start_warm_kernel, []

    def only_the_first(out, warm_up):
        calls.append(out)
        return real(out, warm_up) if len(calls) == 1 else None  # the second kernel does not start
    monkeypatch.setattr(notebook, "_start_warm_kernel", only_the_first)
    nb = small_notebook(SETUP, *CELLS)
    notebook.execute_in_parallel(nb, tmp_path, 60, [], 3)
    assert [int(text[0].split()[0]) for text in printed(nb)[1:]] == [41, 42, 43, 44, 45]
    assert len({text[0].split()[1] for text in printed(nb)[1:]}) == 1  # all in the one kernel that started


def test_a_tcp_port_taken_by_another_process_does_not_stop_the_kernel(tmp_path, monkeypatch):
    """Ports are picked free and let go; another process (a second study, another test run) can bind one before
    the kernel does. Here every port jupyter_client would pick is one a socket of ours listens on: the kernel
    listens on Unix sockets in a private directory instead, and runs the cells."""
    import socket
    import stat

    from jupyter_client.connect import LocalPortCache
    taken = socket.socket()
    taken.bind(("127.0.0.1", 0))
    taken.listen()
    monkeypatch.setattr(LocalPortCache, "find_available_port", lambda self, ip: taken.getsockname()[1])
    try:
        with notebook.warm_kernels(tmp_path, 1, models_in=None) as kernels:
            assert len(kernels) == 1
            folder = os.path.dirname(kernels[0].connection_file)
            assert stat.S_IMODE(os.stat(folder).st_mode) & 0o777 == 0o700  # only this user reaches the sockets
            nb = small_notebook(SETUP, *CELLS[:2])
            notebook.execute_in_parallel(nb, tmp_path, 60, kernels, 1)
            assert [int(text[0].split()[0]) for text in printed(nb)[1:]] == [41, 42]
        assert not os.path.exists(folder)  # removed with the kernel
    finally:
        taken.close()


def test_ctrl_c_while_a_kernel_starts_leaves_no_socket_directory(monkeypatch):
    import tempfile

    from jupyter_client.manager import AsyncKernelManager
    short = tempfile.mkdtemp(prefix="cl-", dir="/tmp")  # a short path: the sockets go there, not to TCP
    monkeypatch.setattr(tempfile, "tempdir", short)

    async def interrupted(self, **kwargs):
        raise KeyboardInterrupt
    monkeypatch.setattr(AsyncKernelManager, "start_kernel", interrupted)
    try:
        with pytest.raises(KeyboardInterrupt):
            notebook._start_warm_kernel(Path(short))
        assert os.listdir(short) == []  # its convlens-kernel-* directory went with it
    finally:
        os.rmdir(short)


def test_with_a_socket_path_too_long_for_unix_kernels_listen_on_local_tcp(tmp_path, monkeypatch):
    import tempfile
    deep = tmp_path / ("d" * 60) / ("e" * 60)
    deep.mkdir(parents=True)
    monkeypatch.setattr(tempfile, "tempdir", str(deep))
    assert notebook._kernel_sockets() == {}  # jupyter_client's default: tcp on 127.0.0.1
    assert list(deep.iterdir()) == []  # the directory it tried is not left behind
    monkeypatch.setattr(tempfile, "tempdir", "/tmp")
    sockets = notebook._kernel_sockets()
    assert sockets["transport"] == "ipc" and len(os.fsencode(sockets["ip"] + "-99999")) <= 107
    os.rmdir(os.path.dirname(sockets["ip"]))


def test_a_kernel_that_dies_stops_the_other_shares_and_no_kernel_is_left(tmp_path, monkeypatch):
    started = []
    real = notebook._start_warm_kernel
    monkeypatch.setattr(notebook, "_start_warm_kernel",
                        lambda out, warm_up: started.append(real(out, warm_up)) or started[-1])
    nb = small_notebook("import os, signal, time",
                        "time.sleep(1)\nos.kill(os.getpid(), signal.SIGKILL)",  # the first share's kernel dies
                        "time.sleep(300)")  # the second share would take 5 minutes
    begin = time.perf_counter()
    with pytest.raises(Exception) as failure:
        notebook.execute_in_parallel(nb, tmp_path, 600, [], 2)
    assert type(failure.value).__name__ == "DeadKernelError"
    assert time.perf_counter() - begin < 120  # the sleeping share was stopped, not waited for
    assert len(started) == 2 and not any(notebook.kernel_alive(k) for k in started)


@pytest.mark.parametrize("started_early", [True, False])
def test_a_dead_kernel_is_reported_with_the_last_words_on_its_stderr(tmp_path, monkeypatch, started_early):
    """Why a kernel died is on its stderr (Python writes a fatal error there, not to the notebook): the error says
    it, whether the kernel was started early (warm_kernels) or by nbclient (no kernel was started early)."""
    if not started_early:
        monkeypatch.setattr(notebook, "_start_warm_kernel", lambda out, warm_up: None)
    nb = small_notebook("import os", "os.write(2, b'first words\\nlast words of kernel 1\\n'); os._exit(3)")
    with pytest.raises(Exception) as failure:
        notebook.execute_in_parallel(nb, tmp_path, 120, [], 1)
    assert type(failure.value).__name__ == "DeadKernelError"
    assert str(failure.value).endswith("; its stderr ended: first words | last words of kernel 1"), failure.value


def test_last_words_keeps_the_end_of_a_long_stderr(tmp_path):
    with open(tmp_path / "err", "w+b") as stderr:
        stderr.write(b"\n".join(b"line %d" % i for i in range(5000)) + b"\n\n" + b"x" * 400 + b"\n  \n")
        assert notebook.last_words(stderr, lines=2, chars=300) == "..." + "x" * 297  # the last line, cut at its start
        assert notebook.last_words(stderr, lines=2, chars=1000) == "line 4999 | " + "x" * 400


@pytest.mark.parametrize("model_share", [0, 1])
def test_only_the_kernel_whose_share_draws_a_model_figure_imports_the_model_code(tmp_path, monkeypatch,
                                                                                model_share):
    """A cell drawing a figure that loads a model (notebook.MODEL_FIGURES) goes to a kernel that imported the
    model code as it booted; the others import the API and pyplot only."""
    warm_ups = []
    real = notebook._start_warm_kernel
    monkeypatch.setattr(notebook, "_start_warm_kernel",
                        lambda out, warm_up: warm_ups.append(warm_up) or real(out, warm_up))
    check = "import sys\nprint('convlens.study.sections' in sys.modules, 'convlens.study.redraw' in sys.modules)"
    model_cell = check + "  # study.plot('probe_filters') would load a model here"
    cells = [model_cell, check] if model_share == 0 else [check, model_cell]
    nb = small_notebook("x = 1", *cells)
    notebook.execute_in_parallel(nb, tmp_path, 120, [], 2)
    expected = [notebook.WARM_UP, notebook.WARM_UP]
    expected[model_share] = notebook.WARM_UP_MODELS
    assert warm_ups == expected
    shares = notebook.cell_shares(nb, 2)
    loaded = {i: nb.cells[i].outputs[0]["text"].split() for share in shares for i in share}
    for k, share in enumerate(shares):
        assert all(loaded[i] == [str(k == model_share), "True"] for i in share), (k, loaded)


def test_a_kernel_started_early_with_the_model_code_takes_the_share_that_draws_a_model(tmp_path, monkeypatch):
    """As in the study: kernels started before the notebook exists, the model code in one of them (here the first);
    the model figure's share (here the second) is run in that one, and no kernel is started for it."""
    check = "import sys\nprint('convlens.study.sections' in sys.modules)"
    nb = small_notebook("x = 1", check, check + "  # study.plot('probe_feature_maps')")
    with notebook.warm_kernels(tmp_path, 2, models_in=0) as kernels:
        assert len(kernels) == 2
        real, started = notebook._start_warm_kernel, []
        monkeypatch.setattr(notebook, "_start_warm_kernel",
                            lambda out, warm_up: started.append(warm_up) or real(out, warm_up))
        notebook.execute_in_parallel(nb, tmp_path, 120, kernels, 2)
    assert started == []
    assert printed(nb)[1:] == [["False\n"], ["True\n"]]


@pytest.mark.parametrize("number, raised, first_share_done", [("SIGINT", KeyboardInterrupt, False),
                                                               ("SIGTERM", SystemExit, False),
                                                               ("SIGINT", KeyboardInterrupt, True),
                                                               ("SIGTERM", SystemExit, True)])
def test_ctrl_c_while_cells_run_stops_every_share_and_is_raised(tmp_path, monkeypatch, number, raised,
                                                                 first_share_done):
    # nbclient's own handler only shuts the kernel down: a study then went on and ended with exit 0. And as each
    # client ends, nbclient removes the loop's handlers, ours too: after a share finished first, SIGTERM killed the
    # process at once, leaving the other share's kernel running.
    started = []
    real = notebook._start_warm_kernel
    monkeypatch.setattr(notebook, "_start_warm_kernel",
                        lambda out, warm_up: started.append(real(out, warm_up)) or started[-1])
    kill = f"os.kill(os.getppid(), signal.{number})"  # to this process, as Ctrl-C
    # shares [1], [2, 3]: the first ends (1.5 s) after the second has started, and before the signal (4 s)
    cells = (["time.sleep(1.5)", f"time.sleep(4)\n{kill}", "time.sleep(300)"] if first_share_done
             else [f"time.sleep(1)\n{kill}", "time.sleep(300)"])
    nb = small_notebook("import os, signal, time", *cells)
    assert len(notebook.cell_shares(nb, 2)[0]) == 1
    begin = time.perf_counter()
    theirs = signal.signal(signal.SIGTERM, console_scripts := lambda *_: None)  # as `convlens` installs one
    try:
        with pytest.raises(raised) as stopped:
            notebook.execute_in_parallel(nb, tmp_path, 600, [], 2)
        assert signal.getsignal(signal.SIGTERM) is console_scripts  # given back, not left at the default
    finally:
        signal.signal(signal.SIGTERM, theirs)
    assert time.perf_counter() - begin < 120
    if raised is SystemExit:
        assert stopped.value.code == 143  # 128 + SIGTERM, as the shell reports a process it ended
    assert len(started) == 2 and not any(notebook.kernel_alive(k) for k in started)
