"""Compare finished runs named by directory: group them by configuration, then the statistics of an
experiment's levels per group (n, mean, std, 95% t interval over seeds).

A group is every run whose config.json describes the same thing once the seed is left out
(``run_identity``: resolved architecture, recipe values, data subsets, pixel order, dataset, device type; the
precision as the run resolved it, so ``auto`` groups with what it meant on its machine), so
runs that differ in anything but the seed are never averaged together. Groups are not tested against each
other: they may differ in several settings at once, and a comparison changes one factor (an experiment does).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from convlens.errors import DataError, UsageError
from convlens.experiments.analysis import (
    level_statistics,
    recorded_digests,
    timing_note,
    timing_summary,
    without_nan,
)
from convlens.experiments.spec import run_identity
from convlens.experiments.store import status_of
from convlens.models.checkpoint import MODEL_FORMAT, RUN_WRITERS, read_checked_config
from convlens.run_files import read_metrics


def compare_runs(run_dirs: list[Path]) -> dict[str, Any]:
    """{"differs": keys whose values differ between groups, "groups": one entry per configuration, in the order
    their first run was given}. The same directory given twice counts once; two runs of one configuration
    with the same seed are refused (a seed would count twice)."""
    groups: dict[str, dict[str, Any]] = {}
    for directory in dict.fromkeys(Path(d).resolve() for d in run_dirs):
        if not (directory / "config.json").is_file() and (directory / "metrics.json").is_file():
            metrics = read_metrics(directory)
            if status_of(metrics) == "failed":  # the run died before it wrote its config (e.g. no data)
                raise UsageError(f"{directory} failed before training started ({metrics.get('reason')}); leave it "
                                 "out or run it again")
        config = read_checked_config(directory, RUN_WRITERS)
        if config.get("format") == MODEL_FORMAT:
            raise UsageError(f"{directory} holds an exported model, not a training run; compare the runs it was "
                             "exported from")
        metrics = read_metrics(directory)
        identity = run_identity(config)
        # The arithmetic the run used: "auto" and what it meant there train alike. A run finished before metrics.json
        # had the key trained in fp32 (the key came with bf16), as the study and the experiment warnings count it.
        if metrics.get("precision") or status_of(metrics) == "done":
            identity["recipe.precision"] = metrics.get("precision") or "fp32"
        group = groups.setdefault(json.dumps(identity, sort_keys=True), {
            "model": config["model"]["name"], "identity": identity, "runs": {}, "metrics": {}, "digests": {}})
        seed = config.get("seed")
        if seed in group["runs"]:
            raise UsageError(f"{group['runs'][seed]} and {directory} are the same configuration with the same seed "
                             f"({seed}); give each seed of a configuration once")
        digests = recorded_digests(config)
        for other, theirs in group["digests"].items():  # runs from before the digests are not checked
            split = next((k for k in ("test", "train") if k in digests and k in theirs and digests[k] != theirs[k]),
                         None)
            if split is not None:
                raise DataError(f"{other} and {directory} are one configuration {split}ed on different images "
                                "(their data digests differ: the dataset changed between them), so their mean "
                                "would mix two datasets; compare runs of one version of the data")
        group["digests"][str(directory)] = digests
        group["runs"][seed], group["metrics"][seed] = str(directory), metrics
    identities = [g["identity"] for g in groups.values()]
    differs = sorted(k for k in set().union(*identities)
                     if len({json.dumps(i.get(k), sort_keys=True) for i in identities}) > 1)
    rows = []
    for g in groups.values():
        done = {s: m for s, m in g["metrics"].items() if status_of(m) == "done"}
        rows.append({
            "model": g["model"], "settings": {k: g["identity"].get(k) for k in differs},
            "seeds": sorted(g["runs"]), "runs": [g["runs"][s] for s in sorted(g["runs"])],
            "failed": [{"seed": s, "reason": m.get("reason")} for s, m in sorted(g["metrics"].items())
                       if status_of(m) != "done"],
            "per_seed": {s: m["test_accuracy"] for s, m in sorted(done.items())},
            **level_statistics(done),
        })
    timing = timing_summary([m for g in groups.values() for m in g["metrics"].values() if status_of(m) == "done"])
    return without_nan({"differs": differs, "groups": rows, "timing": timing, "timing_note": timing_note(timing)})
