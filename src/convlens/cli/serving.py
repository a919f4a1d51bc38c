"""``convlens export``, ``predict`` and ``serve``: ship a trained run and answer requests with it."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Optional

import typer

from convlens.cli.options import JsonOption, path_option
from convlens.display import out, print_json
from convlens.errors import ConvlensError, UsageError


def export_cmd(run_dir: Annotated[Path, typer.Argument(help="A finished run directory.")],
               out_dir: Annotated[Optional[Path], path_option("--out", "Model directory (default RUN_DIR/export).")]
               = None,
               fmt: Annotated[Optional[str], typer.Option("--format", help="Also write 'onnx' (model.onnx).")] = None,
               force: Annotated[bool, typer.Option("--force", help="Replace another run's export in --out.")] = False,
               ) -> None:
    """Export a run to a self-contained model directory (safetensors + config.json, optionally ONNX)."""
    from convlens.api.runs import refuse_results_directory
    from convlens.serving.export import export_run
    if fmt not in (None, "onnx"):
        raise UsageError(f"unknown format '{fmt}'; the only extra format is 'onnx'")
    out_dir = out_dir or run_dir / "export"
    refuse_results_directory(out_dir, "an exported model")  # as Run.export: not among an experiment's files
    export_run(run_dir, out_dir, onnx=fmt == "onnx", replace_other=force)
    out.print(f"exported {run_dir} -> {out_dir} ({', '.join(sorted(p.name for p in out_dir.iterdir()))})")


def read_input(path: Path, most: int) -> bytes:
    """The bytes of one input file, at most ``most`` of them read: a regular file only (a FIFO would block, and a
    link to /dev/zero, whose size says 0, would be read until memory runs out), checked before it is opened."""
    from convlens.file_reads import NotRegularFile, TooLarge, read_bounded
    from convlens.serving.inputs import InputError
    try:
        return read_bounded(path, most)
    except NotRegularFile:
        raise UsageError(f"{path} is not a regular file; give PNG/JPEG images, .npy arrays or .json bodies") from None
    except FileNotFoundError:  # any other OSError: the CLI's line naming the path and the reason (exit 1)
        raise UsageError(f"{path} not found") from None
    except TooLarge as e:
        size = f"{e.size:,} bytes is" if e.size is not None else f"more than {most:,} bytes,"
        raise InputError(f"{size} more than convlens predict reads from one file (2 GB); split it") from None


PREDICT_BATCH = 1_000  # images per forward pass: a 10,000-image file must not hold every activation at once


def predict_cmd(model_dir: Annotated[Path, typer.Argument(help="An exported model (or run) directory.")],
                inputs: Annotated[list[Path], typer.Argument(help="PNG/JPEG images, .npy arrays or .json bodies.")],
                top_k: Annotated[int, typer.Option("--top-k", help="How many classes to show per image.")] = 3,
                as_json: JsonOption = False) -> None:
    """Classify images: PNG/JPEG (any size or mode, converted like the training data), .npy arrays or .json
    bodies as /invocations takes them."""
    import numpy as np

    from convlens.serving.inputs import CONTENT_TYPE_BY_SUFFIX, LOCAL_FILE_LIMITS, InputError, decode
    from convlens.serving.predictor import Predictor
    if top_k < 1:
        raise UsageError(f"--top-k must be at least 1 (got {top_k})")
    predictor = Predictor(model_dir)
    results = []
    for path in inputs:
        kind = CONTENT_TYPE_BY_SUFFIX.get(path.suffix.lower())
        if path.is_dir():  # whatever its name ends with: one answer, before any file is read
            raise UsageError(f"{path} is a directory; give the files in it (e.g. {path / '*.png'})")
        if kind is None:
            raise UsageError(f"{path}: unsupported file type; give .png, .jpg/.jpeg, .npy or .json files")
        try:
            x = decode(read_input(path, LOCAL_FILE_LIMITS.body_bytes), kind, LOCAL_FILE_LIMITS, predictor.image)
        except InputError as e:
            raise UsageError(f"{path}: {e}") from None
        probabilities = np.concatenate([predictor.predict(x[i:i + PREDICT_BATCH])
                                        for i in range(0, len(x), PREDICT_BATCH)])
        for i, probs in enumerate(probabilities):
            order = probs.argsort()[::-1][:top_k]
            results.append({"input": str(path) if len(x) == 1 else f"{path}[{i}]",
                            "top": [{"class": predictor.class_names[j], "probability": float(probs[j])}
                                    for j in order]})
    if as_json:
        return print_json(results)
    for r in results:
        out.print(f"{r['input']}: " + ", ".join(f"{t['class']} {t['probability']:.1%}" for t in r["top"]))


def free_port(host: str) -> int:
    """A port free on ``host`` now (the OS's choice for port 0)."""
    import socket
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as probe:
        probe.bind((host, 0))
        return probe.getsockname()[1]


def check_bindable(host: str, port: int, workers: int = 1) -> None:
    """One line, before anything says "serving", when uvicorn could not bind the address (a port in use, a host
    that is not this machine's), where uvicorn would log its own error and exit 3. Binds as uvicorn will: one
    worker serves from asyncio's ``create_server`` (every address the host resolves to, IPv6 sockets v6-only);
    several workers share one socket from ``Config.bind_socket`` (IPv6 when the host has a colon)."""
    import errno
    import socket
    shown = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    try:
        if workers > 1:
            addresses = [(socket.AF_INET6 if ":" in host else socket.AF_INET, (host, port))]
        else:
            infos = socket.getaddrinfo(host or None, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
            addresses = list(dict.fromkeys((family, address[:2]) for family, _, _, _, address in infos))
    except (socket.gaierror, UnicodeError) as e:
        raise UsageError(f"--host {host}: cannot resolve it ({getattr(e, 'strerror', None) or e})") from None
    for family, address in addresses:
        with socket.socket(family, socket.SOCK_STREAM) as sock:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if family == socket.AF_INET6 and workers <= 1:
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            try:
                sock.bind(address)
            except OSError as e:
                if e.errno == errno.EADDRINUSE:
                    raise ConvlensError(f"cannot serve on {shown}: the port is in use; choose another --port (or "
                                        "stop what holds it)") from None
                if e.errno == errno.EADDRNOTAVAIL:
                    raise UsageError(f"--host {host} is not an address of this machine") from None
                if e.errno == errno.EACCES:
                    raise UsageError(f"--port {port} needs privileges here (ports below 1024); use a higher "
                                     "port") from None
                raise ConvlensError(f"cannot serve on {shown}: {e.strerror or e}") from None


def serve_cmd(model_dir: Annotated[Path, typer.Argument(help="An exported model (or run) directory.")],
              host: Annotated[str, typer.Option(help="Address to bind (127.0.0.1: this machine only).")] = "127.0.0.1",
              port: Annotated[int, typer.Option(help="Port (SageMaker uses 8080).")] = 8080,
              workers: Annotated[int, typer.Option(help="Server processes.")] = 1,
              body_timeout: Annotated[float, typer.Option("--body-timeout", help="Seconds a request's headers, "
                                                          "then its body, may take to arrive (408 after).")] = 30.0
              ) -> None:
    """Serve the model over the SageMaker inference contract, with a web page at /."""
    import os

    import uvicorn

    from convlens.serving.app import MODEL_DIR_ENV
    from convlens.serving.http_policy import BODY_TIMEOUT_ENV
    from convlens.serving.http_protocol import protocol_class
    from convlens.serving.predictor import Predictor
    for wrong, message in ((not host.strip(), "--host is empty, which would bind every interface; give an address "
                            "(127.0.0.1: this machine only, 0.0.0.0: every interface)"),
                           (workers < 1, f"--workers must be at least 1, got {workers}"),
                           (not 0 <= port <= 65535, f"--port must be within 0..65535 (0: any free port), got {port}"),
                           (not body_timeout > 0, f"--body-timeout must be above 0 seconds, got {body_timeout:g}")):
        if wrong:
            raise UsageError(message)
    Predictor(model_dir)  # fail with one line before the server starts (a broken or permuted-pixel model)
    check_bindable(host, port, workers)
    if port == 0:  # any free port: chosen here, so that the line below says which
        port = free_port(host)
    os.environ[MODEL_DIR_ENV] = str(model_dir.resolve())
    os.environ[BODY_TIMEOUT_ENV] = str(body_timeout)
    shown = f"[{host}]" if ":" in host else host
    out.print(f"serving {model_dir} on http://{shown}:{port}/ (POST /invocations, GET /ping)")
    # SIGTERM (docker stop, SageMaker scaling in): stop accepting, finish the requests in flight, exit; a
    # request still running after 25 s is cut so the process always ends within docker's 30 s grace.
    stopped_by: list[int] = []
    with _supervisor_telling(stopped_by):
        uvicorn.run("convlens.serving.app:create_app", factory=True, host=host, port=port, workers=workers,
                    log_level="warning", access_log=False, timeout_graceful_shutdown=25, http=protocol_class(),
                    server_header=False)  # "server: uvicorn" on every answer told a client what to try
    if stopped_by:  # as one worker ends (its signal raised again): 130 for Ctrl-C, 143 for SIGTERM, one line
        raise typer.Exit(128 + stopped_by[0])


@contextmanager
def _supervisor_telling(stopped_by: list[int]) -> Iterator[None]:
    """uvicorn.run takes SIGINT and SIGTERM itself and returns as if nothing happened: with --workers > 1 its
    supervisor stops the workers, exit 0, silently; with one worker, Ctrl-C the same (SIGTERM is raised again,
    which the console script's handler answers). These subclasses also note which signal it was."""
    import importlib
    import signal
    from unittest import mock

    from uvicorn.server import Server
    from uvicorn.supervisors import Multiprocess
    running = importlib.import_module("uvicorn.main")  # the module: uvicorn.main is also its click command

    class Supervisor(Multiprocess):
        def handle_int(self) -> None:
            stopped_by.append(signal.SIGINT)
            super().handle_int()

        def handle_term(self) -> None:
            stopped_by.append(signal.SIGTERM)
            super().handle_term()

    class OneWorker(Server):
        def handle_exit(self, sig, frame) -> None:  # type: ignore[no-untyped-def]
            if sig in (signal.SIGINT, signal.SIGTERM):
                stopped_by.append(sig)
            super().handle_exit(sig, frame)
    with mock.patch.object(running, "Multiprocess", Supervisor), mock.patch.object(running, "Server", OneWorker):
        yield
