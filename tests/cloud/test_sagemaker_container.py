"""The SageMaker training entry point in an /opt/ml-shaped tree, and the serving-container handlers."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from convlens.cloud.sagemaker import inference
from convlens.data.sources import DEBIAN_DIR
from convlens.serving.inputs import InputError
from convlens.serving.predictor import Predictor


def opt_ml(root: Path, hyperparameters: dict | None) -> dict[str, str]:
    """An /opt/ml-shaped tree under ``root`` with the real data as the 'training' channel; returns the env."""
    if not DEBIAN_DIR.is_dir():
        pytest.fail("needs the Debian package dataset-fashion-mnist (installed by .ci/run and make test)")
    channel = root / "input" / "data" / "training"
    channel.mkdir(parents=True)
    for path in DEBIAN_DIR.glob("*.gz"):
        (channel / path.name).symlink_to(path)
    config = root / "input" / "config"
    config.mkdir(parents=True)
    if hyperparameters is not None:
        (config / "hyperparameters.json").write_text(json.dumps(hyperparameters))
    env = {k: v for k, v in os.environ.items() if not k.startswith("SM_")}
    env.update(SM_INPUT_CONFIG_DIR=str(config), SM_CHANNEL_TRAINING=str(channel), SM_MODEL_DIR=str(root / "model"),
               SM_OUTPUT_DATA_DIR=str(root / "output" / "data"), SM_OUTPUT_DIR=str(root / "output"))
    return env


def run_entry(env: dict) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "convlens.cloud.sagemaker.train"], env=env, capture_output=True,
                          text=True, timeout=600)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    root = tmp_path_factory.mktemp("opt_ml")
    # String values, as CreateTrainingJob sends them; one JSON-encoded, as the SageMaker SDK sends them.
    env = opt_ml(root, {"model": "cnn-16-32", "epochs": "1", "batch-size": '"128"', "set": "kernel_size=5",
                        "train-subset": "4000", "test-subset": "1000", "seed": "3", "onnx": "true",
                        "sagemaker_program": "train.py"})
    return root, run_entry(env)


def test_training_entry_point_follows_the_container_contract(trained):
    root, proc = trained
    assert proc.returncode == 0, proc.stderr
    assert {p.name for p in (root / "model").iterdir()} == {"model.safetensors", "config.json", "model.onnx"}
    config = json.loads((root / "model" / "config.json").read_text())
    assert config["model"]["spec"]["kernel_size"] == 5 and config["source_run"]["seed"] == 3
    metrics = json.loads((root / "output" / "data" / "metrics.json").read_text())
    assert metrics["status"] == "done" and metrics["epochs_run"] == 1 and metrics["test_accuracy"] > 0.5
    assert f"test_accuracy={metrics['test_accuracy']:.4f}" in proc.stdout
    assert not (root / "output" / "failure").exists()


@pytest.mark.parametrize("hyperparameters, message", [
    ({"model": "nope"}, "unknown model 'nope'"),
    ({"epochs": "0"}, "epochs: Input should be greater than or equal to 1"),
    ({"kernel-size": "5"}, "unknown hyperparameter 'kernel_size'"),
])
def test_failures_are_written_to_the_failure_file(tmp_path, hyperparameters, message):
    proc = run_entry(opt_ml(tmp_path, hyperparameters))
    assert proc.returncode == 1
    failure = (tmp_path / "output" / "failure").read_text()
    assert message in failure and len(failure.splitlines()[0]) <= 1024
    assert not (tmp_path / "model").exists()


def test_missing_channel_and_sm_hps(tmp_path):
    env = opt_ml(tmp_path, None)
    env.pop("SM_CHANNEL_TRAINING")
    assert run_entry(env).returncode == 1
    assert "SM_CHANNEL_TRAINING is not set" in (tmp_path / "output" / "failure").read_text()
    env = opt_ml(tmp_path / "hps", None)
    env["SM_HPS"] = json.dumps({"model": "nope"})  # SM_HPS wins over the file
    assert run_entry(env).returncode == 1
    assert "unknown model 'nope'" in (tmp_path / "hps" / "output" / "failure").read_text()


def test_inference_handlers_share_the_server_decoding(trained, fashion):
    root, proc = trained
    assert proc.returncode == 0, proc.stderr
    model = inference.model_fn(str(root / "model"))
    assert isinstance(model, Predictor)
    x = (fashion.test_images[:2] / 255.0).reshape(2, 28, 28, 1)
    data = inference.input_fn(json.dumps(x.tolist()), "application/json")
    prediction = inference.predict_fn(data, model)
    body, content_type = inference.output_fn(prediction, "application/json")
    decoded = json.loads(body)
    assert content_type == "application/json" and len(decoded["predictions"]) == 2
    assert np.allclose(np.sum(decoded["predictions"], axis=1), 1.0, atol=1e-5)
    assert decoded["classes"] == model.class_names
    with pytest.raises(InputError, match="unsupported accept type"):
        inference.output_fn(prediction, "text/csv")
    with pytest.raises(InputError, match="unsupported shape"):
        inference.input_fn(b"[[1, 2, 3]]", "application/json")
