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
import logging
import os
from pathlib import Path
from typing import Any

from convlens.errors import UsageError, first_sentence, user_path
from convlens.experiments.store import RunStore
from convlens.models.checkpoint import read_checked_config
from convlens.run_files import read_metrics

DEFAULT_DB = "mlflow.db"
EPOCH_METRICS = ("train_loss", "train_accuracy", "val_loss", "val_accuracy", "train_eval_accuracy", "train_eval_loss",
                 "lr")
FINAL_METRICS = ("test_accuracy", "test_loss", "val_accuracy", "val_loss", "train_seconds", "epochs_run")
# The kept model's validation (fp32, perhaps an earlier epoch's weights) is another measurement than the per-epoch
# monitoring (in the step's precision): logged under its own key, so that "val_accuracy" has one value per epoch.
FINAL_NAMES = {"val_accuracy": "final_val_accuracy", "val_loss": "final_val_loss"}


# The stores MLflow's tracking client takes (mlflow.tracking._tracking_service.utils registers these schemes);
# MLflow 3 refuses its file store unless MLFLOW_ALLOW_FILE_STORE=true, and convlens never writes one.
STORE_SCHEMES = ("sqlite", "postgresql", "mysql", "mssql", "http", "https", "databricks")


def default_uri(out_dir: Path) -> str:
    return f"sqlite:///{(Path(out_dir) / DEFAULT_DB).resolve()}"


def check_store_uri(uri: str) -> None:
    """A one-line UsageError for a URI MLflow would reject with a paragraph (a plain path, ./mlruns, an unknown
    scheme), naming what to give instead; before MLflow is imported or anything is written."""
    scheme = uri.split("://", 1)[0].split("+", 1)[0].lower() if "://" in uri else ""
    if scheme in STORE_SCHEMES or uri == "databricks":
        return
    if scheme in ("", "file"):
        path = user_path(uri[len("file://"):] if scheme else uri, "MLflow store")
        database = path if path.suffix in (".db", ".sqlite", ".sqlite3") else path / DEFAULT_DB
        raise UsageError(f"the MLflow store {uri!r} is a {'path' if not scheme else 'file store'}, not a database or "
                         f"server URI: use sqlite:///{database.resolve()} (an SQLite file) or http://HOST:PORT "
                         "(a tracking server)")
    raise UsageError(f"the MLflow store {uri!r} has the unknown scheme '{scheme}'; give sqlite:///PATH, "
                     "postgresql://, mysql://, mssql://, http(s)://HOST:PORT or databricks")


def _check_sqlite(uri: str) -> None:
    """One line (UsageError) when the SQLite database of ``uri`` cannot be used: its directory cannot be made or
    written, it is not a file, or not a database. MLflow would retry it ten times over 100 s, with a three-line
    warning each time, before failing. The path is SQLAlchemy's reading of the URI (percent-decoded), the file
    MLflow opens; a database that does not exist yet is left for MLflow to create."""
    import sqlite3

    from sqlalchemy.engine import make_url
    if not uri.lower().startswith("sqlite:"):
        return
    try:
        name = make_url(uri).database
    except Exception:  # noqa: BLE001 - not a URL SQLAlchemy reads: MLflow's own message follows
        return
    if not name or name == ":memory:":
        return
    path = Path(name)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)  # as MLflow does
    except OSError as e:
        raise UsageError(f"cannot use the MLflow store {uri!r}: cannot make its directory {path.parent} "
                         f"({e.strerror or e})") from None
    if not path.exists():
        if not os.access(path.parent, os.W_OK):
            raise UsageError(f"cannot use the MLflow store {uri!r}: {path.parent} is not writable")
        return
    if not path.is_file():
        raise UsageError(f"cannot use the MLflow store {uri!r}: {path} is not a file")
    if not os.access(path, os.W_OK):
        raise UsageError(f"cannot use the MLflow store {uri!r}: {path} is not writable")
    try:  # mode=rw: opens what is there, creates nothing
        connection = sqlite3.connect(f"{path.resolve().as_uri()}?mode=rw", uri=True, timeout=30)
        try:
            connection.execute("PRAGMA schema_version").fetchone()  # reads the header: not a database fails here
        finally:
            connection.close()
    except sqlite3.Error as e:
        raise UsageError(f"cannot use the MLflow store {uri!r}: {path}: {e}") from None


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
        check_store_uri(uri)
        os.environ.setdefault("MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT", "true")  # convlens prints where to look
        try:
            from mlflow.tracking import MlflowClient
        except ImportError:
            raise UsageError("--mlflow needs MLflow: pip install 'convlens[mlflow]'") from None
        # After the import, which sets MLflow's own loggers to INFO: "Creating initial MLflow database tables...",
        # "Updating database tables" are not news for a user
        for name in ("mlflow", "alembic"):
            logging.getLogger(name).setLevel(logging.WARNING)
        _check_sqlite(uri)  # before MLflow, which retries an unusable database for 100 s, a warning each time
        self.uri = uri
        self._children: dict[str, dict[tuple[str, int], tuple[str, str]]] = {}  # parent -> what is logged under it
        try:
            self.client = MlflowClient(tracking_uri=uri)
            found = self.client.get_experiment_by_name("convlens")
            self.experiment_id = found.experiment_id if found else self.client.create_experiment(
                "convlens", artifact_location=Path(artifact_dir).resolve().as_uri() if artifact_dir else None)
        except Exception as e:  # MLflow raises its own types (unsupported scheme, unreachable server, bad DB)
            raise UsageError(f"cannot use the MLflow store {uri!r}: {first_sentence(str(e)) or type(e).__name__}") \
                from None

    def where(self, run_id: str) -> str:
        """Where a person finds ``run_id``: its page on a tracking server, or the command that shows a local store."""
        if self.uri.startswith(("http://", "https://")):
            return f"{self.uri.rstrip('/')}/#/experiments/{self.experiment_id}/runs/{run_id}"
        return f"run {run_id} in {self.uri} (see it with: mlflow ui --backend-store-uri {self.uri})"

    def _log(self, run_id: str, *, params: dict[str, str] | None = None, metrics: list | None = None) -> None:
        from mlflow.entities import Param
        params = [Param(k, v[:6000]) for k, v in (params or {}).items()]
        metrics = metrics or []
        for start in range(0, max(len(params), len(metrics), 1), 100):  # MLflow takes at most 100 params per batch
            self.client.log_batch(run_id, params=params[start:start + 100], metrics=metrics[start:start + 100])

    def start_parent(self, name: str, kind: str, params: dict[str, Any] | None = None,
                     parent_id: str | None = None, store: Path | None = None) -> str:
        """A run that groups others (kind "study" or "experiment"); returns its id. With ``store`` (the
        directory it logs), the parent an earlier invocation on the same store left (killed or finished) is
        reopened instead, so a resumed sweep stays one parent with one child per run."""
        tags = {f"convlens.{kind}": name, "convlens.kind": kind}
        if store is not None:
            tags["convlens.store"] = _store_key(store)
            found = self.client.search_runs([self.experiment_id], max_results=1, filter_string=(
                f"tags.`convlens.store` = '{tags['convlens.store']}' and tags.`convlens.kind` = '{kind}'"))
            if found:
                run_id = found[0].info.run_id
                self.client.update_run(run_id, status="RUNNING")
                if parent_id:  # e.g. an experiment first run alone, now part of a study: nest it there
                    self.client.set_tag(run_id, "mlflow.parentRunId", parent_id)
                return run_id
        if parent_id:
            tags["mlflow.parentRunId"] = parent_id
        run_id = self.client.create_run(self.experiment_id, run_name=name, tags=tags).info.run_id
        flat: dict[str, str] = {}
        _flatten("", params or {}, flat)
        self._log(run_id, params=flat)
        return run_id

    def retire(self, store: Path) -> None:
        """Detach the parents of ``store`` (its runs were discarded, --force): the next start_parent begins anew."""
        key = _store_key(store)
        for run in self.client.search_runs([self.experiment_id], filter_string=f"tags.`convlens.store` = '{key}'"):
            self.client.set_tag(run.info.run_id, "convlens.store", f"{key}-retired")
            self.client.set_terminated(run.info.run_id, "KILLED")

    def children(self, parent_id: str) -> dict[tuple[str, int], tuple[str, str]]:
        """(level, seed) -> (MLflow run id, convlens status) of the runs logged under ``parent_id``."""
        found = {}
        for run in self.client.search_runs([self.experiment_id], max_results=50000,
                                           filter_string=f"tags.`mlflow.parentRunId` = '{parent_id}'"):
            tags = run.data.tags
            if tags.get("convlens.kind") == "run" and "convlens.level" in tags:
                # A child still RUNNING was being logged when its command died (killed mid-upload: params, metrics or
                # artifacts missing): status "" so that catch_up logs the run again in its place.
                complete = run.info.status in ("FINISHED", "FAILED")
                found[(tags["convlens.level"], int(tags["convlens.seed"]))] = (
                    run.info.run_id, tags.get("convlens.status", "") if complete else "")
        return found

    def catch_up(self, parent_id: str, store: RunStore, experiment: str) -> int:
        """Log every finished run of ``store`` that is not yet under ``parent_id`` as it is now (a run that
        failed and was retried replaces its failed child); returns how many were logged."""
        if parent_id not in self._children:  # searched once per parent; kept up to date below
            self._children[parent_id] = self.children(parent_id)
        logged = self._children[parent_id]
        grid = store.status_grid()
        count = 0
        for level, seeds in grid.items():
            for seed, status in seeds.items():
                if status == "pending" or logged.get((level, seed), ("", ""))[1] == status:
                    continue
                if (level, seed) in logged:
                    self.client.delete_run(logged[(level, seed)][0])
                run_id = self.log_run(store.run_dir(level, seed), level=level, seed=seed, experiment=experiment,
                                      parent_id=parent_id)
                logged[(level, seed)] = (run_id, status)
                count += 1
        return count

    def log_run(self, run_dir: Path, *, level: str | None = None, seed: int | None = None,
                experiment: str | None = None, parent_id: str | None = None) -> str:
        """One MLflow run from ``run_dir``'s config.json and metrics.json; returns its id."""
        from mlflow.entities import Metric
        # Checked as every reader checks them (a run that failed before it started has no config.json).
        config = read_checked_config(run_dir) if (run_dir / "config.json").is_file() else {}
        metrics = read_metrics(run_dir)
        seed = seed if seed is not None else config.get("seed")
        design = {"spec": config.get("model", {}).get("spec", {}), "recipe": config.get("recipe", {}),
                  "data": {k: v for k, v in config.get("data", {}).items() if k not in ("directory", "checksums")},
                  "model": config.get("model", {}).get("name")}
        digest = hashlib.sha256(json.dumps(design, sort_keys=True).encode()).hexdigest()[:16]
        tags = {"convlens.seed": str(seed), "convlens.config_hash": digest, "convlens.kind": "run",
                "convlens.status": metrics.get("status", "failed")}
        if metrics.get("precision"):  # what the recipe's precision (perhaps "auto") meant on the machine that trained
            tags["convlens.precision"] = metrics["precision"]
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
        points += [Metric(FINAL_NAMES.get(key, key), float(metrics[key]), now, len(metrics.get("history", [])))
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


def make_tracker(enabled: bool, uri: str | None, out_dir: Path) -> Tracker | None:
    """The tracker of --mlflow / --mlflow-uri (``mlflow=`` in Python), or None (MLflow is imported only when
    asked for)."""
    if not (enabled or uri):
        return None
    if not uri:
        out_dir.mkdir(parents=True, exist_ok=True)  # SQLite creates the database file, not its directory
    # Artifacts of a SQLite store go beside its database (MLflow's default is ./mlruns of the working directory);
    # a server decides for itself.
    database = uri[len("sqlite:///"):] if uri and uri.startswith("sqlite:///") else None
    artifacts = out_dir if not uri else Path(database).parent if database else None
    return Tracker(uri or default_uri(out_dir), artifact_dir=artifacts / "mlartifacts" if artifacts else None)


def log_study(tracker: Tracker, out: Path, results: dict, *, fresh: bool = False) -> str:
    """A study: one parent with the report as artifacts, a nested parent per experiment, a run per run. Run
    again on the same study (resumed, extended), it adds only what is new; ``fresh`` (--force) begins anew."""
    stores = [out / "experiments" / name for name in results["experiments"]]
    if fresh:
        for store in [out, *stores]:
            tracker.retire(store)
    study_id = tracker.start_parent(f"study {out.name}", "study", params=results["study"]["config"], store=out)
    for store in stores:
        experiment = RunStore(store).read_experiment()
        experiment_id = tracker.start_parent(store.name, "experiment", params=experiment["spec"],
                                             parent_id=study_id, store=store)
        tracker.catch_up(experiment_id, RunStore(store), store.name)
        tracker.finish(experiment_id, [store / "summary.json", store / "runs.csv"])
    tracker.finish(study_id, [out / "report.html", out / "report.md", out / "results.json"])
    return study_id


def _store_key(store: Path) -> str:
    """A run store's identity in MLflow tags: a digest of its absolute path (paths may hold quotes)."""
    return hashlib.sha256(str(Path(store).resolve()).encode()).hexdigest()[:24]
