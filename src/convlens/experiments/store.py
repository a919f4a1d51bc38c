"""The run store: one directory per experiment, one run directory per (level, seed).

    OUT/experiment.json                 spec, resolved level configs, the one-factor diff, provenance
    OUT/runs/<level>/seed<k>/           config.json, model.safetensors, metrics.json (see convlens.runs)
    OUT/summary.json, OUT/runs.csv, OUT/plots/*.png   (written by the analysis)

A run is finished when its metrics.json exists (status "done" or "failed"): it is written last and atomically,
so a process killed at any moment leaves either a finished run or one that is simply redone.
"""

from __future__ import annotations

import json
import os
import re
import shutil
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from convlens.atomic_files import atomic_write_json
from convlens.errors import ConvlensError, UsageError
from convlens.experiments.spec import ExperimentSpec, Level, parse_spec
from convlens.models.checkpoint import CONFIG_FILE, read_json_object
from convlens.provenance import package_versions
from convlens.records import ExperimentRecord, checked
from convlens.run_files import METRICS_FILE, check_same_data, read_metrics, refuse_run_or_model

if TYPE_CHECKING:
    from convlens.config import TrainConfig
    from convlens.data.dataset import ImageDataset

EXPERIMENT_FILE = "experiment.json"
ANALYSIS_OUTPUTS = ("summary.json", "runs.csv", "plots")  # written by the analysis from the runs
RunStatus = Literal["done", "failed", "pending"]


def slug(label: str) -> str:
    """A directory name for a level label ('kernel_size=5 depth=2' -> 'kernel_size=5__depth=2')."""
    name = re.sub(r"[^A-Za-z0-9_.,=-]", "_", label.replace(" ", "__"))
    return name if name.strip(".") else name.replace(".", "_")  # never '.' or '..'



def status_of(metrics: dict | None) -> RunStatus:
    """A run's state from its checked metrics.json (``read_metrics``; None while it has none)."""
    if metrics is None:
        return "pending"
    return "done" if metrics["status"] == "done" else "failed"


class RunStore:
    def __init__(self, root: str | Path):
        self.root = Path(root)

    @property
    def experiment_file(self) -> Path:
        return self.root / EXPERIMENT_FILE

    def run_dir(self, level: str, seed: int) -> Path:
        return self.root / "runs" / slug(level) / f"seed{seed}"

    def metrics(self, level: str, seed: int) -> dict | None:
        """The run's metrics.json, or None while the run is pending."""
        run_dir = self.run_dir(level, seed)
        return read_metrics(run_dir) if (run_dir / METRICS_FILE).is_file() else None

    def status(self, level: str, seed: int) -> RunStatus:
        return status_of(self.metrics(level, seed))

    def status_grid(self) -> dict[str, dict[int, RunStatus]]:
        """level -> seed -> done / failed / pending, for every level and seed of the experiment."""
        experiment = self.read_experiment()
        return {lv["label"]: {seed: self.status(lv["label"], seed) for seed in range(experiment["spec"]["seeds"])}
                for lv in experiment["levels"]}

    def finished_runs(self, level: str, seeds: int) -> dict[int, dict]:
        """seed -> metrics of the level's finished runs (done or failed) among seeds 0 .. seeds-1."""
        runs = {seed: self.metrics(level, seed) for seed in range(seeds)}
        return {seed: metrics for seed, metrics in runs.items() if metrics is not None}

    def done_runs(self, level: str, seeds: int) -> dict[int, dict]:
        """seed -> metrics of the level's successful runs; failed and pending runs are left out."""
        return {seed: m for seed, m in self.finished_runs(level, seeds).items() if status_of(m) == "done"}

    def check_data(self, dataset: ImageDataset, fix: str) -> None:
        """One line (DataError) when a successful run here was trained or tested on other images than ``dataset``
        holds now (a dataset folder whose files changed): kept, it would be analysed on data it never saw."""
        if not self.experiment_file.is_file():
            return
        record = self.read_experiment()
        for level in record["levels"]:
            for seed in self.done_runs(level["label"], record["spec"]["seeds"]):
                config = read_json_object(self.run_dir(level["label"], seed) / CONFIG_FILE,
                                          f"{self.run_dir(level['label'], seed)} has no {CONFIG_FILE}")
                check_same_data(config, dataset, ("train", "test"), what=f"the runs in {self.root} were", fix=fix)

    def read_experiment(self) -> dict:
        """experiment.json, checked: its shape (``convlens.records.ExperimentRecord``) and its spec."""
        record = checked(self._read_experiment_file(), ExperimentRecord, self.experiment_file)
        # The spec as a spec file would be read (its defaults filled in), so what reads it finds every field.
        return {**record, "spec": parse_spec(record["spec"], origin=f"{self.experiment_file}: spec").model_dump(
            mode="json")}

    def _read_experiment_file(self) -> dict:
        if not self.root.is_dir():  # not "nope/experiment.json not found; nope holds no experiment"
            state = "is a file, where a directory is needed" if self.root.exists() else "does not exist"
            raise UsageError(f"{self.root} {state}; give an experiment directory (written by 'convlens experiment "
                             "run')")
        advice = ("restore it, or start the experiment again with --force (it deletes the experiment's runs)"
                  if self.experiment_file.exists() else  # damaged: 'run it first' would send the user in a circle
                  f"{self.root} holds no experiment; run 'convlens experiment run' first")
        return read_json_object(self.experiment_file, advice)

    def prepare(self, spec: ExperimentSpec, levels: list[Level], reference: str, diff: dict, *,
                force: bool) -> list[Path]:
        """Write experiment.json; refuse to mix two different experiments in one directory (unless force, which
        discards what this store owns first). Returns what was deleted."""
        record = {
            "format": "convlens-experiment/1",
            "spec": spec.model_dump(mode="json"),
            "reference": reference,
            "levels": level_records(levels),
            "diff": diff,
            "versions": package_versions(),
        }
        if not self.experiment_file.is_file():  # a run's or an exported model's files, not a store's
            refuse_run_or_model(self.root, "an experiment")
        runs = self.root / "runs"
        if not force and not self.experiment_file.is_file() and runs.is_dir() and any(runs.iterdir()):
            # Without its record nothing says what trained them: reused, they would be analysed under this spec
            # whatever their config (--force is refused there too, by discard: it deletes only a store's own runs).
            raise UsageError(f"{self.root} holds {runs} but no {EXPERIMENT_FILE}, so what trained those runs is "
                             "unknown; nothing was written: move them away, or choose another --out")
        if self.experiment_file.is_file() and not force:
            self.check_design(spec, record["levels"])
        deleted = self.discard([lv["label"] for lv in record["levels"]]) if force else []
        atomic_write_json(self.experiment_file, record)
        return deleted

    def discard(self, labels: list[str]) -> list[Path]:
        """Delete the runs and analysis this store owns, and nothing else: run directories
        ``runs/<level>/seed<k>`` of the levels recorded in experiment.json or given in ``labels``, and
        summary.json, runs.csv, plots/. A directory with runs but no experiment.json is not a store (``--out .``
        would otherwise wipe ./runs, where ``convlens train`` writes): refused, nothing deleted."""
        runs = self.root / "runs"
        if not self.experiment_file.is_file():
            if runs.exists() and any(runs.iterdir()):
                raise UsageError(f"{self.root} is not an experiment directory ({EXPERIMENT_FILE} missing) but holds "
                                 f"{runs}: --force deletes only an experiment's own runs, so nothing was deleted; "
                                 "use another --out")
            return []
        try:  # --force must also clear a store whose experiment.json was damaged: read as leniently as it can be
            levels = self._read_experiment_file().get("levels")
        except UsageError:
            levels = None
        recorded = [lv.get("label") for lv in levels if isinstance(lv, dict)] if isinstance(levels, list) else []
        deleted: list[Path] = []
        if runs.is_symlink() or not runs.is_dir():  # a link elsewhere is not this store's to empty
            runs = None
        for label in dict.fromkeys([*recorded, *labels]) if runs else ():
            level_dir = runs / slug(str(label))
            # Only real directories directly under runs/: not a symlink, not '..' from an edited experiment.json.
            if level_dir.is_symlink() or not level_dir.is_dir() or level_dir.resolve().parent != runs.resolve():
                continue
            for run in sorted(level_dir.iterdir()):
                if run.is_dir() and not run.is_symlink() and re.fullmatch(r"seed\d+", run.name):
                    shutil.rmtree(run)
                    deleted.append(run)
            if not any(level_dir.iterdir()):
                level_dir.rmdir()
        for name in ANALYSIS_OUTPUTS:
            path = self.root / name
            if path.is_dir() and not path.is_symlink():
                shutil.rmtree(path)
                deleted.append(path)
            elif path.is_file() or path.is_symlink():
                path.unlink()
                deleted.append(path)
        return deleted

    def check_design(self, spec: ExperimentSpec, levels: list[dict],
                     fix: str = "use another --out, or --force to discard its runs (force=True in Python)") -> None:
        """Refuse when this directory holds another experiment, or runs of a level whose config changed (that
        would mix two designs under one label). Adding or dropping levels keeps the finished runs."""
        if not self.experiment_file.is_file():
            return
        previous = self.read_experiment()
        factors = lambda s: [f and f["name"] for f in (s["factor"], s.get("second_factor"))]  # noqa: E731
        if previous["spec"]["name"] != spec.name or factors(previous["spec"]) != factors(spec.model_dump(mode="json")):
            raise UsageError(f"{self.root} holds a different experiment ({previous['spec']['name']}); {fix}")
        old = {lv["label"]: _with_new_defaults(lv, new) for new in levels for lv in previous.get("levels", [])
               if lv["label"] == new["label"]}
        changed = [lv["label"] for lv in levels if lv["label"] in old and old[lv["label"]] != lv]
        if changed:
            differences = _differences(old[changed[0]].get("config", {}), next(
                lv for lv in levels if lv["label"] == changed[0]).get("config", {}))
            raise UsageError(f"{self.root} holds runs of {', '.join(changed)} with another config ({differences}); "
                             f"{fix}")

    def clear_partial(self, level: str, seed: int) -> Path:
        """Remove what an interrupted attempt left (temp files, a config without metrics)."""
        d = self.run_dir(level, seed)
        if d.exists():
            shutil.rmtree(d)
        d.mkdir(parents=True)
        return d


def check_kept_run(run_dir: Path, expected: TrainConfig, weights: bool = True) -> None:
    """A finished run counted for a level and seed must be that level's run for that seed: one trained there by
    hand (convlens train --out ... --force), copied or linked from another level would be paired as this one.
    ``weights``: also refuse a run without its model.safetensors (its numbers stand, but it cannot be evaluated,
    exported or probed)."""
    from pydantic import ValidationError

    from convlens.config import Recipe, model_spec
    from convlens.models.checkpoint import WEIGHTS_FILE, read_checked_config, spec_from_config
    if run_dir.is_symlink():
        raise ConvlensError(f"{run_dir} is a link (to {os.readlink(run_dir)}); an experiment's runs are its own: "
                            "remove the link and run again (the run is trained anew)")
    config = read_checked_config(run_dir)
    if weights and not (run_dir / WEIGHTS_FILE).is_file():  # counted, it could not be evaluated, exported or drawn
        raise ConvlensError(f"{run_dir} is finished but has no {WEIGHTS_FILE}; delete the run's directory and run "
                            "again (that run is trained anew)")
    data = config.get("data") or {}
    try:  # as validated objects: a field added since the run was trained takes its default on both sides
        recipe = Recipe.model_validate(config.get("recipe"))
    except ValidationError:
        recipe = None
    differs = [what for what, stored, wanted in (
        ("seed", config.get("seed"), expected.seed),
        ("model", spec_from_config(config, run_dir), model_spec(expected)),
        ("recipe", recipe, expected.recipe),
        ("dataset", data.get("dataset"), expected.dataset),
        ("train subset", data.get("train_subset"), expected.train_subset),
        ("test subset", data.get("test_subset"), expected.test_subset),
        ("pixels", data.get("pixels", "original"), expected.pixels)) if stored != wanted]
    if differs:
        raise ConvlensError(f"{run_dir} holds a run that is not this level's seed {expected.seed} (its "
                            f"{', '.join(differs)} differ{'s' if len(differs) == 1 else ''}); move it out of the "
                            "experiment and run again (that run is trained anew)")


LEFT_OUT = "left out"  # a finished run whose directory no longer holds its level's run (runs.csv's status)
NO_WEIGHTS = "no model.safetensors"  # runs.csv's reason for a counted run whose weights are gone


def kept_run_problem(run_dir: Path, level_config: dict, seed: int) -> str | None:
    """Why a successful run is not its level's run for ``seed`` any more (edited, copied or linked there, its
    config.json damaged), or None. 'experiment run' refuses such a run; read here, the table leaves it out and
    says so instead of counting it. (A run whose weights are gone is still its level's: counted, and named.)"""
    from pydantic import ValidationError

    from convlens.config import TrainConfig
    try:
        expected = TrainConfig.model_validate({**level_config, "seed": seed})
    except ValidationError:  # a record older than a config field it names: nothing to check against
        return None
    try:
        check_kept_run(run_dir, expected, weights=False)
    except ConvlensError as e:
        return str(e)
    return None


def _differences(there: dict, here: dict, limit: int = 3) -> str:
    """What differs between two recorded configs, one line: 'train_subset 2000 there, null here' (the first
    ``limit`` fields; each value as JSON, at most 40 characters; a field one side lacks is 'unset')."""
    def flat(d: dict, p: str) -> dict:
        out = {}
        for k, v in d.items():
            out.update(flat(v, f"{p}{k}.") if isinstance(v, dict) and v else {f"{p}{k}": v})
        return out

    def shown(d: dict, k: str) -> str:
        text = json.dumps(d[k], default=str) if k in d else "unset"
        return text if len(text) <= 40 else text[:39] + "…"
    a, b = flat(there, ""), flat(here, "")
    keys = [k for k in dict.fromkeys([*a, *b]) if (k in a, a.get(k)) != (k in b, b.get(k))]
    said = [f"{k} {shown(a, k)} there, {shown(b, k)} here" for k in keys[:limit]]
    return "; ".join(said + ([f"{len(keys) - limit} more"] if len(keys) > limit else [])) or "the level's values"


def _with_new_defaults(old: dict, new: dict) -> dict:
    """``old`` (a level as an earlier convlens recorded it) with the config fields added since then, where the
    new record holds their default: a new field that changes nothing must not make finished runs 'another
    config'."""
    from convlens.config import Recipe, TrainConfig

    def filled(old_part: dict, new_part: dict, fields: dict) -> dict:
        return {**old_part, **{k: v for k, v in new_part.items()
                               if k not in old_part and k in fields and v == fields[k].default}}
    config = filled(dict(old.get("config", {})), new.get("config", {}), TrainConfig.model_fields)
    if isinstance(config.get("recipe"), dict) and isinstance(new.get("config", {}).get("recipe"), dict):
        config["recipe"] = filled(config["recipe"], new["config"]["recipe"], Recipe.model_fields)  # e.g. augment
    return {**old, "config": config}


def level_records(levels: list[Level]) -> list[dict]:
    """How experiment.json records each level: label, factor values, the resolved config without the seed."""
    return [{"label": lv.label, "values": lv.values, "config": lv.config.model_dump(mode="json", exclude={"seed"})}
            for lv in levels]


def copy_run(source: Path, target: Path) -> None:
    """Copy a finished run directory (an identical run another experiment already trained); metrics.json last,
    so the copy counts as finished only once it is complete."""
    target.mkdir(parents=True, exist_ok=True)
    for path in sorted(Path(source).iterdir(), key=lambda p: p.name == METRICS_FILE):
        if path.is_file():
            tmp = target / f".{path.name}.tmp"
            shutil.copyfile(path, tmp)
            tmp.replace(target / path.name)
