"""The convlens command end to end: output users read, JSON they parse, one-line errors with exit 2."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from convlens.cli import main
from tests.conftest import write_tiny_dataset


def run(capsys, *argv):
    code = main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_models_list_and_show_json(capsys):
    code, out, _ = run(capsys, "models", "list", "--json")
    assert code == 0 and "seed000-cnn" in json.loads(out)
    code, out, _ = run(capsys, "models", "show", "seed000-cnn", "--json")
    summary = json.loads(out)
    assert code == 0 and summary["name"] == "seed000-cnn"
    assert summary["params"] == {"trainable": 241_546, "non_trainable": 0, "total": 241_546}
    assert summary["macs"] == 7_599_872 and len(summary["layers"]) == 10  # as Keras: 3 x (conv, pool), flatten, dense, dropout, dense
    code, out, _ = run(capsys, "models", "show", "seed000-cnn", "--set", "kernel_size=5", "--json")
    assert json.loads(out)["params"]["total"] == 405_898


def test_models_show_prints_a_keras_like_table(capsys):
    code, out, _ = run(capsys, "models", "show", "seed004-cnn")
    assert code == 0
    assert "Total params: 250,058" in out and "Trainable params: 249,610" in out
    assert "Non-trainable params: 448" in out
    assert "(None, 3, 3, 128)" in out and "18x18" in out


def test_data_info_reports_source_and_balance(capsys, fashion):
    code, out, _ = run(capsys, "data", "info", "--json")
    info = json.loads(out)
    assert code == 0 and info["train_counts"] == [6_000] * 10 and info["source"]["origin"] in {"debian", "cache",
                                                                                               "explicit"}


@pytest.mark.parametrize("argv, message", [
    (["models", "show", "nope"], "unknown model 'nope'"),
    (["models", "show", "seed000-cnn", "--set", "kernel_size"], "not of the form key=value"),
    (["models", "show", "seed000-cnn", "--set", "kernel_size=-3"], "kernel_size: Input should be greater"),
    (["train", "--model", "seed000-cnn", "--bogus"], "No such option: --bogus"),
    (["train"], "Missing option '--model'"),
    (["train", "--model", "seed000-cnn", "--epochs", "zero"], "Invalid value for '--epochs'"),
    (["train", "--model", "seed000-cnn", "--recipe", "slow"], "unknown recipe 'slow'"),
    (["train", "--model", "seed000-cnn", "--device", "tpu"], "device: Input should be 'auto', 'cpu' or 'cuda'"),
    (["train", "--model", "seed000-cnn", "--optimizer", "rmsprop"], "optimizer: Input should be"),
    (["evaluate", "/nonexistent/run"], "config.json not found"),
    (["compare", "/nonexistent/run"], "config.json not found"),
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


def test_train_evaluate_compare_through_the_cli(capsys, tmp_path, fashion):
    run_dir = tmp_path / "mlp"
    code, out, err = run(capsys, "train", "--model", "seed000-mlp", "--recipe", "seed", "--epochs", "1",
                         "--train-subset", "3000", "--test-subset", "1000", "--seed", "2", "--out", str(run_dir))
    assert code == 0, err
    assert "epoch 1: loss" in out and "test accuracy" in out  # plain lines when not a terminal
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["test_accuracy"] > 0.5
    code, out, _ = run(capsys, "evaluate", str(run_dir), "--json")
    assert code == 0 and json.loads(out)["test_accuracy"] == pytest.approx(metrics["test_accuracy"], abs=1e-9)
    code, out, _ = run(capsys, "compare", str(run_dir), "--json")
    rows = json.loads(out)
    assert code == 0 and rows[0]["n"] == 1 and rows[0]["config"] == "seed000-mlp [seed epochs=1]"
    code, out, _ = run(capsys, "train", "--model", "seed000-mlp", "--epochs", "1", "--train-subset", "500",
                       "--test-subset", "100", "--out", str(tmp_path / "q"), "--quiet")
    assert code == 0 and out.count("\n") == 1 and "epoch 1:" not in out  # --quiet: only the result line


def test_installed_entry_point_prints_no_traceback():
    exe = Path(sys.executable).parent / "convlens"
    proc = subprocess.run([str(exe), "models", "show", "seed000-cnn", "--set", "depth=0"],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    assert proc.stderr.strip().startswith("convlens: error: invalid override") and "Traceback" not in proc.stderr


@pytest.mark.parametrize("argv", [["study", "--out", "{file}", "--quiet"],
                                  ["experiment", "run", "kernel-size", "--out", "{file}", "--quiet"]])
def test_an_output_path_that_is_a_file_is_one_line_not_a_traceback(capsys, tmp_path, argv, fashion):
    existing = tmp_path / "notes.txt"
    existing.write_text("keep me")
    assert main([a.format(file=existing) for a in argv]) == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and str(existing) in err and "File exists" in err
    assert existing.read_text() == "keep me"
