"""The commands agree with each other and with the files they write: headers that wrap at spaces (never inside a
word) at common widths, --json and --quiet where a command prints a result, one parameter count shape in every
--json, a batch size larger than the training images refused, and an experiment's directory named as such where a
run is wanted. Everything trains on scikit-learn's digits (well under a second a run)."""

from __future__ import annotations

import contextlib
import io
import json
from pathlib import Path

import pytest

import convlens.cli.experiment as experiment_cli
import convlens.cli.models as models_cli
import convlens.cli.tables as tables
from convlens.cli import main
from convlens.display import stdout_console

SPEC = ("name: ks\nmodel: cnn\ndataset: digits\nrecipe: fast\nrecipe_set: {epochs: 1}\n"
        "factor: {name: kernel_size, levels: [3, 5]}\nseeds: 2\n")


def run(capsys, *argv):
    code = main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def draw(monkeypatch, module, width: int, show) -> str:
    """What ``show`` prints through ``module.out`` on a console ``width`` columns wide (a pipe with COLUMNS set)."""
    console = stdout_console({"COLUMNS": str(width)}, file=io.StringIO())
    monkeypatch.setattr(module, "out", console)
    show()
    return console.file.getvalue()


def header_lines(text: str) -> list[list[list[str]]]:
    """Per table in ``text``, per column, the lines of its header cell (stripped, empty ones left out)."""
    found, block = [], []
    for line in [*text.splitlines(), ""]:
        if line.startswith("┃"):
            block.append(line[1:-1].split("┃"))
        elif block:
            found.append([[cells[i].strip() for cells in block if cells[i].strip()] for i in range(len(block[0]))])
            block = []
    return found


def assert_whole_header_words(text: str, vocabulary: set[str]) -> None:
    """Every word of every header line is a whole word of a header (or of its shorter form): 'test-set', never
    'test-se' over 't'."""
    tables_found = header_lines(text)
    assert tables_found
    for columns in tables_found:
        for column in columns:
            for line in column:
                assert set(line.split()) <= vocabulary, (line, column)


def assert_fits(text: str, width: int) -> None:
    """No value cut, and no table wider than the terminal."""
    assert "…" not in text
    assert max(len(line) for line in text.splitlines() if line[:1] in set("┏┃┡│└")) <= width


@pytest.fixture(scope="module")
def experiment(tmp_path_factory):
    """A 2 x 2 experiment on digits: its directory."""
    root = tmp_path_factory.mktemp("consistency")
    (root / "spec.yaml").write_text(SPEC)
    with contextlib.redirect_stdout(io.StringIO()):
        assert main(["experiment", "run", str(root / "spec.yaml"), "--out", str(root / "e"), "--quiet"]) == 0
    return root / "e"


def run_json(capsys, directory: Path) -> dict:
    """What 'experiment run --json' prints for the finished experiment in ``directory`` (nothing trains again)."""
    code, out, err = run(capsys, "experiment", "run", str(directory.parent / "spec.yaml"), "--out", str(directory),
                         "--json")
    assert code == 0, err
    return json.loads(out)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """Two seeds of an MLP and one CNN on digits, one epoch each."""
    root = tmp_path_factory.mktemp("runs")
    for name, model, seed in (("m0", "mlp", 0), ("m1", "mlp", 1), ("c0", "cnn", 0)):
        assert main(["train", "-m", model, "--dataset", "digits", "--epochs", "1", "--seed", str(seed), "--out",
                     str(root / name), "--quiet"]) == 0
    return root


def metrics_of(run_dir: Path) -> dict:
    return json.loads((run_dir / "metrics.json").read_text())


# 1. Headers wrap at spaces ----------------------------------------------------------------------------------

LEVEL_WORDS = set("level n test acc % (mean ± std) 95% CI test-set SE params train s ms/img".split())
TEST_WORDS = set("comparison n diff, pp [95% CI] p (Holm) verdict detectable, pp".split())


@pytest.mark.parametrize("width", [80, 100])
def test_experiment_tables_wrap_headers_at_spaces(experiment, monkeypatch, capsys, width):
    directory = experiment
    text = draw(monkeypatch, tables, width, lambda: main(["experiment", "table", str(directory)]))
    assert_fits(text, width)
    assert_whole_header_words(text, LEVEL_WORDS | TEST_WORDS)
    summary = json.loads((directory / "summary.json").read_text())
    for level in summary["levels"]:  # a number is on one line
        assert f"│ {level['params']:,} " in text
    text = draw(monkeypatch, tables, width, lambda: main(["experiment", "plan", str(directory / ".." / "spec.yaml"),
                                                          "--out", str(directory), "--effect", "5"]))
    assert_fits(text, width)
    assert_whole_header_words(text, set("comparison paired seeds spread of differences, pp seeds needed".split()))


@pytest.mark.parametrize("width", [80, 100])
def test_compare_wraps_headers_at_spaces(trained, monkeypatch, width):
    text = draw(monkeypatch, tables, width, lambda: main(["compare", *(str(trained / r) for r in ("m0", "m1", "c0"))]))
    assert_fits(text, width)
    assert_whole_header_words(text, set("model n test acc % (mean ± std) 95% CI per seed params train s".split()))
    for name in ("m0", "c0"):
        assert f"{metrics_of(trained / name)['params']['total']:,}" in text


@pytest.mark.parametrize("width", [60, 80, 100])
def test_models_and_experiment_lists_wrap_headers_at_spaces(monkeypatch, width):
    text = draw(monkeypatch, models_cli, width, lambda: main(["models", "list"]))
    assert_fits(text, width)
    assert_whole_header_words(text, set("name alias architecture layers params (Keras) reproduces write-up "
                                        "(../shared/seeds/)".split()))
    text = draw(monkeypatch, experiment_cli, width, lambda: main(["experiment", "list"]))
    assert_fits(text, width)
    assert_whole_header_words(text, set("name base model factors: levels seeds runs description".split()))


@pytest.mark.parametrize("width", [60, 80])
def test_models_show_cuts_no_number_and_no_layer_type(monkeypatch, capsys, width):
    """It was a plain rich table: '225,7…' and 'BatchNorma…' at these widths."""
    assert main(["models", "show", "cnn-32-64-128-bn", "--json"]) == 0
    layers = json.loads(capsys.readouterr().out)["layers"]
    text = draw(monkeypatch, models_cli, width, lambda: main(["models", "show", "cnn-32-64-128-bn"]))
    assert_fits(text, width)
    assert_whole_header_words(text, set("Layer Type Output Shape Param # MACs RF Jump".split()))
    cells = {cell.strip() for line in text.splitlines() if line.startswith("│") for cell in line.split("│")}
    assert {f"{layer['macs']:,}" for layer in layers} <= cells
    assert {f"{layer['params_trainable'] + layer['params_non_trainable']:,}" for layer in layers} <= cells
    assert "".join("".join(cell.split()) for line in text.splitlines() if line.startswith("│")
                   for cell in line.split("│")[2:3]).count("BatchNormalization") == 3


def test_a_header_word_breaks_only_after_its_punctuation():
    from convlens.cli.tables import wrapped_header
    assert wrapped_header("data.train_subset", 7) == "data.\ntrain_\nsubset"
    assert (wrapped_header("reproduces write-up (../shared/seeds/)", 10)
            == "reproduces\nwrite-up\n(../\nshared/\nseeds/)")  # ')' alone stays with the piece before it
    assert wrapped_header("test-set noise", 8) == "test-set\nnoise"  # fits: words whole, as rich wraps them


# 2. --json and --quiet ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("argv, flags", [
    (["data", "info"], ["--json"]), (["data", "fetch"], ["--json"]), (["models", "list"], ["--json"]),
    (["models", "show"], ["--json"]), (["train"], ["--json", "--quiet", "-q"]), (["evaluate"], ["--json"]),
    (["compare"], ["--json"]), (["experiment", "list"], ["--json"]),
    (["experiment", "run"], ["--json", "--quiet", "-q"]), (["experiment", "plan"], ["--json", "--quiet", "-q"]),
    (["experiment", "status"], ["--json"]), (["experiment", "table"], ["--json"]), (["study"], ["--quiet", "-q"]),
])
def test_commands_that_print_a_result_offer_json_and_quiet(capsys, argv, flags):
    code, out, _ = run(capsys, *argv, "--help")
    assert code == 0
    options = {word.rstrip(",") for line in out.splitlines() for word in line.split() if word.startswith("-")}
    assert set(flags) <= options


def test_experiment_run_json_is_the_table_json_and_the_runs_numbers(experiment, capsys):
    directory = experiment
    printed = run_json(capsys, directory)
    code, out, _ = run(capsys, "experiment", "table", str(directory), "--json")
    assert code == 0 and json.loads(out) == printed  # nothing but the JSON on stdout: it parsed
    for level in printed["levels"]:
        runs = [metrics_of(p) for p in sorted((directory / "runs" / level["label"]).glob("seed*"))]
        assert level["n"] == len(runs) == 2
        mean = sum(m["test_correct"] / m["n_test"] for m in runs) / len(runs)
        assert level["test_accuracy"]["mean"] == pytest.approx(mean, abs=1e-12)


def test_experiment_plan_quiet_prints_its_sentence_alone(experiment, capsys):
    directory = experiment
    argv = ["experiment", "plan", str(directory.parent / "spec.yaml"), "--out", str(directory), "--effect", "5"]
    code, full, _ = run(capsys, *argv)
    assert code == 0
    code, quiet, _ = run(capsys, *argv, "-q")
    assert code == 0 and quiet.count("\n") == 1 and quiet == full.splitlines()[-1] + "\n"
    code, out, _ = run(capsys, *argv, "--json")
    assert quiet.startswith(f"{json.loads(out)['seeds']} seeds per level (2 levels): about ")


def test_data_fetch_json_counts_as_data_info_does(capsys):
    code, out, _ = run(capsys, "data", "fetch", "--dataset", "digits", "--json")
    fetched = json.loads(out)
    code, out, _ = run(capsys, "data", "info", "--dataset", "digits", "--json")
    info = json.loads(out)
    assert fetched["train"]["n"] == info["train"]["n"] == sum(info["train_counts"])
    assert fetched["test"]["n"] == info["test"]["n"] == sum(info["test_counts"])
    assert fetched["source"] == info["source"] and fetched["checksums_verified"] is info["checksums_verified"]
    code, out, _ = run(capsys, "data", "fetch", "--dataset", "digits")
    assert f"{fetched['train']['n']:,} train + {fetched['test']['n']:,} test images" in out


def test_data_fetch_json_names_a_folder_dataset_as_data_info_does(tmp_path, capsys, monkeypatch):
    from PIL import Image
    for split in ("train", "test"):
        for name in ("a", "b"):
            (tmp_path / split / name).mkdir(parents=True)
            for i in range(3):
                Image.new("L", (8, 8), 40 * i).save(tmp_path / split / name / f"{i}.png")
    given = f"folder:{tmp_path.name}"  # relative, as typed: it was printed so, where data info resolves it
    monkeypatch.chdir(tmp_path.parent)
    fetched = json.loads(run(capsys, "data", "fetch", "--dataset", given, "--json")[1])
    info = json.loads(run(capsys, "data", "info", "--dataset", given, "--json")[1])
    assert fetched["dataset"] == info["dataset"] == f"folder:{tmp_path}"
    assert fetched["train"] == info["train"] == {"n": 6, "shape": [8, 8]} and fetched["test"] == info["test"]


# 3. A batch size larger than the training images -------------------------------------------------------------

def test_a_batch_size_larger_than_the_training_images_is_refused_naming_both(trained, tmp_path, capsys):
    n_train = json.loads((trained / "m0" / "config.json").read_text())["data"]["n_train"]  # what a run trained on
    code, out, err = run(capsys, "train", "-m", "mlp", "--dataset", "digits", "--batch-size", str(n_train + 1),
                         "--out", str(tmp_path / "big"))
    assert code == 2 and out == "" and err.count("\n") == 1
    assert err.startswith("convlens: error: --batch-size: ") and f"(got {n_train + 1})" in err
    assert f"give at most {n_train:,} " in err and not (tmp_path / "big").exists()
    import convlens
    from convlens.errors import UsageError
    with pytest.raises(UsageError, match=f"^batch_size: larger than the {n_train:,} images"):
        convlens.train("mlp", data="digits", batch_size=n_train + 1, out=tmp_path / "api")
    assert not (tmp_path / "api").exists()
    code, _, err = run(capsys, "train", "-m", "mlp", "--dataset", "digits", "--batch-size", str(n_train), "--epochs",
                       "1", "--out", str(tmp_path / "all"), "--quiet")
    assert code == 0, err
    assert json.loads((tmp_path / "all" / "config.json").read_text())["recipe"]["batch_size"] == n_train


def test_the_recipes_own_batch_size_still_trains_a_small_subset(tmp_path, capsys):
    """The recipe's 128 on 90 images is not the user's choice: each epoch is one batch of 90, as before."""
    code, _, err = run(capsys, "train", "-m", "mlp", "--dataset", "digits", "--train-subset", "100", "--epochs", "1",
                       "--out", str(tmp_path / "small"), "--quiet")
    assert code == 0, err
    config = json.loads((tmp_path / "small" / "config.json").read_text())
    assert config["data"]["n_train"] == 90 and config["recipe"]["batch_size"] == 128


# 4. One parameter count shape ---------------------------------------------------------------------------------

def test_every_json_counts_parameters_as_metrics_json_does(trained, experiment, capsys):
    runs = {name: trained / name for name in ("m0", "m1", "c0")}
    code, out, _ = run(capsys, "compare", *map(str, runs.values()), "--json")
    groups = json.loads(out)["groups"]
    assert [g["params"] for g in groups] == [metrics_of(runs["m0"])["params"], metrics_of(runs["c0"])["params"]]
    assert set(groups[0]["params"]) == {"trainable", "non_trainable", "total"}
    directory = experiment
    on_disk = json.loads((directory / "summary.json").read_text())
    code, out, _ = run(capsys, "experiment", "table", str(directory), "--json")
    for shown, level in zip(json.loads(out)["levels"], on_disk["levels"]):
        expected = metrics_of(directory / "runs" / level["label"] / "seed0")["params"]
        assert shown["params"] == expected
        assert level["params"] == expected["total"]  # the file keeps its int
    assert [lv["params"] for lv in run_json(capsys, directory)["levels"]] == [lv["params"] for lv in
                                                                              json.loads(out)["levels"]]
    code, out, _ = run(capsys, "train", "-m", "mlp", "--dataset", "digits", "--epochs", "1", "--out",
                       str(trained / "json"), "--json")
    assert json.loads(out)["params"] == metrics_of(trained / "json")["params"]


# Other defects a new user hit --------------------------------------------------------------------------------

@pytest.mark.parametrize("command, words", [("compare", "to compare its runs, name them"),
                                            ("evaluate", "to evaluate one of its runs, name it")])
def test_an_experiment_given_where_a_run_is_wanted_says_so(experiment, trained, capsys, command, words):
    directory = experiment
    argv = [command, str(trained / "m0"), str(directory)] if command == "compare" else [command, str(directory)]
    code, _, err = run(capsys, *argv)
    assert code == 2 and err == (f"convlens: error: {directory} is an experiment, not a run: 'convlens experiment "
                                 f"table {directory}' shows its statistics; {words} ({directory / 'runs'}/LEVEL/"
                                 "seedN)\n")


def test_experiment_status_keeps_a_long_level_and_pending_whole(tmp_path, monkeypatch):
    """It was a plain rich table: at 80 columns both levels read 'recipe.augment=…', the same."""
    labels = [f"recipe.augment=shift:2,rotate:10,erase:0.25 dropout={d}" for d in (0.1, 0.2)]
    spec = {"name": "x", "model": "cnn", "factor": {"name": "dropout", "levels": [0.1, 0.2]}, "seeds": 6}
    (tmp_path / "experiment.json").write_text(json.dumps({"spec": spec, "reference": labels[0], "levels": [
        {"label": label, "values": {}, "config": {"model": "cnn", "recipe": {"name": "fast"}}} for label in labels]}))
    text = draw(monkeypatch, experiment_cli, 80, lambda: main(["experiment", "status", str(tmp_path)]))
    assert_fits(text, 80)
    rows = [line.split("│")[1:-1] for line in text.splitlines() if line.startswith("│")]
    assert "".join(row[0].strip() for row in rows) == "".join(labels).replace(" ", "")
    assert [cell.strip() for cell in rows[0][1:]] == ["pending"] * 6
