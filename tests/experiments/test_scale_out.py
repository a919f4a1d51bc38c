"""Scale-out and resume without starting Ray: where the driver looks for a cluster and what answers there, what a
Ray task records and what an interrupted driver leaves running, local workers for fewer runs than --workers, and an
MLflow store that a killed command left half-written or that cannot be opened."""

from __future__ import annotations

import json
import socket
import sys
import threading
import time
import types
from pathlib import Path

import pytest

from convlens.config import TrainConfig, resolve_recipe
from convlens.errors import ConvlensError, UsageError
from convlens.experiments.local import Job
from tests.experiments.fake_records import done_metrics

# RFC 7540 3.5 and 6.5: the client connection preface, and an empty SETTINGS frame (length 0, type 4, no flags,
# stream 0): what a gRPC server such as Ray's GCS sends first.
SETTINGS_FRAME = b"\x00\x00\x00\x04\x00\x00\x00\x00\x00"


def _serve_once(reply: bytes | None) -> tuple[int, threading.Thread]:
    """A TCP server on a free port that reads what comes, then sends ``reply`` (None: sends nothing, stays open)."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(1)

    def answer() -> None:
        connection, _ = server.accept()
        with connection:
            connection.recv(1024)
            if reply is None:
                time.sleep(2)
            else:
                connection.sendall(reply)
        server.close()
    thread = threading.Thread(target=answer, daemon=True)
    thread.start()
    return server.getsockname()[1], thread


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_an_address_where_no_ray_answers_is_one_line_and_a_grpc_server_passes():
    from convlens.experiments.ray_backend import check_reachable
    port, _ = _serve_once(b"HTTP/1.0 400 Bad Request\r\n\r\n")  # a web server, e.g. the dashboard's port
    with pytest.raises(ConvlensError, match=r"127\.0\.0\.1:\d+: something listens there but is not a Ray head node "
                                            r"\(it answered 'HTTP/1.0 '"):
        check_reachable(f"127.0.0.1:{port}")
    port, _ = _serve_once(None)  # accepts and says nothing
    with pytest.raises(ConvlensError, match="it answered nothing"):
        check_reachable(f"127.0.0.1:{port}", timeout=0.5)
    port, thread = _serve_once(SETTINGS_FRAME)
    check_reachable(f"127.0.0.1:{port}")  # HTTP/2 answers: Ray's to connect to
    thread.join(5)
    with pytest.raises(UsageError, match="--address garbage: give the head node's HOST:PORT"):
        check_reachable("garbage")
    with pytest.raises(UsageError, match="an http:// address is the dashboard's"):
        check_reachable("http://127.0.0.1:8265")


def test_ray_address_from_the_environment_is_checked_before_anything_is_written(monkeypatch):
    """Without --address, Ray connects to $RAY_ADDRESS: nothing there made the command wait silently for minutes."""
    pytest.importorskip("ray")
    from convlens.experiments.run import make_backend
    port = _closed_port()
    monkeypatch.setenv("RAY_ADDRESS", f"127.0.0.1:{port}")
    started = time.monotonic()
    with pytest.raises(ConvlensError,
                       match=rf"cannot reach the Ray cluster at 127\.0\.0\.1:{port}: Connection refused"):
        make_backend("ray")
    assert time.monotonic() - started < 30
    monkeypatch.setenv("RAY_ADDRESS", "nonsense")
    with pytest.raises(UsageError, match=r"^\$RAY_ADDRESS nonsense: give the head node's HOST:PORT"):
        make_backend("ray")


def test_a_ray_task_records_the_drivers_command_not_the_ray_workers(tmp_path, monkeypatch):
    from convlens.data import load_named
    from convlens.experiments.ray_backend import _train_task
    from convlens.training import threads_kept
    config = TrainConfig(model="cnn-16-32", dataset="digits", recipe=resolve_recipe("fast", {"epochs": 1}),
                         train_subset=100, test_subset=40)
    worker_argv = ["/venv/lib/ray/_private/workers/default_worker.py", "--node-ip-address=10.0.0.2"]
    monkeypatch.setattr(sys, "argv", list(worker_argv))
    driver = ["/home/me/.venv/bin/convlens", "experiment", "run", "spec.yaml", "--backend", "ray"]
    with threads_kept():
        files = _train_task(Job("kernel_size=3", 0, config, tmp_path / "unused"), load_named("digits", None), 1,
                            driver)
    assert json.loads(files["metrics.json"])["status"] == "done"
    recorded = json.loads(files["config.json"])["provenance"]["command"]
    assert recorded == "convlens experiment run spec.yaml --backend ray"
    assert sys.argv == worker_argv  # the worker process is reused by later tasks: its own argv is given back


class _FakeRay:
    """What run_jobs_ray calls of Ray, connected already (as in a notebook); ``wait`` is interrupted (Ctrl-C)."""

    class exceptions:  # noqa: N801 - as ray.exceptions
        class RayError(Exception):
            pass

    def __init__(self):
        self.submitted, self.cancelled = [], []

    def is_initialized(self):
        return True

    def cluster_resources(self):
        return {"CPU": 2}

    def put(self, value):
        return value

    def remote(self, **options):
        def wrap(function):
            def submit(*args):
                ref = object()
                self.submitted.append(ref)
                return ref
            return types.SimpleNamespace(remote=submit)
        return wrap

    def wait(self, refs, num_returns=1):
        raise KeyboardInterrupt

    def cancel(self, ref, force=False):
        self.cancelled.append((ref, force))

    def get_runtime_context(self):  # as Ray records a head on this machine: under the node's IP, not loopback
        return types.SimpleNamespace(gcs_address="192.0.2.2:6379")

    util = types.SimpleNamespace(get_node_ip_address=lambda: "192.0.2.2")


def test_an_interrupted_driver_cancels_its_tasks_on_a_ray_it_did_not_start(tmp_path, monkeypatch):
    """Otherwise they train on in the notebook's Ray, for nothing, beside the tasks a rerun starts for the same runs."""
    from convlens.experiments import ray_backend
    fake = _FakeRay()
    monkeypatch.setattr(ray_backend, "import_ray", lambda: fake)
    config = TrainConfig(model="cnn-16-32", dataset="digits")
    jobs = [Job("kernel_size=3", seed, config.model_copy(update={"seed": seed}), tmp_path / f"seed{seed}")
            for seed in range(3)]
    with pytest.raises(KeyboardInterrupt):
        ray_backend.run_jobs_ray(jobs, lambda result: None, dataset=object())
    assert len(fake.submitted) == 3
    assert fake.cancelled == [(ref, True) for ref in fake.submitted]


def test_more_workers_than_runs_start_no_idle_processes_and_the_runs_get_the_cores(tmp_path, monkeypatch):
    from convlens.experiments import local
    monkeypatch.setattr(local.os, "sched_getaffinity", lambda pid: set(range(16)))
    pools = []
    monkeypatch.setattr(local, "_run_pool", lambda units, workers, threads, *rest: pools.append(
        (workers, threads, [(job.config.threads, job.config.workers) for unit in units for job in unit])) or [])
    config = TrainConfig(model="cnn-16-32", dataset="digits")
    jobs = [Job("a", seed, config.model_copy(update={"seed": seed}), tmp_path / f"seed{seed}") for seed in range(2)]
    local.run_jobs(jobs, 8, lambda result: None)
    assert pools == [(2, 8, [(8, 2), (8, 2)])]  # 2 processes of 16 // 2 threads, as --workers 2 would give


def _store_with_finished_runs(out: Path):
    from convlens.experiments.run import plan
    from convlens.experiments.spec import parse_spec
    spec = parse_spec({"name": "tracked", "model": "cnn-16-32", "dataset": "digits", "seeds": 2,
                       "factor": {"name": "kernel_size", "levels": [3, 5]}})
    store = plan(spec, out).store
    for level in ("kernel_size=3", "kernel_size=5"):
        for seed in (0, 1):
            store.run_dir(level, seed).mkdir(parents=True, exist_ok=True)
            (store.run_dir(level, seed) / "metrics.json").write_text(json.dumps(done_metrics(seed=seed)))
    return store


def test_a_child_a_killed_command_left_half_logged_is_logged_again(tmp_path, mlflow_db):
    """The driver killed while it uploaded a run's artifacts left that child RUNNING, without them; the rerun took it
    for logged (its status tag is set when it is created) and never completed it."""
    pytest.importorskip("mlflow")
    from convlens.tracking import Tracker
    out = tmp_path / "exp"
    mlflow_db(out)
    store = _store_with_finished_runs(out)
    uri = f"sqlite:///{out / 'mlflow.db'}"
    killed = Tracker(uri, artifact_dir=out / "mlartifacts")
    parent = killed.start_parent("tracked", "experiment", store=out)
    uploads = []

    def upload_then_die(run_id, directory):
        uploads.append(run_id)
        if len(uploads) == 3:
            raise KeyboardInterrupt  # as kill -9 mid-upload: the child stays RUNNING
        return original(run_id, directory)
    original = killed.client.log_artifacts
    killed.client.log_artifacts = upload_then_die
    with pytest.raises(KeyboardInterrupt):
        killed.catch_up(parent, store, "tracked")
    rerun = Tracker(uri, artifact_dir=out / "mlartifacts")
    assert rerun.start_parent("tracked", "experiment", store=out) == parent
    rerun.catch_up(parent, store, "tracked")
    children = rerun.client.search_runs([rerun.experiment_id], filter_string=f"tags.`mlflow.parentRunId` = '{parent}'")
    assert sorted((c.data.tags["convlens.level"], c.data.tags["convlens.seed"]) for c in children) == [
        (f"kernel_size={k}", str(s)) for k in (3, 5) for s in (0, 1)]
    assert {c.info.status for c in children} == {"FINISHED"}
    for child in children:
        assert [a.path for a in rerun.client.list_artifacts(child.info.run_id)] == ["metrics.json"]


def test_an_sqlite_store_that_cannot_be_used_is_one_line_at_once(tmp_path, monkeypatch):
    """MLflow retries an SQLite database it cannot open ten times over 100 s, a three-line warning each time."""
    pytest.importorskip("mlflow")
    import mlflow.store.db.utils as db_utils

    from convlens.tracking import Tracker
    waits = []
    monkeypatch.setattr(db_utils.time, "sleep", waits.append)
    (tmp_path / "notes.db").write_text("not a database\n")
    with pytest.raises(UsageError, match=r"^cannot use the MLflow store '.*notes\.db': .*notes\.db: file is not a "
                                         r"database$"):
        Tracker(f"sqlite:///{tmp_path / 'notes.db'}")
    (tmp_path / "a-file").write_text("")
    with pytest.raises(UsageError, match=r"cannot make its directory .*a-file"):
        Tracker(f"sqlite:///{tmp_path / 'a-file' / 'mlflow.db'}")
    assert waits == []
    # the file SQLAlchemy opens: '%20' is a space; and the check itself creates no file
    (tmp_path / "my dir").mkdir()
    (tmp_path / "my dir" / "m.db").write_text("not a database\n")
    with pytest.raises(UsageError, match=r"my dir/m\.db: file is not a database$"):
        Tracker(f"sqlite:///{tmp_path}/my%20dir/m.db")
    assert not (tmp_path / "my%20dir").exists()
    from convlens.tracking import _check_sqlite
    _check_sqlite(f"sqlite:///{tmp_path / 'new.db'}")  # MLflow creates it
    assert not (tmp_path / "new.db").exists()


def test_an_address_other_than_the_connected_clusters_is_refused_not_ignored(tmp_path, monkeypatch):
    """Connected already (a notebook's ray.init to 127.0.0.1:6379), Experiment.run(backend="ray", address=...) used
    that cluster whatever address said."""
    from convlens.experiments import ray_backend
    fake = _FakeRay()
    monkeypatch.setattr(ray_backend, "import_ray", lambda: fake)
    jobs = [Job("kernel_size=3", 0, TrainConfig(model="cnn-16-32", dataset="digits"), tmp_path / "seed0")]
    for other in ("127.0.0.1:6380", "192.0.2.9:6379"):  # another port here, another machine
        with pytest.raises(UsageError, match=rf"^address {other}: this process is already connected to the Ray "
                                             r"cluster at 192\.0\.2\.2:6379 \(ray\.init\)"):
            ray_backend.run_jobs_ray(jobs, lambda result: None, address=other, dataset=object())
    assert fake.submitted == []
    # the same cluster (by the node's IP or a loopback name, as ray.init takes it), or none named: it goes on
    for same in ("localhost:6379", "127.0.0.1:6379", "192.0.2.2:6379", "auto", None):
        with pytest.raises(KeyboardInterrupt):  # the fake's wait
            ray_backend.run_jobs_ray(jobs, lambda result: None, address=same, dataset=object())


def test_ctrl_c_while_a_second_dataset_is_read_cancels_the_tasks_already_submitted(tmp_path, monkeypatch):
    import convlens.data
    from convlens.experiments import ray_backend
    fake = _FakeRay()
    monkeypatch.setattr(ray_backend, "import_ray", lambda: fake)
    reads = []

    def load_named(name, data_dir):
        reads.append(name)
        if len(reads) == 2:
            raise KeyboardInterrupt
        return object()
    monkeypatch.setattr(convlens.data, "load_named", load_named)
    jobs = [Job("d", 0, TrainConfig(model="cnn-16-32", dataset="digits"), tmp_path / "a"),
            Job("f", 0, TrainConfig(model="cnn-16-32", dataset="fashion-mnist"), tmp_path / "b")]
    with pytest.raises(KeyboardInterrupt):
        ray_backend.run_jobs_ray(jobs, lambda result: None)
    assert reads == ["digits", "fashion-mnist"] and len(fake.submitted) == 1
    assert fake.cancelled == [(fake.submitted[0], True)]
