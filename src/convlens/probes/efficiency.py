"""Parameter efficiency: every distinct configuration the experiments trained on original pixels, with its
accuracy against parameters and against multiply-adds, and the frontier of each. Means only: whether two
configurations differ is for the experiments' own tests; no winner is named here."""

from __future__ import annotations


def efficiency_points(summaries: dict[str, dict]) -> list[dict]:
    """One point per configuration (experiment summaries in, sorted by parameters); a configuration reached
    through two experiments (the same runs) appears once. Each point says whether it is on the frontier of
    accuracy against parameters and against multiply-adds."""
    points, seen = [], set()
    for name, summary in summaries.items():
        for level in summary["levels"]:
            if level["n"] == 0 or level["values"].get("pixels") == "permuted":
                continue
            key = (level["params"], level["macs"], round(level["test_accuracy"]["mean"], 6))
            if key in seen:
                continue
            seen.add(key)
            points.append({"name": f"{name}: {level['label']}", "params": level["params"], "macs": level["macs"],
                           "test_accuracy": level["test_accuracy"], "train_seconds": level["train_seconds"],
                           "n": level["n"]})
    for cost in ("params", "macs"):
        on = frontier([(p[cost], p["test_accuracy"]["mean"]) for p in points])
        for point, flag in zip(points, on):
            point[f"frontier_{cost}"] = flag
    return sorted(points, key=lambda p: p["params"])


def frontier(points: list[tuple[float, float]]) -> list[bool]:
    """For (cost, accuracy) pairs: True where no other point costs no more and is more accurate, or costs less
    and is as accurate (the Pareto frontier, lower cost and higher accuracy being better)."""
    return [not any((c2 <= c and a2 > a) or (c2 < c and a2 >= a) for c2, a2 in points) for c, a in points]
