"""Which classes a model mixes up and how well it does on each: the most-confused class pairs, scikit-learn's
classification report (from confusion matrices, over seeds), and the test images missed on the most seeds."""

from __future__ import annotations

import numpy as np

from convlens.stats import mean_ci


def most_confused_pairs(confusion: np.ndarray, names: list[str], top: int = 3) -> list[dict]:
    """confusion[true][predicted] counts -> the ``top`` pairs by (i->j + j->i) / (images of i + images of j)."""
    pairs = []
    for i in range(len(names)):
        for j in range(i + 1, len(names)):
            mistaken = confusion[i, j] + confusion[j, i]
            pairs.append({"pair": [names[i], names[j]], "mistaken": int(mistaken),
                          "share": float(mistaken / max(confusion[i].sum() + confusion[j].sum(), 1))})
    return sorted(pairs, key=lambda p: -p["share"])[:top]


def classification_report(confusion: np.ndarray, names: list[str]) -> dict:
    """scikit-learn's ``classification_report`` from a confusion matrix (confusion[true][predicted]): per class
    precision, recall (= the per-class accuracy), F1 and support, and their macro averages. A class never
    predicted has precision 0 (scikit-learn's zero_division default), and F1 0 where precision + recall is 0."""
    cm = np.asarray(confusion, dtype=float)
    hits, predicted, support = np.diag(cm), cm.sum(0), cm.sum(1)
    precision = np.divide(hits, predicted, out=np.zeros_like(hits), where=predicted > 0)
    recall = np.divide(hits, support, out=np.zeros_like(hits), where=support > 0)
    both = precision + recall
    f1 = np.divide(2 * precision * recall, both, out=np.zeros_like(hits), where=both > 0)
    classes = {name: {"precision": float(p), "recall": float(r), "f1": float(f), "support": int(s)}
               for name, p, r, f, s in zip(names, precision, recall, f1, support)}
    return {"classes": classes, "macro": {"precision": float(precision.mean()), "recall": float(recall.mean()),
                                          "f1": float(f1.mean()), "support": int(support.sum())}}


def report_over_seeds(confusions: list[np.ndarray], names: list[str]) -> dict:
    """The classification report of each seed's confusion matrix, then per class (a list, in class order) and for
    the macro average the mean and sample std over the seeds of precision, recall and F1."""
    reports = [classification_report(c, names) for c in confusions]

    def summary(entries: list[dict]) -> dict:
        return {**{m: {k: v for k, v in mean_ci([e[m] for e in entries]).to_dict().items() if k in ("mean", "std")}
                   for m in ("precision", "recall", "f1")}, "support": entries[0]["support"]}
    return {"n": len(reports), "classes": [{"class": name, **summary([r["classes"][name] for r in reports])}
                                           for name in names],
            "macro": summary([r["macro"] for r in reports])}


def most_missed(predictions: dict[int, tuple[np.ndarray, np.ndarray]], top: int = 8) -> dict:
    """The test images a model gets wrong on the most seeds (seed -> (predicted, true) per image): index, true
    class, on how many seeds it was missed, and the class it was most often taken for (ties: the lowest); and how
    many of all the test images are missed on every seed (the first ``top`` of them are only the lowest indices)."""
    seeds = sorted(predictions)
    if not seeds:
        return {"seeds": [], "images": [], "missed_every_seed": 0, "n_images": 0}
    true = predictions[seeds[0]][1]
    predicted = np.stack([predictions[s][0] for s in seeds])  # (seeds, images)
    missed = (predicted != true).sum(0)
    order = np.lexsort((np.arange(len(true)), -missed))  # most seeds first, then by index
    images = []
    for i in order[:top]:
        if missed[i] == 0:
            break
        wrong = predicted[:, i][predicted[:, i] != true[i]]
        images.append({"index": int(i), "true": int(true[i]), "missed_seeds": int(missed[i]),
                       "predicted": int(np.bincount(wrong).argmax())})
    return {"seeds": seeds, "images": images, "missed_every_seed": int((missed == len(seeds)).sum()),
            "n_images": int(len(true))}
