"""Run an experiment's pending runs as Ray tasks: on a local Ray started for the command, or on a cluster.

Why core tasks and not Ray Tune: a sweep here is a fixed grid x seeds that convlens' own run store already
schedules, resumes and analyses; Tune would add a second trial store and its own notion of "done". Each
pending (level, seed) run is one task with its resource request (``cpus_per_run``, ``gpus_per_run``, fractional
GPUs allowed so that several small CNNs share one GPU).

The run store stays the single source of truth, on the driver: a task trains into a temporary directory on
its worker and returns the run's files (a few MB), and the driver writes them into the store, metrics.json last,
each file atomically. So it works the same whether or not the driver and the workers share a filesystem, a
retried or duplicated task only rewrites the same run, and a driver killed mid-sweep loses at most the runs in
flight. The driver reads the data, as the local backend does, so runs kept from before are checked against it
before any task starts. Each dataset goes to the object store once (``ray.put``) and is passed by reference;
its arrays arrive read-only and are copied before torch wraps them. A Python exception in a run is recorded as a failed run (not
retried: it would fail again); a lost worker or node is retried by Ray (``max_retries``), then recorded.
"""

from __future__ import annotations

import dataclasses
import json
import os
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from convlens.atomic_files import atomic_write_bytes
from convlens.errors import ConvlensError, UsageError, first_sentence
from convlens.experiments.local import Job, JobResult, execute
from convlens.run_files import METRICS_FILE

if TYPE_CHECKING:  # the dataset module imports torch; this module only names its type
    from convlens.data.dataset import ImageDataset

RAY_VERSION = "2.60.0"  # the driver's Ray (and Python) must match the cluster's


def import_ray():
    try:
        import ray
    except ImportError:
        raise UsageError(f"--backend ray needs Ray: pip install 'convlens[ray]' (ray=={RAY_VERSION})") from None
    return ray


def check_reachable(address: str | None, timeout: float = 10, what: str = "--address") -> None:
    """One line now, before anything is written, when nothing answers at ``address`` (host:port or
    ray://host:port), or something that is not a Ray head node does (a web server, the dashboard's port): Ray
    itself retries for minutes without a word. 'auto', 'local' and None are Ray's to find. ``what``: where the
    address came from (--address, $RAY_ADDRESS)."""
    import socket
    if address in (None, "", "auto", "local"):
        return
    scheme = address.split("://", 1)[0].lower() if "://" in address else ""
    if scheme not in ("", "ray", "rays"):  # e.g. the dashboard's http://HEAD:8265, which 'ray job submit' takes
        raise UsageError(f"{what} {address}: a Ray cluster's address is HOST:PORT (the head node's GCS port, 6379 "
                         "by default) or ray://HOST:PORT; an http:// address is the dashboard's, for 'ray job submit'")
    host, sep, port = address.split("://", 1)[-1].rpartition(":")
    if not sep or not host or not (port.isascii() and port.isdigit()):
        if scheme:
            return
        raise UsageError(f"{what} {address}: give the head node's HOST:PORT (its GCS port, 6379 unless "
                         "'ray start --head --port' said otherwise), ray://HOST:PORT, auto or local")
    if not 0 < int(port) < 65536:
        raise UsageError(f"{what} {address}: the port must be between 1 and 65535")
    try:
        with socket.create_connection((host.strip("[]"), int(port)), timeout=timeout) as connection:
            answer = None if scheme == "rays" else _http2_answer(connection, timeout)
    except OSError as e:
        reason = e.strerror or str(e) or type(e).__name__
        raise ConvlensError(f"cannot reach the Ray cluster at {address}: {reason} (check the address; is its head "
                            "node running? 'ray status' there tells)") from None
    if answer is not None and not (len(answer) == 9 and answer[3] == 0x04):  # not an HTTP/2 SETTINGS frame
        said = "nothing" if not answer else repr(answer.split(b"\n")[0][:20].decode("ascii", "replace"))
        raise ConvlensError(f"cannot reach the Ray cluster at {address}: something listens there but is not a Ray "
                            f"head node (it answered {said} where Ray's GCS speaks gRPC; the dashboard's port, "
                            "8265, is for 'ray job submit': give the GCS port, 6379 by default)")


def _http2_answer(connection, timeout: float) -> bytes | None:
    """The first 9 bytes the server at ``connection`` sends back to an HTTP/2 client preface (a gRPC server such as
    Ray's GCS answers with its SETTINGS frame), or None when not asked (Ray with TLS: the preface would be refused)."""
    import socket
    if os.environ.get("RAY_USE_TLS", "0").lower() in ("1", "true"):
        return None
    connection.settimeout(timeout)
    connection.sendall(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + b"\x00\x00\x00\x04\x00\x00\x00\x00\x00")
    answer = b""
    try:
        while len(answer) < 9:
            chunk = connection.recv(9 - len(answer))
            if not chunk:
                break
            answer += chunk
    except (socket.timeout, ConnectionResetError):
        pass
    return answer


def _token_available() -> bool:
    return bool(os.environ.get("RAY_AUTH_TOKEN")) or Path(
        os.environ.get("RAY_AUTH_TOKEN_PATH") or Path.home() / ".ray" / "auth_token").is_file()


def _use_token_at_hand() -> None:
    """What `ray start` does: with RAY_AUTH_MODE unset and a token at hand, use token authentication (Ray caches
    its config, so setting the variable alone would come too late). With RAY_AUTH_MODE set, Ray reads its config
    again: the variable may have been set after Ray first read it (in a notebook, after `import ray`), and the
    cluster would then refuse the connection as if the token were wrong."""
    if "RAY_AUTH_MODE" in os.environ:
        try:
            from ray._raylet import Config
            Config.initialize("")  # what Ray's own _enable_token_auth does after setting the variable
        except (ImportError, AttributeError):  # another Ray version: its next config load reads the variable
            pass
        return
    if not _token_available():
        return
    try:
        from ray._private.authentication.authentication_token_setup import maybe_enable_token_auth_if_token_available
        maybe_enable_token_auth_if_token_available(warn_if_disabled=False)
    except ImportError:  # another Ray version: the variable is read by its next config load
        os.environ["RAY_AUTH_MODE"] = "token"


def _connect(ray, address: str | None) -> None:
    """``_connect_now``, keeping this process' SIGTERM handler: ray.init puts in its own (sys.exit(15), and a stack
    dump from its C++ side), and the console script's ends a command as Ctrl-C does, with one line."""
    import signal
    import threading
    if threading.current_thread() is not threading.main_thread():  # only the main thread handles signals
        return _connect_now(ray, address)
    before = signal.getsignal(signal.SIGTERM)
    try:
        _connect_now(ray, address)
    finally:
        if before is not None:
            signal.signal(signal.SIGTERM, before)


def _connect_now(ray, address: str | None) -> None:
    """ray.init: a local Ray for this command, or the cluster at ``address``. A token at hand is used (clusters
    enable token authentication by default; one without it ignores the token). While connecting, Ray's C++
    client logs a warning a second as it retries for ~20 s: stderr is kept off the terminal, and a failure is one
    line."""
    if address is None or address == "local":  # Ray starts its processes here: they keep this stderr
        ray.init(include_dashboard=False, log_to_driver=False, configure_logging=False,
                 **({} if address else {"num_cpus": len(os.sched_getaffinity(0))}))
        return
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with tempfile.TemporaryFile() as noise:
            os.dup2(noise.fileno(), 2)
            try:
                _use_token_at_hand()
                ray.init(address=address, include_dashboard=False, log_to_driver=False, configure_logging=False)
            finally:
                os.dup2(saved, 2)
    except (ConnectionError, RuntimeError, ValueError, ray.exceptions.RayError) as e:  # unreachable, refused,
        # a bad address, or token authentication asked for with no token
        first = first_sentence(str(e)) or type(e).__name__
        hint = ("check the address and, if the cluster uses token authentication, the token (RAY_AUTH_TOKEN or "
                "~/.ray/auth_token)" if os.environ.get("RAY_AUTH_MODE") == "token" else
                "a cluster with token authentication (Ray's default) needs its token in RAY_AUTH_TOKEN or "
                "~/.ray/auth_token")
        raise ConvlensError(f"cannot reach the Ray cluster at {address}: {first}; {hint}") from None
    finally:
        os.close(saved)


def _train_task(job: Job, dataset, threads: int, command: list[str] | None = None) -> dict[str, bytes]:
    """On a Ray worker: train ``job`` into a temporary directory and return its files. ``command``: the driver's
    command line, recorded in the run's provenance (the worker's own is Ray's default_worker.py)."""
    import torch
    torch.set_num_threads(threads)  # Ray sets OMP_NUM_THREADS from num_cpus; torch's pool is set explicitly
    writable = dataclasses.replace(dataset, **{f: getattr(dataset, f).copy() for f in
                                               ("train_images", "train_labels", "test_images", "test_labels")})
    argv = sys.argv
    if command:
        sys.argv = list(command)
    try:
        with tempfile.TemporaryDirectory() as tmp:
            execute(dataclasses.replace(job, directory=Path(tmp)), writable)
            return {p.name: p.read_bytes() for p in Path(tmp).iterdir() if p.is_file()}
    finally:
        sys.argv = argv


def _check_connected_to(ray, address: str | None) -> None:
    """One line when this process is connected to another cluster than ``address`` names (host:port of a head
    node's GCS; 'auto', 'local', a ray:// client address or none: nothing to compare). Ray records a head on this
    machine under the node's own IP, so a loopback host (localhost, 127.0.0.1) is read as that IP."""
    import ipaddress
    import socket
    if address in (None, "", "auto", "local") or "://" in address:
        return
    connected = ray.get_runtime_context().gcs_address or ""

    def endpoint(text: str) -> tuple[str, str] | None:
        host, _, port = text.rpartition(":")
        try:
            ip = socket.gethostbyname(host.strip("[]"))
            return (ray.util.get_node_ip_address() if ipaddress.ip_address(ip).is_loopback else ip), port
        except (OSError, UnicodeError, ValueError):
            return None
    named, actual = endpoint(address), endpoint(connected)
    if named and actual and named != actual:
        raise UsageError(f"address {address}: this process is already connected to the Ray cluster at {connected} "
                         "(ray.init), which Ray would use instead; call ray.shutdown() first, or leave the address out")


def write_run_files(directory: Path, files: dict[str, bytes]) -> None:
    """The run's files into the store, metrics.json last (a run counts as finished only once it is complete)."""
    for name in sorted(files, key=lambda n: n == METRICS_FILE):
        if "/" in name or name.startswith("."):
            continue  # a task returns plain file names; nothing else is written
        atomic_write_bytes(directory / name, files[name])


def _result(job: Job, files: dict[str, bytes]) -> JobResult:
    metrics = json.loads(files.get(METRICS_FILE, b"{}") or b"{}")
    if metrics.get("status") == "done":
        return JobResult(job.level, job.seed, "done")
    return JobResult(job.level, job.seed, "failed", metrics.get("reason", "the run wrote no metrics"))


def run_jobs_ray(jobs: list[Job], on_result: Callable[[JobResult], None], *, address: str | None = None,
                 cpus_per_run: float = 1, gpus_per_run: float = 0, max_retries: int = 2,
                 dataset: ImageDataset | None = None) -> list[JobResult]:
    """Train ``jobs`` as Ray tasks; ``on_result`` is called on the driver as each run is written to the store.
    ``dataset``: the jobs' dataset, already read (and checked against the kept runs) by the caller; else the
    driver reads each job's."""
    ray = import_ray()
    from convlens.data import load_named
    started_here = not ray.is_initialized()
    if started_here:
        _connect(ray, address or os.environ.get("RAY_ADDRESS") or None)  # None: a local Ray for this command
    else:  # connected already (a notebook's ray.init): its cluster is the one used, so it must be the one named
        _check_connected_to(ray, address)
    try:
        gpus = ray.cluster_resources().get("GPU", 0)
        if gpus_per_run > gpus:  # Ray would wait for such a node forever
            raise UsageError(f"--gpus-per-run {gpus_per_run:g} asks for more GPU than the Ray cluster has ({gpus:g}); "
                             "add a GPU node or leave it at 0")
        threads = max(1, int(cpus_per_run))
        concurrent = max(1, int(ray.cluster_resources().get("CPU", 1) // max(cpus_per_run, 1e-9)))
        task = ray.remote(num_cpus=cpus_per_run, num_gpus=gpus_per_run, max_retries=max_retries,
                          retry_exceptions=False)(_train_task)
        datasets: dict[tuple, object] = {}
        pending = {}
        results = []
        try:  # from the first submission: Ctrl-C while a second dataset is read leaves the first tasks running
            for job in jobs:
                key = (job.config.dataset, str(job.config.data_dir))
                if key not in datasets:  # once per dataset, by reference to every task
                    datasets[key] = ray.put(dataset if dataset is not None else
                                            load_named(job.config.dataset, job.config.data_dir))
                config = job.config.model_copy(update={"threads": threads, "workers": concurrent})
                pending[task.remote(dataclasses.replace(job, config=config), datasets[key], threads,
                                    list(sys.argv))] = job
            while pending:
                [ref], _ = ray.wait(list(pending), num_returns=1)
                job = pending.pop(ref)
                try:
                    files = ray.get(ref)
                except ray.exceptions.RayError as e:  # the worker or node was lost max_retries + 1 times
                    reason = f"its Ray task failed ({type(e).__name__}: {str(e).splitlines()[0][:200]})"
                    files = {METRICS_FILE: json.dumps({"status": "failed", "reason": reason}).encode()}
                job.directory.mkdir(parents=True, exist_ok=True)
                write_run_files(job.directory, files)
                result = _result(job, files)
                on_result(result)
                results.append(result)
        except BaseException:  # Ctrl-C, an error here: on a Ray this command did not start (a notebook's, a
            # cluster kept connected) the tasks would train on for nothing, beside the rerun's tasks for the same runs
            for ref in pending:
                try:
                    ray.cancel(ref, force=True)
                except Exception:  # noqa: BLE001 - finished meanwhile, or the connection is gone: nothing to stop
                    pass
            raise
        return results
    finally:
        if started_here:
            ray.shutdown()
