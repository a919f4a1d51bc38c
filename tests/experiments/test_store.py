"""The run store's queries on hand-written run files: finished and successful runs of a level, the status grid."""

from __future__ import annotations

import json

import pytest

from convlens.errors import UsageError
from convlens.experiments.store import RunStore


def test_done_and_finished_runs_and_the_status_grid(tmp_path):
    store = RunStore(tmp_path)
    (tmp_path / "experiment.json").write_text(json.dumps({"spec": {"name": "x", "seeds": 3},
                                                         "levels": [{"label": "a=1"}, {"label": "a=2"}]}))
    for level, seed, status in (("a=1", 0, "done"), ("a=1", 2, "failed"), ("a=2", 1, "done")):
        store.run_dir(level, seed).mkdir(parents=True)
        (store.run_dir(level, seed) / "metrics.json").write_text(json.dumps({"status": status, "seed": seed}))
    store.run_dir("a=2", 0).mkdir(parents=True)  # started, never finished: pending
    assert store.finished_runs("a=1", 3) == {0: {"status": "done", "seed": 0}, 2: {"status": "failed", "seed": 2}}
    assert store.done_runs("a=1", 3) == {0: {"status": "done", "seed": 0}}
    assert store.done_runs("a=1", 1) == {0: {"status": "done", "seed": 0}}  # only the seeds asked for
    assert store.status_grid() == {"a=1": {0: "done", 1: "pending", 2: "failed"},
                                   "a=2": {0: "pending", 1: "done", 2: "pending"}}
    (store.run_dir("a=2", 1) / "metrics.json").write_text(json.dumps({"status": "ok"}))
    with pytest.raises(UsageError, match="older convlens"):
        store.done_runs("a=2", 3)


def test_uneven_train_times_are_flagged_per_level_past_twice_the_fastest():
    from convlens.experiments.analysis import uneven_times
    lines = uneven_times({"a": [20.0, 21.0, 39.0], "b": [2.1, 2.0, 53.5], "c": [5.0], "d": [3.0, None, 10.0]})
    assert len(lines) == 2  # a: 39 / 20 = 1.95, under 2; c: one run; d: 10 / 3 = 3.3
    assert lines[0].startswith("The train times of b range from 2.0 to 53.5 s over its seeds (26.8x)")
    assert lines[1].startswith("The train times of d range from 3.0 to 10.0 s over its seeds (3.3x)")
