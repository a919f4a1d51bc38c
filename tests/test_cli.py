"""The convlens command end to end: output users read, JSON they parse, one-line errors with exit 2."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from convlens.cli import main
from tests.conftest import wait_for_a_finished_run, write_tiny_dataset


def run(capsys, *argv):
    code = main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_version_and_short_help(capsys):
    from importlib.metadata import version
    assert main(["--version"]) == 0
    assert capsys.readouterr().out.strip() == f"convlens {version('convlens')}"  # the installed package's metadata
    assert main(["-h"]) == 0 and "Usage: convlens [OPTIONS] COMMAND" in capsys.readouterr().out
    assert main(["train", "-h"]) == 0 and "Usage: convlens train [OPTIONS]" in capsys.readouterr().out


@pytest.mark.parametrize(("argv", "expected"), [
    (["train", "-m", "cnn", "--dataset", "digits", "--train-subset", "-5"],
     "invalid option: --train-subset: Input should be greater than or equal to 1 (got -5)"),
    (["train", "-m", "cnn", "--batch-size=0"],  # the --flag=value spelling too
     "invalid training option: --batch-size: Input should be greater than or equal to 1 (got 0)"),
    (["experiment", "run", "kernel-size", "--train-subset", "0"],
     "experiment kernel-size: --train-subset: Input should be greater than or equal to 1 (got 0)"),
])
def test_a_bad_option_is_named_as_typed(capsys, tmp_path, argv, expected):
    """The CLI user typed --train-subset, so the message says so (the library's train_subset is what the Python API
    and a YAML spec spell)."""
    code, _, err = run(capsys, *argv, "--out", str(tmp_path / "o"))
    assert code == 2 and err == f"convlens: error: {expected}\n"


def test_a_field_written_in_a_spec_keeps_its_spec_name(capsys, tmp_path):
    spec = tmp_path / "s.yaml"
    spec.write_text("name: s\nmodel: cnn\ntrain_subset: 0\nfactor: {name: kernel_size, levels: [3, 5]}\n")
    for typed in ([], ["--train-subset", "100"]):  # the spec's 0 is the mistake, not the 100 typed
        code, _, err = run(capsys, "experiment", "run", str(spec), *typed, "--out", str(tmp_path / "o"))
        assert code == 2 and err == f"convlens: error: {spec}: train_subset: Input should be greater than or equal to " \
                                    "1 (got 0)\n"
    from convlens.cli import _in_the_users_words  # a file named like an option: its name before the colon stays
    message = "json: unsupported file type; give .png, .jpg/.jpeg, .npy or .json files"
    assert _in_the_users_words(message, ["predict", "model", "json", "--json"]) == message
    assert _in_the_users_words("lr: Input should be greater than 0 (got -1.0)", ["train", "--lr", "-1"]) == \
        "--lr: Input should be greater than 0 (got -1.0)"  # -1 typed, -1.0 quoted: the same number


def test_models_list_and_show_json(capsys):
    code, out, _ = run(capsys, "models", "list", "--json")
    rows = {r["name"]: r for r in json.loads(out)}
    assert code == 0 and rows["cnn-32-64-128"]["aliases"] == ["cnn"] and rows["mlp-128-64"]["aliases"] == ["mlp"]
    assert rows["cnn-32-64-128"]["params"]["total"] == 241_546
    assert [r["write_up"] for r in rows["mlp-128-64"]["reproduces"]] == ["000", "001", "004"]
    code, out, _ = run(capsys, "models", "show", "cnn", "--json")
    summary = json.loads(out)
    assert code == 0 and summary["name"] == "cnn-32-64-128"
    assert summary["params"] == {"trainable": 241_546, "non_trainable": 0, "total": 241_546}
    assert summary["macs"] == 7_599_872 and len(summary["layers"]) == 10  # as Keras: 3 x (conv, pool), flatten, dense, dropout, dense
    code, out, _ = run(capsys, "models", "show", "cnn-32-64-128", "--set", "kernel_size=5", "--json")
    assert json.loads(out)["params"]["total"] == 405_898


def test_models_list_names_architectures_with_their_provenance(capsys):
    code, out, _ = run(capsys, "models", "list")
    assert code == 0
    row = next(line for line in out.splitlines() if "mlp-128-64" in line)
    assert "mlp" in row and "109,386" in row and "000; 001 (--set dropout=0.0); 004 (--set dropout=0.3)" in row
    assert "seed0" not in out


def test_models_show_prints_a_keras_like_table(capsys):
    code, out, _ = run(capsys, "models", "show", "cnn-32-64-128-bn")
    assert code == 0
    assert "Total params: 250,058" in out and "Trainable params: 249,610" in out
    assert "Non-trainable params: 448" in out
    assert "(None, 3, 3, 128)" in out and "18x18" in out


def test_data_info_reports_source_and_balance(capsys, fashion):
    code, out, _ = run(capsys, "data", "info", "--json")
    info = json.loads(out)
    assert code == 0 and info["train_counts"] == [6_000] * 10 and info["source"]["origin"] in {"debian", "cache",
                                                                                               "explicit"}
    assert info["checksums_verified"] is True
    code, out, _ = run(capsys, "data", "info")
    assert code == 0 and out.splitlines()[0].endswith(", checksums verified")
    code, out, _ = run(capsys, "data", "info", "--dataset", "digits")  # scikit-learn's copy: nothing to verify against
    assert code == 0 and out.splitlines()[0].endswith(", read and checked (not verified against published checksums)")


@pytest.mark.parametrize("argv, message", [
    (["models", "show", "nope"], "unknown model 'nope'"),
    (["models", "show", "cnn-32-64-128", "--set", "kernel_size"], "not of the form key=value"),
    (["models", "show", "cnn-32-64-128", "--set", "kernel_size=-3"], "kernel_size: Input should be greater"),
    (["train", "--model", "cnn-32-64-128", "--bogus"], "No such option: --bogus"),
    (["train"], "Missing option '--model'"),
    (["train", "--model", "cnn-32-64-128", "--epochs", "zero"], "Invalid value for '--epochs'"),
    (["train", "--model", "cnn-32-64-128", "--recipe", "slow"], "unknown recipe 'slow'; valid recipes: keras, fast"),
    (["train", "--model", "cnn", "--recipe", "seed"], "unknown recipe 'seed'; valid recipes: keras, fast"),
    (["train", "--model", "seed000-cnn"], "unknown model 'seed000-cnn'; valid models: cnn, mlp, mlp-128-64"),
    (["train", "--model", "cnn-32-64-128", "--device", "tpu"], "device: must be auto, cpu, cuda or cuda:N (got 'tpu')"),
    (["train", "--model", "cnn-32-64-128", "--optimizer", "rmsprop"], "optimizer: Input should be"),
    (["evaluate", "/nonexistent/run"], "/nonexistent/run does not exist"),
    (["compare", "/nonexistent/run"], "/nonexistent/run does not exist"),
])
def test_usage_errors_exit_2_with_one_line(capsys, argv, message):
    code, out, err = run(capsys, *argv)
    assert code == 2
    assert err.count("\n") == 1 and err.startswith("convlens: error: ") and message in err
    assert "Traceback" not in err + out


def test_corrupt_data_dir_fails_with_one_line_naming_the_file(capsys, tmp_path):
    write_tiny_dataset(tmp_path)  # valid IDX files, but not Fashion-MNIST's shapes
    code, _, err = run(capsys, "data", "info", "--data-dir", str(tmp_path))
    assert code == 1 and err.count("\n") == 1
    assert "train-images-idx3-ubyte.gz: shape (60, 28, 28) in the header, expected (60000, 28, 28)" in err


def test_train_and_evaluate_through_the_cli(capsys, tmp_path, fashion):
    run_dir = tmp_path / "mlp"
    code, out, err = run(capsys, "train", "--model", "mlp", "--recipe", "keras", "--epochs", "1",
                         "--train-subset", "3000", "--test-subset", "1000", "--seed", "2", "--out", str(run_dir))
    assert code == 0, err
    assert "epoch 1: loss" in out and "test accuracy" in out  # plain lines when not a terminal
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["test_accuracy"] > 0.5
    code, out, _ = run(capsys, "evaluate", str(run_dir), "--json")
    evaluated = json.loads(out)
    assert code == 0 and evaluated["test_accuracy"] == pytest.approx(metrics["test_accuracy"], abs=1e-9)
    # the classification report equals scikit-learn's on the run's own stored predictions
    from sklearn.metrics import classification_report
    with np.load(run_dir / "predictions.npz") as stored:
        expected = classification_report(stored["label"], stored["predicted"], labels=list(range(10)),
                                          target_names=fashion.class_names, output_dict=True, zero_division=0)
    report = evaluated["classification_report"]
    for name in fashion.class_names:
        for key, theirs in (("precision", "precision"), ("recall", "recall"), ("f1", "f1-score"), ("support", "support")):
            assert report["classes"][name][key] == pytest.approx(expected[name][theirs], abs=1e-12)
    assert report["macro"]["f1"] == pytest.approx(expected["macro avg"]["f1-score"], abs=1e-12)
    assert report["classes"][name]["recall"] == pytest.approx(metrics["per_class_accuracy"][-1], abs=1e-12)
    config = json.loads((run_dir / "config.json").read_text())
    assert config["model"]["name"] == "mlp-128-64" and config["recipe"]["name"] == "keras"
    code, out, _ = run(capsys, "train", "--model", "mlp-128-64", "--epochs", "1", "--train-subset", "500",
                       "--test-subset", "100", "--out", str(tmp_path / "q"), "--quiet")
    assert code == 0 and out.count("\n") == 1 and "epoch 1:" not in out  # --quiet: only the result line


def test_installed_entry_point_prints_no_traceback():
    exe = Path(sys.executable).parent / "convlens"
    proc = subprocess.run([str(exe), "models", "show", "cnn-32-64-128", "--set", "depth=0"],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    assert proc.stderr.strip().startswith("convlens: error: invalid override") and "Traceback" not in proc.stderr


@pytest.mark.parametrize("argv", [["study", "--out", "{file}", "--quiet"],
                                  ["experiment", "run", "kernel-size", "--out", "{file}", "--quiet"],
                                  ["export", "{run}", "--out", "{file}"],
                                  ["train", "-m", "mlp", "--dataset", "digits", "--out", "{file}/run"]])
def test_an_output_path_that_is_a_file_is_one_line_not_a_traceback(capsys, tmp_path, argv, fashion):
    existing = tmp_path / "notes.txt"
    existing.write_text("keep me")
    run = tmp_path / "run"
    if "{run}" in argv:
        assert main(["train", "-m", "mlp", "--dataset", "digits", "--epochs", "1", "--out", str(run), "--quiet"]) == 0
    assert main([a.format(file=existing, run=run) for a in argv]) == 2
    err = capsys.readouterr().err.strip()
    assert err == f"convlens: error: {existing} is a file, where a directory is needed; choose another --out"
    assert existing.read_text() == "keep me"


def test_text_in_brackets_prints_as_written_on_a_terminal_too(tmp_path):
    # FORCE_COLOR makes rich treat the pipe as a terminal, where markup would swallow "[data]".
    store = tmp_path / "exp[fast]"
    store.mkdir()
    spec = {"name": "x", "model": "mlp", "factor": {"name": "dropout", "levels": [0.1, 0.2]}, "seeds": 1}
    level = {"label": "[data] level", "values": {}, "config": {"model": "mlp", "recipe": {"name": "fast"}}}
    (store / "experiment.json").write_text(json.dumps({"spec": spec, "reference": "[data] level", "levels": [level]}))
    exe = Path(sys.executable).parent / "convlens"
    env = {**os.environ, "FORCE_COLOR": "1", "COLUMNS": "200"}
    shown = subprocess.run([str(exe), "experiment", "status", str(store)], capture_output=True, text=True, env=env,
                           timeout=120)
    assert shown.returncode == 0 and "[data] level" in shown.stdout and "exp[fast]" in shown.stdout
    failed = subprocess.run([str(exe), "experiment", "run", "[data]"], capture_output=True, text=True, env=env,
                            timeout=120)
    assert failed.returncode == 2 and "'[data]' is neither a built-in experiment" in failed.stderr


@pytest.mark.parametrize("number, workers", [("SIGINT", 1), ("SIGINT", 2), ("SIGTERM", 2)])
def test_ctrl_c_or_sigterm_exits_with_one_line_and_keeps_the_finished_runs(tmp_path, capsys, number, workers):
    """SIGINT in the middle of an experiment: exit 130 (not 0, which a script would read as success) and one line
    on stderr; the finished runs are kept, and the same command trains only what is left
    (tests/experiments/test_sweep.py resumes after a kill -9 in detail). With worker processes, Ctrl-C (SIGINT to
    the whole process group, as a terminal sends it) used to train every queued run before exiting. SIGTERM to
    the command alone (kill, docker stop) ended it silently, exit -15; now as Ctrl-C does, with exit 143."""
    import signal

    import yaml
    spec = tmp_path / "s.yaml"
    spec.write_text(yaml.safe_dump(dict(name="ctrl-c", model="mlp-128-64", dataset="digits", recipe="fast",
                                        recipe_set={"epochs": 3}, factor=dict(name="recipe.lr", levels=[1e-3, 2e-3]),
                                        seeds=6)))
    out = tmp_path / "e"
    argv = [str(Path(sys.executable).parent / "convlens"), "experiment", "run", str(spec), "--out", str(out)]
    process = subprocess.Popen([*argv, "--workers", str(workers)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                               text=True, start_new_session=True)
    wait_for_a_finished_run(out)
    at_signal = len(list(out.glob("runs/*/seed*/metrics.json")))
    if number == "SIGINT":
        os.killpg(process.pid, signal.SIGINT)  # what Ctrl-C sends: to the command and its workers
    else:
        os.kill(process.pid, signal.SIGTERM)  # to the command alone: its workers are stopped by it
    _, err = process.communicate(timeout=120)
    # no queued run starts after the signal (one a worker was finishing may land as the signal does)
    assert len(list(out.glob("runs/*/seed*/metrics.json"))) <= at_signal + workers
    assert process.returncode == (130 if number == "SIGINT" else 143)
    stopped = "interrupted" if number == "SIGINT" else "stopped by SIGTERM"
    assert err.strip().splitlines()[-1] == (f"convlens: {stopped}; finished runs are kept, and the same command "
                                            "resumes where it stopped")
    assert "Traceback" not in err
    assert not [p for p in out.rglob("*") if p.name.endswith(".tmp")]  # no temporary file left behind
    finished = len(list(out.glob("runs/*/seed*/metrics.json")))
    assert 1 <= finished < 12, "the signal should land after the first run and before the last"
    if workers == 1:  # the same command resumes; after the other signals the store reads the same (seconds less)
        again = subprocess.run(argv, capture_output=True, text=True, timeout=300)
        assert again.returncode == 0, again.stderr
        assert f"{finished} finished, 0 failed, {12 - finished} to run" in again.stdout
    else:
        assert main(["experiment", "status", str(out)]) == 0
        assert f"{finished} done, 0 failed, {12 - finished} pending" in capsys.readouterr().out


@pytest.mark.parametrize("argv, line", [
    (["study", "--quick"], "convlens: interrupted; finished runs are kept, and the same command resumes where it "
                           "stopped"),
    (["experiment", "plan", "kernel-size", "--effect", "1"], "convlens: interrupted; finished runs are kept"),
    (["serve", "runs/study/model"], "convlens: the server stopped"),  # uvicorn ends on Ctrl-C by raising it again
    (["sagemaker", "train", "--role-arn", "x"], "convlens: interrupted; a job or endpoint already started on SageMaker "
                                                "goes on there"),
    (["train", "-m", "cnn"], "convlens: interrupted"),
])
def test_what_ctrl_c_says_fits_the_command(capsys, monkeypatch, argv, line):
    """The runs sentence only where runs resume; a server stopped by Ctrl-C is said so (exit 130 all the same)."""
    import convlens.cli as cli

    class Interrupted:
        def main(self, **kwargs):
            return 130  # what typer returns for KeyboardInterrupt when not standalone
    monkeypatch.setattr(cli.typer.main, "get_command", lambda app: Interrupted())
    assert cli.main(argv) == 130
    assert capsys.readouterr().err.strip().startswith(line)


def test_a_study_whose_notebook_kernels_were_stopped_by_sigterm_exits_143_with_one_line(capsys, monkeypatch):
    """The report notebook's stage takes SIGTERM itself (convlens.report.notebook raises SystemExit(143) once its
    kernels are stopped); main says so in one line, as for SIGTERM anywhere else in the study."""
    import convlens.cli as cli

    class StoppedInTheNotebook:
        def main(self, **kwargs):
            raise SystemExit(143)
    monkeypatch.setattr(cli.typer.main, "get_command", lambda app: StoppedInTheNotebook())
    assert cli.main(["study", "--quick"]) == 143
    assert capsys.readouterr().err.strip() == ("convlens: stopped by SIGTERM; finished runs are kept, and the same "
                                               "command resumes where it stopped")


def test_an_address_port_outside_1_to_65535_is_a_usage_error(tmp_path, capsys):
    assert main(["experiment", "run", "kernel-size", "--out", str(tmp_path / "e"), "--backend", "ray", "--address",
                 "127.0.0.1:99999"]) == 2
    assert capsys.readouterr().err.strip() == ("convlens: error: --address 127.0.0.1:99999: the port must be between 1 "
                                               "and 65535")
    assert not (tmp_path / "e").exists()


def test_the_lines_that_name_a_run_name_its_settings_too(tmp_path, capsys):
    """'cnn-32-64-128 (recipe fast, seed 0)' for a run trained with --set dense=32 read as the preset as it is."""
    import convlens
    out = tmp_path / "run"
    assert main(["train", "-m", "mlp", "--dataset", "digits", "--epochs", "1", "--set", "dense=32", "--set",
                 "dropout=0.1", "--out", str(out), "--quiet"]) == 0
    assert capsys.readouterr().out.startswith("mlp-128-64 (dense=32, dropout=0.1), recipe fast, seed 0: test accuracy ")
    assert main(["evaluate", str(out)]) == 0
    assert capsys.readouterr().out.startswith(f"mlp-128-64 (dense=32, dropout=0.1), seed 0, from {out}: test accuracy ")
    assert repr(convlens.load_run(out)).startswith("Run(mlp-128-64 (dense=32, dropout=0.1), seed 0: test accuracy ")
    assert main(["train", "-m", "mlp", "--dataset", "digits", "--epochs", "1", "--out", str(tmp_path / "plain"),
                 "--quiet"]) == 0
    assert capsys.readouterr().out.startswith("mlp-128-64, recipe fast, seed 0: ")  # the preset as it is
