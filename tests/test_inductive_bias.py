"""The inductive-bias probes: equivariance is exactly 1 through convolutions and lost by pooling for shifts that
are not multiples of its stride; the effective receptive field of one k x k conv with unit weights is exactly its
k x k footprint; the windows agree with the model summary's receptive fields."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from convlens.models.network import Network
from convlens.models.registry import resolve_spec
from convlens.models.summary import summarize
from convlens.probes.equivariance import equivariance
from convlens.probes.receptive_field import effective_receptive_fields, mass_side, receptive_windows


def _images(n=64, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.zeros(n, 1, 28, 28)
    x[:, :, 4:24, 6:22] = torch.rand(n, 1, 20, 16, generator=g)  # an object on a zero background
    return x


def test_convolutions_are_exactly_equivariant_and_pooling_only_for_multiples_of_its_stride():
    torch.manual_seed(0)
    conv_only = Network(resolve_spec("cnn", {"depth": 3, "pool": "none", "batch_norm": True})).eval()
    result = equivariance(conv_only, _images(), max_shift=4)
    assert result["stages"] == ["block1 conv", "block2 conv", "block3 conv", "dense1"]
    for stage in result["similarity"][:3]:
        assert stage == pytest.approx([1.0] * 4, abs=1e-5)

    pooled = Network(resolve_spec("cnn")).eval()
    result = equivariance(pooled, _images(), max_shift=4)
    by_stage = dict(zip(result["stages"], result["similarity"]))
    assert by_stage["block1 conv"] == pytest.approx([1.0] * 4, abs=1e-5)
    odd, even = [by_stage["block1 pool"][k - 1] for k in (1, 3)], [by_stage["block1 pool"][k - 1] for k in (2, 4)]
    assert even == pytest.approx([1.0, 1.0], abs=1e-5)  # a 2-px shift moves a 2x2 pooling grid by one cell
    assert max(odd) < 0.99
    assert by_stage["block2 pool"][3] == pytest.approx(1.0, abs=1e-5)  # 4 px = one cell of a jump-4 map
    assert max(by_stage["block2 pool"][:3]) < 0.99
    assert max(by_stage["block3 pool"]) < 0.99  # jump 8: no shift up to 4 px is whole
    assert max(by_stage["dense1"]) < 0.99  # no spatial axes: shifted and unshifted differ
    assert result["exact"][result["stages"].index("block1 pool")] == [False, True, False, True]


@pytest.mark.parametrize("k", [1, 3, 4, 5, 7])
def test_erf_of_one_unit_weight_conv_is_exactly_its_footprint(k):
    net = Network(resolve_spec("cnn", {"depth": 1, "filters": [1], "kernel_size": k, "pool": "none"}))
    conv = net.features.block1.conv
    with torch.no_grad():
        conv.weight.fill_(1.0)
        conv.bias.zero_()
    x = _images(16) + 0.1  # positive everywhere: ReLU passes every gradient
    (block,) = effective_receptive_fields(net, x)
    c = 14  # the centre of a 28 x 28 map
    before = (k - 1) // 2  # Keras 'same': the extra pixel of an even kernel goes after
    expected = np.zeros((28, 28))
    expected[c - before:c - before + k, c - before:c - before + k] = 1.0
    np.testing.assert_array_equal(block["erf"], expected)
    assert block["side90"] == k and block["theoretical_size"] == k
    assert block["theoretical_window"] == [[c - before, c - before + k - 1]] * 2


@pytest.mark.parametrize("fields", [{}, {"kernel_size": 5}, {"kernel_size": 4, "stride": 2, "depth": 2},
                                    {"padding": "valid", "depth": 2}, {"layer": "local"}])
def test_windows_agree_with_the_summarys_receptive_field_and_jump(fields):
    net = Network(resolve_spec("cnn", fields))
    rows = {r.name: r for r in summarize(net, "x").layers}
    for name, first, size, jump in receptive_windows(net):
        last = [n for n in rows if n.startswith(f"features.{name}.")][-1]
        assert (size, jump) == (rows[last].receptive_field, rows[last].jump)


def test_erf_gradient_stays_inside_the_theoretical_window_of_a_trained_shape_network():
    torch.manual_seed(1)
    net = Network(resolve_spec("cnn"))
    for block in effective_receptive_fields(net, _images(8)):
        (top, bottom), (left, right) = block["theoretical_window"]
        outside = block["erf"].copy()
        outside[top:bottom + 1, left:right + 1] = 0
        assert outside.sum() == 0 and block["erf"].sum() > 0
        assert block["side90"] <= max(bottom - top + 1, right - left + 1) + 1


def test_mass_side_by_hand():
    erf = np.zeros((9, 9))
    erf[4, 4] = 5.0  # half the mass at the centre
    erf[3:6, 3:6] += 0.5  # 4.5 in the 3x3 ring and centre: 9.5 of 10 within side 3
    erf[0, 0] = 0.5
    assert mass_side(erf, [4, 4], 0.5) == 1
    assert mass_side(erf, [4, 4], 0.9) == 3  # 9.5 / 10 >= 0.9
    assert mass_side(erf, [4, 4], 0.99) == 9  # the corner pixel needs the whole image
    assert mass_side(np.ones((4, 4)), [1.5, 1.5], 0.25) == 2  # an even window: sides 2, 4, ...


# The section's numbers and sentences, from synthetic inputs whose answers are worked out here -----------------

def _weight_sharing_summary(counts: dict[str, dict[int, int]], n_images: int) -> dict:
    from convlens.experiments.builtin import BUILTIN_EXPERIMENTS
    from convlens.experiments.comparisons import design_comparisons
    from convlens.stats import mean_ci
    spec = BUILTIN_EXPERIMENTS["weight-sharing"]
    params = {"mlp-128-64": 109_386, "lcn-32-64-128": 7_643_914, "cnn-32-64-128": 241_546}
    seconds = {"mlp-128-64": 10.0, "lcn-32-64-128": 300.0, "cnn-32-64-128": 25.0}
    levels = []
    for label, per_seed in counts.items():
        model, pixels = (part.split("=")[1] for part in label.split())
        levels.append({"label": label, "values": {"model": model, "pixels": pixels}, "n": len(per_seed),
                       "params": params[model], "train_seconds": mean_ci([seconds[model]] * len(per_seed)).to_dict(),
                       "test_accuracy": mean_ci([c / n_images for c in per_seed.values()]).to_dict()})
    return {"levels": levels, "comparisons": design_comparisons(spec, counts, n_images),
            "timing": {"comparable": True, "conditions": [{}]}}


def test_weight_sharing_parts_are_the_paired_differences_with_the_sign_turned_for_locality():
    from scipy import stats as sps

    from convlens.report.findings import weight_sharing_findings
    from convlens.study.sections import weight_sharing_section
    n_images = 10_000
    mlp, lcn, cnn = [8800, 8790, 8815], [9050, 9080, 9071], [9190, 9205, 9230]
    counts = {}
    for model, orig in (("mlp-128-64", mlp), ("lcn-32-64-128", lcn), ("cnn-32-64-128", cnn)):
        counts[f"model={model} pixels=original"] = dict(enumerate(orig))
        counts[f"model={model} pixels=permuted"] = {s: c - 500 - 13 * s for s, c in enumerate(orig)}
    ws = weight_sharing_section(_weight_sharing_summary(counts, n_images))
    locality, sharing = ws["parts"]["original"]["locality"], ws["parts"]["original"]["sharing"]
    d_loc = np.subtract(lcn, mlp) / n_images
    d_share = np.subtract(cnn, lcn) / n_images
    assert locality["diff"] == pytest.approx(d_loc.mean()) and sharing["diff"] == pytest.approx(d_share.mean())
    half = sps.t.ppf(0.975, 2) * d_loc.std(ddof=1) / np.sqrt(3)
    assert locality["ci95"] == pytest.approx([d_loc.mean() - half, d_loc.mean() + half])
    assert locality["p_value"] == pytest.approx(sps.ttest_rel(lcn, mlp).pvalue)
    assert ws["family"] == 9  # 2 x 2 model effects + 3 pixel effects + 2 interactions
    lines = weight_sharing_findings(ws)
    total = d_loc.mean() + d_share.mean()
    assert lines[0].startswith(f"On original pixels: locality (the locally connected network minus the MLP) "
                               f"{d_loc.mean() * 100:+.2f} pp, unadjusted 95% CI {(d_loc.mean() - half) * 100:+.2f} to "
                               f"{(d_loc.mean() + half) * 100:+.2f} pp (significant, p=")
    assert all(c["p_holm"] < 0.05 for c in (locality, sharing))  # both significant: the shares are printed
    assert lines[2].startswith(f"Both steps add accuracy on original pixels: of their sum, {total * 100:+.2f} pp, "
                               f"{d_loc.mean() / total:.0%} comes with locality and {d_share.mean() / total:.0%} "
                               "with sharing weights")
    assert "cuts the parameters about 32x" in lines[3] and "needs 32x the CNN's weights" in lines[4]  # 31.6
    assert lines[5].endswith("MLP 10 s, locally connected 300 s, CNN 25 s.")
    turned = ws["parts"]["original"]["locality"]
    assert turned["label"] == "model=lcn-32-64-128 vs model=mlp-128-64 at pixels=original"
    assert turned["verdict"].startswith("significantly higher") and turned["t"] > 0

    counts["model=lcn-32-64-128 pixels=original"] = dict(enumerate([8700, 8690, 8705]))  # worse than the MLP
    lines = weight_sharing_findings(weight_sharing_section(_weight_sharing_summary(counts, n_images)))
    assert lines[2].startswith("The two steps are not both significant gains") and "comes with" not in " ".join(lines)

    missing = {label: ({} if label.startswith("model=lcn") else runs) for label, runs in counts.items()}
    partial = weight_sharing_section(_weight_sharing_summary(missing, n_images))
    assert partial == {"complete": False, "missing": ["model=lcn-32-64-128 pixels=original",
                                                      "model=lcn-32-64-128 pixels=permuted"]}


def _sim(values):
    return [{"mean": v, "std": 0.0, "n": 2, "ci95": [v - 0.01, v + 0.01]} for v in values]


def test_equivariance_sentences_follow_the_numbers():
    from convlens.report.findings import equivariance_findings
    eq = {"seeds": [0, 1], "images": 500, "shifts": [1, 2, 3, 4],
          "stages": ["block1 conv", "block1 pool", "dense1"], "jumps": [1, 2, None],
          "exact": [[True] * 4, [False, True, False, True], [False] * 4],
          "similarity": [_sim([1.0, 1.0, 1.0, 1.0]), _sim([0.91, 1.0, 0.88, 1.0]), _sim([0.97, 0.95, 0.93, 0.9])]}
    lines = equivariance_findings(eq)
    assert lines[0] == ("block1 conv: shifts of 1, 2, 3 and 4 px (whole steps of its 1-px jump) keep 1.0000 at "
                        "each, to 4 decimals (cosine similarity, n=2 seeds, 500 images).")
    assert lines[1].startswith("block1 pool: shifts of 2 and 4 px (whole steps of its 2-px jump) keep 1.0000 at each, "
                               "to 4 decimals; shifts of 1 and 3 px fall as low as 0.880 (at 3 px, 95% CI 0.870 to "
                               "0.890)")
    assert "shifted by 1 px have a cosine similarity of 0.970" in lines[2] and "at 4 px 0.900" in lines[2]
    assert "two different test images" not in " ".join(lines)  # a results.json from before the floor: none stated
    with_floor = equivariance_findings({**eq, "unrelated": _sim([0.5, 0.52, 0.31])})
    assert with_floor[1].endswith("; two different test images give 0.520 (cosine similarity, n=2 seeds, 500 images).")
    assert with_floor[2].endswith("at 4 px 0.900; two different test images give 0.310 (n=2 seeds, 500 images).")
    assert lines[3].startswith("The first stage that does not give every shift back (cosine below 0.999) is block1 "
                               "pool, with a jump of 2 px")
    eq["similarity"][0] = _sim([0.99996, 0.99942, 1.0, 0.99991])  # not all of it: the smallest is a floor
    assert equivariance_findings(eq)[0].startswith("block1 conv: shifts of 1, 2, 3 and 4 px (whole steps of its 1-px "
                                                   "jump) keep 0.9994 or more (cosine")


def test_kernel_size_effects_are_paired_by_seed_and_holm_corrected():
    from scipy import stats as sps

    from convlens.probes.receptive_field import kernel_size_effects
    from convlens.report.findings import receptive_field_findings

    def level(sides_per_block, theoretical):
        return {"seeds": [0, 1, 2], "blocks": [
            {"block": f"block{i + 1}", "theoretical_size": t, "theoretical_visible": [min(t, 28)] * 2,
             "side90_per_seed": {str(s): v for s, v in enumerate(sides)},
             "side90": {"mean": float(np.mean(sides)), "n": 3, "std": float(np.std(sides, ddof=1)),
                        "ci95": [None, None]}}
            for i, (sides, t) in enumerate(zip(sides_per_block, theoretical))]}
    three = level([[4, 4, 4], [10, 10, 10], [16, 17, 15]], [4, 10, 22])
    five = level([[6, 6, 6], [14, 13, 14], [21, 23, 20]], [6, 16, 28])
    effects = kernel_size_effects({"kernel_size=3": three, "kernel_size=5": five}, "kernel_size=3")
    assert effects["family"] == 3
    block3 = effects["tests"][2]
    assert block3["diff"] == pytest.approx(np.mean([5, 6, 5]))
    p_raw = [sps.ttest_rel(b, a).pvalue if np.std(np.subtract(b, a)) > 0 else np.nan
             for a, b in (([4, 4, 4], [6, 6, 6]), ([10, 10, 10], [14, 13, 14]), ([16, 17, 15], [21, 23, 20]))]
    assert np.isnan(effects["tests"][0]["p_value"])  # +2 on every seed: no spread, no t-test
    # Holm over all 3, the untested one counting as p = 1 (so it makes no other look stronger)
    ordered = sorted(1.0 if np.isnan(p) else p for p in p_raw)
    holm = [min(1.0, max((3 - j) * ordered[j] for j in range(i + 1))) for i in range(3)]
    assert sorted(t["p_holm"] for t in effects["tests"][1:]) == pytest.approx(holm[:2])
    three["blocks"][0]["side90"]["ci95"] = [4.0, 4.0]  # what a t interval gives for 4, 4, 4: zero width
    rf = {"cnn": three, "images": 1000, "kernel_sizes": {"levels": {}, **effects}}
    lines = receptive_field_findings(rf)
    assert "square of 4.0 px (mean over n=3 seeds, the same on every seed)" in lines[0] and "CI" not in lines[0]
    low, high = sps.ttest_rel([21, 23, 20], [16, 17, 15]).confidence_interval()
    assert f"difference +5.3 px, unadjusted 95% CI {low:+.1f} to {high:+.1f} px" in lines[6]  # a family of 3
    assert lines[2].startswith("block3: theoretical receptive field 22 px (22 px of it inside the image); 90% of the "
                               "gradient lies within a centred square of 16.0 px")
    assert "the same +2 px on every one of the n=3 seeds (no spread, so no t-test)" in lines[4]
    assert lines[6].startswith("kernel_size=5 at block3: the visible theoretical field grows 22 -> 28 px; the 90% "
                               "side 16.0 -> 21.3 px, difference +5.3 px")
    # the side moves in 2-px steps and stops at the image: said once, after the tests
    assert lines[7] == ("The 90% side is a centred square that grows in steps of 2 px and holds no more than the "
                        "image: with few seeds these intervals are coarse, and one may reach past what the image "
                        "allows.") and len(lines) == 8
    same = {**effects, "tests": [{**t, "p_value": np.nan, "p_holm": np.nan, "diff": 2.0, "verdict": "not tested (the "
                                  "same difference on every seed)"} for t in effects["tests"]]}
    lines_same = receptive_field_findings({**rf, "kernel_sizes": {"levels": {}, **same}})
    assert lines_same[3] == ("Kernel sizes, each against kernel_size=3 (paired by seed; no test could run: every "
                             "difference is the same on every seed):")  # not "the 3 tests below are one family"
    assert lines_same[-1] == ("The 90% side is a centred square that grows in steps of 2 px and holds no more than "
                              "the image.")  # no interval was printed to call coarse
    failed = {**effects, "tests": [{**t, "verdict": "not tested (n=1: one seed has no spread)"} for t in same["tests"]]}
    assert receptive_field_findings({**rf, "kernel_sizes": {"levels": {}, **failed}})[3] == (
        "Kernel sizes, each against kernel_size=3 (paired by seed; none could be tested, each line says why):")
    empty = receptive_field_findings({**rf, "kernel_sizes": {"levels": {}, **effects, "tests": []}})
    assert len(empty) == 3  # the three blocks; no header over nothing
    growth = (np.mean([21, 23, 20]) - np.mean([16, 17, 15])) / (28 - 22)
    assert "significantly larger" in lines[6]  # diffs 5, 6, 5 px: so the growth is stated, as a ratio of means
    assert f"the mean difference is {growth:.0%} of the theoretical growth (a ratio of means" in lines[6]


def test_a_cosine_of_identical_maps_never_passes_one():
    """float32 rounding puts the raw cosine of a map with itself above 1 for many maps: clamped, so a stage that is
    exactly equivariant has a mean of 1 and its interval over seeds (cut to [-1, 1]) cannot turn inside out."""
    from convlens.probes.equivariance import _cosine_sum
    a = torch.rand(200, 32, 14, 14, generator=torch.Generator().manual_seed(0))
    dims = (1, 2, 3)
    raw = (a * a).sum(dims) / torch.linalg.vector_norm(a, dim=dims) ** 2
    assert (raw > 1).any()  # what the clamp is for
    assert _cosine_sum(a, a.clone()) == 200.0
    assert _cosine_sum(a, -a) == -200.0


def test_equivariance_in_chunks_of_images_is_the_probe_over_all_of_them_at_once():
    """The canvases go through the network a few images at a time (speed): the cosines are sums over images, so the
    chunked figure is the one-pass figure, in every stage and shift, up to float32 rounding."""
    torch.manual_seed(5)
    net = Network(resolve_spec("cnn")).eval()
    x = _images(45, seed=2)
    whole = equivariance(net, x, max_shift=4, chunk=len(x))
    for chunk in (1, 7, 32):
        chunked = equivariance(net, x, max_shift=4, chunk=chunk)
        assert {k: v for k, v in chunked.items() if k not in ("similarity", "unrelated")} == \
            {k: v for k, v in whole.items() if k not in ("similarity", "unrelated")}
        assert chunked["unrelated"] == pytest.approx(whole["unrelated"], abs=1e-6)
        for a, b in zip(chunked["similarity"], whole["similarity"]):
            assert a == pytest.approx(b, abs=1e-6)
    assert min(min(s) for s in whole["similarity"]) < 0.99  # pooled stages in it: not a comparison of 1s with 1s


def test_equivariance_ignores_the_background_response_and_the_canvas_size():
    torch.manual_seed(3)
    net = Network(resolve_spec("cnn")).eval()
    for module in net.modules():
        if isinstance(module, torch.nn.Conv2d):
            torch.nn.init.uniform_(module.bias, 0.02, 0.1)  # a background response the similarity must not count
    small, large = equivariance(net, _images(32), max_shift=4), equivariance(net, _images(32), max_shift=12)
    for stage in range(len(small["stages"]) - 1):  # the maps: the same images, a larger canvas, the same numbers
        assert [s for s in small["similarity"][stage]] == pytest.approx(large["similarity"][stage][:4], abs=1e-5)
    by_stage = dict(zip(large["stages"], large["similarity"]))
    assert by_stage["block3 conv"][7] == pytest.approx(1.0, abs=1e-5)  # 8 px = two cells of a jump-4 map
    assert by_stage["block3 pool"][7] == pytest.approx(1.0, abs=1e-5)  # and one of a jump-8 map
    assert by_stage["block1 pool"][0] < 0.99


def test_erf_support_is_exactly_the_theoretical_window_with_strides_valid_padding_and_average_pooling():
    net = Network(resolve_spec("cnn", {"depth": 2, "filters": [2, 2], "kernel_size": 3, "stride": 2,
                                       "padding": "valid", "pool": "avg"}))
    for module in net.features.modules():
        if isinstance(module, torch.nn.Conv2d):
            with torch.no_grad():
                module.weight.fill_(1.0)
                module.bias.zero_()
    for block in effective_receptive_fields(net, _images(4) + 0.1):
        (top, bottom), (left, right) = block["theoretical_window"]
        support = np.argwhere(block["erf"] > 0)
        assert (support.min(0).tolist(), support.max(0).tolist()) == ([top, left], [bottom, right])
