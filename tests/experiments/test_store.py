"""The run store's queries on hand-written run files: finished and successful runs of a level, the status grid."""

from __future__ import annotations

import json

import pytest

from convlens.errors import UsageError
from convlens.experiments.store import RunStore
from tests.experiments.fake_records import done_metrics


def test_done_and_finished_runs_and_the_status_grid(tmp_path):
    store = RunStore(tmp_path)
    spec = {"name": "x", "model": "mlp", "factor": {"name": "dropout", "levels": [0.1, 0.2]}, "seeds": 3}
    config = {"model": "mlp", "recipe": {"name": "fast"}}
    (tmp_path / "experiment.json").write_text(json.dumps({"spec": spec, "reference": "a=1", "levels": [
        {"label": "a=1", "values": {}, "config": config}, {"label": "a=2", "values": {}, "config": config}]}))
    records = {"done": done_metrics, "failed": lambda **seed: {"status": "failed", "reason": "boom", **seed}}
    for level, seed, status in (("a=1", 0, "done"), ("a=1", 2, "failed"), ("a=2", 1, "done")):
        store.run_dir(level, seed).mkdir(parents=True)
        (store.run_dir(level, seed) / "metrics.json").write_text(json.dumps(records[status](seed=seed)))
    store.run_dir("a=2", 0).mkdir(parents=True)  # started, never finished: pending
    assert store.finished_runs("a=1", 3) == {0: done_metrics(seed=0), 2: records["failed"](seed=2)}
    assert store.done_runs("a=1", 3) == {0: done_metrics(seed=0)}
    assert store.done_runs("a=1", 1) == {0: done_metrics(seed=0)}  # only the seeds asked for
    assert store.status_grid() == {"a=1": {0: "done", 1: "pending", 2: "failed"},
                                   "a=2": {0: "pending", 1: "done", 2: "pending"}}
    (store.run_dir("a=2", 1) / "metrics.json").write_text(json.dumps({"status": "ok"}))
    with pytest.raises(UsageError, match="older convlens"):
        store.done_runs("a=2", 3)


def test_uneven_train_times_are_flagged_per_level_past_twice_the_fastest():
    from convlens.experiments.analysis import uneven_times
    lines = uneven_times({"a": [20.0, 21.0, 39.0], "b": [2.1, 2.0, 53.5], "c": [5.0], "d": [3.0, None, 10.0],
                          "e": [0.02, 0.05], "f": [0.3, 1.2]})
    # a: 39 / 20 = 1.95, under 2; c: one run; d: 10 / 3 = 3.3; e: 2.5x but 0.03 s apart, f: 4x but 0.9 s apart
    assert len(lines) == 2
    assert lines[0].startswith("The train times of b range from 2.0 to 53.5 s over its seeds (26.8x)")
    assert lines[1].startswith("The train times of d range from 3.0 to 10.0 s over its seeds (3.3x)")


def test_runs_in_two_precisions_are_named_by_level_and_an_unrecorded_one_counts_as_fp32():
    from convlens.experiments.analysis import several_precisions
    assert several_precisions({"a": ["bf16", "bf16"], "b": ["bf16"]}) == []
    assert several_precisions({"a": [None, "fp32"], "b": ["fp32"]}) == []  # written before the key: fp32 (pipeline too)
    (line,) = several_precisions({"a": [None, "bf16"], "b": ["fp32", "fp32"], "c": ["bf16"]})
    assert line.startswith("The runs trained in more than one precision (bf16: a (1 run), c (1 run); fp32: a (1 run), "
                           "b (2 runs)), so a comparison between them changes the arithmetic as well as the factor")


def test_batched_seeds_train_time_has_a_mean_but_no_spread():
    """Seeds trained as one batched model record equal shares of its time: a CI of width 0 would be a claim."""
    import math

    from convlens.experiments.analysis import level_statistics

    def run(seconds, batched):
        return {"confusion_matrix": [[3, 1], [0, 4]], "per_class_accuracy": [0.75, 1.0], "train_seconds": seconds,
                "test_accuracy": 0.5,  # read from the confusion matrix, not from here
                "timing": {"batched_seeds": batched} if batched else {"workers": 1}}
    apart = level_statistics({0: run(10.0, 0), 1: run(12.0, 0)})["train_seconds"]
    assert apart["mean"] == 11.0 and apart["std"] == pytest.approx(math.sqrt(2))  # (10 - 11)^2 + (12 - 11)^2, ddof 1
    # t(0.975, 1 df) = 12.706: the interval 11 -/+ 12.706 * sqrt(2) / sqrt(2) is cut at 0 s, a time's floor
    assert apart["ci95"][0] == 0.0 and apart["ci95"][1] == pytest.approx(11 + 12.7062047, abs=1e-6)
    shared = level_statistics({0: run(4.0, 2), 1: run(4.0, 2)})
    assert shared["train_seconds"]["mean"] == 4.0
    assert math.isnan(shared["train_seconds"]["std"]) and all(math.isnan(c) for c in shared["train_seconds"]["ci95"])
    assert shared["test_accuracy"]["mean"] == 7 / 8  # the accuracies keep theirs
