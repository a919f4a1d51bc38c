"""MLflow tracking: one MLflow run per convlens run, nested under one parent run per experiment.

Logged from the driver as each run is written to the store (whatever trained it: this process, worker
processes or Ray tasks), from the run's own files: so the tracker and the run store can never disagree, and
workers need no access to the tracking server. Per run: params = the resolved config flattened (spec.*,
recipe.*, data.*), metrics per epoch with their step (train/validation loss and accuracy), the final test
metrics, the run directory as artifacts, and tags (experiment, level, seed, config hash) so MLflow's compare view
groups the seeds of a level. The default store is SQLite in the output directory (MLflow's file store is
deprecated). MLflow is an optional extra, imported here only.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from convlens.errors import UsageError

DEFAULT_DB = "mlflow.db"
EPOCH_METRICS = ("train_loss", "train_accuracy", "val_loss", "val_accuracy", "train_eval_accuracy", "train_eval_loss",
                 "lr")
FINAL_METRICS = ("test_accuracy", "test_loss", "val_accuracy", "val_loss", "train_seconds", "epochs_run")


def default_uri(out_dir: Path) -> str:
    return f"sqlite:///{(Path(out_dir) / DEFAULT_DB).resolve()}"


def _flatten(prefix: str, value: Any, into: dict[str, str]) -> None:
    if isinstance(value, dict):
        for k, v in value.items():
            _flatten(f"{prefix}.{k}" if prefix else str(k), v, into)
    else:
        into[prefix] = json.dumps(value) if isinstance(value, (list, tuple)) else str(value)


class Tracker:
    """Runs in one MLflow store: parents (a study, an experiment) and one run per convlens run under them."""

    def __init__(self, uri: str, artifact_dir: Path | None = None):
        """``artifact_dir``: where a new MLflow experiment keeps its artifacts (with a SQLite store MLflow would
        otherwise use ./mlruns of whatever directory the command ran in)."""
        try:
            from mlflow.tracking import MlflowClient
        except ImportError:
            raise UsageError("--mlflow needs MLflow: pip install 'convlens[mlflow]'") from None
        try:
            self.client = MlflowClient(tracking_uri=uri)
            found = self.client.get_experiment_by_name("convlens")
            self.experiment_id = found.experiment_id if found else self.client.create_experiment(
                "convlens", artifact_location=Path(artifact_dir).resolve().as_uri() if artifact_dir else None)
        except Exception as e:  # MLflow raises its own types (unsupported scheme, unreachable server, bad DB)
            first = (str(e).strip().splitlines() or [type(e).__name__])[0][:200]
            raise UsageError(f"cannot use the MLflow store {uri!r}: {first}") from None

    def _log(self, run_id: str, *, params: dict[str, str] | None = None, metrics: list | None = None) -> None:
        from mlflow.entities import Param
        params = [Param(k, v[:6000]) for k, v in (params or {}).items()]
        metrics = metrics or []
        for start in range(0, max(len(params), len(metrics), 1), 100):  # MLflow takes at most 100 params per batch
            self.client.log_batch(run_id, params=params[start:start + 100], metrics=metrics[start:start + 100])

    def start_parent(self, name: str, kind: str, params: dict[str, Any] | None = None,
                     parent_id: str | None = None) -> str:
        """A run that groups others (kind "study" or "experiment"); returns its id."""
        tags = {f"convlens.{kind}": name, "convlens.kind": kind}
        if parent_id:
            tags["mlflow.parentRunId"] = parent_id
        run_id = self.client.create_run(self.experiment_id, run_name=name, tags=tags).info.run_id
        flat: dict[str, str] = {}
        _flatten("", params or {}, flat)
        self._log(run_id, params=flat)
        return run_id

    def log_run(self, run_dir: Path, *, level: str | None = None, seed: int | None = None,
                experiment: str | None = None, parent_id: str | None = None) -> str:
        """One MLflow run from ``run_dir``'s config.json and metrics.json; returns its id."""
        from mlflow.entities import Metric
        config = json.loads((run_dir / "config.json").read_text()) if (run_dir / "config.json").is_file() else {}
        metrics = json.loads((run_dir / "metrics.json").read_text())
        seed = seed if seed is not None else config.get("seed")
        design = {"spec": config.get("model", {}).get("spec", {}), "recipe": config.get("recipe", {}),
                  "data": {k: v for k, v in config.get("data", {}).items() if k not in ("directory", "checksums")},
                  "model": config.get("model", {}).get("name")}
        digest = hashlib.sha256(json.dumps(design, sort_keys=True).encode()).hexdigest()[:16]
        tags = {"convlens.seed": str(seed), "convlens.config_hash": digest, "convlens.kind": "run",
                "convlens.status": metrics.get("status", "failed")}
        tags.update({k: v for k, v in (("mlflow.parentRunId", parent_id), ("convlens.experiment", experiment),
                                       ("convlens.level", level)) if v})
        name = f"{level} seed{seed}" if level else f"{design['model']} seed{seed}"
        run_id = self.client.create_run(self.experiment_id, run_name=name, tags=tags).info.run_id
        flat: dict[str, str] = {"seed": str(seed)}
        _flatten("", design, flat)
        now = 0  # timestamps are not what a comparison reads; steps are
        points = [Metric(key, float(epoch[key]), now, epoch["epoch"])
                  for epoch in metrics.get("history", []) for key in EPOCH_METRICS
                  if isinstance(epoch.get(key), (int, float))]
        points += [Metric(key, float(metrics[key]), now, len(metrics.get("history", [])))
                   for key in FINAL_METRICS if isinstance(metrics.get(key), (int, float))]
        self._log(run_id, params=flat, metrics=points)
        self.client.log_artifacts(run_id, str(run_dir))
        self.client.set_terminated(run_id, "FINISHED" if metrics.get("status") == "done" else "FAILED")
        return run_id

    def finish(self, run_id: str, artifacts: list[Path] = ()) -> None:
        for path in artifacts:
            if path.is_file():
                self.client.log_artifact(run_id, str(path))
        self.client.set_terminated(run_id, "FINISHED")


def log_study(tracker: Tracker, out: Path, results: dict) -> str:
    """A study: one parent with the report as artifacts, a nested parent per experiment, a run per run."""
    study_id = tracker.start_parent(f"study {out.name}", "study", params=results["study"]["config"])
    for name in results["experiments"]:
        store = out / "experiments" / name
        experiment = json.loads((store / "experiment.json").read_text())
        experiment_id = tracker.start_parent(name, "experiment", params=experiment["spec"], parent_id=study_id)
        for metrics_path in sorted(store.glob("runs/*/seed*/metrics.json")):
            run_dir = metrics_path.parent
            level = next((lv["label"] for lv in experiment["levels"]
                          if run_dir.parent.name == _slug(lv["label"])), run_dir.parent.name)
            tracker.log_run(run_dir, level=level, seed=int(run_dir.name.removeprefix("seed")), experiment=name,
                            parent_id=experiment_id)
        tracker.finish(experiment_id, [store / "summary.json", store / "runs.csv"])
    tracker.finish(study_id, [out / "report.html", out / "report.md", out / "results.json"])
    return study_id


def _slug(label: str) -> str:
    from convlens.experiments.store import slug
    return slug(label)
