"""MLflow tracking of an experiment: one parent run, one child per convlens run, with the resolved config as
params, per-epoch metrics with their steps, the final test metrics and the run directory as artifacts; read back
through MlflowClient from the SQLite store in the output directory."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from convlens.cli import main
from tests.serving.conftest import free_port, wait_until_answers


def write_spec(path: Path, **changes) -> Path:
    path.write_text(yaml.safe_dump({"name": "tracked", "model": "cnn-16-32", "recipe": "fast",
                                    "recipe_set": {"epochs": 2}, "factor": {"name": "kernel_size", "levels": [3, 5]},
                                    "seeds": 2, "dataset": "digits", **changes}))
    return path


def tree(client, experiment_name: str = "convlens") -> tuple[list, dict[str, list]]:
    """The parents (runs without a parent) and parent run id -> its children, as MLflow holds them."""
    runs = client.search_runs([client.get_experiment_by_name(experiment_name).experiment_id])
    parents = [r for r in runs if "mlflow.parentRunId" not in r.data.tags]
    children: dict[str, list] = {}
    for run in runs:
        if "mlflow.parentRunId" in run.data.tags:
            children.setdefault(run.data.tags["mlflow.parentRunId"], []).append(run)
    return parents, children


def test_an_experiment_is_one_parent_with_a_child_per_run(tmp_path, monkeypatch, mlflow_db):
    from mlflow.tracking import MlflowClient
    monkeypatch.chdir(tmp_path)  # nothing may land in the working directory (./mlruns)
    spec = write_spec(tmp_path / "s.yaml")
    out = tmp_path / "exp"
    mlflow_db(out)
    assert main(["experiment", "run", str(spec), "--out", str(out), "--mlflow", "--quiet"]) == 0
    client = MlflowClient(f"sqlite:///{out / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("convlens")
    runs = client.search_runs([experiment.experiment_id])
    [parent] = [r for r in runs if "mlflow.parentRunId" not in r.data.tags]
    children = [r for r in runs if r.data.tags.get("mlflow.parentRunId") == parent.info.run_id]
    assert len(runs) == 5 and len(children) == 4 and parent.data.tags["convlens.experiment"] == "tracked"
    for child in children:
        level, seed = child.data.tags["convlens.level"], int(child.data.tags["convlens.seed"])
        metrics = json.loads((out / "runs" / level / f"seed{seed}" / "metrics.json").read_text())
        assert child.data.params["spec.kernel_size"] == level.split("=")[1]
        assert child.data.params["data.dataset"] == "digits" and child.info.status == "FINISHED"
        assert child.data.metrics["test_accuracy"] == metrics["test_accuracy"]
        # the kept model's fp32 validation beside the per-epoch monitoring (bf16 where auto means bf16: it differs)
        assert child.data.metrics["final_val_accuracy"] == metrics["val_accuracy"]
        history = client.get_metric_history(child.info.run_id, "val_accuracy")
        assert [(m.step, m.value) for m in history] == [(h["epoch"], h["val_accuracy"]) for h in metrics["history"]]
        assert {a.path for a in client.list_artifacts(child.info.run_id)} >= {"config.json", "metrics.json",
                                                                              "model.safetensors"}
    hashes = {c.data.tags["convlens.level"]: c.data.tags["convlens.config_hash"] for c in children}
    assert len(set(hashes.values())) == 2  # the seeds of a level share their config hash, the levels do not
    assert {a.path for a in client.list_artifacts(parent.info.run_id)} == {"summary.json", "runs.csv"}
    assert not (tmp_path / "mlruns").exists() and (out / "mlartifacts").is_dir()


def test_a_single_training_run_is_one_mlflow_run(tmp_path, mlflow_db, monkeypatch):
    from mlflow.tracking import MlflowClient
    monkeypatch.chdir(tmp_path)
    out = tmp_path / "run"
    shutil.move(mlflow_db(tmp_path / "template"), tmp_path / "elsewhere.db")
    assert main(["train", "-m", "mlp", "--dataset", "digits", "--epochs", "2", "--out", str(out), "--quiet",
                 "--mlflow-uri", f"sqlite:///{tmp_path / 'elsewhere.db'}"]) == 0
    client = MlflowClient(f"sqlite:///{tmp_path / 'elsewhere.db'}")
    [run] = client.search_runs([client.get_experiment_by_name("convlens").experiment_id])
    metrics = json.loads((out / "metrics.json").read_text())
    assert "mlflow.parentRunId" not in run.data.tags and run.data.params["model"] == "mlp-128-64"
    assert run.data.tags["convlens.precision"] == metrics["precision"] and run.data.params["recipe.precision"] == "auto"
    assert run.data.metrics["test_accuracy"] == metrics["test_accuracy"]
    assert [m.step for m in client.get_metric_history(run.info.run_id, "train_loss")] == [1, 2]
    assert not (tmp_path / "mlruns").exists()  # artifacts beside the database, not in the working directory
    assert list((tmp_path / "mlartifacts").rglob(f"{run.info.run_id}/artifacts/metrics.json"))



def test_a_resumed_extended_or_retried_experiment_stays_one_parent_with_one_child_per_run(tmp_path, mlflow_db,
                                                                                          capsys):
    from mlflow.tracking import MlflowClient
    out = tmp_path / "exp"
    mlflow_db(out)
    client = MlflowClient(f"sqlite:///{out / 'mlflow.db'}")
    spec = write_spec(tmp_path / "s.yaml", seeds=1)
    assert main(["experiment", "run", str(spec), "--out", str(out), "--mlflow", "--quiet"]) == 0
    assert "View run" not in capsys.readouterr().out  # MLflow's own links are not printed
    [first], children = tree(client)
    assert len(children[first.info.run_id]) == 2
    # a run that finished but was never logged (the driver died between the two) is logged on the next start
    client.delete_run(children[first.info.run_id][0].info.run_id)
    assert main(["experiment", "run", str(spec), "--out", str(out), "--mlflow", "--quiet", "--seeds", "2"]) == 0
    [parent], children = tree(client)
    assert parent.info.run_id == first.info.run_id and parent.info.status == "FINISHED"
    keys = sorted((c.data.tags["convlens.level"], c.data.tags["convlens.seed"]) for c in children[parent.info.run_id])
    assert keys == [(f"kernel_size={k}", str(s)) for k in (3, 5) for s in (0, 1)]
    # a failed run retried replaces its failed child
    metrics = out / "runs" / "kernel_size=5" / "seed1" / "metrics.json"
    metrics.write_text(json.dumps({"status": "failed", "reason": "made up by the test"}))
    assert main(["experiment", "run", str(spec), "--out", str(out), "--mlflow", "--quiet", "--seeds", "2"]) == 0
    failed = [c for c in tree(client)[1][parent.info.run_id] if c.data.tags["convlens.status"] == "failed"]
    assert len(failed) == 1 and failed[0].info.status == "FAILED" and len(tree(client)[1][parent.info.run_id]) == 4
    assert main(["experiment", "run", str(spec), "--out", str(out), "--mlflow", "--quiet", "--seeds", "2",
                 "--retry-failed"]) == 0
    children = tree(client)[1][parent.info.run_id]
    assert len(children) == 4 and {c.data.tags["convlens.status"] for c in children} == {"done"}
    # --force discards the runs: a new parent, the old one kept as history (KILLED)
    assert main(["experiment", "run", str(spec), "--out", str(out), "--mlflow", "--quiet", "--seeds", "1",
                 "--force"]) == 0
    parents, children = tree(client)
    [new] = [p for p in parents if p.info.run_id != parent.info.run_id]
    assert len(children[new.info.run_id]) == 2 and client.get_run(parent.info.run_id).info.status == "KILLED"


def test_an_mlflow_tracking_server_receives_the_experiment(tmp_path):
    """A real `mlflow server` on 127.0.0.1 (its own SQLite store and artifact root), reached by --mlflow-uri."""
    from mlflow.tracking import MlflowClient
    port = free_port()
    server = subprocess.Popen([str(Path(sys.executable).parent / "mlflow"), "server", "--host", "127.0.0.1", "--port",
                               str(port), "--workers", "1", "--backend-store-uri", f"sqlite:///{tmp_path / 'srv.db'}",
                               "--artifacts-destination", str(tmp_path / "artifacts")],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
                              # Tracking only: without this the server also starts three job consumers (huey),
                              # which this test never uses; their imports took ~86 s of CPU on 2 cores.
                              env={**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"})
    uri = f"http://127.0.0.1:{port}"
    try:
        assert wait_until_answers(f"{uri}/health", server, 90), "mlflow server did not start"
        out = tmp_path / "exp"
        assert main(["experiment", "run", str(write_spec(tmp_path / "s.yaml", seeds=1)), "--out", str(out),
                     "--mlflow-uri", uri, "--quiet"]) == 0
        client = MlflowClient(uri)
        [parent], children = tree(client)
        assert parent.data.tags["convlens.experiment"] == "tracked" and len(children[parent.info.run_id]) == 2
        for child in children[parent.info.run_id]:
            level = child.data.tags["convlens.level"]
            metrics = json.loads((out / "runs" / level / "seed0" / "metrics.json").read_text())
            assert child.data.params["spec.kernel_size"] == level.split("=")[1]
            assert [m.value for m in client.get_metric_history(child.info.run_id, "train_loss")] == \
                [h["train_loss"] for h in metrics["history"]]
            names = {a.path for a in client.list_artifacts(child.info.run_id)}
            assert {"config.json", "metrics.json", "model.safetensors"} <= names
            stored = next((tmp_path / "artifacts").glob(f"*/{child.info.run_id}/artifacts/metrics.json"))
            assert json.loads(stored.read_text()) == metrics  # uploaded through the server, byte for byte
        assert not (out / "mlflow.db").exists()  # the server's store, not a local one
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=30)


@pytest.mark.parametrize("uri, message", [
    ("/tmp/runs/foo.db", "is a path, not a database or server URI: use sqlite:////tmp/runs/foo.db (an SQLite file)"),
    ("file:///tmp/mlruns", "is a file store, not a database or server URI: use sqlite:////tmp/mlruns/mlflow.db"),
    ("bogus://x", "has the unknown scheme 'bogus'; give sqlite:///PATH,"),
])
def test_an_mlflow_uri_mlflow_would_refuse_with_a_paragraph_is_one_line_naming_what_to_give(uri, message, tmp_path,
                                                                                           capsys):
    assert main(["train", "-m", "mlp", "--epochs", "1", "--train-subset", "200", "--test-subset", "50",
                 "--dataset", "digits", "--mlflow-uri", uri, "--out", str(tmp_path / "run")]) == 2
    [line] = capsys.readouterr().err.strip().splitlines()
    assert line.startswith(f"convlens: error: the MLflow store {uri!r} {message}")
    assert not (tmp_path / "run").exists() and not Path("/tmp/runs/foo.db").exists()


@pytest.mark.parametrize("uri", ["sqlite:///x.db", "postgresql+psycopg://u@h/db", "HTTPS://host:5000", "databricks",
                                 "mysql://h/db", "mssql+pyodbc://h/db", "databricks://profile"])
def test_every_store_scheme_mlflow_takes_passes_the_check(uri):
    from convlens.tracking import check_store_uri
    check_store_uri(uri)  # raises UsageError otherwise


def test_another_librarys_paragraph_becomes_its_first_sentence_in_whole_words():
    from convlens.errors import first_sentence
    assert first_sentence("The store is in maintenance mode. Please migrate (e.g. 'sqlite:///x').\nMore.") == \
        "The store is in maintenance mode."
    assert first_sentence("No module named 'psycopg'") == "No module named 'psycopg'"
    assert first_sentence("version 1.2.3 is too old. Upgrade it") == "version 1.2.3 is too old."  # no cut in 1.2.3
    long = "word " * 100
    cut = first_sentence(long, limit=42)
    assert cut == "word " * 7 + "word…" and len(cut) <= 43
    assert first_sentence("bad\tvalue\x1b[31m") == "bad\\tvalue\\x1b[31m" and first_sentence("  \n ") == ""


def test_a_new_store_is_made_without_mlflows_info_lines(tmp_path):
    """MLflow sets its loggers to INFO when imported: "Creating initial MLflow database tables...", "Updating
    database tables" were printed on every first --mlflow (a fresh process, as the CLI is)."""
    database = tmp_path / "fresh.db"
    made = subprocess.run([sys.executable, "-c", "from convlens.tracking import Tracker; import sys; "
                           "Tracker(sys.argv[1])", f"sqlite:///{database}"], capture_output=True, text=True,
                          timeout=120)
    assert made.returncode == 0 and database.is_file(), made.stderr
    assert made.stdout == "" and made.stderr == ""
