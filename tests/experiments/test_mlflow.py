"""MLflow tracking of an experiment: one parent run, one child per convlens run, with the resolved config as
params, per-epoch metrics with their steps, the final test metrics and the run directory as artifacts; read back
through MlflowClient from the SQLite store in the output directory."""

from __future__ import annotations

import json

import yaml

from convlens.cli import main


def test_an_experiment_is_one_parent_with_a_child_per_run(tmp_path, monkeypatch):
    from mlflow.tracking import MlflowClient
    monkeypatch.chdir(tmp_path)  # nothing may land in the working directory (./mlruns)
    spec = tmp_path / "s.yaml"
    spec.write_text(yaml.safe_dump({"name": "tracked", "model": "cnn-16-32", "recipe": "fast",
                                    "recipe_set": {"epochs": 2}, "factor": {"name": "kernel_size", "levels": [3, 5]},
                                    "seeds": 2, "dataset": "digits"}))
    out = tmp_path / "exp"
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
        history = client.get_metric_history(child.info.run_id, "val_accuracy")
        assert [(m.step, m.value) for m in history] == [(h["epoch"], h["val_accuracy"]) for h in metrics["history"]]
        assert {a.path for a in client.list_artifacts(child.info.run_id)} >= {"config.json", "metrics.json",
                                                                              "model.safetensors"}
    hashes = {c.data.tags["convlens.level"]: c.data.tags["convlens.config_hash"] for c in children}
    assert len(set(hashes.values())) == 2  # the seeds of a level share their config hash, the levels do not
    assert {a.path for a in client.list_artifacts(parent.info.run_id)} == {"summary.json", "runs.csv"}
    assert not (tmp_path / "mlruns").exists() and (out / "mlartifacts").is_dir()


def test_a_single_training_run_is_one_mlflow_run(tmp_path):
    from mlflow.tracking import MlflowClient
    out = tmp_path / "run"
    assert main(["train", "-m", "mlp", "--dataset", "digits", "--epochs", "2", "--out", str(out), "--quiet",
                 "--mlflow-uri", f"sqlite:///{tmp_path / 'elsewhere.db'}"]) == 0
    client = MlflowClient(f"sqlite:///{tmp_path / 'elsewhere.db'}")
    [run] = client.search_runs([client.get_experiment_by_name("convlens").experiment_id])
    metrics = json.loads((out / "metrics.json").read_text())
    assert "mlflow.parentRunId" not in run.data.tags and run.data.params["model"] == "mlp-128-64"
    assert run.data.metrics["test_accuracy"] == metrics["test_accuracy"]
    assert [m.step for m in client.get_metric_history(run.info.run_id, "train_loss")] == [1, 2]

