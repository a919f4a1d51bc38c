"""The report's sentences. Each is generated from the numbers it is given (a section of results.json) and, where
it states a comparison, worded by that comparison's test; nothing here measures or tests anything itself."""

from __future__ import annotations

import math

from convlens.experiments.comparisons import FRESH_SEEDS, interval_text, undetectable
from convlens.stats import ALPHA, p_equals


def _pct(x: float | None) -> str:
    return "n/a" if x is None else f"{x * 100:.2f}%"


def _pp(x: float | None) -> str:
    return "n/a" if x is None else f"{x * 100:+.2f} pp"


def eda_findings(eda: dict) -> list[str]:
    brightest = max(eda["per_class"], key=lambda c: c["mean_brightness"])
    darkest = min(eda["per_class"], key=lambda c: c["mean_brightness"])
    dup, counts = eda["duplicates"], eda["class_counts"]["train"]
    shape, norm = eda["train"]["shape"], eda["normalisation"]
    colour = len(shape) == 3
    per_channel = (["Per channel (R, G, B): mean " + ", ".join(f"{m:.4f}" for m in norm["channel_means"])
                    + "; std " + ", ".join(f"{v:.4f}" for v in norm["channel_stds"]) + "."] if colour else [])
    return [
        f"{eda['train']['n']:,} training and {eda['test']['n']:,} test images of {shape[0]}x{shape[1]} px"
        f"{' RGB' if colour else ''}, {eda['dtype']}, {'values' if colour else 'grey levels'} "
        f"{eda['pixel_range']['train'][0]}-{eda['pixel_range']['train'][1]}; {len(eda['per_class'])} classes.",
        *per_channel,
        ("Classes are exactly balanced" if eda["imbalance_ratio"]["train"] == 1 else
         f"The largest class has {eda['imbalance_ratio']['train']:.2f}x the images of the smallest") +
        f" in the training set ({min(counts):,}-{max(counts):,} per class), so "
        + ("accuracy is a fair summary metric." if eda["imbalance_ratio"]["train"] <= 1.5 else
           "overall accuracy favours the large classes: read the per-class accuracy too."),
        f"{eda['zero_pixel_fraction'] * 100:.1f}% of training pixels are pure background (0); mean pixel "
        f"{eda['normalisation']['train_mean']:.4f}, std {eda['normalisation']['train_std']:.4f} on the 0-1 scale the "
        "models see (pixel / 255), the scale of every brightness below.",
        # to the 4 decimals of the EDA table, where a reader looks them up; the difference is of the values as
        # printed, so that it adds up
        f"{brightest['class']} is the brightest class (mean pixel {brightest['mean_brightness']:.4f}), "
        f"{darkest['class']} the darkest ({darkest['mean_brightness']:.4f}): a difference of "
        f"{round(brightest['mean_brightness'], 4) - round(darkest['mean_brightness'], 4):.4f} in mean brightness, a "
        "cue that needs no notion of shape.",
        f"{dup['exact']} test images are byte-identical to a training image and {dup['near']} more are near "
        f"duplicates (RMS pixel difference <= {dup['max_rms']} on the same 0-1 scale); "
        + ("a model may have seen those, so test accuracy may be slightly optimistic for them (not measured here)."
           if dup["exact"] + dup["near"] else
           "the test set is clean of them."),
    ]


# How the sentences name what the images show: (the thing, two distant parts of it, one local feature).
SUBJECTS = {
    "fashion-mnist": ("a garment", "sleeve to collar", "a collar"),
    "mnist": ("a digit", "the top of a stroke to its bottom", "a stroke"),
    "digits": ("a digit", "the top of a stroke to its bottom", "a stroke"),
    "kmnist": ("a character", "one stroke to another", "a stroke"),
    "cifar10": ("an object", "one edge to another", "an edge"),
}
GENERIC_SUBJECT = ("an object", "one part to another", "an edge")


def subject(dataset: str) -> tuple[str, str, str]:
    return SUBJECTS.get(dataset, GENERIC_SUBJECT)


def baseline_findings(mlp: dict, dataset: str = "fashion-mnist") -> list[str]:
    conf = mlp["most_confused"]
    return [
        f"Test accuracy {_pct(mlp['test_accuracy']['mean'])} ± {mlp['test_accuracy']['std'] * 100:.2f} pp "
        f"(mean ± std, n={mlp['n']} seeds) with {mlp['summary']['params']['total']:,} parameters.",
        f"Per-class accuracy ranges from {_pct(mlp['hardest_class']['accuracy'])} ({mlp['hardest_class']['class']}) to "
        f"{_pct(mlp['easiest_class']['accuracy'])} ({mlp['easiest_class']['class']}).",
        "Most confused pairs: " + "; ".join(f"{p['pair'][0]} / {p['pair'][1]} ({_pct(p['share'])} of their "
                                            f"test images mistaken for each other)" for p in conf) + ".",
        "Its limitation is structural: the first layer flattens the image, so every weight belongs to one "
        f"fixed pixel position. Nothing it learns about {subject(dataset)[2]} at one place transfers to the next "
        "pixel; the shift probe below measures what that costs.",
    ]


def _channels(n: int) -> str:
    return "a single channel" if n == 1 else f"only {n} channels"


def design_findings(cnn: dict, mlp: dict, dataset: str = "fashion-mnist") -> list[str]:
    """The CNN's design reasons, read off its layer table (receptive fields, parameters and MACs per block)."""
    layers = cnn["summary"]["layers"]
    convs = [lay for lay in layers if lay["layer"].startswith("Conv2D")]
    last_conv = convs[-1]
    last_rf = [lay for lay in layers if lay["receptive_field"] is not None][-1]
    size = cnn["summary"]["input_shape"][0]
    total, macs = cnn["summary"]["params"]["total"], cnn["summary"]["macs"]
    conv_params = sum(lay["params_trainable"] for lay in convs)
    conv_macs = sum(lay["macs"] for lay in convs)
    block_macs = [c["macs"] for c in convs]
    even = len(block_macs) > 2 and max(block_macs[1:]) <= 1.05 * min(block_macs[1:])
    rf = last_rf["receptive_field"]
    thing, parts, _ = subject(dataset)
    reach = (f"the whole image: one unit can relate distant parts of {thing} ({parts}) before the dense head"
             if rf >= size else
             f"{rf / size:.0%} of the image's side: distant parts of {thing} meet only in the dense head")
    param_share, mac_share = conv_params / total, conv_macs / macs
    sharing = ("weight sharing makes them cheap in parameters and expensive in compute; the dense head is the "
               "opposite" if param_share < mac_share else
               "here the convolutions are no cheaper in parameters than in compute")
    return [
        f"{len(convs)} convolution blocks with {', '.join(str(c['output_shape'][-1]) for c in convs)} filters, "
        f"costing {', '.join(f'{m / 1e6:.2f}' for m in block_macs)} M multiply-adds per image"
        + (f": after the first block (its input has {_channels(cnn['summary']['input_shape'][-1])}), doubling the "
           "channels while pooling halves the "
           "resolution keeps the cost per block constant, trading space for features." if even else "."),
        f"Receptive field: the first convolution sees {convs[0]['receptive_field']}x{convs[0]['receptive_field']} px; "
        f"the last one sees {last_conv['receptive_field']}x{last_conv['receptive_field']} px of the {size}x{size} "
        f"image, and after the last pooling each unit covers {rf}x{rf} px, {reach}.",
        f"Convolutions hold {param_share * 100:.1f}% of the {total:,} parameters and do {mac_share * 100:.1f}% of the "
        f"{macs / 1e6:.1f} M multiply-adds per image: {sharing}.",
        f"Against the MLP baseline ({mlp['summary']['params']['total']:,} parameters, "
        f"{mlp['summary']['macs'] / 1e6:.2f} M multiply-adds): {total / mlp['summary']['params']['total']:.1f}x the "
        f"parameters and {macs / mlp['summary']['macs']:.0f}x the compute per image.",
    ]


def feature_map_finding(blocks: list[dict]) -> str:
    """Resolution and channels from the first block to the last, read off the feature maps' shapes (C, H, W)."""
    (c0, h0, w0), (c1, h1, w1) = blocks[0]["shape"], blocks[-1]["shape"]
    return (f"From the first block to the last the maps shrink from {h0}x{w0} to {h1}x{w1} positions while the "
            f"channels grow from {c0} to {c1}: each later channel summarises a larger patch of the image.")


def shift_findings(effects: dict) -> list[str]:
    """One sentence per shift from ``probes.shift.shift_effects``: both accuracies, their changes, the test."""
    first, second = effects["curves"]
    curves, lines = effects["curves"], []
    for t in effects["tests"]:
        a, b = curves[first][t["shift"]]["mean"], curves[second][t["shift"]]["mean"]
        lines.append(f"Shift {t['shift']} px: {second} {_pct(b)} (change {(b - curves[second][0]['mean']) * 100:+.2f} "
                     f"pp), {first} {_pct(a)} (change {(a - curves[first][0]['mean']) * 100:+.2f} pp); {second} change "
                     f"minus {first} change {_pp(t['diff'])}{interval_text(t)}: {t['verdict']}"
                     + ("" if t["verdict"].startswith("significantly") else _detectable(t)) + ".")
    if effects["tests"] and effects["tests"][0]["n"] == 2:
        lines.append("Warning: n=2 paired seeds, so each test has 1 degree of freedom and only large effects can be "
                     "detected; use 3 or more seeds for findings.")
    return lines


def augmentation_findings(aug: dict, shift: dict) -> list[str]:
    """At each shift: the accuracy change of each of the four models, and the tests of the augmentation family
    (each a difference of two models' changes); CNN vs MLP is the shift probe's test, cited from its family. Then
    the share of the CNN's robustness augmentation buys the MLP (only when both tests find it), and what the
    augmentation costs in clean accuracy (the experiment's tests) and in training time."""
    curves, lines = aug["curves"], []
    by = {(t["model"], t["reference"], t["shift"]): t for t in aug["tests"]}
    probe = {t["shift"]: t for t in shift["tests"]}
    last = aug["shifts"][-1]

    def change(name: str, s: int) -> str:
        return _pp(curves[name][s]["mean"] - curves[name][0]["mean"])

    def tested(t: dict) -> str:
        return f"{_pp(t['diff'])}{interval_text(t)} ({t['verdict']})"
    for s in aug["shifts"][1:]:
        lines.append(f"Shift {s} px, accuracy change from 0 px: MLP {change('MLP', s)}, MLP + shift aug "
                     f"{change('MLP + shift aug', s)}, CNN {change('CNN', s)}, CNN + shift aug "
                     f"{change('CNN + shift aug', s)}. Differences in change: augmented vs plain MLP "
                     f"{tested(by['MLP + shift aug', 'MLP', s])}; augmented vs plain CNN "
                     f"{tested(by['CNN + shift aug', 'CNN', s])}; CNN vs MLP (the shift probe's test) "
                     f"{tested(probe[s])}.")
    bought, built = by["MLP + shift aug", "MLP", last], probe.get(last)
    found = lambda t: t["verdict"].startswith("significantly") and t["diff"] > 0  # noqa: E731
    if built and found(bought) and found(built):
        share = bought["diff"] / built["diff"]
        lines.append(f"At {last} px, shift augmentation reduces the MLP's loss by {bought['diff'] * 100:.2f} pp; the "
                     f"CNN's architecture reduces it by {built['diff'] * 100:.2f} pp: augmentation buys "
                     + (f"{share:.0%} of what convolution gives" if share <= 1 else
                        f"{share:.1f}x what convolution gives, more than all of it")
                     + " (a ratio of two mean differences, with no interval of its own).")
    for model, c in aug["clean"].items():
        lines.append(f"Clean test accuracy, {model} with {aug['augment']} vs without: {_pp(c['diff'])}"
                     f"{interval_text(c)}: {c['verdict']} (a test of the augmentation experiment's family of "
                     f"{aug['experiment_family']}).")
    if aug["timing"]["comparable"]:
        secs = {k: v["mean"] for k, v in aug["seconds"].items()}
        lines.append(f"Training time per run: MLP {secs['MLP']:.1f} s -> {secs['MLP + shift aug']:.1f} s, CNN "
                     f"{secs['CNN']:.1f} s -> {secs['CNN + shift aug']:.1f} s with augmentation (same machine and "
                     "threads).")
    return lines


def locality_findings(effects: dict) -> list[str]:
    """From the locality grid's comparisons (one Holm family): each model's change when the pixels are permuted,
    the interaction, and (only when both tests say so) that convolution is the wrong tool for such data."""
    lines = []
    for model, e in effects["models"].items():
        c = e["change"]
        lines.append(f"{model}: {_pct(e['original']['mean'])} on original pixels, {_pct(e['permuted']['mean'])} on "
                     f"permuted pixels; change {_pp(c['diff'])}{interval_text(c)}; permuted vs original: {c['verdict']}"
                     + ("" if c["verdict"].startswith(("significantly", "identical")) else _detectable(c)) + ".")
    inter = effects["interaction"]
    (first, _), (second, _) = effects["models"].items()
    lines.append(f"Interaction, the {second}'s change minus the {first}'s (paired by seed): {_pp(inter['diff'])}"
                 f"{interval_text(inter)}: {inter['verdict']}.")
    if inter["verdict"].startswith("significantly") and inter["diff"] < 0:
        lines.append(f"So the {second} loses {-inter['diff'] * 100:.2f} pp more than the {first} once neighbouring "
                     "pixels stop belonging together: it was leaning on their spatial arrangement (locality, and with "
                     "it the shared kernels and the pooling; the weight-sharing experiment of --full separates them).")
        worse = effects.get("on_permuted")  # the second model vs the first, both on permuted pixels
        if worse and worse["verdict"].startswith("significantly lower"):
            lines.append(f"On permuted pixels the {second} is {-worse['diff'] * 100:.2f} pp below the {first} "
                         f"({worse['verdict'].split(' (', 1)[1].rstrip(')')}): for data without a spatial (or "
                         "temporal) neighbourhood, such as tabular records or shuffled sensor channels, convolution is "
                         "the wrong tool.")
    elif not inter["verdict"].startswith("significantly"):
        # "the two losses" would be wrong where one model's accuracy rose (an MLP on permuted pixels often does)
        lines.append(f"This run cannot tell the {second}'s change from the {first}'s{_detectable(inter)}.")
    return lines


def _detectable(c: dict) -> str:
    mde = c.get("mde")
    if mde is None or math.isnan(mde):
        return ""
    text = f"; with n={c['n']} seeds, {undetectable(mde)}"
    if c.get("mde_alpha"):  # the level the power is computed at, as the experiments' sentences say it
        text += f" (at alpha {c['mde_alpha']:.3g}, the family's strictest level)"
    if c.get("seeds_needed"):  # worded as the experiments' sentences word it
        text += (f"; detecting the observed {abs(c['diff']) * 100:.2f} pp would take roughly {c['seeds_needed']} "
                 f"seeds ({FRESH_SEEDS})")
    return text


def efficiency_findings(points: list[dict]) -> list[str]:
    """The frontier of accuracy against parameters and against multiply-adds, read off ``efficiency_points``."""
    lines = []
    for cost, unit in (("params", "parameters"), ("macs", "multiply-adds per image")):
        on = [p for p in points if p[f"frontier_{cost}"]]
        on.sort(key=lambda p: p[cost])
        shown = "; ".join(f"{p['name']} ({p[cost]:,} {unit}, {_pct(p['test_accuracy']['mean'])})" for p in on)
        verb = "is" if len(on) == 1 else "are"
        lines.append(f"Against {unit}, {len(on)} of {len(points)} configurations {verb} on the frontier (no other is "
                     f"both cheaper and more accurate on average): {shown}.")
    lines.append("These are means over seeds; whether two configurations really differ is what the experiments' "
                 "tests above say.")
    return lines


def classification_findings(report: dict, missed: dict, names: list[str]) -> list[str]:
    """The macro averages and the class with the lowest F1, from ``probes.confusion.report_over_seeds``; the image
    missed on the most seeds from ``most_missed``."""
    n, macro = report["n"], report["macro"]
    worst_row = min(report["classes"], key=lambda row: row["f1"]["mean"])
    worst, rows = worst_row["class"], {worst_row["class"]: worst_row}
    lines = [f"Macro averages over the {len(names)} classes: precision {_pct(macro['precision']['mean'])}, recall "
             f"{_pct(macro['recall']['mean'])}, F1 {_pct(macro['f1']['mean'])}"
             + (f" ± {macro['f1']['std'] * 100:.2f} pp (mean ± std, n={n} seeds)." if n > 1 else " (n=1 seed)."),
             f"Lowest F1: {worst}, {_pct(rows[worst]['f1']['mean'])} (precision "
             f"{_pct(rows[worst]['precision']['mean'])}, recall {_pct(rows[worst]['recall']['mean'])})."]
    if missed["images"]:
        always = sum(m["missed_seeds"] == len(missed["seeds"]) for m in missed["images"])
        first = missed["images"][0]
        line = (f"Test image #{first['index']} ({names[first['true']]}) is missed on {first['missed_seeds']} of "
                f"{len(missed['seeds'])} seeds, most often taken for {names[first['predicted']]}")
        if "missed_every_seed" in missed:  # the images shown are only the lowest indices among those tied
            every, n = missed["missed_every_seed"], missed["n_images"]
            line += (f". {every:,} of the {n:,} test images ({every / n:.1%}) are missed on every seed; the "
                     f"{len(missed['images'])} shown are ranked by the seeds that miss them, ties by lowest index.")
        else:  # a results.json from before the count
            line += f"; {always} of the {len(missed['images'])} images shown are missed on every seed."
        lines.append(line)
    return lines


# What convolution assumes, taken apart ------------------------------------------------------------------------

def _tested(c: dict) -> str:
    """'+1.23 pp, 95% CI +0.50 to +1.96 pp (significant, p = 0.004 Holm, n=3)', from a comparison whose sign may
    have been turned (so its verdict's wording, which names the original direction, is not reused)."""
    if c["n"] < 2 or c.get("identical") or c["p_holm"] is None or math.isnan(c["p_holm"]):
        return f"{_pp(c['diff'])} ({c['verdict']})"
    word = "significant" if c["p_holm"] < ALPHA else "not significant"
    return f"{_pp(c['diff'])}{interval_text(c)} ({word}, {p_equals(c['p_holm'])} Holm, n={c['n']})"


def weight_sharing_findings(ws: dict) -> list[str]:
    """Locality and weight sharing as the two steps from the MLP to the CNN, on each pixel order; their shares of
    the CNN's advantage; and what each costs in parameters and training time."""
    lines = []
    for pixels in ("original", "permuted"):
        part = ws["parts"][pixels]
        lines.append(f"On {pixels} pixels: locality (the locally connected network minus the MLP) "
                     f"{_tested(part['locality'])}; weight sharing (the CNN minus the locally connected network) "
                     f"{_tested(part['sharing'])}.")
    loc_c, share_c = ws["parts"]["original"]["locality"], ws["parts"]["original"]["sharing"]
    loc, share = loc_c["diff"], share_c["diff"]
    total = loc + share
    significant = all(c["p_holm"] is not None and not math.isnan(c["p_holm"]) and c["p_holm"] < ALPHA
                      for c in (loc_c, share_c))
    if loc > 0 and share > 0 and significant:
        lines.append(f"Both steps add accuracy on original pixels: of their sum, {_pp(total)}, {loc / total:.0%} comes "
                     f"with locality and {share / total:.0%} with sharing weights (ratios of the two mean "
                     "differences above; the ratio itself has no interval).")
    else:
        lines.append(f"The two steps are not both significant gains on original pixels (locality {_pp(loc)}, "
                     f"sharing {_pp(share)}), so the CNN's advantage is not split into shares here.")
    lines.append("The sharing step also cuts the parameters about "
                 f"{ws['cells']['LCN']['original']['params'] / ws['cells']['CNN']['original']['params']:.0f}x under a "
                 "recipe chosen for the CNN, so it measures sharing together with capacity and how well that recipe "
                 "suits the larger network.")
    cells = ws["cells"]
    params = {name: cells[name]["original"]["params"] for name in cells}
    lines.append(f"Parameters: MLP {params['MLP']:,}, locally connected {params['LCN']:,}, CNN {params['CNN']:,}: "
                 f"the same footprint without sharing needs {params['LCN'] / params['CNN']:.0f}x the CNN's weights.")
    if ws["timing"]["comparable"]:
        secs = {name: cells[name]["original"]["train_seconds"]["mean"] for name in cells}
        lines.append(f"Training time per run on original pixels (mean over n={cells['CNN']['original']['n']} seeds, "
                     f"same machine and threads): MLP {secs['MLP']:.0f} s, locally connected {secs['LCN']:.0f} s, "
                     f"CNN {secs['CNN']:.0f} s.")
    else:
        lines.append("The runs' training times were measured under different conditions, so they are not compared.")
    return lines


def equivariance_findings(eq: dict) -> list[str]:
    """Per stage: how much of the shifted feature map each shift gives back, exact shifts (multiples of the
    stage's jump) apart from the others; then the first stage that loses it, and the dense layer."""
    n, images, shifts = len(eq["seeds"]), eq["images"], eq["shifts"]
    lines, first_lost = [], None
    # The floor: two different images' unshifted maps (non-negative after a ReLU, so well above 0); results.json
    # from before it has none.
    floors = [None if u is None else u["mean"] for u in eq.get("unrelated") or [None] * len(eq["stages"])]
    for stage, jump, sims, exact, floor in zip(eq["stages"], eq["jumps"], eq["similarity"], eq["exact"], floors):
        means = [s["mean"] for s in sims]
        against = "" if floor is None else f"; two different test images give {floor:.3f}"
        if jump is None:  # the dense layer: no spatial axes, compared with the unshifted image
            lines.append(f"{stage} has no spatial axes, so it can only be invariant: its activations for an image "
                         f"shifted by {shifts[0]} px have a cosine similarity of {means[0]:.3f} with the unshifted "
                         f"image's, at {shifts[-1]} px {means[-1]:.3f}{against} (n={n} seeds, {images} images).")
            continue
        whole = [k for k, e in zip(shifts, exact) if e]
        other = [(k, s) for k, s, e in zip(shifts, sims, exact) if not e]
        parts = []
        if whole:
            # a mean over images and seeds of cosines at most 1: at 1.0000 to 4 decimals, "or more" would be empty
            kept = f"{min(means[k - 1] for k in whole):.4f}"
            parts.append(f"shifts of {_list(whole)} px (whole steps of its {jump}-px jump) keep "
                         + (f"{kept} at each, to 4 decimals" if kept == "1.0000" else f"{kept} or more"))
        if other:
            k, worst = min(other, key=lambda ks: ks[1]["mean"])
            lo, hi = worst["ci95"]
            ci = "" if lo is None or math.isnan(lo) else f", 95% CI {lo:.3f} to {hi:.3f}"
            parts.append(f"shifts of {_list([k for k, _ in other])} px fall as low as {worst['mean']:.3f} "
                         f"(at {k} px{ci})")
        lines.append(f"{stage}: " + "; ".join(parts) + f"{against} (cosine similarity, n={n} seeds, {images} "
                     "images).")
        if first_lost is None and min(means) < 0.999:
            first_lost = (stage, jump)
    if first_lost:
        stage, jump = first_lost
        lines.append(f"The first stage that does not give every shift back (cosine below 0.999) is {stage}, with a "
                     f"jump of {jump} px" + (": on a grid that coarse only shifts in whole steps of the jump can be "
                     "returned, so it is pooling (or a stride), not convolution, that gives equivariance up."
                     if jump > 1 else "."))
    return lines


def _list(values: list[int]) -> str:
    return ", ".join(map(str, values[:-1])) + (" and " if len(values) > 1 else "") + str(values[-1])


def receptive_field_findings(rf: dict) -> list[str]:
    """Per block of the CNN: the theoretical field against the side holding 90% of the gradient; per kernel size
    and block: the paired difference of that side against the reference kernel, tested as one family."""
    cnn = rf["cnn"]
    n = len(cnn["seeds"])
    lines = []
    for b in cnn["blocks"]:
        side, visible = b["side90"], b["theoretical_visible"][0]
        lo, hi = side["ci95"]
        ci = ("" if lo is None or math.isnan(lo) else ", the same on every seed" if lo == hi  # no zero-width CI
              else f", 95% CI {lo:.1f} to {hi:.1f}")
        lines.append(f"{b['block']}: theoretical receptive field {b['theoretical_size']} px "
                     f"({visible} px of it inside the image); 90% of the gradient lies within a centred square of "
                     f"{side['mean']:.1f} px (mean over n={n} seeds{ci}), {side['mean'] / visible:.0%} of the "
                     "visible side.")
    sizes = rf["kernel_sizes"]
    if sizes and sizes["tests"]:
        verdicts = [t["verdict"] for t in sizes["tests"]]
        untested = all(v.startswith(("not tested", "identical")) for v in verdicts)
        same = all(v.startswith("not tested (the same difference") for v in verdicts)
        lines.append(f"Kernel sizes, each against {sizes['reference']} (paired by seed; "
                     + ("no test could run: every difference is the same on every seed):" if same else
                        "none could be tested, each line says why):" if untested else
                        f"the {sizes['family']} tests below are one family, Holm-corrected):"))
        for t in sizes["tests"]:
            (a, b), (ea, eb) = t["theoretical_visible"], t["side90"]
            ci = interval_text(t, lambda px: f"{px:+.1f}", "px")
            grown = b - a
            use = (f"; the mean difference is {t['diff'] / grown:.0%} of the theoretical growth (a ratio of means, "
                   "without an interval)" if grown > 0 and t["verdict"].startswith("significantly") else "")
            said = (f"the same {t['diff']:+.0f} px on every one of the n={t['n']} seeds (no spread, so no t-test)"
                    if t["verdict"].startswith("not tested (the same difference") else t["verdict"])
            lines.append(f"{t['level']} at {t['block']}: the visible theoretical field grows {a} -> {b} px; the 90% "
                         f"side {ea:.1f} -> {eb:.1f} px, difference {t['diff']:+.1f} px{ci}: {said}{use}.")
        lines.append("The 90% side is a centred square that grows in steps of 2 px and holds no more than the "
                     "image" + ("." if untested else ": with few seeds these intervals are coarse, and one may reach "
                                "past what the image allows."))
    return lines


def assumption_findings(section: dict) -> dict[str, list[str]]:
    ws = section["weight_sharing"]
    return {"weight_sharing": weight_sharing_findings(ws) if ws and ws["complete"] else [],
            "equivariance": equivariance_findings(section["equivariance"]),
            "receptive_field": receptive_field_findings(section["receptive_field"])}
