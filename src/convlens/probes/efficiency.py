"""Parameter efficiency: every distinct configuration the experiments trained on original pixels, with its
accuracy against parameters and compute. Means only: the experiments' own tables carry the tests."""

from __future__ import annotations

WITHIN = 0.005  # "about as accurate": within 0.5 pp of the best mean


def efficiency_points(summaries: dict[str, dict]) -> list[dict]:
    """One point per configuration (experiment summaries in, sorted by parameters); a configuration reached
    through two experiments (the same runs) appears once."""
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
                           "n": level["n"],
                           "errors_per_mparam": (1 - level["test_accuracy"]["mean"]) / level["params"] * 1e6})
    return sorted(points, key=lambda p: p["params"])


def efficiency_highlights(points: list[dict], within: float = WITHIN) -> tuple[dict, dict]:
    """(the point with the highest mean accuracy, the one with the fewest parameters within ``within`` of it)."""
    best = max(points, key=lambda p: p["test_accuracy"]["mean"])
    close = [p for p in points if best["test_accuracy"]["mean"] - p["test_accuracy"]["mean"] <= within]
    return best, min(close, key=lambda p: p["params"])
