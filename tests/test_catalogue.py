"""The catalogue of bad inputs to the command line: arguments, YAML specs and study configs, dataset files, run
and model directories, output directories, SageMaker settings. One test each. Every case must end in one line on
stderr that names the problem, exit 2 (usage) or 1 (runtime), no traceback, and nothing half-written (no temp
file left, no output created for a refused command).

The HTTP cases are in tests/serving/test_hostile_requests.py; the README's reliability table lists both, and
``test_the_readme_table_lists_every_case`` keeps it complete.
"""

from __future__ import annotations

import errno
import gzip
import json
import os
import pickle
import shutil
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from convlens import atomic_files
from convlens.cli import main
from tests.conftest import fashion_files, write_tiny_dataset
from tests.serving.test_hostile_requests import HOSTILE

ROOT = Path(__file__).resolve().parent.parent
SAGEMAKER = ["--role-arn", "arn:aws:iam::123456789012:role/SageMakerRole", "--bucket", "my-bucket", "--dry-run"]


def _closed_port() -> str:
    """host:port where nothing listens (a port the OS just handed out and took back)."""
    import socket
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return f"127.0.0.1:{sock.getsockname()[1]}"


def _directory(path: Path) -> str:
    path.mkdir()
    return str(path)


def spec_file(tmp: Path, text: str) -> str:
    (tmp / "spec.yaml").write_text(text)
    return str(tmp / "spec.yaml")


def _fifo(path: Path) -> str:
    os.mkfifo(path)
    return str(path)


def study_config(tmp: Path, text: str) -> list[str]:
    (tmp / "study.yaml").write_text(text)
    return ["study", "--config", str(tmp / "study.yaml"), "--out", str(tmp / "study")]


def copy_of(source: Path, tmp: Path, edit: Callable[[Path], None]) -> str:
    target = tmp / source.name
    shutil.copytree(source, target)
    edit(target)
    return str(target)


def edit_json(name: str, change: Callable[[dict], object]) -> Callable[[Path], None]:
    def edit(directory: Path) -> None:
        data = json.loads((directory / name).read_text())
        change(data)
        (directory / name).write_text(json.dumps(data))
    return edit


def fashion_copy(tmp: Path, edit: Callable[[Path], None]) -> list[str]:
    """A copy of the real data files (the checks compare with the real checksums), edited."""
    target = tmp / "data"
    target.mkdir()
    for path in fashion_files():
        shutil.copyfile(path, target / path.name)
    edit(target)
    return ["data", "info", "--data-dir", str(target)]


def rewrite_gz(name: str, change: Callable[[bytes], bytes]) -> Callable[[Path], None]:
    def edit(directory: Path) -> None:
        path = directory / name
        path.write_bytes(gzip.compress(change(gzip.decompress(path.read_bytes()))))
    return edit


def tiny_with_bad_label(tmp: Path) -> list[str]:
    """IDX files whose checksums are right but whose labels run past the class list (read by the tiny manifest:
    no command reads another manifest than Fashion-MNIST's, whose checksums would refuse the file first)."""
    labels = (np.arange(60) % 10).astype(np.uint8)
    labels[0] = 10
    return ["LOAD_ARRAYS", str(tmp / "tiny"), labels]


# (id, argv builder (tmp, run dir, model dir) -> argv, exit code, words the one line must contain)
CASES: list[tuple[str, Callable[[Path, Path, Path], list[str]], int, str]] = [
    # command-line arguments
    ("unknown model", lambda t, r, m: ["train", "-m", "nope"], 2, "unknown model 'nope'"),
    ("misspelled model", lambda t, r, m: ["train", "-m", "cnnn"], 2, "unknown model 'cnnn' (did you mean 'cnn'?)"),
    ("misspelled experiment", lambda t, r, m: ["experiment", "run", "kernel-sise"], 2,
     "'kernel-sise' (did you mean 'kernel-size'?) is neither a built-in experiment"),
    ("--set without =", lambda t, r, m: ["models", "show", "cnn", "--set", "depth"], 2, "not of the form key=value"),
    ("--set depth=abc", lambda t, r, m: ["models", "show", "cnn", "--set", "depth=abc"], 2,
     "depth: Input should be a valid integer"),
    ("--set depth=10**9", lambda t, r, m: ["models", "show", "cnn", "--set", "depth=1000000000"], 2,
     "depth: Input should be less than or equal to 8"),
    ("--set one key twice (the last won without a word)", lambda t, r, m: [
        "models", "show", "cnn", "--set", "kernel_size=3", "--set", "depth=2", "--set", "kernel_size=5"], 2,
     "--set kernel_size= is given twice (kernel_size=3, kernel_size=5); give it once"),
    ("--set in_channels=3 on a 1-channel dataset (it said 'pass the dataset's name with --dataset')",
     lambda t, r, m: ["train", "-m", "cnn", "--dataset", "digits", "--set", "in_channels=3", "--out", str(t / "o")],
     2, "in_channels=3 does not fit digits (in_channels=1): the dataset sets in_channels, image_size, num_classes; "
        "leave in_channels out of the model's settings (--set)"),
    ("--set an unknown key", lambda t, r, m: ["models", "show", "cnn", "--set", "bogus=1"], 2,
     "unknown override 'bogus'"),
    ("--set kernel_size=huge", lambda t, r, m: ["models", "show", "cnn", "--set", "kernel_size=" + "9" * 30], 2,
     "kernel_size: Input should be less than or equal to 15"),
    ("--epochs 0", lambda t, r, m: ["train", "-m", "cnn", "--epochs", "0", "--out", str(t / "o")], 2,
     "epochs: Input should be greater than or equal to 1"),
    ("--lr -1", lambda t, r, m: ["train", "-m", "cnn", "--lr", "-1", "--out", str(t / "o")], 2,
     "lr: Input should be greater than 0"),
    ("--batch-size larger than the training images (each epoch was one batch of them all, without a word)",
     lambda t, r, m: ["train", "-m", "mlp", "--dataset", "digits", "--batch-size", "2000", "--out", str(t / "o")], 2,
     "--batch-size: larger than the 1,294 images digits trains on (1,438 less the 144 held out for validation), so "
     "each epoch would be one batch of 1,294; give at most 1,294 (got 2000)"),
    ("spec: a batch size larger than --train-subset's training images", lambda t, r, m: [
        "experiment", "run", spec_file(t, "name: b\nmodel: mlp\ndataset: digits\ntrain_subset: 200\n"
                                          "factor: {name: recipe.batch_size, levels: [64, 256]}\n"), "--out",
        str(t / "o")], 2, "level recipe.batch_size=256: batch_size: larger than the 180 images digits trains on"),
    ("--val-fraction 1.5", lambda t, r, m: ["train", "-m", "cnn", "--val-fraction", "1.5", "--out", str(t / "o")], 2,
     "--val-fraction: Input should be less than 1"),
    ("--train-subset beyond the data", lambda t, r, m: ["train", "-m", "mlp", "--train-subset", "10000000", "--out",
                                                        str(t / "o")], 2, "train subset size must be between 1"),
    ("unknown recipe", lambda t, r, m: ["train", "-m", "cnn", "--recipe", "slow"], 2, "unknown recipe 'slow'"),
    ("--out '' (an unset $OUT: the run was trained into the current directory)", lambda t, r, m: [
        "train", "-m", "mlp", "--dataset", "digits", "--epochs", "1", "--out", ""], 2,
     "Invalid value for '--out': is empty (an unset shell variable?); give a path"),
    ("--data-dir '' (read as the current directory)", lambda t, r, m: ["data", "info", "--data-dir", ""], 2,
     "Invalid value for '--data-dir': is empty (an unset shell variable?)"),
    ("--hflip with --augment flip: (both mirror: a quarter of the images mirrored back)", lambda t, r, m: [
        "train", "-m", "cnn", "--hflip", "0.5", "--augment", "shift:1,flip:0.5", "--out", str(t / "o")], 2,
     "invalid training option: hflip=0.5 and augment 'shift:1,flip:0.5' both mirror images left-right; give one"),
    ("spec: hflip as the factor over an augment with flip", lambda t, r, m: [
        "experiment", "run", spec_file(t, "name: m\nmodel: cnn\nrecipe_set: {augment: 'flip:0.5'}\n"
                                          "factor: {name: recipe.hflip, levels: [0, 0.5]}\n"), "--out", str(t / "o")],
     2, "level recipe.hflip=0.5: invalid training option: hflip=0.5 and augment 'flip:0.5' both mirror"),
    ("unknown device", lambda t, r, m: ["train", "-m", "cnn", "--device", "tpu"], 2,
     "device: must be auto, cpu, cuda or cuda:N (got 'tpu')"),
    ("unknown experiment", lambda t, r, m: ["experiment", "run", "nope"], 2, "neither a built-in experiment"),
    ("experiment spec file missing", lambda t, r, m: ["experiment", "run", str(t / "missing.yaml")], 2,
     "experiment spec file"),
    ("--workers 0", lambda t, r, m: ["experiment", "run", "kernel-size", "--workers", "0"], 2,
     "--workers must be at least 1"),
    ("experiment run --out a directory of runs whose experiment.json is gone", lambda t, r, m: [
        "experiment", "run", "kernel-size", "--dataset", "digits", "--out", _lost_record(t)], 2,
     "but no experiment.json, so what trained those runs is unknown; nothing was written"),
    ("spec: a FIFO named as the spec (it said 'not found')", lambda t, r, m: [
        "experiment", "run", _fifo(t / "spec.yaml"), "--out", str(t / "o")], 2,
     "spec.yaml' is not a regular file; give a YAML file"),
    ("study --config a FIFO (it said 'not found')", lambda t, r, m: [
        "study", "--config", _fifo(t / "study.yaml"), "--out", str(t / "o")], 2,
     "study.yaml is not a regular file, where a YAML file is needed"),
    ("experiment run --epochs where the levels vary the epochs (it was ignored)", lambda t, r, m: [
        "experiment", "run", spec_file(t, "name: ep\nmodel: cnn\nfactor: {name: recipe.epochs, levels: [1, 2]}\n"),
        "--epochs", "3", "--out", str(t / "o")], 2, "--epochs sets every level, but recipe.epochs is what ep's"),
    ("experiment run --cpus-per-run without Ray (it was ignored)", lambda t, r, m: [
        "experiment", "run", "kernel-size", "--cpus-per-run", "2", "--out", str(t / "o")], 2,
     "--cpus-per-run 2 is a Ray task's share of a cluster: add --backend ray"),
    ("experiment run --train-subset larger than the dataset", lambda t, r, m: [
        "experiment", "run", "kernel-size", "--dataset", "digits", "--train-subset", "5000", "--out", str(t / "o")],
     2, "train subset size must be between 1 and 1438, got 5000"),
    ("--seeds 0", lambda t, r, m: ["experiment", "run", "kernel-size", "--seeds", "0", "--out", str(t / "o")], 2,
     "seeds: Input should be greater than or equal to 1"),
    ("plan --train-subset larger than the data (every pilot run failed, then 'no spread to plan from', exit 0)",
     lambda t, r, m: ["experiment", "plan", "kernel-size", "--effect", "1", "--dataset", "digits", "--train-subset",
                      "5000", "--out", str(t / "o")], 2, "train subset size must be between 1 and 1438, got 5000"),
    ("plan --effect -1", lambda t, r, m: ["experiment", "plan", "kernel-size", "--effect", "-1"], 2,
     "--effect is in percentage points"),
    ("predict a .txt file", lambda t, r, m: ["predict", str(m), str(t / "notes.txt")], 2, "unsupported file type"),
    ("predict a directory named like an image", lambda t, r, m: ["predict", str(m), _directory(t / "d.png")], 2,
     "d.png is a directory; give the files in it"),
    ("predict a directory", lambda t, r, m: ["predict", str(m), str(t)], 2, "is a directory; give the files in it"),
    ("predict a missing file", lambda t, r, m: ["predict", str(m), str(t / "missing.png")], 2, "missing.png not found"),
    ("serve --port 70000", lambda t, r, m: ["serve", str(m), "--port", "70000"], 2,
     "--port must be within 0..65535 (0: any free port), got 70000"),
    ("export --format tflite", lambda t, r, m: ["export", str(r), "--format", "tflite", "--out", str(t / "o")], 2,
     "unknown format 'tflite'"),
    ("study --quick --full", lambda t, r, m: ["study", "--quick", "--full", "--out", str(t / "o")], 2,
     "--quick and --full exclude each other"),
    # YAML experiment specs
    ("spec: not YAML", lambda t, r, m: ["experiment", "run", spec_file(t, "a: [\n")], 2, "not valid YAML"),
    ("spec: a bracket left open (the line and column of the error, and where the bracket opened)", lambda t, r, m: [
        "experiment", "run", spec_file(t, "name: x\nlevels: [3, 5\nseeds: 3\n")], 2,
     "(line 3, column 6: expected ',' or ']', but got ':' (while parsing a flow sequence that starts on line 2, "
     "column 9))"),
    ("spec: a key given twice (YAML keeps the last without a word)", lambda t, r, m: [
        "experiment", "run", spec_file(t, "name: x\nmodel: cnn\nfactor: {name: kernel_size, levels: [3, 5]}\n"
                                          "model: mlp\n")], 2,
     "(line 4, column 1: 'model' is given twice (first on line 2))"),
    ("spec: recipe.name as a factor (it said 'keras trains exactly what fast trains')", lambda t, r, m: [
        "experiment", "run", spec_file(t, "name: rn\nmodel: cnn\n"
                                          "factor: {name: recipe.name, levels: [fast, keras]}\n")],
     2, "recipe.name is not a factor: two recipes differ in several settings"),
    ("spec: a list", lambda t, r, m: ["experiment", "run", spec_file(t, "- 1\n")], 2, "valid dictionary"),
    ("spec: unknown key", lambda t, r, m: ["experiment", "run", spec_file(
        t, "name: x\nmodel: cnn\nfactor: {name: kernel_size, levels: [3, 5]}\nbogus: 1\n")], 2,
     "bogus: Extra inputs are not permitted"),
    ("spec: unknown factor", lambda t, r, m: ["experiment", "run", spec_file(
        t, "name: x\nmodel: cnn\nfactor: {name: colour, levels: [3, 5]}\n")], 2, "colour"),
    ("spec: a level twice", lambda t, r, m: ["experiment", "run", spec_file(
        t, "name: x\nmodel: cnn\nfactor: {name: kernel_size, levels: [3, 3]}\n")], 2, "twice"),
    ("spec: 100 levels", lambda t, r, m: ["experiment", "run", spec_file(
        t, "name: x\nmodel: cnn\nfactor: {name: kernel_size, levels: [" + ",".join(["3"] * 100) + "]}\n")], 2,
     "at most 50 items"),
    ("spec: alias bomb", lambda t, r, m: ["experiment", "run", spec_file(
        t, "a: &a [1, 1, 1, 1, 1, 1, 1, 1, 1, 1]\n"
           + "".join(f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}" if i > 1 else "*a"] * 10) + "]\n" for i in range(1, 9))
           + "name: x\nmodel: cnn\nfactor: {name: kernel_size, levels: *a8}\n")], 2, "aliases"),
    ("spec: binary file", lambda t, r, m: ["experiment", "run", spec_file(t, "") and _binary(t / "spec.yaml")], 2,
     "not a text file"),
    ("spec: an impossible date", lambda t, r, m: ["experiment", "run", spec_file(t, "seeds: 2020-13-01\n")], 2,
     "not valid YAML"),
    ("spec: a 5,000-digit integer", lambda t, r, m: ["experiment", "run", spec_file(t, "seeds: " + "9" * 5000 + "\n")],
     2, "not valid YAML"),
    ("spec: nested 3,000 deep", lambda t, r, m: ["experiment", "run", spec_file(t, "name: " + "[" * 3000 + "]" * 3000
                                                                                 + "\n")], 2, "not valid YAML"),
    ("spec: a Python object tag", lambda t, r, m: ["experiment", "run", spec_file(
        t, "name: !!python/object/apply:os.system ['true']\n")], 2, "not valid YAML"),
    # study configs
    ("study config: seeds 0", lambda t, r, m: study_config(t, "seeds: 0\n"), 2, "seeds: Input should be greater"),
    ("study config: one seed", lambda t, r, m: study_config(t, "seeds: 1\n"), 2,
     "seeds: Input should be greater than or equal to 2"),
    ("study config: unknown key", lambda t, r, m: study_config(t, "bogus: 1\n"), 2, "bogus: Extra inputs"),
    ("study config: a key given twice in a nested mapping", lambda t, r, m: study_config(
        t, "experiments: [{name: kernel-size, name: depth}]\n"), 2, "line 1, column 35: 'name' is given twice"),
    ("study config: a list", lambda t, r, m: study_config(t, "[1]\n"), 2, "expected a mapping of study options"),
    ("study config: unknown experiment", lambda t, r, m: study_config(t, "experiments: [{name: nope}]\n"), 2,
     "unknown experiment 'nope'"),
    ("study config: a newline in a name", lambda t, r, m: study_config(t, 'recipe: "fa\\nst"\n'), 2,
     "unknown recipe 'fa\\nst'"),  # the user's text quoted with its newline escaped, on the one line
    ("study config: missing", lambda t, r, m: ["study", "--config", str(t / "none.yaml"), "--out", str(t / "o")], 2,
     "study config"),
    ("study config: a directory", lambda t, r, m: ["study", "--config", str(t), "--out", str(t / "o")], 2,
     "is a directory, where a YAML file is needed"),
    # dataset files
    ("data: --data-dir a file", lambda t, r, m: ["data", "info", "--data-dir", spec_file(t, "x: 1\n")], 1,
     "is not a directory; pass an existing --data-dir"),
    ("data: directory missing", lambda t, r, m: ["data", "info", "--data-dir", str(t / "nowhere")], 1,
     "does not exist"),
    ("data: a file missing", lambda t, r, m: fashion_copy(t, lambda d: (d / "t10k-labels-idx1-ubyte.gz").unlink()), 1,
     "t10k-labels-idx1-ubyte(.gz) is missing"),
    ("data: truncated gzip", lambda t, r, m: fashion_copy(t, lambda d: (d / "train-labels-idx1-ubyte.gz").write_bytes(
        (d / "train-labels-idx1-ubyte.gz").read_bytes()[:100])), 1, "not a valid gzip file"),
    ("data: wrong magic", lambda t, r, m: fashion_copy(t, rewrite_gz("t10k-labels-idx1-ubyte.gz",
                                                                     lambda b: b"\x00\x00\x0d\x01" + b[4:])), 1,
     "not an IDX uint8 file"),
    ("data: wrong shape", lambda t, r, m: fashion_copy(t, rewrite_gz("t10k-labels-idx1-ubyte.gz",
                                                                     lambda b: b[:4] + (9999).to_bytes(4, "big")
                                                                     + b[8:-1])), 1, "in the header, expected"),
    ("data: truncated file", lambda t, r, m: fashion_copy(t, rewrite_gz("t10k-images-idx3-ubyte.gz",
                                                                        lambda b: b[:-500])), 1, "truncated"),
    ("data: checksum mismatch", lambda t, r, m: fashion_copy(t, rewrite_gz(
        "t10k-labels-idx1-ubyte.gz", lambda b: b[:8] + bytes([(b[8] + 1) % 10]) + b[9:])), 1, "checksum mismatch"),
    ("data: label out of range", lambda t, r, m: tiny_with_bad_label(t), 1, "label 10 is out of range"),
    # run and model directories
    ("model dir: missing", lambda t, r, m: ["predict", str(t / "nowhere"), str(t / "x.npy")], 2,
     "nowhere does not exist; give a directory written by 'convlens train' or 'convlens export'"),
    ("compare: a directory that is no run (it suggested 'convlens export', whose models compare refuses)",
     lambda t, r, m: ["compare", str(t / "nowhere"), str(t / "nowhere2")], 2,
     "nowhere does not exist; give a directory written by 'convlens train' or an experiment"),
    ("evaluate a file, not a run directory (it said 'notes.txt/config.json not found')", lambda t, r, m: [
        "evaluate", str(t / "notes.txt")], 2, "notes.txt is a file; give a directory written by 'convlens train'"),
    ("compare an experiment's directory, not its runs (it said 'config.json not found')", lambda t, r, m: [
        "compare", str(r), _experiment_dir(t)], 2, "exp is an experiment, not a run: 'convlens experiment table"),
    ("export a run into an experiment's directory (it wrote a model's files among the experiment's)",
     lambda t, r, m: ["export", str(r), "--out", _experiment_dir(t)], 2,
     "exp is the experiment, whose runs 'convlens experiment run' trains; give another --out"),
    ("evaluate an experiment's directory (it said 'config.json not found')", lambda t, r, m: [
        "evaluate", _experiment_dir(t)], 2, "statistics; to evaluate one of its runs, name it"),
    ("model dir: config.json not JSON", lambda t, r, m: ["predict", copy_of(m, t, lambda d: (d / "config.json")
                                                                            .write_text("{")), str(t / "x.npy")], 2,
     "is not valid JSON"),
    ("model dir: config.json a list", lambda t, r, m: ["predict", copy_of(m, t, lambda d: (d / "config.json")
                                                                          .write_text("[]")), str(t / "x.npy")], 2,
     "holds no JSON object"),
    ("model dir: no class names", lambda t, r, m: ["predict", copy_of(m, t, edit_json("config.json", lambda c: c.pop(
        "class_names"))), str(t / "x.npy")], 2, "has no class_names list"),
    ("model dir: an input shape the network cannot take", lambda t, r, m: ["predict", copy_of(m, t, edit_json(
        "config.json", lambda c: c["input"].update(shape=[3, 32, 32]))), str(t / "x.npy")], 2,
     "cannot take the (N, 3, 32, 32) images"),
    ("model dir: a two-channel input", lambda t, r, m: ["predict", copy_of(m, t, edit_json(
        "config.json", lambda c: c["input"].update(shape=[2, 28, 28]))), str(t / "x.npy")], 2, "not (1 or 3, S, S)"),
    ("unknown dataset", lambda t, r, m: ["train", "-m", "cnn", "--dataset", "svhn"], 2, "unknown dataset 'svhn'"),
    ("--augment shift:5 on 8x8 digits (an empty canvas for shifts of 8; accuracy 9.75%)", lambda t, r, m: [
        "train", "-m", "cnn", "--dataset", "digits", "--augment", "shift:5", "--out", str(t / "o")], 2,
     "--augment shift:5: a shift of up to 5 px would move digits's 8x8 images off the canvas; use shift:1 or so "
     "(at most 4)"),
    ("spec: a level whose augmentation does not suit the dataset (it failed every run)", lambda t, r, m: [
        "experiment", "run", spec_file(t, "name: s\nmodel: cnn\ndataset: digits\n"
                                          "factor: {name: recipe.augment, levels: [none, 'flip:0.5']}\n"),
        "--out", str(t / "o")], 2, "level recipe.augment=flip:0.5: --augment flip:0.5 mirrors training images"),
    ("--data-dir with digits (ignored, yet recorded as where the data came from)", lambda t, r, m: [
        "data", "info", "--dataset", "digits", "--data-dir", str(t)], 2,
     "does not apply to digits: scikit-learn's digits come with scikit-learn; leave it out"),
    ("models show --dataset digits --set image_size=28 (train refused it, show drew a 28x28 network)",
     lambda t, r, m: ["models", "show", "cnn", "--dataset", "digits", "--set", "image_size=28"], 2,
     "image_size=28 does not fit digits (image_size=8)"),
    ("--set filters=16,,32 (was read as 16,32)", lambda t, r, m: ["models", "show", "cnn", "--set", "filters=16,,32"],
     2, "filters: Input should be a valid integer, unable to parse string as an integer (got '')"),
    ("--hflip on digits", lambda t, r, m: ["train", "-m", "cnn", "--dataset", "digits", "--hflip", "0.5", "--out",
                                           str(t / "o")], 2, "is not of the same class"),
    ("--mlflow-uri with an unknown scheme", lambda t, r, m: ["train", "-m", "mlp", "--epochs", "1", "--train-subset",
                                                             "200", "--test-subset", "50", "--mlflow-uri", "bogus://x",
                                                             "--out", str(t / "run")], 2,
     "the MLflow store 'bogus://x' has the unknown scheme 'bogus'"),
    ("--mlflow-uri a path, not a URI", lambda t, r, m: ["train", "-m", "mlp", "--mlflow-uri", str(t / "runs.db"),
                                                        "--out", str(t / "run")], 2,
     "is a path, not a database or server URI: use sqlite:///"),
    ("--backend ray with nothing at --address", lambda t, r, m: ["experiment", "run", "kernel-size", "--out",
                                                                 str(t / "e"), "--backend", "ray", "--address",
                                                                 _closed_port()], 1,
     "Connection refused (check the address; is its head node running?"),
    ("--address without --backend ray", lambda t, r, m: ["experiment", "run", "kernel-size", "--out", str(t / "e"),
                                                         "--address", "10.0.0.1:6379"], 2,
     "--address 10.0.0.1:6379 names a Ray cluster: add --backend ray, or drop --address"),
    ("train --device cuda:0 without CUDA (cuda:N was refused by train, taken by evaluate)",
     lambda t, r, m: ["train", "-m", "mlp", "--dataset", "digits", "--device", "cuda:0"], 2,
     "device cuda:0 (--device cuda:0) was asked for but no CUDA device is available"),
    ("--gpus-per-run without CUDA", lambda t, r, m: ["experiment", "run", "kernel-size", "--out", str(t / "e"),
                                                      "--gpus-per-run", "0.25"], 2, "CUDA is not available here"),
    ("dataset folder: a class folder whose name is not UTF-8", lambda t, r, m: ["train", "-m", "mlp", "--dataset",
                                                                                f"folder:{_non_utf8_class(t)}"], 1,
     "the class folder b'caf\\xe9' is not named in UTF-8 text"),
    ("dataset folder missing", lambda t, r, m: ["data", "info", "--dataset", f"folder:{t / 'nowhere'}"], 1,
     "does not exist"),
    ("dataset folder under an unknown ~user", lambda t, r, m: ["data", "info", "--dataset", "folder:~nouser_cl/x"], 2,
     "the dataset folder ~nouser_cl/x: there is no user 'nouser_cl'"),
    ("train --out under an unknown ~user", lambda t, r, m: ["train", "-m", "mlp", "--dataset", "digits", "--out",
                                                            "~nouser_cl/run"], 2,
     "--out ~nouser_cl/run: there is no user 'nouser_cl'"),
    ("dataset folder: a PNG whose pixel data is corrupt (it was read as a black image)",
     lambda t, r, m: ["data", "info", "--dataset", f"folder:{_corrupt_png(t)}"], 1,
     "b/0.png: not a readable PNG or JPEG (OSError)"),
    ("an IDX .gz far larger than its file can be (it was read whole: a MemoryError)",
     lambda t, r, m: ["data", "info", "--data-dir", _oversized_gz(t)], 1,
     "more than the 95,128,608 its file can take"),
    ("cifar10 without its batches", lambda t, r, m: ["data", "info", "--dataset", "cifar10", "--data-dir", str(t)], 1,
     "holds no CIFAR-10 binary batches"),
    ("model dir: truncated weights", lambda t, r, m: ["evaluate", copy_of(r, t, lambda d: (d / "model.safetensors")
                                                                          .write_bytes((d / "model.safetensors")
                                                                                       .read_bytes()[:1000]))], 2,
     "cannot load weights"),
    ("model dir: config does not match weights", lambda t, r, m: ["evaluate", copy_of(r, t, edit_json(
        "config.json", lambda c: c["model"]["spec"].update(kernel_size=5)))], 2, "does not match the spec"),
    ("model dir: a spec of 10**12 units", lambda t, r, m: ["evaluate", copy_of(r, t, edit_json(
        "config.json", lambda c: c["model"]["spec"].update(dense=[10**12])))], 2,
     "head.dense1.bias is (128,) in the weights, (1000000000000,) in the spec"),  # before 4 TB are allocated
    ("model dir: a pickle as weights", lambda t, r, m: ["evaluate", copy_of(r, t, lambda d: (d / "model.safetensors")
                                                                            .write_bytes(pickle.dumps({"w": 1})))], 2,
     "cannot load weights"),
    ("model dir: symlink out of the directory", lambda t, r, m: ["evaluate", copy_of(r, t, _link_config_outside)], 2,
     "link to a file outside"),
    ("model dir: corrupt model.onnx", lambda t, r, m: ["predict", copy_of(m, t, lambda d: (d / "model.onnx")
                                                                          .write_bytes(b"not onnx")), str(t / "x.npy")],
     2, "cannot load the ONNX model"),
    ("run dir: failed run exported", lambda t, r, m: ["export", copy_of(r, t, edit_json(
        "metrics.json", lambda x: x.update(status="failed", reason="boom"))), "--out", str(t / "o")], 2,
     "is a failed run (boom)"),
    ("run dir: a pending run exported (no metrics.json)", lambda t, r, m: ["export", copy_of(
        r, t, lambda d: (d / "metrics.json").unlink()), "--out", str(t / "o")], 2,
     "is not a finished run (no metrics.json: interrupted, or still training); train it again into the same "
     "directory with --force (force=True)"),
    ("run dir: a pending run predicted with (its weights may be an earlier run's)", lambda t, r, m: [
        "predict", copy_of(r, t, lambda d: (d / "metrics.json").unlink()), str(t / "x.npy")], 2,
     "is not a finished run (no metrics.json:"),
    ("run dir: a failed run evaluated", lambda t, r, m: ["evaluate", copy_of(r, t, edit_json(
        "metrics.json", lambda x: x.update(status="failed", reason="boom")))], 2, "is a failed run (boom)"),
    ("evaluate --device tpu", lambda t, r, m: ["evaluate", str(r), "--device", "tpu"], 2,
     "device 'tpu' is not one of auto, cpu, cuda (or cuda:N)"),
    ("serve --host '' (an empty host binds every interface)", lambda t, r, m: ["serve", str(m), "--host", ""], 2,
     "--host is empty, which would bind every interface"),
    ("export --out another run's export, without --force (it was replaced)", lambda t, r, m: [
        "export", str(r), "--out", copy_of(m, t, _as_another_runs)], 2,
     "holds the export of another run; nothing was written: choose another directory, or replace it with --force"),
    ("export --out a directory with its own config.json", lambda t, r, m: _foreign_config(t, r), 2,
     "is not an exported convlens model"),
    ("train --out a directory with its own config.json", lambda t, r, m: _foreign_config(t, r, "train"), 2,
     "is not a convlens run's; nothing was written"),
    ("train --out a directory that already holds a run (without --force)", lambda t, r, m: [
        "train", "-m", "mlp", "--epochs", "1", "--train-subset", "200", "--test-subset", "50", "--out", str(r)], 2,
     "already holds a run; nothing was written"),
    ("train --out an interrupted run (without --force; evaluate said 'train it again', train said 'holds a run')",
     lambda t, r, m: ["train", "-m", "mlp", "--epochs", "1", "--out", copy_of(
         r, t, lambda d: (d / "metrics.json").unlink())], 2,
     "already holds an unfinished run (interrupted, or still training); nothing was written"),
    ("export --out the run itself", lambda t, r, m: ["export", copy_of(r, t, lambda d: None), "--out",
                                                     str(t / r.name)], 2, "is the run itself"),
    ("run dir: metrics.json not JSON", lambda t, r, m: ["compare", copy_of(r, t, lambda d: (d / "metrics.json")
                                                                           .write_text("{"))], 2, "is not valid JSON"),
    ("run dir: metrics.json edited, an accuracy as text", lambda t, r, m: ["compare", copy_of(r, t, edit_json(
        "metrics.json", lambda x: x.update(test_accuracy="0.9")))], 2, "test_accuracy: Input should be a valid number"),
    ("run dir: config.json edited, its data block removed", lambda t, r, m: ["evaluate", copy_of(r, t, edit_json(
        "config.json", lambda c: c.pop("data")))], 2, "data: Field required"),
    ("train: a model too large for this machine's memory", lambda t, r, m: ["train", "-m", "cnn", "--set",
                                                                          "dense=99999999999", "--out", str(t / "run")],
     2, "GiB of memory here"),
    ("run dir: failed before it started", lambda t, r, m: ["compare", copy_of(r, t, _failed_before_start)], 2,
     "failed before training started"),
    ("experiment dir: missing", lambda t, r, m: ["experiment", "table", str(t / "nowhere")], 2,
     "nowhere does not exist; give an experiment directory"),
    ("experiment dir: experiment.json is [] (it said 'run convlens experiment run first', which refused it again)",
     lambda t, r, m: ["experiment", "status", str(Path(_write(t / "e" / "experiment.json", "[]")).parent)], 2,
     "experiment.json holds no JSON object; restore it, or start the experiment again with --force"),
    ("experiment run --force --out . (./runs holds `convlens train`'s runs)", lambda t, r, m: _train_runs_dir(t), 2,
     "not an experiment directory"),
    ("report: no results.json", lambda t, r, m: ["report", str(t)], 2, "results.json not found"),
    ("report: the results.json file, not its study directory", lambda t, r, m: [
        "report", _write(t / "s" / "results.json", "{}")], 2, "give the study's directory"),
    ("report: a results.json that is not UTF-8", lambda t, r, m: [
        "report", str(Path(_write_bytes(t / "s" / "results.json", b"\xff\xfe")).parent)], 2,
     "results.json is not valid JSON (not UTF-8 text)"),
    ("report: an experiment's directory", lambda t, r, m: ["report", str(Path(_write(t / "e" / "experiment.json",
                                                                                "{}")).parent)], 2,
     "is an experiment, not a study: 'convlens experiment table"),
    # output paths
    ("output: --out is a file", lambda t, r, m: ["train", "-m", "mlp", "--out", str(t / "notes.txt"), "--epochs", "1",
                                                "--train-subset", "200", "--test-subset", "50"], 2,
     "is a file, where a directory is needed"),
    ("output: disk full", lambda t, r, m: ["FULL_DISK", "export", str(r), "--out", str(t / "o")], 1,
     "No space left on device"),
    ("output: read-only directory", lambda t, r, m: ["READ_ONLY", "export", str(r), "--out", str(t / "o")], 1,
     "Read-only file system"),
    # SageMaker settings
    ("sagemaker: malformed role ARN", lambda t, r, m: ["sagemaker", "train", "--role-arn", "admin", "--bucket", "b-1",
                                                      "--dry-run"], 2, "role"),
    ("sagemaker: bad bucket name", lambda t, r, m: ["sagemaker", "train", "--role-arn",
                                                   "arn:aws:iam::123456789012:role/R", "--bucket", "Bad_Bucket",
                                                   "--dry-run"], 2, "bucket"),
    ("sagemaker: --hp without =", lambda t, r, m: ["sagemaker", "train", *SAGEMAKER, "--hp", "model"], 2,
     "key=value (e.g. --hp epochs=5)"),
    ("sagemaker: --hp one key twice", lambda t, r, m: ["sagemaker", "train", *SAGEMAKER, "--hp", "epochs=1",
                                                        "--hp", "epochs=2"], 2, "--hp epochs= is given twice"),
    ("sagemaker: --hp set= with one key twice", lambda t, r, m: [
        "sagemaker", "train", *SAGEMAKER, "--hp", "set=kernel_size=3;kernel_size=5"], 2,
     "kernel_size= is given twice (kernel_size=3, kernel_size=5)"),
    ("sagemaker: unknown hyperparameter", lambda t, r, m: ["sagemaker", "train", *SAGEMAKER, "--hp", "colour=red"], 2,
     "unknown hyperparameter"),
    ("sagemaker: invalid hyperparameter value", lambda t, r, m: ["sagemaker", "train", *SAGEMAKER, "--hp", "epochs=0"],
     2, "epochs"),
    ("sagemaker: unknown model", lambda t, r, m: ["sagemaker", "train", *SAGEMAKER, "--hp", "model=nope"], 2,
     "unknown model 'nope'"),
    ("sagemaker: onnx neither true nor false", lambda t, r, m: ["sagemaker", "train", *SAGEMAKER, "--hp",
                                                                "onnx=maybe"], 2, "hyperparameter onnx: expected true"),
    ("sagemaker: a seed that is not a number", lambda t, r, m: ["sagemaker", "train", *SAGEMAKER, "--hp", "seed=abc"],
     2, "hyperparameter seed: expected a whole number, got 'abc'"),
    ("sagemaker: a seed of 1.9 (int() made it 1)", lambda t, r, m: ["sagemaker", "train", *SAGEMAKER, "--hp",
                                                                  "seed=1.9"],
     2, "hyperparameter seed: expected a whole number, got 1.9"),
    ("sagemaker: deploy a job name SageMaker refuses", lambda t, r, m: [
        "sagemaker", "deploy", *SAGEMAKER, "--job-name", "bad!", "--endpoint", "e1"], 2,
     "--job-name 'bad!' is not a SageMaker name"),
    ("sagemaker: delete an endpoint name too long for its -config", lambda t, r, m: [
        "sagemaker", "delete", "--endpoint", "e" * 60, "--dry-run"], 2, "is not a SageMaker name: 1-56 letters"),
    ("sagemaker: an empty S3 prefix (keys began with /)", lambda t, r, m: [
        "sagemaker", "train", *SAGEMAKER, "--prefix", ""], 2, "prefix: must be an S3 key prefix"),
    ("sagemaker: a region that is not one", lambda t, r, m: ["sagemaker", "delete", "--endpoint", "e1", "--region",
                                                             "a/b", "--dry-run"], 2,
     "--region 'a/b' must be an AWS region like us-east-1"),
    ("sagemaker train: a region that is not one (worded as delete words it)",
     lambda t, r, m: ["sagemaker", "train", "--role-arn", "arn:aws:iam::123456789012:role/x", "--bucket", "b",
                      "--region", "a/b", "--dry-run"], 2, "--region 'a/b' must be an AWS region like us-east-1"),
    ("sagemaker: a training subset larger than the dataset", lambda t, r, m: [
        "sagemaker", "train", *SAGEMAKER, "--hp", "dataset=digits", "--hp", "train-subset=99999"], 2,
     "train subset size must be between 1 and 1438"),
    ("sagemaker: a job name SageMaker refuses", lambda t, r, m: ["sagemaker", "train", *SAGEMAKER, "--job-name",
                                                                 "bad_name!"], 2, "is not a SageMaker name"),
    ("sagemaker: an endpoint name too long for its -config", lambda t, r, m: [
        "sagemaker", "deploy", *SAGEMAKER, "--job-name", "j1", "--endpoint", "e" * 60], 2,
     "is not a SageMaker name: 1-56 letters"),
    ("sagemaker: invoke with a body over 6 MB", lambda t, r, m: [
        "sagemaker", "invoke", "--endpoint", "ep", _npy(t / "big.npy", (8100, 28, 28)), "--dry-run"], 2,
     "an endpoint takes at most 6,291,456"),
    ("sagemaker: invoke with 1,001 images in an array", lambda t, r, m: [
        "sagemaker", "invoke", "--endpoint", "ep", _npy(t / "many.npy", (1001, 28, 28)), "--dry-run"], 2,
     "the request holds 1,001 images; an endpoint takes at most 1,000 per request"),
    ("sagemaker: invoke with 1,001 instances in JSON", lambda t, r, m: [
        "sagemaker", "invoke", "--endpoint", "ep", _json_instances(t / "many.json", 1001), "--dry-run"], 2,
     "the request holds 1,001 images; an endpoint takes at most 1,000 per request"),
]


def _json_instances(path: Path, n: int) -> str:
    path.write_text(json.dumps({"instances": [[0] * 784] * n}))
    return str(path)


def _npy(path: Path, shape: tuple[int, ...]) -> str:
    np.save(path, np.zeros(shape, np.uint8))
    return str(path)


def _as_another_runs(model: Path) -> None:
    """An exported model made to look exported from another run: another source directory and other weights."""
    edit_json("config.json", lambda c: c["source_run"].update(directory="/elsewhere/other-run"))(model)
    weights = model / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:-1] + bytes([weights.read_bytes()[-1] ^ 1]))


def _foreign_config(tmp: Path, run: Path, command: str = "export") -> list[str]:
    (tmp / "app").mkdir()
    (tmp / "app" / "config.json").write_text('{"my": "app settings"}')
    if command == "train":
        return ["train", "-m", "mlp", "--epochs", "1", "--out", str(tmp / "app")]
    return ["export", str(run), "--out", str(tmp / "app")]


def _write_bytes(path: Path, data: bytes) -> str:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return str(path)


def _write(path: Path, text: str) -> str:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return str(path)


def _non_utf8_class(tmp: Path) -> Path:
    """Two class folders of 8x8 PNGs, one named in Latin-1 bytes (0xE9: 'é'), as an old archive may unpack."""
    from PIL import Image
    root = tmp / "folder"
    for name in (b"cat", b"caf\xe9"):
        directory = os.path.join(os.fsencode(root), name)
        os.makedirs(directory)
        for i in range(3):
            Image.fromarray(np.full((8, 8), 40 * i, dtype=np.uint8)).save(os.path.join(directory, b"%d.png" % i))
    return root


def _corrupt_png(tmp: Path) -> Path:
    """Two classes of 8x8 PNGs, one of which has its compressed pixel stream scrambled behind an intact header."""
    from PIL import Image
    root = tmp / "folder"
    for c in "ab":
        (root / c).mkdir(parents=True)
        for i in range(3):
            Image.fromarray(np.full((8, 8), 40 * i + 1, dtype=np.uint8)).save(root / c / f"{i}.png")
    raw = (root / "b" / "0.png").read_bytes()
    k = raw.find(b"IDAT") + 4
    (root / "b" / "0.png").write_bytes(raw[:k] + bytes(b ^ 0x5A for b in raw[k:k + 16]) + raw[k + 16:])
    return root


def _oversized_gz(tmp: Path) -> str:
    """The four Fashion-MNIST file names, the training images a sparse 3 GiB file (no disk used)."""
    for name in ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte",
                 "t10k-labels-idx1-ubyte"):
        with (tmp / f"{name}.gz").open("wb") as f:
            f.truncate(3 * 2**30 if name == "train-images-idx3-ubyte" else 100)
    return str(tmp)


def _binary(path: Path) -> str:
    path.write_bytes(b"\xff\xfe\x00binary")
    return str(path)


def _link_config_outside(directory: Path) -> None:
    outside = directory.parent / "elsewhere.json"
    shutil.move(directory / "config.json", outside)
    (directory / "config.json").symlink_to(outside)


def _failed_before_start(directory: Path) -> None:
    (directory / "config.json").unlink()
    (directory / "metrics.json").write_text(json.dumps({"status": "failed", "reason": "DataError: no data"}))


def _lost_record(tmp: Path) -> str:
    """An experiment directory whose experiment.json is gone: a finished-looking run of another config is left."""
    run = tmp / "exp" / "runs" / "kernel_size=3" / "seed0"
    run.mkdir(parents=True)
    (run / "config.json").write_text(json.dumps({"recipe": {"lr": 0.1}}))
    (run / "metrics.json").write_text(json.dumps({"status": "done"}))
    return str(tmp / "exp")


def _experiment_dir(tmp: Path) -> str:
    """An experiment's directory as compare and evaluate see it: its experiment.json (they read nothing else)."""
    (tmp / "exp").mkdir()
    (tmp / "exp" / "experiment.json").write_text("{}")
    return str(tmp / "exp")


def _train_runs_dir(tmp: Path) -> list[str]:
    (tmp / "runs" / "cnn-s0").mkdir(parents=True)
    (tmp / "runs" / "cnn-s0" / "metrics.json").write_text("{}")
    return ["experiment", "run", "kernel-size", "--out", str(tmp), "--force"]


@pytest.fixture(scope="module")
def run_and_model(exported):
    model_dir = exported[0]
    return model_dir.parent / "run", model_dir


@pytest.mark.parametrize("name, build, code, words", CASES, ids=[c[0] for c in CASES])
def test_bad_input_gets_one_line_and_leaves_nothing_half_written(name, build, code, words, run_and_model, tmp_path,
                                                                 capsys, monkeypatch, fashion):
    run_dir, model_dir = run_and_model
    (tmp_path / "notes.txt").write_text("keep me")
    np.save(tmp_path / "x.npy", np.zeros((28, 28), dtype=np.uint8))
    argv = build(tmp_path, run_dir, model_dir)
    before = {p: p.stat().st_mtime_ns for p in (run_dir, model_dir) for p in p.iterdir()}
    if argv[0] == "LOAD_ARRAYS":
        from convlens.data.sources import load_arrays, locate
        from convlens.errors import DataError
        manifest, _ = write_tiny_dataset(Path(argv[1]), train_labels=argv[2])
        with pytest.raises(DataError) as info:
            load_arrays(locate(Path(argv[1]), manifest), manifest)
        assert words in str(info.value) and "\n" not in str(info.value)
        return
    if argv[0] == "FULL_DISK":
        monkeypatch.setattr(atomic_files.os, "fsync", _fails(errno.ENOSPC))
        argv = argv[1:]
    elif argv[0] == "READ_ONLY":  # as root (CI) chmod does not stop writes: the kernel's answer, injected
        monkeypatch.setattr(atomic_files.tempfile, "mkstemp", _fails(errno.EROFS))
        argv = argv[1:]
    assert main(argv) == code
    captured = capsys.readouterr()
    err = captured.err.strip()
    assert len(err.splitlines()) == 1, err
    assert err.startswith("convlens: error: ") and words in err, err
    assert "Traceback" not in captured.err + captured.out
    assert not [p for p in tmp_path.rglob("*") if p.name.endswith(".tmp") or p.name.startswith(".export-")]
    assert not (tmp_path / "o").exists() or name.startswith("output:") and not (tmp_path / "o" / "config.json").exists()
    assert (tmp_path / "notes.txt").read_text() == "keep me"
    if (tmp_path / "app").exists():
        assert (tmp_path / "app" / "config.json").read_text() == '{"my": "app settings"}'
        assert [p.name for p in (tmp_path / "app").iterdir()] == ["config.json"]
    assert before == {p: p.stat().st_mtime_ns for p in (run_dir, model_dir) for p in p.iterdir()}  # inputs untouched


def test_export_over_a_config_json_nested_too_deep_is_one_line_and_keeps_it(run_and_model, tmp_path, capsys):
    run_dir, _ = run_and_model
    (tmp_path / "o").mkdir()
    nested = "[" * 100_000 + "]" * 100_000  # json.loads gives up at the recursion limit
    (tmp_path / "o" / "config.json").write_text(nested)
    assert main(["export", str(run_dir), "--out", str(tmp_path / "o")]) == 2
    [line] = capsys.readouterr().err.strip().splitlines()
    assert line.startswith("convlens: error: ") and "is not an exported convlens model" in line
    assert [p.name for p in (tmp_path / "o").iterdir()] == ["config.json"]
    assert (tmp_path / "o" / "config.json").read_text() == nested


def _fails(code: int):
    def fail(*args, **kwargs):
        raise OSError(code, os.strerror(code))
    return fail


def test_the_catalogue_has_at_least_60_distinct_cases():
    names = [c[0] for c in CASES] + [h[0] for h in HOSTILE]
    assert len(names) == len(set(names)) and len(names) >= 60, len(names)


def readme_table() -> str:
    """The README's catalogue table, from the cases above (print it with: python -m tests.test_catalogue)."""
    rows = ["| input | answer | proved by |", "|---|---|---|"]
    for name, _, _, status, words in HOSTILE:
        rows.append(f'| {name} | HTTP {status} `{{"error": "…{words}…"}}` | `tests/serving/test_hostile_requests.py` |')
    for name, _, code, words in CASES:
        rows.append(f"| {name} | exit {code}: `convlens: error: …{words}…` | `tests/test_catalogue.py` |")
    return "\n".join(rows)


def test_the_readme_table_lists_every_case():
    readme = (ROOT / "README.md").read_text()
    assert readme_table() in readme, "README's catalogue is stale: python -m tests.test_catalogue prints it"
    assert f"{len(CASES) + len(HOSTILE)} cases: input → answer" in readme


_KEYS = st.sampled_from(["name", "model", "set", "recipe", "recipe_set", "factor", "second_factor", "seeds", "levels",
                         "reference", "train_subset", "test_subset", "experiments", "epochs", "workers", "onnx",
                         "kernel_size", "depth", "filters", "lr", "shift_max", "bogus"])
_VALUES = st.recursive(st.none() | st.booleans() | st.integers(-10**6, 10**6) | st.floats(allow_nan=True)
                       | st.text(max_size=12) | st.sampled_from(["cnn", "mlp", "kernel_size", "fast", "keras", "3"]),
                       lambda inner: st.lists(inner, max_size=4) | st.dictionaries(_KEYS, inner, max_size=4),
                       max_leaves=12)


@settings(max_examples=200, deadline=None, suppress_health_check=list(HealthCheck))
@given(text=st.text(max_size=300) | st.dictionaries(_KEYS, _VALUES, max_size=6).map(yaml.safe_dump))
def test_any_text_as_a_spec_or_a_study_config_is_a_config_or_one_clear_error(tmp_path_factory, text):
    from convlens.errors import UsageError
    from convlens.experiments import BUILTIN_EXPERIMENTS, load_spec
    from convlens.study.config import load_study_config
    path = tmp_path_factory.mktemp("fuzz") / "config.yaml"
    path.write_text(text)
    for load in (lambda: load_spec(path, BUILTIN_EXPERIMENTS), lambda: load_study_config("quick", path)):
        try:
            load()
        except UsageError as e:
            assert str(e) and "\n" not in str(e) and "Traceback" not in str(e)


if __name__ == "__main__":
    print(readme_table())
