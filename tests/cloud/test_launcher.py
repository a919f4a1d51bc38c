"""The SageMaker launcher against a local moto server (S3 + SageMaker APIs), and its one-line errors."""

from __future__ import annotations

import io
import json
import socket
import tarfile

import boto3
import pytest
from botocore.exceptions import ClientError, ConnectTimeoutError, NoCredentialsError

from convlens.cli import main
from convlens.cloud.sagemaker.launcher import (
    Gateway,
    SageMakerSettings,
    delete,
    deploy,
    explain,
    launch_training,
    source_tarball,
)
from convlens.errors import ConvlensError
from tests.conftest import fashion_source

ROLE = "arn:aws:iam::123456789012:role/ConvlensRole"


@pytest.fixture(scope="module")
def moto_url():
    from moto.server import ThreadedMotoServer
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    yield f"http://127.0.0.1:{port}"
    server.stop()


@pytest.fixture
def aws(moto_url, monkeypatch):
    monkeypatch.setenv("AWS_ENDPOINT_URL", moto_url)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    return moto_url


def settings(bucket: str, **changes) -> SageMakerSettings:
    return SageMakerSettings(**{"role_arn": ROLE, "bucket": bucket,
                                "hyperparameters": {"model": "cnn-32-64-128", "epochs": "5"}, **changes})


def test_training_job_request_channels_hyperparameters_image_and_output(aws):
    boto3.client("s3").create_bucket(Bucket="train-bucket")
    gw = Gateway(region="us-east-1")
    data_dir = fashion_source().directory  # where the CLI finds the data: cache, Debian package or download
    result = launch_training(gw, settings("train-bucket"), data_dir, job_name="convlens-test-1", poll_s=0.1,
                             on_status=lambda status: None)
    keys = {o["Key"] for o in boto3.client("s3").list_objects_v2(Bucket="train-bucket")["Contents"]}
    assert {f"convlens/data/training/{p.name}" for p in fashion_source().paths.values()} <= keys
    assert "convlens/source/convlens-test-1/sourcedir.tar.gz" in keys
    job = boto3.client("sagemaker").describe_training_job(TrainingJobName="convlens-test-1")
    assert job["AlgorithmSpecification"]["TrainingImage"] == (
        "763104351884.dkr.ecr.us-east-1.amazonaws.com/pytorch-training:2.5.1-cpu-py311-ubuntu22.04-sagemaker")
    channel = job["InputDataConfig"][0]
    assert channel["ChannelName"] == "training"
    assert channel["DataSource"]["S3DataSource"]["S3Uri"] == "s3://train-bucket/convlens/data/training/"
    assert job["OutputDataConfig"]["S3OutputPath"] == "s3://train-bucket/convlens/output"
    assert job["HyperParameters"]["epochs"] == "5" and job["HyperParameters"]["sagemaker_program"] == "convlens_entry.py"
    assert job["HyperParameters"]["sagemaker_submit_directory"] == \
        "s3://train-bucket/convlens/source/convlens-test-1/sourcedir.tar.gz"
    assert job["RoleArn"] == ROLE and job["ResourceConfig"]["InstanceType"] == "ml.m5.large"
    assert result["job_name"] == "convlens-test-1" and result["model_data"].endswith("model.tar.gz")
    assert [c["operation"] for c in gw.sent][-2:] == ["CreateTrainingJob", "DescribeTrainingJob"]


def test_other_datasets_get_their_own_channel_or_none(aws, tmp_path):
    from PIL import Image
    boto3.client("s3").create_bucket(Bucket="data-bucket")
    gw = Gateway(region="us-east-1")
    digits = launch_training(gw, settings("data-bucket", hyperparameters={"model": "cnn", "dataset": "digits"}), None,
                             job_name="digits-1", poll_s=0.1, on_status=lambda status: None)
    assert digits["classes"] == [str(d) for d in range(10)]
    assert boto3.client("sagemaker").describe_training_job(TrainingJobName="digits-1").get("InputDataConfig", []) == []
    for name in ("cat", "dog"):  # a folder dataset: its images are uploaded under their class folders
        (tmp_path / "pets" / name).mkdir(parents=True)
        for k in range(3):
            Image.new("RGB", (10, 10), (k * 40, 90, 200)).save(tmp_path / "pets" / name / f"{k}.png")
    (tmp_path / "pets" / "notes.txt").write_text("not uploaded")
    folder = launch_training(gw, settings("data-bucket", hyperparameters={"model": "cnn", "dataset": "folder"}),
                             tmp_path / "pets", job_name="folder-1", poll_s=0.1, on_status=lambda status: None)
    keys = {o["Key"] for o in boto3.client("s3").list_objects_v2(Bucket="data-bucket")["Contents"]}
    job = boto3.client("sagemaker").describe_training_job(TrainingJobName="folder-1")
    uri = job["InputDataConfig"][0]["DataSource"]["S3DataSource"]["S3Uri"]
    prefix = uri.removeprefix("s3://data-bucket/")
    assert prefix.startswith("convlens/data/folder-") and prefix.endswith("/training/")
    assert {k for k in keys if k.startswith(prefix)} == {f"{prefix}{c}/{k}.png" for c in ("cat", "dog") for k in range(3)}
    assert folder["classes"] == ["cat", "dog"] and job["HyperParameters"]["dataset"] == "folder"
    # another folder (here: the same one with one more image) gets its own channel: nothing old mixes in
    Image.new("RGB", (10, 10)).save(tmp_path / "pets" / "cat" / "9.png")
    launch_training(gw, settings("data-bucket", hyperparameters={"model": "cnn", "dataset": "folder"}),
                    tmp_path / "pets", job_name="folder-2", poll_s=0.1, on_status=lambda status: None)
    second = boto3.client("sagemaker").describe_training_job(TrainingJobName="folder-2")
    assert second["InputDataConfig"][0]["DataSource"]["S3DataSource"]["S3Uri"] != uri


def model_tar_gz(*names: str) -> bytes:
    """A gzipped tar holding empty files under ``names``, as SageMaker packs SM_MODEL_DIR."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for name in names:
            tar.addfile(tarfile.TarInfo(name), io.BytesIO(b""))
    return buffer.getvalue()


def test_deploy_invoke_delete_create_and_remove_everything(aws, tmp_path):
    s = settings("deploy-bucket", inference_instance="ml.t2.medium")
    s3 = boto3.client("s3")
    s3.create_bucket(Bucket="deploy-bucket")
    s3.put_object(Bucket="deploy-bucket", Key="convlens/output/j/output/model.tar.gz",
                  Body=model_tar_gz("config.json", "model.safetensors", "code/requirements.txt", "code/inference.py"))
    gw = Gateway(region="us-east-1")
    names = deploy(gw, s, "s3://deploy-bucket/convlens/output/j/output/model.tar.gz", "fmnist",
                   poll_s=0.1,
                   on_status=lambda status: None)
    sm = boto3.client("sagemaker")
    model = sm.describe_model(ModelName=names["model"])
    assert model["PrimaryContainer"]["ModelDataUrl"] == "s3://deploy-bucket/convlens/output/j/output/model.tar.gz"
    # The image imports SAGEMAKER_PROGRAM from /opt/ml/model/code: the code inside model.tar.gz, no S3 tarball.
    assert model["PrimaryContainer"]["Environment"] == {"SAGEMAKER_PROGRAM": "inference.py",
                                                        "SAGEMAKER_SUBMIT_DIRECTORY": "/opt/ml/model/code",
                                                        "SAGEMAKER_REGION": "us-east-1"}
    config = sm.describe_endpoint_config(EndpointConfigName="fmnist-config")
    assert config["ProductionVariants"][0]["InstanceType"] == "ml.t2.medium"
    assert sm.describe_endpoint(EndpointName="fmnist")["EndpointConfigName"] == "fmnist-config"
    assert delete(gw, "fmnist") == ["fmnist", "fmnist-config", "fmnist-model"]
    assert sm.list_endpoints()["Endpoints"] == [] and sm.list_models()["Models"] == []
    assert sm.list_endpoint_configs()["EndpointConfigs"] == []


@pytest.mark.parametrize("body, message", [
    (model_tar_gz("config.json", "model.safetensors"), "holds no code/inference.py: it comes from a training job "
                                                       "of an older convlens"),
    (b"not a tarball", "is not a model.tar.gz (ReadError"),
])
def test_deploy_refuses_a_model_without_its_code_before_creating_anything(aws, body, message):
    boto3.client("s3").create_bucket(Bucket="old-bucket")
    boto3.client("s3").put_object(Bucket="old-bucket", Key="model.tar.gz", Body=body)
    gw = Gateway(region="us-east-1")
    with pytest.raises(ConvlensError) as caught:
        deploy(gw, settings("old-bucket"), "s3://old-bucket/model.tar.gz", "old", wait=False)
    assert message in str(caught.value) and "\n" not in str(caught.value)
    assert [c["operation"] for c in gw.sent] == ["GetObject"]  # no model, config or endpoint was created


def test_dry_run_prints_requests_and_sends_nothing(aws, capsys):
    boto3.client("s3").create_bucket(Bucket="dry-bucket")
    code = main(["sagemaker", "train", "--role-arn", ROLE, "--bucket", "dry-bucket", "--hp", "epochs=3",
                 "--job-name", "dry-1", "--dry-run"])
    printed = capsys.readouterr().out
    assert code == 0 and '"operation": "CreateTrainingJob"' in printed and '"epochs": "3"' in printed
    assert "Contents" not in boto3.client("s3").list_objects_v2(Bucket="dry-bucket")
    assert boto3.client("sagemaker").list_training_jobs()["TrainingJobSummaries"] == [] or all(
        j["TrainingJobName"] != "dry-1" for j in boto3.client("sagemaker").list_training_jobs()["TrainingJobSummaries"])
    assert main(["sagemaker", "delete", "--endpoint", "x", "--dry-run"]) == 0
    assert [line for line in capsys.readouterr().out.splitlines() if '"operation"' in line] == [
        ' "operation": "DeleteEndpoint",', ' "operation": "DeleteEndpointConfig",', ' "operation": "DeleteModel",']


@pytest.mark.parametrize("hp, message", [(["model=seed000-cnn"], "unknown model 'seed000-cnn'; valid models: cnn"),
                                         (["recipe=seed"], "unknown recipe 'seed'; valid recipes: keras, fast"),
                                         (["set=kernel_size=0"], "kernel_size: Input should be greater")])
def test_bad_hyperparameters_are_refused_before_anything_is_uploaded(aws, capsys, hp, message):
    boto3.client("s3").create_bucket(Bucket="hp-bucket")
    code = main(["sagemaker", "train", "--role-arn", ROLE, "--bucket", "hp-bucket", "--job-name", "hp-1",
                 *[a for h in hp for a in ("--hp", h)]])
    err = capsys.readouterr().err
    assert code == 2 and len(err.strip().splitlines()) == 1 and message in err
    assert "Contents" not in boto3.client("s3").list_objects_v2(Bucket="hp-bucket")  # nothing uploaded


def test_source_tarball_holds_package_entry_and_requirements_without_torch():
    with tarfile.open(fileobj=io.BytesIO(source_tarball()), mode="r:gz") as tar:
        names = set(tar.getnames())
        requirements = tar.extractfile("requirements.txt").read().decode()
    assert {"convlens_entry.py", "requirements.txt", "convlens/cloud/sagemaker/train.py",
            "convlens/serving/page.html"} <= names
    assert "inference.py" not in names  # serving code travels in model.tar.gz (code/), written by the job
    assert "torch" not in requirements  # the container brings its own torch
    assert not any("__pycache__" in n for n in names)


@pytest.mark.parametrize("error, expected", [
    (NoCredentialsError(), "no AWS credentials: run 'aws configure'"),
    (ConnectTimeoutError(endpoint_url="https://sts.us-east-1.amazonaws.com/"),
     "cannot reach https://sts.us-east-1.amazonaws.com/ (ConnectTimeoutError)"),
    (ClientError({"Error": {"Code": "AccessDeniedException", "Message": "User: arn:aws:sts::1:assumed-role/LabRole/x "
                  "is not authorized to perform: sagemaker:CreateEndpointConfig on resource: arn:... with an explicit "
                  "deny"}}, "CreateEndpointConfig"),
     "access denied: this identity is not allowed sagemaker:CreateEndpointConfig; ask an administrator"),
    (ClientError({"Error": {"Code": "ResourceLimitExceeded", "Message": "The account-level service limit "
                  "'ml.p3.2xlarge for training job usage' is 0 Instances"}}, "CreateTrainingJob"),
     "resource limit exceeded for CreateTrainingJob: The account-level service limit"),
])
def test_the_seeds_failures_become_one_actionable_line(error, expected):
    message = explain(error, "sagemaker", "CreateEndpointConfig" if "perform" in str(error) else "CreateTrainingJob")
    assert message.startswith(expected) and "\n" not in message


def test_cli_without_credentials_fails_with_one_line(monkeypatch, tmp_path, capsys):
    for var in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE", "AWS_ENDPOINT_URL"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    code = main(["sagemaker", "delete", "--endpoint", "x"])
    err = capsys.readouterr().err
    assert code == 1 and err.count("\n") == 1 and "no AWS credentials" in err
    assert main(["sagemaker", "train", "--role-arn", "not-an-arn", "--bucket", "b"]) == 2
    assert "role_arn" in capsys.readouterr().err


def test_invoke_sends_the_request_and_parses_the_answer(aws, tmp_path, capsys, fashion):
    import urllib.request
    answer = {"predictions": [[0.0] * 9 + [1.0]], "classes": list(fashion.class_names)}
    for _ in range(2):  # queue the endpoint's canned answer in moto, once per invocation below
        request = urllib.request.Request(f"{aws}/moto-api/static/sagemaker/endpoint-results", method="POST",
                                         data=json.dumps({"results": [{"Body": json.dumps(answer),
                                                                       "ContentType": "application/json"}]}).encode())
        urllib.request.urlopen(request, timeout=10).close()
    # JSON bodies only: moto's server decodes request bodies as UTF-8, so PNG/npy bytes cannot go through it.
    body = json.dumps({"instances": [(fashion.test_images[0] / 255).round(3).tolist()]}).encode()
    gw = Gateway(region="us-east-1")
    from convlens.cloud.sagemaker.launcher import invoke
    assert invoke(gw, "fmnist", body, "application/json") == answer
    sent = gw.sent[-1]
    assert (sent["service"], sent["operation"]) == ("sagemaker-runtime", "InvokeEndpoint")
    assert sent["params"]["EndpointName"] == "fmnist" and sent["params"]["ContentType"] == "application/json"
    assert sent["params"]["Body"] == f"<{len(body)} bytes>"
    (tmp_path / "request.json").write_bytes(body)
    assert main(["sagemaker", "invoke", "--endpoint", "fmnist", str(tmp_path / "request.json")]) == 0
    assert json.loads(capsys.readouterr().out) == answer
    assert main(["sagemaker", "invoke", "--endpoint", "fmnist", str(tmp_path / "notes.txt")]) == 2
    assert "give an existing .png, .jpg, .npy or .json" in capsys.readouterr().err


def test_invoke_counts_the_images_it_can_tell_without_the_model(tmp_path, capsys):
    """1,000 images go (the endpoint's limit), 1,001 are refused before any call; a body whose count depends on the
    model's input shape (one 28 x 28 image or 28 rows?) is left to the endpoint."""
    import io

    import numpy as np

    from convlens.cloud.sagemaker.launcher import _images_in

    def npy(shape):
        buffer = io.BytesIO()
        np.save(buffer, np.zeros(shape, np.uint8))
        return buffer.getvalue()
    assert _images_in(npy((1000, 1, 28, 28)), "application/x-npy") == 1000
    assert _images_in(npy((1001, 28, 28)), "application/x-npy") == 1001
    assert _images_in(npy((1000, 28, 28)), "application/x-npy") is None  # 1,000 images, or 1,000 rows: the model says
    assert _images_in(npy((28, 28)), "application/x-npy") is None
    assert _images_in(b"not an array", "application/x-npy") is None  # the endpoint answers with its own message
    assert _images_in(json.dumps({"instances": [[0] * 784] * 3}).encode(), "application/json") == 3
    assert _images_in(b"[[1, 2]]", "application/json") is None
    assert _images_in(b"{", "application/json") is None
    for n, code in ((1000, 0), (1001, 2)):
        np.save(tmp_path / "x.npy", np.zeros((n, 1, 28, 28), np.uint8))
        assert main(["sagemaker", "invoke", "--endpoint", "ep", str(tmp_path / "x.npy"), "--dry-run"]) == code
    assert "the request holds 1,001 images" in capsys.readouterr().err


@pytest.mark.parametrize("region", ["us-east-1", "us-gov-west-1", "cn-northwest-1", "ap-southeast-4", "il-central-1",
                                    "eu-central-2", "mx-central-1", "us-isob-east-1", "eusc-de-east-1"])
@pytest.mark.parametrize("prefix", ["convlens", "a/b", "my_prefix", "x.y", "env=prod/x", "/lead/and/trail/",
                                    "with space", "café"])
def test_real_regions_and_s3_prefixes_are_taken(region, prefix):
    from convlens.cloud.sagemaker.launcher import Gateway, SageMakerSettings
    settings = SageMakerSettings(role_arn="arn:aws:iam::123456789012:role/R", bucket="my-bucket", region=region,
                                 prefix=prefix)
    assert settings.s3("data") == f"s3://my-bucket/{prefix.strip('/')}/data"  # no empty key part
    assert Gateway(region=region, dry_run=True).region == region


@pytest.mark.parametrize("prefix", ["", "/", "a//b", "a?b", "a#b", "a\\b", "a\nb"])
def test_s3_prefixes_that_make_empty_or_odd_key_parts_are_refused(prefix):
    from pydantic import ValidationError

    from convlens.cloud.sagemaker.launcher import SageMakerSettings
    with pytest.raises(ValidationError, match="must be an S3 key prefix"):
        SageMakerSettings(role_arn="arn:aws:iam::123456789012:role/R", bucket="my-bucket", prefix=prefix)
