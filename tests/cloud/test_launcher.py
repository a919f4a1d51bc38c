"""The SageMaker launcher against a local moto server (S3 + SageMaker APIs), and its one-line errors."""

from __future__ import annotations

import io
import json
import re
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
    assert job["HyperParameters"]["epochs"] == "5"
    assert job["HyperParameters"]["sagemaker_program"] == "convlens_entry.py"
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
    assert {k for k in keys if k.startswith(prefix)} == {f"{prefix}{c}/{k}.png" for c in ("cat", "dog")
                                                         for k in range(3)}
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
    everything = ["endpoint fmnist", "endpoint config fmnist-config", "model fmnist-model"]
    assert delete(gw, "fmnist") == {"deleted": everything, "absent": []}
    assert sm.list_endpoints()["Endpoints"] == [] and sm.list_models()["Models"] == []
    assert sm.list_endpoint_configs()["EndpointConfigs"] == []
    # Again: moto answers each as SageMaker does ("Could not find ..."), and delete carries on past each.
    assert delete(gw, "fmnist") == {"deleted": [], "absent": everything}


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


@pytest.mark.parametrize("option, message", [
    (["--max-runtime", "59"], "--max-runtime: Input should be greater than or equal to 60 (got 59)"),
    (["--volume-gb", "0"], "--volume-gb: Input should be greater than or equal to 1 (got 0)")])
def test_the_jobs_limits_are_checked_before_anything_is_sent(aws, capsys, option, message):
    code = main(["sagemaker", "train", "--role-arn", ROLE, "--bucket", "my-bucket", *option, "--dry-run"])
    captured = capsys.readouterr()
    assert code == 2 and captured.err == f"convlens: error: invalid SageMaker setting: {message}\n"
    assert '"operation"' not in captured.out


def test_dry_run_prints_requests_and_sends_nothing(aws, capsys):
    boto3.client("s3").create_bucket(Bucket="dry-bucket")
    code = main(["sagemaker", "train", "--role-arn", ROLE, "--bucket", "dry-bucket", "--hp", "epochs=3",
                 "--job-name", "dry-1", "--max-runtime", "7200", "--volume-gb", "30", "--dry-run"])
    printed = capsys.readouterr().out
    assert code == 0 and '"operation": "CreateTrainingJob"' in printed and '"epochs": "3"' in printed
    assert '"MaxRuntimeInSeconds": 7200' in printed and '"VolumeSizeInGB": 30' in printed  # as given, not 3600 / 10
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
    assert "invalid SageMaker setting: --role-arn: must be an IAM role ARN" in capsys.readouterr().err  # as typed


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
        assert main(["sagemaker", "invoke", "--endpoint", "ep", str(tmp_path / "x.npy"), "--region", "us-east-1",
                     "--dry-run"]) == code
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


def stubbed(region: str = "us-east-1"):
    """A Gateway whose SageMaker and S3 clients are botocore Stubbers' (nothing leaves the process)."""
    from botocore.stub import Stubber
    session = boto3.session.Session(region_name=region, aws_access_key_id="x", aws_secret_access_key="y")
    gw = Gateway(region=region)
    gw._session = session
    gw._clients = {"sagemaker": session.client("sagemaker"), "s3": session.client("s3")}
    return gw, Stubber(gw._clients["sagemaker"]), Stubber(gw._clients["s3"])


def stub_model_archive(s3_stub) -> None:
    from botocore.response import StreamingBody
    data = model_tar_gz("code/inference.py")
    s3_stub.add_response("get_object", {"Body": StreamingBody(io.BytesIO(data), len(data))},
                         {"Bucket": "models", "Key": "model.tar.gz"})


DENIED = "User: arn:aws:sts::1:assumed-role/LabRole/x is not authorized to perform: sagemaker:{}"
NOT_FOUND = 'Could not find {} "arn:aws:sagemaker:us-east-1:123456789012:{}".'


@pytest.mark.parametrize("model_deleted, tail", [
    (True, "; removed the model fmnist-model it had created, so the same deploy can run again"),
    (False, "; could not remove the model fmnist-model it had created (access denied: this identity is not allowed "
            "sagemaker:DeleteModel; ask an administrator to grant it (AWS Academy/lab roles often deny endpoints: "
            "serve locally with 'convlens serve')): run 'convlens sagemaker delete --endpoint fmnist'"),
])
def test_deploy_that_fails_after_creating_the_model_removes_it(model_deleted, tail):
    gw, sm, s3 = stubbed()
    stub_model_archive(s3)
    sm.add_response("create_model", {"ModelArn": "arn:aws:sagemaker:us-east-1:123456789012:model/fmnist-model"})
    sm.add_client_error("create_endpoint_config", "AccessDeniedException", DENIED.format("CreateEndpointConfig"))
    if model_deleted:
        sm.add_response("delete_model", {}, {"ModelName": "fmnist-model"})
    else:
        sm.add_client_error("delete_model", "AccessDeniedException", DENIED.format("DeleteModel"),
                            expected_params={"ModelName": "fmnist-model"})
    with sm, s3, pytest.raises(ConvlensError) as caught:
        deploy(gw, settings("models"), "s3://models/model.tar.gz", "fmnist", wait=False)
    sm.assert_no_pending_responses()
    assert str(caught.value) == ("access denied: this identity is not allowed sagemaker:CreateEndpointConfig; ask an "
                                 "administrator to grant it (AWS Academy/lab roles often deny endpoints: serve "
                                 "locally with 'convlens serve')" + tail)


def test_deploy_whose_endpoint_fails_removes_all_three_and_an_existing_model_is_left_alone():
    gw, sm, s3 = stubbed()
    stub_model_archive(s3)
    arn = "arn:aws:sagemaker:us-east-1:123456789012:"
    sm.add_response("create_model", {"ModelArn": arn + "model/fmnist-model"})
    sm.add_response("create_endpoint_config", {"EndpointConfigArn": arn + "endpoint-config/fmnist-config"})
    sm.add_response("create_endpoint", {"EndpointArn": arn + "endpoint/fmnist"})
    sm.add_response("describe_endpoint", {"EndpointName": "fmnist", "EndpointArn": arn + "endpoint/fmnist",
                                          "EndpointStatus": "Failed",
                                          "FailureReason": "The primary container did not pass the ping health check",
                                          "CreationTime": 0, "LastModifiedTime": 0})
    sm.add_response("delete_endpoint", {}, {"EndpointName": "fmnist"})
    sm.add_response("delete_endpoint_config", {}, {"EndpointConfigName": "fmnist-config"})
    sm.add_client_error("delete_model", "ValidationException", NOT_FOUND.format("model", "model/fmnist-model"))
    with sm, s3, pytest.raises(ConvlensError) as caught:
        deploy(gw, settings("models"), "s3://models/model.tar.gz", "fmnist", poll_s=0, on_status=lambda status: None)
    assert str(caught.value) == (
        "endpoint fmnist: Failed: The primary container did not pass the ping health check; removed the endpoint "
        "fmnist, endpoint config fmnist-config, model fmnist-model it had created, so the same deploy can run again")
    # A model left by an earlier deploy is not this deploy's to delete: one line says how to remove it.
    gw, sm, s3 = stubbed()
    stub_model_archive(s3)
    sm.add_client_error("create_model", "ValidationException",
                        'Cannot create already existing model "arn:aws:sagemaker:us-east-1:123456789012:model/'
                        'fmnist-model".')
    with sm, s3, pytest.raises(ConvlensError) as caught:
        deploy(gw, settings("models"), "s3://models/model.tar.gz", "fmnist", wait=False)
    sm.assert_no_pending_responses()  # no Delete* was called
    assert str(caught.value).endswith("; an earlier deploy left it: 'convlens sagemaker delete --endpoint fmnist' "
                                      "removes that deploy's endpoint, config and model")


def test_delete_carries_on_past_what_is_gone_and_stops_at_other_errors():
    gw, sm, _ = stubbed()
    sm.add_client_error("delete_endpoint", "ValidationException", NOT_FOUND.format("endpoint", "endpoint/fmnist"),
                        expected_params={"EndpointName": "fmnist"})
    sm.add_response("delete_endpoint_config", {}, {"EndpointConfigName": "fmnist-config"})
    sm.add_response("delete_model", {}, {"ModelName": "fmnist-model"})
    with sm:
        assert delete(gw, "fmnist") == {"deleted": ["endpoint config fmnist-config", "model fmnist-model"],
                                        "absent": ["endpoint fmnist"]}
    gw, sm, _ = stubbed()
    sm.add_response("delete_endpoint", {}, {"EndpointName": "fmnist"})
    sm.add_client_error("delete_endpoint_config", "AccessDeniedException", DENIED.format("DeleteEndpointConfig"))
    with sm, pytest.raises(ConvlensError) as caught:
        delete(gw, "fmnist")
    assert str(caught.value).startswith("access denied: this identity is not allowed sagemaker:DeleteEndpointConfig")
    assert str(caught.value).endswith(" (deleted before it: endpoint fmnist)")


@pytest.fixture
def aws_config(monkeypatch, tmp_path):
    """No AWS settings from this machine: the config file is a temporary one the test writes."""
    for var in ("AWS_DEFAULT_REGION", "AWS_REGION", "AWS_PROFILE", "AWS_DEFAULT_PROFILE", "AWS_ENDPOINT_URL"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "aws-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "aws-credentials"))
    return tmp_path / "aws-config"


def deploy_dry_run(capsys, *options: str) -> tuple[int, dict, str]:
    """``sagemaker deploy --dry-run``: its exit code, the CreateModel request it printed, and stderr."""
    code = main(["sagemaker", "deploy", "--role-arn", ROLE, "--bucket", "models", "--job-name", "j", "--endpoint", "e",
                 "--dry-run", *options])
    captured = capsys.readouterr()
    requests = [json.loads(block) for block in re.findall(r"^\{\n.*?\n\}$", captured.out, re.S | re.M)]
    create_model = next((r["params"] for r in requests if r["operation"] == "CreateModel"), {})
    return code, create_model, captured.err


@pytest.mark.parametrize("env, profile, option, region, image", [
    # Values from aws/deep-learning-containers' table of registries (docs/reference/region_availability.md).
    (None, None, None, "us-east-1", "763104351884.dkr.ecr.us-east-1.amazonaws.com"),  # the documented default
    ("af-south-1", "eu-west-2", None, "af-south-1", "626614931356.dkr.ecr.af-south-1.amazonaws.com"),
    (None, "ap-east-1", None, "ap-east-1", "871362719292.dkr.ecr.ap-east-1.amazonaws.com"),
    ("eu-west-2", None, "me-south-1", "me-south-1", "217643126080.dkr.ecr.me-south-1.amazonaws.com"),
    (None, "cn-northwest-1", None, "cn-northwest-1", "727897471807.dkr.ecr.cn-northwest-1.amazonaws.com.cn"),
    ("eu-south-1", None, None, "eu-south-1", "692866216735.dkr.ecr.eu-south-1.amazonaws.com"),
])
def test_region_comes_from_the_option_then_the_environment_then_the_profile(aws_config, monkeypatch, capsys, env,
                                                                            profile, option, region, image):
    if env:
        monkeypatch.setenv("AWS_DEFAULT_REGION", env)
    aws_config.write_text(f"[default]\nregion = {profile}\n" if profile else "")
    code, create_model, err = deploy_dry_run(capsys, *(["--region", option] if option else []))
    assert code == 0, err
    assert create_model["PrimaryContainer"]["Environment"]["SAGEMAKER_REGION"] == region
    assert create_model["PrimaryContainer"]["Image"] == (
        f"{image}/pytorch-inference:2.5.1-cpu-py311-ubuntu22.04-sagemaker")


def test_a_region_without_a_known_registry_needs_image(aws_config, capsys):
    code, create_model, err = deploy_dry_run(capsys, "--region", "us-gov-west-1")
    assert code == 2 and create_model == {} and err.count("\n") == 1  # refused before any request
    assert ("no AWS Deep Learning Containers registry is known in region us-gov-west-1: pass --image with a PyTorch "
            "inference image URI") in err
    mine = "123456789012.dkr.ecr.us-gov-west-1.amazonaws.com/my-pytorch:1"
    code, create_model, err = deploy_dry_run(capsys, "--region", "us-gov-west-1", "--image", mine)
    assert code == 0 and create_model["PrimaryContainer"]["Image"] == mine
    aws_config.write_text("[default]\nregion = a/b\n")  # a region from the profile is checked too, and said so
    code, _, err = deploy_dry_run(capsys)
    assert code == 2 and "the region 'a/b' from AWS_DEFAULT_REGION or the AWS profile must be an AWS region" in err


@pytest.mark.parametrize("command", [["train", "--hp", "dataset=digits"],
                                     ["deploy", "--job-name", "j", "--endpoint", "e"]])
def test_an_instance_type_without_the_ml_prefix_is_refused(capsys, command):
    code = main(["sagemaker", *command, "--role-arn", ROLE, "--bucket", "models", "--region", "us-east-1",
                 "--instance-type", "m5.large", "--dry-run"])
    captured = capsys.readouterr()
    assert code == 2 and '"operation"' not in captured.out
    assert captured.err.strip() == ("convlens: error: --instance-type 'm5.large' must be a SageMaker instance type "
                                    "like ml.m5.large (with 'ml.')")


def test_training_job_sends_metric_definitions_and_onnx_requirements(aws):
    """onnx=true puts the exporter's packages in the job's requirements.txt (the image has none); the job gets
    SageMaker metric definitions for the line the entry point prints (checked against that line in
    test_sagemaker_container)."""
    s3 = boto3.client("s3")
    s3.create_bucket(Bucket="metric-bucket")
    gw = Gateway(region="us-east-1")
    for job, onnx in (("with-onnx", "true"), ("without-onnx", "false")):
        launch_training(gw, settings("metric-bucket", hyperparameters={"dataset": "digits", "onnx": onnx}), None,
                        job_name=job, wait=False)
        body = s3.get_object(Bucket="metric-bucket", Key=f"convlens/source/{job}/sourcedir.tar.gz")["Body"].read()
        with tarfile.open(fileobj=io.BytesIO(body), mode="r:gz") as tar:
            names = {line.split("==")[0] for line in tar.extractfile("requirements.txt").read().decode().split()}
        assert ({"onnx", "onnxscript"} <= names) == (onnx == "true"), names
    [request] = [c["params"] for c in gw.sent if c["operation"] == "CreateTrainingJob"][-1:]
    assert request["AlgorithmSpecification"]["MetricDefinitions"] == [
        {"Name": "test_accuracy", "Regex": r"test_accuracy=([0-9.]+)"},
        {"Name": "test_loss", "Regex": r"test_loss=([0-9.]+)"},
        {"Name": "train_seconds", "Regex": r"train_seconds=([0-9.]+)"}]
