"""What the commands print, read at the widths users have: every label, name and number whole (labels may fold
over lines, a number never), and the sentences under the tables. Tables are drawn from small hand-made records,
never by training."""

from __future__ import annotations

import io
import json
import math

import pytest

import convlens.cli.experiment as experiment_cli
import convlens.cli.models as models_cli
import convlens.cli.tables as tables
from convlens.cli import main
from convlens.display import PIPED_WIDTH, piped_width, stdout_console

MLP, CNN = "model=mlp-128-64", "model=cnn-32-64-128"
LOCALITY = [f"{MLP} pixels=original", f"{MLP} pixels=permuted", f"{CNN} pixels=original", f"{CNN} pixels=permuted"]


def draw(monkeypatch, module, width: int, show) -> str:
    """What ``show`` prints through ``module.out`` on a console of ``width`` columns, as a pipe with COLUMNS set
    gets it (soft wrap: a line too long for the width would come back too long, not cut)."""
    console = stdout_console({"COLUMNS": str(width)}, file=io.StringIO())
    monkeypatch.setattr(module, "out", console)
    show()
    return console.file.getvalue()


def body_columns(text: str) -> list[list[list[str]]]:
    """Per table in ``text``, per column, the lines of its body cells (stripped, empty ones left out)."""
    found, block = [], []
    for line in [*text.splitlines(), ""]:
        if line.startswith("│"):
            block.append(line.strip()[1:-1].split("│"))
        elif block:
            found.append([[cells[i].strip() for cells in block if cells[i].strip()] for i in range(len(block[0]))])
            block = []
    return found


def unfolded(column: list[str]) -> str:
    """A column's text with its line breaks and spaces gone: a label folded or wrapped over lines reads whole."""
    return "".join("".join(line.split()) for line in column)


def assert_fits(text: str, width: int) -> None:
    """No value cut, and the tables no wider than the terminal (the sentences under them are left to the terminal
    to wrap: soft wrap)."""
    assert "…" not in text
    assert max(len(line) for line in text.splitlines() if line[:1] in set("┏┃┡│└")) == width


def level(label: str, mean: float, params: int) -> dict:
    return {"label": label, "n": 3, "failed": [], "pending": 0, "train_seconds": {"mean": 12.3},
            "inference_ms_per_image": {"mean": 0.012}, "sampling_noise": 0.0045, "params": params,
            "test_accuracy": {"n": 3, "mean": mean, "std": 0.0032, "ci95": [mean - 0.01, mean + 0.01]}}


def test_experiment_table_at_80_columns_shows_every_level_and_interval_whole(monkeypatch):
    summary = {"experiment": "locality", "recipe": {"name": "keras"}, "seeds": 3, "reference": LOCALITY[0],
               "levels": [level(label, 0.6747 + i / 10, p) for i, (label, p) in
                          enumerate(zip(LOCALITY, [109_386, 109_386, 241_546, 241_546]))],
               "comparisons": [{"label": f"{label} vs {LOCALITY[0]}", "n": 3, "diff": 0.01, "ci95": [-0.002, 0.02],
                                "p_holm": 0.03, "p_value": 0.01, "verdict": "no significant difference (p=0.030)",
                                "mde": 0.012} for label in LOCALITY[1:]],
               "conclusions": [], "warnings": []}
    text = draw(monkeypatch, tables, 80, lambda: tables.print_experiment_table(summary))
    assert_fits(text, 80)
    (label, n, mean_std, ci, noise, params, secs, ms), comparisons = body_columns(text)
    assert unfolded(label) == ("model=mlp-128-64pixels=original(reference)model=mlp-128-64pixels=permuted"
                               "model=cnn-32-64-128pixels=originalmodel=cnn-32-64-128pixels=permuted")
    assert ci == ["66.47..68.47", "76.47..78.47", "86.47..88.47", "96.47..98.47"]  # each on one line
    assert params == ["109,386", "109,386", "241,546", "241,546"] and secs == ["12.3"] * 4 and ms == ["0.012"] * 4
    assert {"67.47", "77.47", "87.47", "97.47", "0.32"} <= {word for line in mean_std for word in line.split()}
    assert unfolded(comparisons[0]) == "".join(f"{lbl}vs{LOCALITY[0]}".replace(" ", "") for lbl in LOCALITY[1:])
    assert {"+1.00", "[-0.20,", "+2.00]"} <= {word for line in comparisons[2] for word in line.split()}
    assert unfolded(comparisons[4]) == "nosignificantdifference" * 3  # the verdict, its words whole
    assert "significant" in comparisons[4] and "difference" in comparisons[4]


def test_compare_of_five_runs_at_80_columns_cuts_no_column(monkeypatch):
    models = ["mlp-128-64", "cnn-32-64-128", "mlp-256-128", "cnn-16-32", "lcn-32-64-128"]
    datasets = ["digits", "fashion-mnist", "digits", "mnist", "digits"]
    groups = [{"model": m, "settings": {"data.dataset": d}, "n": 1, "failed": [], "train_seconds": {"mean": 123.4},
               "test_accuracy": {"n": 1, "mean": 0.5347 + i / 100, "std": None,
                                 "ci95": [0.3347 + i / 100, 0.7347 + i / 100]},
               "per_seed": {"0": 0.5347 + i / 100}, "params": [17_410, 7_643_914][i % 2]}
              for i, (m, d) in enumerate(zip(models, datasets))]
    comparison = {"differs": ["data.dataset"], "groups": groups, "timing_note": None}
    text = draw(monkeypatch, tables, 80, lambda: tables.print_comparison(comparison))
    assert_fits(text, 80)
    ((model, dataset, n, mean, ci, per_seed, params, secs),) = body_columns(text)
    assert unfolded(model) == "".join(models) and unfolded(dataset) == "".join(datasets)
    assert ci == ["33.47..73.47", "34.47..74.47", "35.47..75.47", "36.47..76.47", "37.47..77.47"]
    assert params == ["17,410", "7,643,914"] * 2 + ["17,410"] and secs == ["123.4"] * 5
    assert mean == ["53.47", "54.47", "55.47", "56.47", "57.47"]
    assert unfolded(per_seed) == "0:53.470:54.470:55.470:56.470:57.47"


def test_a_numeric_setting_of_compare_stays_whole_where_a_named_one_folds(monkeypatch):
    groups = [{"model": m, "settings": {"data.dataset": d, "data.train_subset": subset}, "n": 1, "failed": [],
               "train_seconds": {"mean": 9.5}, "test_accuracy": {"n": 1, "mean": 0.5, "std": None, "ci95": [0.4, 0.6]},
               "per_seed": {"0": 0.5}, "params": 109_386}
              for m, d, subset in [("mlp-128-64", "fashion-mnist", 60000), ("cnn-32-64-128", "digits", None)]]
    comparison = {"differs": ["data.dataset", "data.train_subset"], "groups": groups, "timing_note": None}
    text = draw(monkeypatch, tables, 80, lambda: tables.print_comparison(comparison))
    assert_fits(text, 80)
    ((model, dataset, subset, *_),) = body_columns(text)
    assert subset == ["60000", "-"] and unfolded(dataset) == "fashion-mnistdigits"
    assert unfolded(model) == "mlp-128-64cnn-32-64-128"


def plan(seeds: int | None, seconds_needed: list, **timing) -> dict:
    labels = [f"{label} vs {LOCALITY[0]}" for label in LOCALITY[1:]]
    return {"experiment": "locality", "effect": 0.000001, "power": 0.8, "alpha": 0.05 / 3, "family": 3,
            "comparisons": [{"label": label, "n": 3, "std_diff": 0.0123, "seeds_needed": needed,
                             "reason": None if needed else "more than 10,000 seeds"}
                            for label, needed in zip(labels, seconds_needed)],
            "seeds": seeds, "levels": 4, "untimed_levels": [],
            "timing": {"comparable": True, "conditions": [{"device": "cpu", "threads": 4}]}, **timing}


def test_plan_of_an_effect_too_small_for_any_seed_count_says_so(monkeypatch):
    text = draw(monkeypatch, tables, 80, lambda: tables.print_plan(plan(None, [None] * 3)))
    assert_fits(text, 80)
    ((label, n, spread, needed),) = body_columns(text)
    assert unfolded(label) == "".join(f"{lbl}vs{LOCALITY[0]}".replace(" ", "") for lbl in LOCALITY[1:])
    assert spread == ["1.23"] * 3 and unfolded(needed) == "-(morethan10,000seeds)" * 3
    sentence = " ".join(text.split("┘")[-1].split())
    assert "no spread" not in sentence
    assert sentence.startswith("An effect of 0.00 pp is too small for this spread: no comparison detects it with "
                               "80% power with up to 10,000 seeds per level.")


def test_plan_times_a_short_pilot_in_seconds_and_a_long_one_in_minutes(monkeypatch):
    short = plan(12, [12, 3, 5], total_seconds=12 * 0.0432, seconds_per_seed=0.0432, additional_seconds=9 * 0.0432)
    text = " ".join(draw(monkeypatch, tables, 80, lambda: tables.print_plan(short)).split())
    assert ("12 seeds per level (4 levels): about 0.52 s of training (0.043 s per seed for all levels, measured on "
            "cpu, 4 threads); with the runs already finished, 0.39 s more.") in text
    long = plan(30, [30, 3, 5], total_seconds=30 * 25.0, seconds_per_seed=25.0, additional_seconds=27 * 25.0)
    text = " ".join(draw(monkeypatch, tables, 80, lambda: tables.print_plan(long)).split())
    assert "about 12.5 min of training (25 s per seed" in text and "finished, 11.2 min more." in text


def test_models_list_at_60_columns_keeps_each_preset_name_on_one_line(monkeypatch):
    from convlens.models.registry import list_models
    text = draw(monkeypatch, models_cli, 60, lambda: main(["models", "list"]))
    ((name, alias, architecture, params, reproduces),) = body_columns(text)
    assert_fits(text, 60)
    names = [m["name"] for m in list_models()]
    assert "cnn-32-64-128-bn" in names and "mlp-256-128" in names
    assert name == names  # whole, one line each
    assert params == [f"{m['params']['total']:,}" for m in list_models()] and "7,643,914" in params
    assert "(--setdropout=0.0)" in unfolded(reproduces)


@pytest.mark.parametrize("columns, width", [("60", 60), ("  100 ", 100), ("0", PIPED_WIDTH), ("-5", PIPED_WIDTH),
                                            ("wide", PIPED_WIDTH), (None, PIPED_WIDTH)])
def test_piped_output_is_as_wide_as_columns_says(columns, width):
    environ = {} if columns is None else {"COLUMNS": columns}
    assert piped_width(environ) == width
    assert stdout_console(environ, file=io.StringIO()).width == width  # a StringIO is no terminal, as a pipe


def test_experiment_list_counts_both_factors_of_a_grid(capsys):
    from convlens.experiments.builtin import BUILTIN_EXPERIMENTS
    assert main(["experiment", "list", "--json"]) == 0
    captured = capsys.readouterr()
    listed = {e["name"]: e for e in json.loads(captured.out)}
    assert captured.err == "" and list(listed) == list(BUILTIN_EXPERIMENTS)
    for name, spec in BUILTIN_EXPERIMENTS.items():
        factors = [spec.factor] + ([spec.second_factor] if spec.second_factor else [])
        assert listed[name]["runs"] == math.prod(len(f.levels) for f in factors) * spec.seeds
        assert ([(f["name"], f["levels"]) for f in listed[name]["factors"]]
                == [(f.name, list(f.levels)) for f in factors])
        assert listed[name]["seeds"] == spec.seeds and listed[name]["description"] == spec.description
    assert listed["locality"]["runs"] == 12 and listed["weight-sharing"]["runs"] == 18  # 2 x 2 and 3 x 2, 3 seeds
    assert main(["experiment", "list"]) == 0
    text = capsys.readouterr().out
    lines = text.splitlines()
    at = next(i for i, line in enumerate(lines) if line.startswith("│ locality "))
    first, second = ([cell.strip() for cell in line.split("│")[1:-1]] for line in lines[at:at + 2])
    assert first[:5] == ["locality", "mlp-128-64", "model: mlp-128-64, cnn-32-64-128", "3", "12"]
    assert second[2] == "pixels: original, permuted" and "│ recipe.augment: none, shift:2 " in text


def test_experiment_list_at_80_columns_keeps_names_and_counts_whole(monkeypatch):
    text = draw(monkeypatch, experiment_cli, 80, lambda: main(["experiment", "list"]))
    assert_fits(text, 80)
    ((name, model, factors, seeds, runs, description),) = body_columns(text)
    assert name == ["kernel-size", "depth", "filters", "pooling", "batch-norm", "cnn-vs-mlp", "locality",
                    "weight-sharing", "augmentation"]
    assert runs == ["9", "9", "9", "9", "6", "6", "12", "18", "12"] and seeds == ["3"] * 9


@pytest.mark.parametrize("argv, message", [
    (["experiment", "plan", "kernel-size", "--effect", "1", "--power", "1"],
     "--power must be above 0.05 and below 1 (both excluded), got 1.0"),
    (["experiment", "plan", "kernel-size", "--effect", "1", "--power", "0.05"], "above 0.05 and below 1"),
])
def test_plan_says_the_power_bounds_are_excluded(capsys, argv, message):
    assert main(argv) == 2
    assert message in capsys.readouterr().err


@pytest.mark.parametrize("command", ["table", "status"])
def test_an_experiment_directory_that_is_missing_or_a_file_is_named_as_such(tmp_path, capsys, command):
    missing, file = tmp_path / "nope", tmp_path / "summary.json"
    file.write_text("{}")
    assert main(["experiment", command, str(missing)]) == 2
    err = capsys.readouterr().err
    assert f"{missing} does not exist; give an experiment directory" in err and "experiment.json" not in err
    assert main(["experiment", command, str(file)]) == 2
    err = capsys.readouterr().err
    assert f"{file} is a file, where a directory is needed" in err and "experiment.json" not in err
    assert len(err.splitlines()) == 1


def test_models_show_titles_a_changed_preset_with_its_changes(capsys):
    assert main(["models", "show", "cnn", "--set", "kernel_size=5", "--set", "depth=2"]) == 0
    text = capsys.readouterr().out
    assert 'Model: "cnn-32-64-128 (kernel_size=5, depth=2)"' in text
    # two 5x5 blocks of 32 and 64 filters on 28x28 -> 7x7x64 -> dense 128 -> 10
    total = (5 * 5 * 32 + 32) + (5 * 5 * 32 * 64 + 64) + (7 * 7 * 64 * 128 + 128) + (128 * 10 + 10)
    assert f"Total params: {total:,}" in text
    assert main(["models", "show", "cnn", "--set", "kernel_size=5", "--set", "depth=2", "--json"]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown["name"] == "cnn-32-64-128" and shown["overrides"] == {"kernel_size": "5", "depth": "2"}
    assert shown["params"]["total"] == total
    assert main(["models", "show", "cnn", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["overrides"] == {}
    assert main(["models", "show", "cnn"]) == 0
    assert 'Model: "cnn-32-64-128"  (' in capsys.readouterr().out
