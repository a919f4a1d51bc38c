"""The SageMaker containers' side, run through AWS's own toolkits.

Training: sagemaker-training's trainer (what the PyTorch training image's `train` command runs) in an
/opt/ml-shaped tree, with the launcher's source tarball as the submit directory.
Serving: sagemaker-pytorch-inference's handler service and sagemaker-inference's Transformer, loaded and
called by TorchServe's own Python worker code (ts.model_loader, ts.service) from the unpacked model.tar.gz,
as the inference image does; only TorchServe's Java frontend (the HTTP server) is not run.
"""

from __future__ import annotations

import base64
import io
import json
import os
import re
import struct
import subprocess
import sys
import tarfile
from http import HTTPStatus
from importlib.metadata import PackageNotFoundError, packages_distributions, requires
from pathlib import Path

import numpy as np
import pytest
import ts
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from PIL import Image
from sagemaker_inference.errors import BaseInferenceToolkitError
from sagemaker_pytorch_serving_container import handler_service
from ts.context import Context, RequestProcessor

from convlens.cloud.sagemaker import inference
from convlens.cloud.sagemaker.launcher import Gateway, SageMakerSettings, deploy, source_tarball
from convlens.serving.inputs import InputError
from convlens.serving.predictor import Predictor
from tests.conftest import fashion_files

JSON = "application/json"


def clean_env() -> dict[str, str]:
    # Nothing of the caller's SageMaker settings, and bytecode written (evidence of where code was imported).
    return {k: v for k, v in os.environ.items()
            if not k.startswith(("SM_", "SAGEMAKER_")) and k != "PYTHONDONTWRITEBYTECODE"}


def training_channel(root: Path) -> Path:
    channel = root / "input" / "data" / "training"
    channel.mkdir(parents=True)
    for path in fashion_files():
        (channel / path.name).symlink_to(path)
    return channel


def opt_ml(root: Path, hyperparameters: dict | None) -> dict[str, str]:
    """An /opt/ml-shaped tree under ``root`` with the real data as the 'training' channel; returns the env
    with which to run the entry point directly."""
    channel = training_channel(root)
    config = root / "input" / "config"
    config.mkdir(parents=True)
    if hyperparameters is not None:
        (config / "hyperparameters.json").write_text(json.dumps(hyperparameters))
    env = clean_env()
    env.update(SM_INPUT_CONFIG_DIR=str(config), SM_CHANNEL_TRAINING=str(channel), SM_MODEL_DIR=str(root / "model"),
               SM_OUTPUT_DATA_DIR=str(root / "output" / "data"), SM_OUTPUT_DIR=str(root / "output"))
    return env


def run_entry(env: dict) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "convlens.cloud.sagemaker.train"], env=env, capture_output=True,
                          text=True, timeout=600)


def run_training_toolkit(root: Path, hyperparameters: dict[str, str]) -> subprocess.CompletedProcess:
    """What the training image does: its `train` command (sagemaker_training.cli.train -> trainer.train) reads
    /opt/ml/input/config, unpacks sagemaker_submit_directory into /opt/ml/code, pip-installs its
    requirements.txt and runs sagemaker_program there (entry_point.run)."""
    training_channel(root)
    config = root / "input" / "config"
    config.mkdir(parents=True)
    (root / "sourcedir.tar.gz").write_bytes(source_tarball())
    # As CreateTrainingJob receives them from the launcher: strings, the toolkit's own keys JSON-encoded.
    hps = {**hyperparameters, "sagemaker_program": json.dumps("convlens_entry.py"),
           "sagemaker_submit_directory": json.dumps(str(root / "sourcedir.tar.gz")),
           "sagemaker_region": json.dumps("us-east-1")}
    (config / "hyperparameters.json").write_text(json.dumps(hps))
    (config / "inputdataconfig.json").write_text(json.dumps({"training": {
        "TrainingInputMode": "File", "S3DistributionType": "FullyReplicated", "RecordWrapperType": "None"}}))
    (config / "resourceconfig.json").write_text(json.dumps({
        "current_host": "algo-1", "hosts": ["algo-1"], "network_interface_name": "eth0"}))
    env = clean_env()
    env.update(SAGEMAKER_BASE_DIR=str(root),  # the toolkit's stand-in for /opt/ml
               SM_STUDIO_LOCAL_MODE="true",  # the toolkit's switch to skip waiting for DNS of the host 'algo-1'
               PIP_NO_INDEX="1", PIP_DISABLE_PIP_VERSION_CHECK="1")  # requirements.txt from this venv only
    return subprocess.run([sys.executable, "-m", "sagemaker_training.cli.train"], env=env, capture_output=True,
                          text=True, timeout=600)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    root = tmp_path_factory.mktemp("opt_ml")
    # String values, as CreateTrainingJob sends them; one JSON-encoded, as the SageMaker SDK sends them.
    proc = run_training_toolkit(root, {"model": "cnn-16-32", "epochs": "1", "batch-size": '"128"',
                                       "set": "kernel_size=5", "train-subset": "4000", "test-subset": "1000",
                                       "seed": "3", "onnx": "true"})
    return root, proc


def test_training_toolkit_runs_the_entry_point_from_the_source_tarball(trained):
    root, proc = trained
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert (root / "output" / "success").is_file() and not (root / "output" / "failure").exists()
    # The toolkit unpacked the tarball into code/ and the entry script imported convlens from there.
    assert (root / "code" / "convlens_entry.py").is_file()
    assert list((root / "code" / "convlens" / "cloud" / "sagemaker" / "__pycache__").glob("train.*.pyc"))
    model = root / "model"
    # examples.npz: real test images from the training channel, for the web page of `convlens serve`
    assert {p.name for p in model.iterdir()} == {"model.safetensors", "config.json", "model.onnx", "code",
                                                 "examples.npz"}
    config = json.loads((model / "config.json").read_text())
    assert config["model"]["spec"]["kernel_size"] == 5 and config["source_run"]["seed"] == 3
    metrics = json.loads((root / "output" / "data" / "metrics.json").read_text())
    assert metrics["status"] == "done" and metrics["epochs_run"] == 1 and metrics["test_accuracy"] > 0.5
    assert f"test_accuracy={metrics['test_accuracy']:.4f}" in proc.stdout + proc.stderr
    assert not list((root / "output" / "data").glob(".*.tmp"))  # the atomic write left no temporary file


def test_model_directory_carries_the_serving_code(trained):
    root, _ = trained
    code = root / "model" / "code"
    assert (code / "inference.py").read_text().startswith("from convlens.cloud.sagemaker.inference import")
    requirements = (code / "requirements.txt").read_text().split()
    assert "onnxruntime" in requirements and not any(r.startswith("torch") for r in requirements)
    source = Path(inference.__file__).parents[2]  # the convlens package these tests import
    expected = {p.relative_to(source).as_posix() for p in source.rglob("*") if p.is_file()
                and "__pycache__" not in p.parts}
    shipped = {p.relative_to(code / "convlens").as_posix() for p in (code / "convlens").rglob("*") if p.is_file()}
    assert shipped == expected
    assert not (root / "model" / ".code.tmp").exists()


@pytest.mark.parametrize("hyperparameters, message", [
    ({"model": "nope"}, "unknown model 'nope'"),
    ({"epochs": "0"}, "epochs: Input should be greater than or equal to 1"),
    ({"kernel-size": "5"}, "unknown hyperparameter 'kernel_size'"),
    # two spellings of one setting, or a key twice in a JSON value: the last won without a word
    ({"batch-size": "64", "batch_size": "128"}, "hyperparameter batch_size is given twice (batch-size and batch_size)"),
    ({"lr": "0.1", "learning_rate": "0.5"}, "hyperparameter lr is given twice (lr and learning_rate)"),
    ({"set": '{"kernel_size": 3, "kernel_size": 5}'}, "hyperparameter JSON gives 'kernel_size' twice"),
])
def test_failures_are_written_to_the_failure_file(tmp_path, hyperparameters, message):
    proc = run_entry(opt_ml(tmp_path, hyperparameters))
    assert proc.returncode == 1
    failure = (tmp_path / "output" / "failure").read_text()
    assert message in failure and len(failure.splitlines()[0]) <= 1024
    assert not (tmp_path / "model").exists()
    assert [p.name for p in (tmp_path / "output").iterdir()] == ["failure"]  # no temporary file left


def test_the_toolkit_keeps_our_one_line_failure_reason(tmp_path):
    proc = run_training_toolkit(tmp_path, {"model": "nope"})
    assert proc.returncode != 0
    # trainer.train writes its own "Framework Error: <traceback>" only where no failure file exists yet.
    failure = (tmp_path / "output" / "failure").read_text()
    assert failure.startswith("unknown model 'nope'") and "Traceback" not in failure
    assert not (tmp_path / "output" / "success").exists()


def test_missing_channel_and_sm_hps(tmp_path):
    env = opt_ml(tmp_path, None)
    env.pop("SM_CHANNEL_TRAINING")
    assert run_entry(env).returncode == 1
    assert "SM_CHANNEL_TRAINING is not set" in (tmp_path / "output" / "failure").read_text()
    env = opt_ml(tmp_path / "hps", None)
    env["SM_HPS"] = json.dumps({"model": "nope"})  # SM_HPS wins over the file
    assert run_entry(env).returncode == 1
    assert "unknown model 'nope'" in (tmp_path / "hps" / "output" / "failure").read_text()


def test_the_entry_point_trains_scikit_learns_digits_without_a_channel(tmp_path):
    env = opt_ml(tmp_path, {"model": "cnn-16-32", "dataset": "digits", "epochs": "2"})
    env.pop("SM_CHANNEL_TRAINING")  # the digits come with scikit-learn
    proc = run_entry(env)
    assert proc.returncode == 0, proc.stderr
    config = json.loads((tmp_path / "model" / "config.json").read_text())
    assert config["dataset"] == "digits" and config["input"]["shape"] == [1, 8, 8]
    metrics = json.loads((tmp_path / "output" / "data" / "metrics.json").read_text())
    assert metrics["n_test"] == 359 and metrics["test_accuracy"] > 0.5


def test_inference_steps_share_the_server_decoding(trained, fashion):
    root, _ = trained
    model = inference.model_fn(str(root / "model"))
    assert isinstance(model, Predictor)
    x = (fashion.test_images[:2] / 255.0).reshape(2, 28, 28, 1)
    data = inference.input_fn(json.dumps(x.tolist()), JSON)
    body, content_type = inference.output_fn(inference.predict_fn(data, model), "text/html, application/*;q=0.8")
    decoded = json.loads(body)
    assert content_type == JSON and decoded["classes"] == model.class_names
    assert np.allclose(decoded["predictions"], model.predict(x.reshape(2, 1, 28, 28)), atol=1e-6)
    assert np.allclose(np.sum(decoded["predictions"], axis=1), 1.0, atol=1e-5)
    # A client mistake is an InputError (as the local server catches it) and the toolkit's own error type.
    for call, status, message in [(lambda: inference.output_fn({}, "text/csv"), 406, "unsupported accept type"),
                                  (lambda: inference.input_fn(b"[[1, 2, 3]]", JSON), 400, "unsupported shape"),
                                  (lambda: inference.input_fn(b"1,2", "text/csv"), 415, "unsupported content")]:
        with pytest.raises(InputError, match=message) as caught:
            call()
        assert isinstance(caught.value, BaseInferenceToolkitError)
        assert caught.value.status == caught.value.status_code == status
        assert caught.value.phrase == HTTPStatus(status).phrase


def test_steps_and_transform_fn_work_without_the_toolkit(monkeypatch):
    monkeypatch.setitem(sys.modules, "sagemaker_inference.errors", None)  # an import of it now fails
    inference._client_error_type.cache_clear()
    try:
        with pytest.raises(InputError, match="unsupported shape") as caught:
            inference.input_fn(b"[[1, 2, 3]]", JSON)
        assert type(caught.value) is InputError and caught.value.status == 400
        with pytest.raises(InputError, match="unsupported accept type") as caught:  # no context to answer on
            inference.transform_fn(None, b"[[1, 2, 3]]", JSON, "text/csv", None)
        assert type(caught.value) is InputError and caught.value.status == 406
    finally:
        inference._client_error_type.cache_clear()


# (name, content type, accept, body, status, message); a body of None is a valid request's.
MISTAKES = [
    ("garbage JSON", JSON, JSON, b'{"instances": [[0.1, ', 400, "not valid JSON"),
    ("wrong shape", JSON, JSON, b"[[1, 2, 3]]", 400, "unsupported shape [1, 3]"),
    ("unknown content type", "text/csv", JSON, b"0.1,0.2", 415, "unsupported content type 'text/csv'"),
    ("unsupported accept", JSON, "text/csv", None, 406, "unsupported accept type 'text/csv'"),
    # The toolkit decoded JSON and CSV bodies as UTF-8 before any handler: a 500 with a traceback.
    ("JSON not UTF-8", JSON, JSON, b"[\xff\xfe]", 400, "body is not valid JSON (not UTF-8 text)"),
    ("CSV not UTF-8", "text/csv", JSON, b"\xff,1", 415, "unsupported content type 'text/csv'"),
]


def test_toolkit_honours_the_steps_errors_without_transform_fn(trained, fashion, tmp_path, monkeypatch):
    """The steps alone as the user module (no transform_fn): the Transformer's handle_error gives their status."""
    root, _ = trained
    code = tmp_path / "code"
    code.mkdir()
    (code / "convlens_steps.py").write_text(
        "from convlens.cloud.sagemaker.inference import input_fn, model_fn, output_fn, predict_fn  # noqa: F401\n")
    monkeypatch.syspath_prepend(str(code))
    monkeypatch.setenv("SAGEMAKER_PROGRAM", "convlens_steps.py")
    monkeypatch.setenv("PYTHONPATH", "")  # DefaultHandlerService.initialize prepends model_dir/code to it
    try:
        service = handler_service.HandlerService()
        context = Context("model", str(root / "model"), None, 1, None, ts.__version__)
        service.initialize(context)  # Transformer.validate_and_initialize: imports the module, calls model_fn
        valid = json.dumps((fashion.test_images[:1] / 255.0).tolist()).encode()
        for name, content_type, accept, body, status, message in MISTAKES + [("valid", JSON, JSON, valid, 200, "")]:
            context.request_processor = [RequestProcessor({"Content-Type": content_type, "Accept": accept})]
            [answer] = service.handle([{"body": body or valid}], context)
            assert context.get_response_status(0)[0] == status, (name, answer)
            if status == 200:
                assert len(json.loads(answer)["predictions"]) == 1
            else:
                assert message in answer.splitlines()[0], (name, answer)  # handle_error: message, then traceback
    finally:
        sys.modules.pop("convlens_steps", None)


# TorchServe's Python worker, as model_service_worker.py drives it after the frontend's load and predict
# commands: the loader imports the handler module by its file name and calls HandlerService.initialize
# (model_fn); Service.predict calls handle (Transformer.transform) and encodes the answer for the frontend.
WORKER = r"""
import base64, importlib, json, os, sys
import ts
import sagemaker_inference.environment as toolkit_env
from ts.metrics.metric_cache_yaml_impl import MetricsCacheYamlImpl
from ts.model_loader import ModelLoaderFactory

model_dir, handler, out = sys.argv[1:4]
assert toolkit_env.model_dir == model_dir and toolkit_env.code_dir == os.path.join(model_dir, "code")
importlib.import_module(os.path.basename(handler.split(":")[0])[:-3])  # the toolkit's own imports come first
before = set(sys.modules)
metrics = MetricsCacheYamlImpl(os.path.join(os.path.dirname(ts.__file__), "configs", "metrics.yaml"))
metrics.initialize_cache()
metrics.model_name = "model"
service = ModelLoaderFactory.get_model_loader().load("model", model_dir, handler, None, 1, None, True, metrics)
service.set_cl_socket(None)
answers = []
for i, request in enumerate(json.load(sys.stdin)):
    headers = [{"name": k.encode(), "value": v.encode()} for k, v in request["headers"].items()]
    body = {"name": "body", "contentType": request["headers"]["Content-Type"],
            "value": base64.b64decode(request["body"])}
    frame = service.predict([{"requestId": b"r%d" % i, "headers": headers, "parameters": [body]}])
    answers.append(base64.b64encode(bytes(frame)).decode())
loaded = sorted({name.split(".")[0] for name in set(sys.modules) - before})
with open(out, "w") as f:
    json.dump({"answers": answers, "loaded": loaded, "convlens": sys.modules["convlens"].__file__}, f)
"""


def decode_predict_response(frame: bytes) -> dict:
    """One request's answer from ts.protocol.otf_message_handler.create_predict_response's frame."""
    pos = 0

    def take(n: int) -> bytes:
        nonlocal pos
        pos += n
        return frame[pos - n:pos]

    def integer() -> int:
        return struct.unpack("!i", take(4))[0]

    batch_code, _batch_message = integer(), take(integer())
    _request_id = take(integer())
    content_type = take(integer()).decode()
    status, phrase = integer(), take(integer()).decode()
    headers = {take(integer()).decode(): take(integer()).decode() for _ in range(integer())}
    body = take(integer())
    assert integer() == -1 and pos == len(frame)  # end of the list: exactly one answer
    return {"batch_code": batch_code, "content_type": content_type, "status": status, "phrase": phrase,
            "headers": headers, "body": body}


def dependency_closure(names: list[str]) -> set[str]:
    """The distributions that installing ``names`` brings: them and their requirements, recursively."""
    todo, seen = [Requirement(n).name for n in names], set()
    while todo:
        name = canonicalize_name(todo.pop())
        if name in seen:
            continue
        seen.add(name)
        try:
            needs = requires(name) or []
        except PackageNotFoundError:
            continue
        todo += [r.name for r in map(Requirement, needs) if r.marker is None or r.marker.evaluate({"extra": ""})]
    return seen


def test_model_tar_gz_loads_and_answers_in_the_inference_toolkit(trained, fashion, tmp_path):
    root, proc = trained
    assert proc.returncode == 0, proc.stderr[-3000:]
    # model.tar.gz as SageMaker packs SM_MODEL_DIR at the end of the job, unpacked where the image puts it.
    archive = io.BytesIO()
    with tarfile.open(fileobj=archive, mode="w:gz") as tar:
        for path in sorted((root / "model").iterdir()):
            tar.add(path, arcname=path.name)
    archive.seek(0)
    model_dir = tmp_path / "opt_ml" / "model"
    with tarfile.open(fileobj=archive, mode="r:gz") as tar:
        tar.extractall(model_dir, filter="data")
    # The environment deploy() gives the model, then the paths the image adds: sagemaker-pytorch-inference's
    # torchserve._set_python_path prepends the code dir to PYTHONPATH, and TorchServe's frontend
    # (EnvironmentUtils.getEnvString) puts the handler's directory before it and the model directory after.
    gw = Gateway(region="us-east-1", dry_run=True, echo=lambda line: None)
    deploy(gw, SageMakerSettings(role_arn="arn:aws:iam::123456789012:role/R", bucket="models"),
           "s3://models/model.tar.gz", "e", wait=False)
    [create_model] = [c["params"] for c in gw.sent if c["operation"] == "CreateModel"]
    handler = handler_service.__file__ + ":handle"  # sagemaker_pytorch_serving_container.serving.HANDLER_SERVICE
    env = {**clean_env(), **create_model["PrimaryContainer"]["Environment"],
           "SAGEMAKER_BASE_DIR": str(model_dir.parent),  # the toolkits' stand-in for /opt/ml
           "PYTHONPATH": os.pathsep.join([os.path.dirname(handler_service.__file__), str(model_dir / "code"),
                                          str(model_dir)])}
    x = (fashion.test_images[:2] / 255.0).reshape(2, 28, 28, 1)
    png = io.BytesIO()
    Image.fromarray(fashion.test_images[0]).save(png, format="PNG")
    requests = [(JSON, JSON, json.dumps(x.tolist()).encode()), ("image/png", "*/*", png.getvalue())]
    requests += [(ct, accept, body if body is not None else requests[0][2]) for _, ct, accept, body, *_ in MISTAKES]
    stdin = json.dumps([{"headers": {"Content-Type": ct, "Accept": accept}, "body": base64.b64encode(body).decode()}
                        for ct, accept, body in requests])
    out = tmp_path / "answers.json"
    worker = subprocess.run([sys.executable, "-P", "-c", WORKER, str(model_dir), handler, str(out)], input=stdin,
                            env=env, cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert worker.returncode == 0, worker.stdout[-3000:] + worker.stderr[-3000:]
    result = json.loads(out.read_text())
    assert Path(result["convlens"]).is_relative_to(model_dir / "code")  # the model's own copy, not this checkout
    answers = [decode_predict_response(base64.b64decode(a)) for a in result["answers"]]
    assert all(a["batch_code"] == 200 for a in answers)  # the batch itself went through; statuses are per request

    ok, image = answers[0], answers[1]
    assert ok["status"] == 200 and ok["content_type"] == JSON
    decoded = json.loads(ok["body"])
    direct = Predictor(root / "model")
    expected = direct.predict(x.reshape(2, 1, 28, 28).astype(np.float32))
    assert np.allclose(decoded["predictions"], expected, atol=2e-6) and decoded["classes"] == direct.class_names
    assert image["status"] == 200 and np.isclose(sum(json.loads(image["body"])["predictions"][0]), 1.0, atol=1e-5)

    for (name, _, _, _, status, message), answer in zip(MISTAKES, answers[2:], strict=True):
        assert (answer["status"], answer["phrase"]) == (status, HTTPStatus(status).phrase), (name, answer)
        assert answer["content_type"] == JSON and answer["body"].count(b"\n") == 0, (name, answer)
        error = json.loads(answer["body"])
        assert list(error) == ["error"] and message in error["error"], (name, error)
        assert "Traceback" not in error["error"]

    # Everything the model and the requests imported beyond the toolkit's own imports is the image's torch,
    # installed by code/requirements.txt (the image runs pip on it at start) or the model's own code.
    requirements = (model_dir / "code" / "requirements.txt").read_text().split()
    installed = dependency_closure(["torch", *requirements])
    owners = packages_distributions()
    foreign = {canonicalize_name(dist) for name in result["loaded"]
               if name not in sys.stdlib_module_names and name not in {"convlens", "inference"}
               for dist in owners.get(name, [name])}
    assert foreign <= installed, foreign - installed
    assert re.search(r"\bPIL\b", " ".join(result["loaded"]))  # the PNG request exercised pillow


@pytest.mark.parametrize("value, seed", [("3", 3), (" 12 ", 12), (7, 7), (2.0, 2), ("1.9", None), (1.9, None),
                                         (True, None), ("true", None), ("-1", None), (None, None)])
def test_the_seed_hyperparameter_is_a_whole_number_or_refused(value, seed):
    # int() took 1.9 (and true) as 1: a run with another seed than asked, recorded as asked
    from convlens.cloud.sagemaker.train import train_config
    from convlens.errors import UsageError
    if seed is None:
        with pytest.raises(UsageError, match="hyperparameter seed: expected a whole number"):
            train_config({"seed": value, "dataset": "digits"}, None)
    else:
        assert train_config({"seed": value, "dataset": "digits"}, None).seed == seed


def test_metric_definitions_read_the_line_the_entry_point_prints(trained):
    from convlens.cloud.sagemaker.train import METRIC_DEFINITIONS
    root, proc = trained
    metrics = json.loads((root / "output" / "data" / "metrics.json").read_text())
    # SageMaker applies each regex to the job's log and records its first group as the metric's value.
    found = {d["Name"]: float(re.search(d["Regex"], proc.stdout + proc.stderr).group(1)) for d in METRIC_DEFINITIONS}
    assert found == pytest.approx({"test_accuracy": metrics["test_accuracy"], "test_loss": metrics["test_loss"],
                                   "train_seconds": metrics["train_seconds"]}, abs=0.05)
    assert found["test_accuracy"] == round(metrics["test_accuracy"], 4)


def in_process_entry(monkeypatch, tmp_path, hps: str) -> tuple[int, str, list]:
    """The entry point's main() here, with SM_HPS ``hps`` and training replaced by a recorder (nothing trains)."""
    import convlens.runs
    from convlens.cloud.sagemaker import train
    trained = []
    monkeypatch.setattr(convlens.runs, "run_training", lambda *args, **kwargs: trained.append(args) or 1 / 0)
    for name, value in {"SM_HPS": hps, "SM_MODEL_DIR": tmp_path / "model", "SM_OUTPUT_DIR": tmp_path / "output",
                        "SM_OUTPUT_DATA_DIR": tmp_path / "output" / "data"}.items():
        monkeypatch.setenv(name, str(value))
    monkeypatch.delenv("SM_CHANNEL_TRAINING", raising=False)
    code = train.main()
    failure = tmp_path / "output" / "failure"
    return code, failure.read_text() if failure.exists() else "", trained


@pytest.mark.parametrize("hps, reason", [
    ("[1, 2]", "hyperparameters must be a JSON object of name: value pairs, not an array"),
    ("null", "hyperparameters must be a JSON object of name: value pairs, not null"),
    ('"cnn"', "hyperparameters must be a JSON object of name: value pairs, not a string"),
])
def test_hyperparameters_that_are_no_json_object_are_one_line(monkeypatch, tmp_path, hps, reason):
    code, failure, trained = in_process_entry(monkeypatch, tmp_path, hps)
    assert (code, failure, trained) == (1, reason, [])  # the reason alone: no AttributeError, no traceback


def test_onnx_without_its_packages_fails_before_training(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "onnxscript", None)  # as in the PyTorch training image: an import fails
    code, failure, trained = in_process_entry(monkeypatch, tmp_path, json.dumps(
        {"dataset": "digits", "epochs": "1", "onnx": "true"}))
    assert code == 1 and trained == [] and not (tmp_path / "model").exists()
    assert failure.startswith("hyperparameter onnx=true needs onnx and onnxscript, which this training image cannot "
                              "import (import of onnxscript halted; None in sys.modules): launch the job with "
                              "'convlens sagemaker train'")
    assert "\n" not in failure and "convlens[onnx]" not in failure  # no advice that makes no sense in a container
