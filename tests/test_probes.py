"""Interpretation probes: the permutation, shifted images, the locality statistics, filters and feature maps."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy import stats as sps
from statsmodels.stats.multitest import multipletests

from convlens.config import TrainConfig, resolve_recipe
from convlens.data.dataset import images_to_tensor
from convlens.data.permutation import PERMUTATION_SEED, permute_pixels, pixel_permutation
from convlens.errors import UsageError
from convlens.models.registry import create_model
from convlens.models.summary import summarize
from convlens.probes.activations import feature_maps, first_layer_filters
from convlens.probes.confusion import most_confused_pairs
from convlens.probes.efficiency import efficiency_points, frontier
from convlens.probes.shift import DIRECTIONS, shift_directions, shift_effects, shift_images, shift_robustness
from convlens.report.findings import efficiency_findings, locality_findings, shift_findings
from convlens.runs import evaluate_run, run_training
from convlens.training import evaluate


def test_the_permutation_is_a_true_permutation_and_fixed():
    perm = pixel_permutation()
    assert perm.shape == (784,) and np.array_equal(np.sort(perm), np.arange(784))
    assert not np.array_equal(perm, np.arange(784))
    assert np.array_equal(perm, pixel_permutation())  # same every call (and every process: a seeded generator)
    assert not np.array_equal(perm, pixel_permutation(seed=PERMUTATION_SEED + 1))


def test_train_and_test_images_get_the_same_permutation(fashion):
    ds = fashion.subset(50, 50)
    same = type(ds)(ds.train_images, ds.train_labels, ds.train_images.copy(), ds.train_labels, ds.class_names,
                    ds.source)  # test set = training set, so equal images must stay equal
    permuted = same.with_permuted_pixels()
    assert np.array_equal(permuted.train_images, permuted.test_images)
    assert not np.array_equal(permuted.train_images, ds.train_images)
    perm = pixel_permutation()
    flat = ds.train_images.reshape(50, -1)
    assert np.array_equal(permuted.train_images.reshape(50, -1), flat[:, perm])
    # Nothing is lost: every image keeps its multiset of pixels, and the inverse permutation restores it.
    assert np.array_equal(np.sort(permuted.train_images.reshape(50, -1), 1), np.sort(flat, 1))
    inverse = np.argsort(perm)
    assert np.array_equal(permute_pixels(permuted.train_images, inverse), ds.train_images)


def test_a_permuted_run_records_its_permutation_and_is_evaluated_on_permuted_images(fashion, tmp_path):
    cfg = TrainConfig(model="mlp-128-64", recipe=resolve_recipe("fast", {"epochs": 1}), train_subset=500,
                      test_subset=200, pixels="permuted", device="cpu")
    result = run_training(cfg, tmp_path / "run", dataset=fashion)
    assert result.config["data"]["pixels"] == "permuted"
    assert result.config["data"]["permutation_seed"] == PERMUTATION_SEED
    again = evaluate_run(tmp_path / "run", dataset=fashion)
    assert again["test_accuracy"] == result.metrics["test_accuracy"]
    from convlens.serving.export import export_run
    with pytest.raises(UsageError, match="pixel-permuted"):
        export_run(tmp_path / "run", tmp_path / "model")


def test_shift_images_moves_every_pixel_by_the_shift_and_fills_with_background():
    x = torch.zeros(4, 1, 28, 28)
    x[:, 0, 10, 12] = 1.0
    directions = torch.arange(4)  # one image per direction
    for s in (1, 3):
        y = shift_images(x, s, directions)
        for i, (dy, dx) in enumerate(DIRECTIONS):
            assert y[i].sum() == 1 and y[i, 0, 10 + dy * s, 12 + dx * s] == 1
    assert shift_images(x, 0, directions) is x
    edge = torch.ones(4, 1, 28, 28)
    moved = shift_images(edge, 2, directions)
    assert (moved.sum(dim=(1, 2, 3)) == 28 * 26).all()  # two rows or columns of background came in
    d = shift_directions(1000)
    assert torch.equal(d, shift_directions(1000)) and set(d.tolist()) == {0, 1, 2, 3}


def test_shift_zero_equals_the_plain_test_accuracy(fashion):
    model = create_model("cnn-32-64-128").eval()
    torch.manual_seed(0)
    x = images_to_tensor(fashion.test_images[:300])
    y = torch.as_tensor(fashion.test_labels[:300].astype(np.int64))
    curve = shift_robustness(model, x, y, max_shift=2)
    assert len(curve) == 3
    assert curve[0] == evaluate(model, x, y, 10).accuracy


def test_locality_findings_read_the_grid_and_word_the_interaction_without_a_double_negative():
    from convlens.experiments import parse_spec
    from convlens.experiments.comparisons import design_comparisons
    from convlens.study.redraw import CNN, MLP
    spec = parse_spec(dict(name="l", model="mlp", factor=dict(name="model", levels=["mlp", "cnn"]),
                           second_factor=dict(name="pixels", levels=["original", "permuted"])))
    acc = {f"model={MLP} pixels=original": {0: 0.88, 1: 0.87, 2: 0.875},
           f"model={MLP} pixels=permuted": {0: 0.879, 1: 0.872, 2: 0.874},
           f"model={CNN} pixels=original": {0: 0.92, 1: 0.915, 2: 0.918},
           f"model={CNN} pixels=permuted": {0: 0.86, 1: 0.85, 2: 0.858}}
    comps = design_comparisons(spec, {cell: {s: round(a * 1000) for s, a in seeds.items()}
                                      for cell, seeds in acc.items()}, 1000)
    change = {m: next(c for c in comps if c["factor"] == "pixels" and c["within"] == f"model={m}") for m in (MLP, CNN)}
    effects = {"models": {"MLP": {"original": {"mean": 0.875}, "permuted": {"mean": 0.875}, "change": change[MLP]},
                          "CNN": {"original": {"mean": 0.917667}, "permuted": {"mean": 0.856}, "change": change[CNN]}},
               "interaction": comps[-1]}
    lines = locality_findings(effects)
    assert lines[1].startswith("CNN: 91.77% on original pixels, 85.60% on permuted pixels; change -6.17 pp")
    assert "permuted vs original: significantly lower" in lines[1]
    assert lines[2].startswith("Interaction, the CNN's change minus the MLP's (paired by seed): -6.17 pp")
    drops = np.subtract([0.86, 0.85, 0.858], [0.92, 0.915, 0.918]) - np.subtract([0.879, 0.872, 0.874], [0.88, 0.87, 0.875])
    assert lines[3].startswith(f"So the CNN loses {-drops.mean() * 100:.2f} pp more than the MLP")  # "loses 6.17", not "-6.17"
    # the arrangement of the pixels, not locality alone: the permutation also takes away what shared kernels and
    # pooling rely on, and a locally connected net beat the CNN on permuted pixels (weight-sharing experiment)
    assert lines[3].endswith("it was leaning on their spatial arrangement (locality, and with it the shared kernels "
                             "and the pooling; the weight-sharing experiment of --full separates them).")
    assert "its assumption of locality is what" not in " ".join(lines)
    assert len(lines) == 4  # "the wrong tool" needs the CNN to be worse than the MLP on permuted pixels, not given here
    on_permuted = next(c for c in comps if c["factor"] == "model" and c["within"] == "pixels=permuted")
    assert on_permuted["verdict"].startswith("significantly lower")
    lines = locality_findings({**effects, "on_permuted": on_permuted})
    assert lines[4].startswith("On permuted pixels the CNN is 1.90 pp below the MLP") and "wrong tool" in lines[4]
    failed = {**effects, "models": {**effects["models"], "CNN": {"original": {"mean": None}, "permuted": {"mean": None},
                                                                 "change": {**change[CNN], "diff": None}}}}
    assert "CNN: n/a on original pixels" in locality_findings(failed)[1]  # failed runs: words, not a crash
    noisy = {**effects, "interaction": {**comps[-1], "verdict": "no significant difference (p=0.054, n=3)"}}
    line = locality_findings(noisy)[3]
    assert line.startswith("This run cannot tell the CNN's change from the MLP's")
    assert comps[-1]["family"] == 5 and "(at alpha 0.01, the family's strictest level)" in line  # 0.05 / 5


def test_shift_effects_match_scipy_per_shift_and_are_worded_by_the_test():
    acc = {"MLP": {0: [0.88, 0.70, 0.50], 1: [0.87, 0.71, 0.52], 2: [0.875, 0.69, 0.49]},
           "CNN": {0: [0.92, 0.90, 0.84], 1: [0.915, 0.89, 0.85], 2: [0.918, 0.905, 0.83]}}
    e = shift_effects(acc, max_shift=2, n_images=1000)
    assert e["shifts"] == [0, 1, 2] and e["seeds"] == [0, 1, 2]
    assert e["curves"]["CNN"][2]["mean"] == pytest.approx((0.84 + 0.85 + 0.83) / 3)
    for t, s in zip(e["tests"], (1, 2)):
        cnn_change = [acc["CNN"][k][s] - acc["CNN"][k][0] for k in range(3)]
        mlp_change = [acc["MLP"][k][s] - acc["MLP"][k][0] for k in range(3)]
        assert t["shift"] == s and t["p_value"] == pytest.approx(sps.ttest_rel(cnn_change, mlp_change).pvalue)
        assert t["diff"] == pytest.approx(np.mean(cnn_change) - np.mean(mlp_change))
        assert t["verdict"].startswith("significantly smaller loss for the CNN") == (t["p_holm"] < 0.05)
    # the shifts are one family: the printed p is Holm-corrected across them
    assert [t["p_holm"] for t in e["tests"]] == pytest.approx(multipletests([t["p_value"] for t in e["tests"]],
                                                                            method="holm")[1])
    assert all(f"p={t['p_holm']:.3f}" in t["verdict"] or "p<0.001" in t["verdict"] for t in e["tests"])
    lines = shift_findings(e)
    assert lines[1].startswith("Shift 2 px: CNN 84.00% (change -7.77 pp), MLP 50.33% (change -37.17 pp); CNN change "
                               "minus MLP change +29.40 pp, unadjusted 95% CI ")  # positive: the CNN lost 29.40 pp less
    changes = [np.subtract(acc["CNN"][k][2] - acc["CNN"][k][0], acc["MLP"][k][2] - acc["MLP"][k][0]) for k in range(3)]
    low, high = sps.ttest_1samp(changes, 0).confidence_interval()
    assert f"+29.40 pp, unadjusted 95% CI {low * 100:+.2f} to {high * 100:+.2f} pp" in lines[1]


def test_most_confused_pairs_count_both_directions_by_hand():
    confusion = np.array([[8, 2, 0], [3, 5, 2], [0, 0, 10]])  # rows: true class, columns: predicted
    pairs = most_confused_pairs(confusion, ["a", "b", "c"], top=2)
    # a/b: (2 + 3) / (10 + 10) = 0.25; b/c: (2 + 0) / (10 + 10) = 0.10; a/c: 0
    assert pairs == [{"pair": ["a", "b"], "mistaken": 5, "share": 0.25},
                     {"pair": ["b", "c"], "mistaken": 2, "share": 0.1}]


def test_efficiency_points_skip_permuted_and_repeated_configurations_and_mark_the_frontier_by_hand():
    def level(label, params, acc, pixels="original", macs=None):
        return {"label": label, "values": {"pixels": pixels}, "n": 3, "params": params,
                "macs": macs if macs is not None else params * 10, "test_accuracy": {"mean": acc},
                "train_seconds": {"mean": 1.0}}
    summaries = {"one": {"levels": [level("big", 400_000, 0.920, macs=1_000), level("small", 100_000, 0.916),
                                    level("mid", 200_000, 0.910), level("perm", 100_000, 0.850, "permuted")]},
                 "two": {"levels": [level("small again", 100_000, 0.916), level("tiny", 50_000, 0.900)]}}
    points = efficiency_points(summaries)
    assert [p["name"] for p in points] == ["two: tiny", "one: small", "one: mid", "one: big"]  # repeats appear once
    # by parameters: mid (200k, 91.0%) is beaten by small (100k, 91.6%); the others are on the frontier
    assert [p["frontier_params"] for p in points] == [True, True, False, True]
    # by multiply-adds big costs only 1,000 and is the most accurate: it alone is on the frontier
    assert [p["frontier_macs"] for p in points] == [False, False, False, True]
    assert frontier([(1, 0.9), (1, 0.9)]) == [True, True]  # ties dominate nothing
    lines = efficiency_findings(points)
    assert lines[0].startswith("Against parameters, 3 of 4 configurations are on the frontier")
    assert not any("Highest" in line or "best" in line for line in lines)  # no winner named among means


def test_filters_and_feature_maps_have_the_shapes_of_the_summary():
    model = create_model("cnn-32-64-128", kernel_size=5)
    assert first_layer_filters(model).shape == (32, 5, 5)
    maps = feature_maps(model, torch.rand(1, 1, 28, 28))
    pooled = [row.output_shape for row in summarize(model, "x").layers if row.name.endswith(".pool")]
    assert [name for name, _ in maps] == ["block1", "block2", "block3"]
    assert [list(m.shape) for _, m in maps] == [[c, h, w] for h, w, c in pooled]


# The classification report and the images missed most often -------------------------------------------------

def test_classification_report_equals_scikit_learns_including_a_class_never_predicted():
    from sklearn.metrics import classification_report as sk_report

    from convlens.probes.confusion import classification_report
    rng = np.random.default_rng(0)
    true = rng.integers(0, 5, 400)
    predicted = np.where(rng.random(400) < 0.7, true, rng.integers(0, 4, 400))
    predicted = np.where(predicted == 4, 0, predicted)  # class 4 is never predicted: precision 0 (zero_division)
    names = ["a", "b", "c", "d", "e"]
    confusion = np.zeros((5, 5), dtype=int)
    np.add.at(confusion, (true, predicted), 1)
    ours = classification_report(confusion, names)
    theirs = sk_report(true, predicted, labels=range(5), target_names=names, output_dict=True, zero_division=0)
    for name in names:
        assert [ours["classes"][name][k] for k in ("precision", "recall", "f1", "support")] == pytest.approx(
            [theirs[name][k] for k in ("precision", "recall", "f1-score", "support")], abs=1e-12)
    assert ours["classes"]["e"]["precision"] == 0 and ours["classes"]["e"]["f1"] == 0
    assert [ours["macro"][k] for k in ("precision", "recall", "f1")] == pytest.approx(
        [theirs["macro avg"][k] for k in ("precision", "recall", "f1-score")], abs=1e-12)


def test_report_over_seeds_is_the_mean_and_sample_std_of_each_seeds_report():
    from sklearn.metrics import f1_score

    from convlens.probes.confusion import report_over_seeds
    rng = np.random.default_rng(1)
    confusions, f1s = [], []
    for _ in range(3):
        true = rng.integers(0, 3, 300)
        predicted = np.where(rng.random(300) < 0.8, true, rng.integers(0, 3, 300))
        cm = np.zeros((3, 3), dtype=int)
        np.add.at(cm, (true, predicted), 1)
        confusions.append(cm)
        f1s.append(f1_score(true, predicted, average="macro"))
    report = report_over_seeds(confusions, ["x", "y", "z"])
    assert report["n"] == 3
    assert report["macro"]["f1"]["mean"] == pytest.approx(np.mean(f1s), abs=1e-12)
    assert report["macro"]["f1"]["std"] == pytest.approx(np.std(f1s, ddof=1), abs=1e-12)
    assert [row["class"] for row in report["classes"]] == ["x", "y", "z"]


def test_most_missed_ranks_images_by_the_seeds_that_miss_them():
    from convlens.probes.confusion import most_missed
    true = np.array([0, 1, 2, 3, 4, 5])
    predictions = {0: (np.array([1, 1, 0, 3, 0, 5]), true),  # misses images 0, 2, 4
                   1: (np.array([2, 1, 0, 3, 4, 5]), true),  # misses 0, 2
                   2: (np.array([1, 0, 1, 3, 4, 5]), true)}  # misses 0, 1, 2
    missed = most_missed(predictions, top=4)
    assert missed["seeds"] == [0, 1, 2]
    assert [(m["index"], m["missed_seeds"], m["predicted"]) for m in missed["images"]] == \
           [(0, 3, 1), (2, 3, 0), (1, 1, 0), (4, 1, 0)]  # image 0 taken for 1 twice, 2 once; ties by index
    assert (missed["missed_every_seed"], missed["n_images"]) == (2, 6)  # images 0 and 2, by hand
    from convlens.report.findings import classification_findings
    report = {"n": 3, "macro": {k: {"mean": 0.5, "std": 0.1} for k in ("precision", "recall", "f1")},
              "classes": [{"class": c, **{k: {"mean": 0.5} for k in ("precision", "recall", "f1")}} for c in "abcdef"]}
    line = classification_findings(report, missed, list("abcdef"))[-1]
    assert line == ("Test image #0 (a) is missed on 3 of 3 seeds, most often taken for b. 2 of the 6 test images "
                    "(33.3%) are missed on every seed; the 4 shown are ranked by the seeds that miss them, ties by "
                    "lowest index.")
