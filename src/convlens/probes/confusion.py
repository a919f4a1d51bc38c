"""Which classes a model mixes up: class pairs ranked by the share of their test images mistaken for each other."""

from __future__ import annotations

import numpy as np


def most_confused_pairs(confusion: np.ndarray, names: list[str], top: int = 3) -> list[dict]:
    """confusion[true][predicted] counts -> the ``top`` pairs by (i->j + j->i) / (images of i + images of j)."""
    pairs = []
    for i in range(len(names)):
        for j in range(i + 1, len(names)):
            mistaken = confusion[i, j] + confusion[j, i]
            pairs.append({"pair": [names[i], names[j]], "mistaken": int(mistaken),
                          "share": float(mistaken / max(confusion[i].sum() + confusion[j].sum(), 1))})
    return sorted(pairs, key=lambda p: -p["share"])[:top]
