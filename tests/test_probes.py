"""Interpretation probes: the permutation, shifted images, the locality statistics, filters and feature maps."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy import stats as sps

from convlens.config import TrainConfig, resolve_recipe
from convlens.data.dataset import images_to_tensor
from convlens.data.permutation import PERMUTATION_SEED, permute_pixels, pixel_permutation
from convlens.errors import UsageError
from convlens.models.registry import create_model
from convlens.models.summary import summarize
from convlens.probes.activations import feature_maps, first_layer_filters
from convlens.probes.confusion import most_confused_pairs
from convlens.probes.efficiency import efficiency_highlights, efficiency_points
from convlens.probes.locality import locality_effects
from convlens.probes.shift import DIRECTIONS, shift_directions, shift_effects, shift_images, shift_robustness
from convlens.report.findings import locality_findings, shift_findings
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


def test_locality_effects_match_scipy_and_word_the_interaction():
    acc = {"MLP": {"original": {0: 0.88, 1: 0.87, 2: 0.875}, "permuted": {0: 0.879, 1: 0.872, 2: 0.874}},
           "CNN": {"original": {0: 0.92, 1: 0.915, 2: 0.918}, "permuted": {0: 0.86, 1: 0.85, 2: 0.858}}}
    e = locality_effects(acc)
    cnn = e["models"]["CNN"]
    ref = sps.ttest_rel([0.86, 0.85, 0.858], [0.92, 0.915, 0.918])
    assert cnn["p_value"] == pytest.approx(ref.pvalue) and cnn["diff"] == pytest.approx(-0.0616667, abs=1e-6)
    assert cnn["verdict"].startswith("significantly lower")
    assert e["models"]["MLP"]["verdict"].startswith("no significant difference")
    drops_cnn = [0.86 - 0.92, 0.85 - 0.915, 0.858 - 0.918]
    drops_mlp = [0.879 - 0.88, 0.872 - 0.87, 0.874 - 0.875]
    assert e["interaction"]["p_value"] == pytest.approx(sps.ttest_rel(drops_cnn, drops_mlp).pvalue)
    assert e["interaction"]["verdict"].startswith("significantly larger loss for the CNN")
    lines = locality_findings(e)
    assert len(lines) == 3 and lines[1].startswith("CNN: 91.77% on original pixels, 85.60% on permuted pixels")
    assert "the CNN's change minus the MLP's" in lines[2] and "larger loss for the CNN" in lines[2]


def test_shift_effects_match_scipy_per_shift_and_are_worded_by_the_test():
    acc = {"MLP": {0: [0.88, 0.70, 0.50], 1: [0.87, 0.71, 0.52], 2: [0.875, 0.69, 0.49]},
           "CNN": {0: [0.92, 0.90, 0.84], 1: [0.915, 0.89, 0.85], 2: [0.918, 0.905, 0.83]}}
    e = shift_effects(acc, max_shift=2)
    assert e["shifts"] == [0, 1, 2] and e["seeds"] == [0, 1, 2]
    assert e["curves"]["CNN"][2]["mean"] == pytest.approx((0.84 + 0.85 + 0.83) / 3)
    for t, s in zip(e["tests"], (1, 2)):
        cnn_change = [acc["CNN"][k][s] - acc["CNN"][k][0] for k in range(3)]
        mlp_change = [acc["MLP"][k][s] - acc["MLP"][k][0] for k in range(3)]
        assert t["shift"] == s and t["p_value"] == pytest.approx(sps.ttest_rel(cnn_change, mlp_change).pvalue)
        assert t["diff"] == pytest.approx(np.mean(cnn_change) - np.mean(mlp_change))
        assert t["verdict"].startswith("significantly smaller loss for the CNN") == (t["p_value"] < 0.05)
    lines = shift_findings(e)
    assert lines[1].startswith("Shift 2 px: CNN 84.00% (change -7.77 pp), MLP 50.33% (change -37.17 pp)")


def test_most_confused_pairs_count_both_directions_by_hand():
    confusion = np.array([[8, 2, 0], [3, 5, 2], [0, 0, 10]])  # rows: true class, columns: predicted
    pairs = most_confused_pairs(confusion, ["a", "b", "c"], top=2)
    # a/b: (2 + 3) / (10 + 10) = 0.25; b/c: (2 + 0) / (10 + 10) = 0.10; a/c: 0
    assert pairs == [{"pair": ["a", "b"], "mistaken": 5, "share": 0.25},
                     {"pair": ["b", "c"], "mistaken": 2, "share": 0.1}]


def test_efficiency_points_skip_permuted_and_repeated_configurations_and_pick_by_hand():
    def level(label, params, acc, pixels="original"):
        return {"label": label, "values": {"pixels": pixels}, "n": 3, "params": params, "macs": params * 10,
                "test_accuracy": {"mean": acc}, "train_seconds": {"mean": 1.0}}
    summaries = {"one": {"levels": [level("big", 400_000, 0.920), level("small", 100_000, 0.916),
                                    level("perm", 100_000, 0.850, "permuted")]},
                 "two": {"levels": [level("small again", 100_000, 0.916), level("tiny", 50_000, 0.900)]}}
    points = efficiency_points(summaries)
    assert [p["name"] for p in points] == ["two: tiny", "one: small", "one: big"]  # by parameters; repeats once
    assert points[0]["errors_per_mparam"] == pytest.approx((1 - 0.9) / 50_000 * 1e6)
    best, close = efficiency_highlights(points)
    assert best["name"] == "one: big" and close["name"] == "one: small"  # 0.4 pp below: within 0.5 pp


def test_filters_and_feature_maps_have_the_shapes_of_the_summary():
    model = create_model("cnn-32-64-128", kernel_size=5)
    assert first_layer_filters(model).shape == (32, 5, 5)
    maps = feature_maps(model, torch.rand(1, 1, 28, 28))
    pooled = [row.output_shape for row in summarize(model, "x").layers if row.name.endswith(".pool")]
    assert [name for name, _ in maps] == ["block1", "block2", "block3"]
    assert [list(m.shape) for _, m in maps] == [[c, h, w] for h, w, c in pooled]
