"""A review of the report read as a student and as an instructor: bar axes that start at 0, brightness in one unit,
SE defined where it is used, figure captions that say what each axis and point is, SageMaker placeholders said what
to replace with (checked against convlens' own checks), differences that add up. Each test reads the numbers back
from results.json (a quick study's, data/quick_results.json) or from the drawn figure, not from the code that placed
them."""

from __future__ import annotations

import copy
import json
import math
import re
import shlex
from pathlib import Path

import matplotlib.pyplot as plt
import pytest

from convlens.report import figures
from convlens.report.findings import eda_findings
from convlens.report.render import _render_markdown

RESULTS = json.loads((Path(__file__).parent / "data" / "quick_results.json").read_text())


@pytest.fixture(scope="module")
def md() -> str:
    return _render_markdown(RESULTS, html_facts=False)


def _caption(md: str, image: str) -> str:
    """The paragraph right after the figure whose Markdown starts with ``image``."""
    after = md[md.index(image):].split("\n\n", 2)
    return after[1]


# 1. The locality bars --------------------------------------------------------------------------------------------

def test_the_locality_bars_start_at_0_and_carry_their_means(md):
    locality = RESULTS["probes"]["locality"]
    fig = figures.locality_figure(locality)
    ax = fig.axes[0]
    assert ax.get_ylim() == (0.0, 100.0)  # was 10 pp below the lowest bar: 68.6% here
    means = [100 * e[pixels]["mean"] for e in locality["models"].values() for pixels in ("original", "permuted")]
    heights = [bar.get_height() for bar in ax.patches]
    assert sorted(heights) == pytest.approx(sorted(means))
    assert all(bar.get_y() == 0 for bar in ax.patches)  # every bar's length is its accuracy
    written = sorted(t.get_text() for t in ax.texts)
    assert written == sorted(f"{m:.2f}" for m in means)
    assert "axis from 0" in ax.get_ylabel()
    plt.close(fig)
    caption = _caption(md, "![Locality probe]")
    n = min(e["change"]["n"] for e in locality["models"].values())
    assert caption.startswith("*Test accuracy (%)") and "The axis starts at 0" in caption and f"n={n} seeds" in caption
    assert "95% CI" in caption


def test_the_per_class_figure_says_where_its_axis_starts_when_not_at_0():
    from convlens.experiments.plots import per_class_figure
    high = {"levels": [{"label": "a", "n": 3, "per_class_accuracy": [0.9, 0.6, 0.8]}], "seeds": 3}
    fig = per_class_figure(high, ["x", "y", "z"])
    bottom = fig.axes[0].get_ylim()[0]
    assert bottom > 0 and f"axis from {bottom:.0f}%" in fig.axes[0].get_ylabel()
    plt.close(fig)
    low = {"levels": [{"label": "a", "n": 3, "per_class_accuracy": [0.9, 0.03, 0.8]}], "seeds": 3}
    fig = per_class_figure(low, ["x", "y", "z"])
    assert fig.axes[0].get_ylim()[0] == 0 and "axis from" not in fig.axes[0].get_ylabel()
    plt.close(fig)


# 2. Brightness in one unit ----------------------------------------------------------------------------------------

def test_brightness_is_on_the_0_1_scale_of_the_table_everywhere(md):
    eda = RESULTS["eda"]
    classes = eda["per_class"]
    brightest = max(classes, key=lambda c: c["mean_brightness"])
    darkest = min(classes, key=lambda c: c["mean_brightness"])
    printed = {c["class"]: f"{c['mean_brightness']:.4f}" for c in classes}
    # the table prints them so, under a header that names the scale
    assert "| mean brightness (0-1) |" in md
    for c in classes:
        assert re.search(rf"^\| {re.escape(c['class'])} \|[^\n]*\| {printed[c['class']]} \|", md, re.M)
    line = eda_findings(eda)[3]
    assert f"(mean pixel {printed[brightest['class']]})" in line and f"({printed[darkest['class']]})" in line
    difference = float(printed[brightest["class"]]) - float(printed[darkest["class"]])
    assert f"a difference of {difference:.4f} in mean brightness" in line  # adds up from the printed values
    assert "%" not in line and "of 255" not in line
    assert "0-1 scale" in eda_findings(eda)[2]
    assert "on the 0-1 scale" in md[md.index("| Ankle boot |"):md.index("Normalisation:")]  # said under the table
    fig = figures.brightness_per_class(classes, None)
    ax = fig.axes[0]
    assert [bar.get_height() for bar in ax.patches] == pytest.approx([c["mean_brightness"] for c in classes])
    assert ax.get_ylim()[1] < 1 and "0-1" in ax.get_ylabel() and "%" not in ax.get_ylabel()
    plt.close(fig)


def test_the_near_duplicate_threshold_says_its_scale(md):
    dup = RESULTS["eda"]["duplicates"]
    line = md[md.index("**Duplicates between train and test.**"):].split("\n", 1)[0]
    assert f"{dup['max_rms']} is about {round(dup['max_rms'] * 255)} of 255 grey levels" in line
    assert "0-1 scale" in eda_findings(RESULTS["eda"])[4]


# 3. SE --------------------------------------------------------------------------------------------------------

def test_se_is_defined_before_its_first_use_and_its_n_gives_the_tables_values(md):
    first = re.search(r"\bSE\b", md).start()
    definition = md.index("standard error (SE)")
    assert first <= definition and "\n" not in md[first:definition]  # the first "SE" is in the defining sentence
    n = RESULTS["eda"]["test"]["n"]
    assert f"sqrt(p (1 - p) / N) for an accuracy p on N = {n:,} test images" in md
    for name, experiment in RESULTS["experiments"].items():
        section = md[md.index(f"### {name}\n"):]
        for level in experiment["levels"]:
            p = level["test_accuracy"]["mean"]
            se = f"± {math.sqrt(p * (1 - p) / n) * 100:.2f} pp"  # the formula as stated, with the N stated
            row = re.search(rf"^\| {re.escape(level['label'])}( \(reference\))? \| \d+ \|.*$", section, re.M).group(0)
            assert row.split(" | ")[4] == se


# 4. Captions of the accuracy figures -----------------------------------------------------------------------------

def test_the_efficiency_caption_says_what_each_axis_and_point_is(md):
    probe = RESULTS["probes"]["efficiency"]
    fig = figures.efficiency_figure(probe)
    left, right = fig.axes
    assert (left.get_xscale(), right.get_xscale()) == ("log", "log")
    assert left.get_xlabel().startswith("parameters") and right.get_xlabel().startswith("multiply-adds per image")
    for ax in (left, right):  # one error bar per configuration
        assert sum(1 for c in ax.containers if type(c).__name__ == "ErrorbarContainer") == len(probe["points"])
    assert "95% CI" in left.get_ylabel()
    plt.close(fig)
    caption = _caption(md, "![Accuracy vs parameters and vs multiply-adds]")
    for said in ("Test accuracy (%)", "parameters (left)", "multiply-adds per image (right)", "log scales",
                 "one point per configuration", f"n={probe['seeds']} seeds", "95% CI", "frontier"):
        assert said in caption


@pytest.mark.parametrize("kind, axis", [("accuracy_vs_params", "parameters (log scale)"),
                                        ("accuracy_vs_time", "training time per run")])
def test_each_experiments_accuracy_figures_are_captioned_by_what_they_plot(md, kind, axis):
    from convlens.experiments.plots import accuracy_figure
    for name, summary in RESULTS["experiments"].items():
        if not RESULTS["experiment_details"][name]["figures"].get(kind):
            continue
        fig = accuracy_figure(summary, "params" if kind == "accuracy_vs_params" else "train_seconds")
        ax = fig.axes[0]
        assert ax.get_xlabel().startswith(axis.split(" (")[0])
        levels = [lv for lv in summary["levels"] if lv["n"] > 0]
        assert sum(1 for c in ax.containers if type(c).__name__ == "ErrorbarContainer") == len(levels)
        if kind == "accuracy_vs_params":  # the levels' own counts as ticks, nothing between them
            counts = sorted({lv["params"] for lv in levels})
            assert [t.get_text() for t in ax.get_xticklabels()] == [f"{c:,}" for c in counts]
            assert not [t for t in ax.get_xticklabels(minor=True) if t.get_text()]
        plt.close(fig)
        alt = "Accuracy vs parameters" if kind == "accuracy_vs_params" else "Accuracy vs training time"
        caption = _caption(md, f"![{alt}: {name}]")
        assert "one point per level" in caption and "95% CI over those seeds" in caption
        assert ("parameters (log scale)" if kind == "accuracy_vs_params" else "training time per run (s") in caption


# 5. SageMaker placeholders ---------------------------------------------------------------------------------------

def _printed_commands(md: str) -> list[list[str]]:
    block = md[md.index("```sh\n") + 6:]
    block = block[:block.index("```")]
    return [shlex.split(line.split("  #")[0]) for line in block.splitlines() if "sagemaker" in line]


def _note(md: str) -> str:
    return md[md.index("The SageMaker commands"):].split("\n", 1)[0]


def test_the_sagemaker_note_names_every_placeholder_and_what_convlens_checks_of_it(md):
    """What the note says of each placeholder, checked against convlens' own checks: which it refuses as they
    stand, and that the forms and examples it gives are accepted."""
    from pydantic import ValidationError

    from convlens.cloud.sagemaker.launcher import _FORMATS, SageMakerSettings, check_name
    from convlens.errors import UsageError
    placeholders = {argv[argv.index(option) + 1] for argv in _printed_commands(md)
                    for option in ("--role-arn", "--bucket", "--job-name", "--endpoint") if option in argv}
    assert placeholders == {"ARN", "BUCKET", "JOB", "NAME"}
    note = _note(md)
    for placeholder in placeholders:
        assert f"{placeholder} with " in note  # each is told what replaces it
    # "convlens refuses ARN and BUCKET as they stand": it does, and accepts the examples given for them
    with pytest.raises(ValidationError) as refused:
        SageMakerSettings(role_arn="ARN", bucket="BUCKET")
    assert {e["loc"][0] for e in refused.value.errors()} == {"role_arn", "bucket"}
    arn = re.search(r"such as `(arn:[^`]+)`", note).group(1)
    bucket = re.search(r"BUCKET with [^;]*such as `([^`]+)`", note).group(1)
    assert re.fullmatch(_FORMATS["role_arn"][0], arn) and re.fullmatch(_FORMATS["bucket"][0], bucket)
    SageMakerSettings(role_arn=arn, bucket=bucket)
    # JOB and NAME pass convlens' check as they stand, so the note must not say it refuses them: they would reach AWS
    check_name("--job-name", "JOB")
    check_name("--endpoint", "NAME")
    assert re.findall(r"refuses ([A-Z]+(?:,? (?:and )?[A-Z]+)*) as they stand", note) == ["ARN and BUCKET"]
    longest = 63 - len("-config")  # deploy's limit for an endpoint: it adds -config to the name
    assert f"1-{longest} letters, digits and hyphens" in note
    endpoint = re.search(r"NAME with [^;]*such as `([^`]+)`", note).group(1)
    check_name("--endpoint", endpoint, longest)
    with pytest.raises(UsageError):
        check_name("--endpoint", "x" * (longest + 1), longest)


def test_the_deploy_dry_run_runs_once_its_placeholders_are_replaced_as_the_note_says(md, monkeypatch, capsys,
                                                                                     tmp_path):
    pytest.importorskip("boto3")
    from convlens.cli import main
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    note = _note(md)
    examples = {"ARN": re.search(r"such as `(arn:[^`]+)`", note).group(1),
                "BUCKET": re.search(r"BUCKET with [^;]*such as `([^`]+)`", note).group(1),
                "NAME": re.search(r"NAME with [^;]*such as `([^`]+)`", note).group(1), "JOB": "convlens-job-1"}
    [deploy] = [argv for argv in _printed_commands(md) if argv[2] == "deploy"]
    assert deploy[:3] == ["convlens", "sagemaker", "deploy"] and "--dry-run" in deploy
    assert main(deploy[1:]) != 0  # as printed: refused
    capsys.readouterr()
    assert main([examples.get(arg, arg) for arg in deploy[1:]]) == 0
    assert '"operation": "CreateEndpoint"' in capsys.readouterr().out


# More from the read-through ---------------------------------------------------------------------------------------

def test_a_difference_that_does_not_add_up_from_the_rounded_table_is_said_to_be_unrounded():
    results = copy.deepcopy(RESULTS)
    ex = results["experiments"]["kernel-size"]
    ex["levels"][0]["test_accuracy"]["mean"], ex["levels"][1]["test_accuracy"]["mean"] = 0.919666, 0.920433
    ex["comparisons"][0]["diff"] = 0.920433 - 0.919666  # +0.08 pp, where the table's 92.04% - 91.97% = 0.07
    md = _render_markdown(results, html_facts=False)
    section = md[md.index("## 4. Controlled experiments"):md.index("### kernel-size")]
    assert "91.97%" in md and "92.04%" in md and "| +0.08 pp |" in md
    assert "Each difference is taken before rounding" in section
    locality = md[md.index("### Inductive bias (b)"):md.index("### Inductive bias (c)")]
    assert "each change is taken before rounding" in locality


def test_the_test_loss_is_said_to_be_a_cross_entropy(md):
    loss = RESULTS["baseline"]["test_loss"]["mean"]
    assert f"test loss (mean cross-entropy per test image, mean over seeds) {loss:.4f}" in md
    assert f"test loss (the same cross-entropy) {RESULTS['design']['test_loss']['mean']:.4f}" in md
