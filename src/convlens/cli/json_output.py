"""What ``--json`` prints where the library's record differs from the other commands' JSON.

A parameter count is ``{"trainable", "non_trainable", "total"}`` in every command's JSON, as each run's metrics.json
records it (train, models list, models show). An experiment's summary.json and a comparison count only the total (an
int): those files stay as they are, and ``compare``, ``experiment run`` and ``experiment table`` print the count
of the run it came from.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from convlens.errors import ConvlensError


def _params_of(total: int | None, run_dirs: Iterable[Path]) -> dict | None:
    """The parameter count of the first of ``run_dirs`` whose metrics.json records ``total`` parameters (the
    record a level or a group took its total from); the total alone, the other two None, when none does."""
    from convlens.run_files import read_metrics
    if total is None:
        return None
    for run_dir in run_dirs:
        try:
            params = read_metrics(run_dir).get("params")
        except (ConvlensError, OSError):  # a run that failed, or went, since: the next one
            continue
        if isinstance(params, dict) and params.get("total") == total:
            return {"trainable": params.get("trainable"), "non_trainable": params.get("non_trainable"),
                    "total": total}
    return {"trainable": None, "non_trainable": None, "total": total}


def comparison_json(comparison: dict) -> dict:
    """``compare_runs``' result with each group's params as the dict its runs record."""
    return {**comparison, "groups": [{**g, "params": _params_of(g["params"], map(Path, g["runs"]))}
                                     for g in comparison["groups"]]}


def summary_json(summary: dict, directory: Path) -> dict:
    """An experiment's summary with each level's params as the dict its runs record (runs in seed order, as the
    analysis takes its first finished run's count)."""
    from convlens.experiments.store import RunStore
    store = RunStore(directory)
    seeds = store.read_experiment()["spec"]["seeds"]
    return {**summary, "levels": [{**lv, "params": _params_of(lv["params"], (store.run_dir(lv["label"], seed)
                                                                             for seed in range(seeds)))}
                                  for lv in summary["levels"]]}
