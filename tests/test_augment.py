"""Augmentation on the device: whole-pixel shifts are exact (checked against slicing), flips mirror, erasing zeroes
one rectangle of 2-33% of the image, one spelling per recipe, the draws repeat with the seed, and validation and
test images are never augmented."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from convlens.augment import augment_batch, canonical, parse_augment
from convlens.config import Recipe, TrainConfig, resolve_recipe
from convlens.errors import UsageError


def _batch(n=32, seed=0):
    return torch.rand(n, 1, 28, 28, generator=torch.Generator().manual_seed(seed))


def test_whole_pixel_shifts_equal_slicing_with_the_same_draws():
    x = _batch()
    out = augment_batch(x, parse_augment("shift:3"), torch.Generator().manual_seed(5))
    g = torch.Generator().manual_seed(5)  # the same draws, in the same order: angles (unused), then the shifts
    torch.rand(len(x), generator=g)
    shifts = torch.randint(-3, 4, (len(x), 2), generator=g)
    for i, (dx, dy) in enumerate(shifts.tolist()):
        expected = torch.zeros(1, 28, 28)
        expected[:, max(0, dy):28 + min(0, dy), max(0, dx):28 + min(0, dx)] = \
            x[i, :, max(0, -dy):28 - max(0, dy), max(0, -dx):28 - max(0, dx)]
        torch.testing.assert_close(out[i], expected, atol=1e-5, rtol=0)
    assert len({tuple(s) for s in shifts.tolist()}) > 5  # the shifts vary between images


def test_rotation_keeps_a_centred_blob_and_turns_a_bar():
    yy, xx = torch.meshgrid(torch.arange(28.0) - 13.5, torch.arange(28.0) - 13.5, indexing="ij")
    blob = torch.exp(-(yy**2 + xx**2) / 32).expand(16, 1, 28, 28)  # rotationally symmetric about the centre
    turned = augment_batch(blob, parse_augment("rotate:30"), torch.Generator().manual_seed(0))
    assert (turned - blob).abs().max() < 0.02  # bilinear interpolation error only: the centre stays put
    bar = torch.zeros(16, 1, 28, 28)
    bar[:, :, 13:15, 2:26] = 1.0
    turned = augment_batch(bar, parse_augment("rotate:30"), torch.Generator().manual_seed(0))
    assert (turned - bar).abs().sum((1, 2, 3)).min() > 1.0  # every image rotated by some nonzero angle
    # the bar's orientation from its second moments: within +-30 degrees, as asked (not radians, not 30 rad)
    w = turned[:, 0]
    total = w.sum((1, 2))
    cy, cx = (w * yy).sum((1, 2)) / total, (w * xx).sum((1, 2)) / total
    cov_xx = (w * (xx - cx.view(-1, 1, 1)) ** 2).sum((1, 2))
    cov_yy = (w * (yy - cy.view(-1, 1, 1)) ** 2).sum((1, 2))
    cov_xy = (w * (xx - cx.view(-1, 1, 1)) * (yy - cy.view(-1, 1, 1))).sum((1, 2))
    angles = torch.rad2deg(0.5 * torch.atan2(2 * cov_xy, cov_xx - cov_yy)).abs()
    assert angles.max() <= 30.5 and angles.max() > 10  # spread over the range, never beyond it


def test_flip_mirrors_and_erasing_zeroes_one_rectangle_of_2_to_33_percent():
    x = _batch()
    torch.testing.assert_close(augment_batch(x, parse_augment("flip:1"), torch.Generator()), x.flip(3))
    ones = torch.ones(200, 1, 28, 28)
    erased = augment_batch(ones, parse_augment("erase:1"), torch.Generator().manual_seed(1))[:, 0] == 0
    for mask in erased:
        rows, cols = np.nonzero(mask.numpy())
        count = len(rows)
        box = (rows.max() - rows.min() + 1) * (cols.max() - cols.min() + 1)
        assert count == box  # one solid rectangle
        assert 0.02 * 784 * 0.8 <= count <= 0.33 * 784 * 1.2  # rounding of the sides aside
    half = augment_batch(ones, parse_augment("erase:0.5"), torch.Generator().manual_seed(2))
    share = ((half == 0).flatten(1).any(1)).float().mean()
    assert 0.35 < share < 0.65


def test_one_spelling_per_augmentation_and_clear_errors():
    assert canonical("rotate:10, shift:2") == canonical("shift:2,rotate:10") == "shift:2,rotate:10"
    assert canonical("shift:0") == canonical("") == "none"
    assert Recipe(augment="erase:0.25,flip:0.5").augment == "flip:0.5,erase:0.25"
    with pytest.raises(UsageError, match="augment: augmentation 'zoom:2' is not one of shift:AMOUNT"):
        resolve_recipe("fast", {"augment": "zoom:2"})
    for bad, message in (("shift:2.5", "whole number"), ("rotate:400", r"\[0, 180\]"), ("shift:1,shift:2", "twice"),
                         ("erase:x", "not a number")):
        with pytest.raises(ValueError, match=message):
            parse_augment(bad)


def test_training_augments_only_the_training_batches_and_repeats_with_the_seed(fashion):
    from convlens.runs import run_training
    from convlens.training import evaluate

    def run(augment, directory):
        cfg = TrainConfig(model="cnn", recipe=resolve_recipe("fast", {"epochs": 1, "augment": augment}),
                          train_subset=1_500, test_subset=300, seed=4)
        return run_training(cfg, directory, dataset=fashion)
    import tempfile
    with tempfile.TemporaryDirectory() as tmp:
        first, again, plain = run("shift:2", f"{tmp}/a"), run("shift:2", f"{tmp}/b"), run("none", f"{tmp}/c")
        assert first.metrics["test_accuracy"] == again.metrics["test_accuracy"]
        assert first.metrics["history"] == [{**h, "seconds": g["seconds"]} for h, g in
                                            zip(again.metrics["history"], first.metrics["history"])]
        assert first.metrics["history"][0]["train_loss"] != plain.metrics["history"][0]["train_loss"]
        # the accuracies recorded are the model's on the untouched validation and test images
        from convlens.data.dataset import to_device
        from convlens.runs import load_with_test_set
        model, config, x, y = load_with_test_set(first.directory, fashion, torch.device("cpu"))
        assert evaluate(model, x, y, 10).accuracy == first.metrics["test_accuracy"]
        splits = to_device(fashion.subset(1_500, 300), torch.device("cpu"), val_fraction=0.1, seed=4)
        assert evaluate(model, splits.x_val, splits.y_val, 10).accuracy == first.metrics["val_accuracy"]  # fp32


def test_only_training_batches_reach_the_augmentation(fashion, monkeypatch, tmp_path):
    import convlens.training as training
    from convlens.runs import run_training
    seen = []
    original = training.augment_batch
    monkeypatch.setattr(training, "augment_batch", lambda x, aug, g: seen.append(x.shape[0]) or original(x, aug, g))
    cfg = TrainConfig(model="mlp", recipe=resolve_recipe("fast", {"epochs": 2, "augment": "shift:1"}),
                      train_subset=1_000, test_subset=200)
    run_training(cfg, tmp_path / "run", dataset=fashion)
    # 900 training images (10% validation) in batches of 128: 8 batches per epoch, the last of 4 images
    assert seen == [128] * 7 + [4] + [128] * 7 + [4]


def test_an_augmentation_factor_has_one_spelling_per_level():
    from convlens.experiments.spec import parse_spec
    data = {"name": "x", "model": "mlp", "factor": {"name": "recipe.augment",
                                                     "levels": ["none", "rotate:10, shift:2", "shift:2,rotate:10"]}}
    with pytest.raises(UsageError, match="lists a level twice"):
        parse_spec(data)
    data["factor"]["levels"] = ["None", "Shift:2"]
    assert [label for label, _ in parse_spec(data).factor.labelled_levels()] == ["recipe.augment=none",
                                                                                 "recipe.augment=shift:2"]


def test_the_augmentation_experiment_changes_only_the_recipe_field():
    from convlens.experiments.builtin import BUILTIN_EXPERIMENTS
    from convlens.experiments.spec import one_factor_diff, resolve_levels
    spec = BUILTIN_EXPERIMENTS["augmentation"]
    diffs = one_factor_diff(spec, resolve_levels(spec))
    changed = diffs["model=mlp-128-64 recipe.augment=shift:2"]
    assert changed == {"recipe.augment": ["none", "shift:2"]}


def test_shift_loss_comparisons_and_their_sentences():
    from scipy import stats as sps

    from convlens.probes.shift import shift_loss_comparisons
    from convlens.report.findings import augmentation_findings
    n = 10_000

    def curves(start, losses):  # seed -> accuracy at shifts 0, 1, 2 (whole images)
        return {seed: [start[seed] / n, (start[seed] - losses[seed][0]) / n, (start[seed] - losses[seed][1]) / n]
                for seed in range(3)}
    accuracy = {"MLP": curves([8800, 8810, 8790], [[900, 2500], [950, 2600], [880, 2450]]),
                "MLP + shift aug": curves([8750, 8770, 8760], [[200, 600], [230, 640], [180, 590]]),
                "CNN": curves([9200, 9210, 9190], [[100, 400], [120, 430], [90, 380]]),
                "CNN + shift aug": curves([9190, 9205, 9195], [[40, 150], [60, 170], [50, 160]])}
    pairs = [("MLP + shift aug", "MLP"), ("CNN + shift aug", "CNN")]  # each changes the augmentation only
    result = shift_loss_comparisons(accuracy, pairs, n)
    assert result["family"] == 4 and result["shifts"] == [0, 1, 2]
    bought = next(t for t in result["tests"] if t["model"] == "MLP + shift aug" and t["reference"] == "MLP"
                  and t["shift"] == 2)
    # change = accuracy at 2 px minus at 0 px; diff = the augmented MLP's change minus the plain MLP's
    assert bought["diff"] == pytest.approx(np.mean([2500 - 600, 2600 - 640, 2450 - 590]) / n)
    raw = sps.ttest_rel([-600, -640, -590], [-2500, -2600, -2450]).pvalue
    assert bought["p_value"] == pytest.approx(raw) and bought["p_holm"] >= raw
    assert bought["verdict"].startswith("significantly smaller loss for MLP + shift aug")

    def probe_test(s, diff, verdict):
        return {"shift": s, "diff": diff, "ci95": [diff - 0.01, diff + 0.01], "verdict": verdict}
    shift = {"tests": [probe_test(1, 0.08, "significantly smaller loss for the CNN (p=0.01, n=3)"),
                       probe_test(2, 0.2135, "significantly smaller loss for the CNN (p=0.004, n=3)")]}
    clean = {"MLP": {"diff": -0.004, "ci95": [-0.006, -0.002], "verdict": "significantly lower (p=0.02, n=3)"},
             "CNN": {"diff": 0.0, "ci95": [-0.001, 0.001], "verdict": "no significant difference (p=0.9, n=3)"}}
    aug = {**result, "clean": clean, "experiment_family": 8, "augment": "shift:2", "timing": {"comparable": False}}
    lines = augmentation_findings(aug, shift)
    assert lines[1].startswith("Shift 2 px, accuracy change from 0 px: MLP -25.17 pp, MLP + shift aug -6.10 pp, "
                               "CNN -4.03 pp, CNN + shift aug -1.60 pp. Differences in change: augmented vs plain MLP "
                               "+19.07 pp")
    assert "CNN vs MLP (the shift probe's test) +21.35 pp" in lines[1]
    assert "augmented MLP vs CNN" not in lines[1]  # it would change two factors: never compared
    assert lines[2] == ("At 2 px, shift augmentation reduces the MLP's loss by 19.07 pp; the CNN's architecture "
                        "reduces it by 21.35 pp: augmentation buys 89% of what convolution gives (a ratio of two "
                        "mean differences, with no interval of its own).")
    assert lines[3].startswith("Clean test accuracy, MLP with shift:2 vs without: -0.40 pp")
    shift["tests"][1]["verdict"] = "no significant difference (p=0.2, n=3)"  # not found: no share is printed
    assert not any("buys" in line for line in augmentation_findings(aug, shift))
