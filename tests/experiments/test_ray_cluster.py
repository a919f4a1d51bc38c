"""A Ray cluster started with `ray start --head` on 127.0.0.1 and reached by address: an experiment gives the
local backend's numbers, and a whole (quick, digits) study runs on it end to end."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from convlens.cli import main
from tests.experiments.test_ray import _runs, write_spec
from tests.serving.conftest import free_port


@pytest.fixture(scope="module")
def cluster():
    ray_exe = shutil.which("ray", path=str(Path(sys.executable).parent))
    port = free_port()
    env = {**os.environ, "RAY_USAGE_STATS_ENABLED": "0"}
    started = subprocess.run([ray_exe, "start", "--head", "--num-cpus", "2", "--port", str(port),
                              "--node-ip-address", "127.0.0.1", "--include-dashboard", "false"],
                             capture_output=True, text=True, timeout=120, env=env)
    assert started.returncode == 0, started.stdout + started.stderr
    yield f"127.0.0.1:{port}"
    subprocess.run([ray_exe, "stop", "--force"], capture_output=True, timeout=120, env=env)


def test_an_experiment_on_a_cluster_equals_the_local_backend(cluster, tmp_path, capsys):
    import ray
    assert not ray.is_initialized()  # the command connects to the cluster itself
    spec = write_spec(tmp_path / "s.yaml", seeds=1)
    threads = len(os.sched_getaffinity(0))
    assert main(["experiment", "run", str(spec), "--out", str(tmp_path / "local"), "--quiet"]) == 0
    assert main(["experiment", "run", str(spec), "--out", str(tmp_path / "ray"), "--backend", "ray",
                 "--address", cluster, "--cpus-per-run", str(threads), "--quiet"]) == 0
    local, remote = _runs(tmp_path / "local"), _runs(tmp_path / "ray")
    assert sorted(local) == sorted(remote) and len(local) == 2
    assert all(remote[k]["test_correct"] == local[k]["test_correct"] for k in local)


def test_a_quick_study_runs_on_the_cluster(cluster, tmp_path):
    out = tmp_path / "study"
    assert main(["study", "--dataset", "digits", "--quick", "--out", str(out), "--backend", "ray", "--address",
                 cluster, "--quiet"]) == 0
    results = json.loads((out / "results.json").read_text())
    assert results["study"]["runs"]["trained_now"] == 15 and (out / "report.html").is_file()
    timings = [json.loads(p.read_text())["timing"] for p in out.glob("experiments/*/runs/*/*/metrics.json")]
    assert {t["threads"] for t in timings} == {1}  # one CPU per task, as asked
