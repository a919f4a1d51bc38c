"""Launch training and endpoints on Amazon SageMaker with boto3; ``dry_run`` prints the exact requests instead.

train:  upload the IDX files (the 'training' channel) and a source tarball (convlens + an entry script) to S3,
        CreateTrainingJob on the PyTorch training container, wait with progress.
deploy: check that the training job's model.tar.gz holds code/inference.py (the training entry point writes
        it; see bundle.py for why the image needs it there), CreateModel (PyTorch inference container) ->
        CreateEndpointConfig -> CreateEndpoint, wait until InService.
invoke: InvokeEndpoint with one image. delete: the endpoint, its config and the model.

The failures the reference write-ups hit become one line each with what to do (see ``explain``).
"""

from __future__ import annotations

import hashlib
import io
import json
import re
import tarfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

from convlens.cloud.sagemaker.bundle import (
    CODE_DIR,
    ENTRY_SCRIPT,
    ENTRY_SOURCE,
    INFERENCE_SCRIPT,
    TRAINING_REQUIREMENTS,
    package_files,
    requirements_text,
)
from convlens.errors import ConvlensError, UsageError
from convlens.serving.inputs import CONTENT_TYPES

# AWS Deep Learning Containers for PyTorch (CPU); any torch 2.x runs convlens' layers.
DLC_ACCOUNT = "763104351884"
DLC_TAG = "2.5.1-cpu-py311-ubuntu22.04-sagemaker"


REGION_PATTERN = r"[a-z]{2,4}(-[a-z]+)+-\d{1,2}"  # us-east-1, us-gov-west-1, ap-southeast-2, eusc-de-east-1


def check_region(region: str) -> str:
    """``region`` if it has the shape of an AWS region (botocore's own error for 'a/b' is about an endpoint URL)."""
    if not re.fullmatch(REGION_PATTERN, region):
        raise UsageError(f"--region {region!r} {_FORMATS['region'][1]}")
    return region


# Field -> (pattern, what to tell the user); a plain sentence instead of pydantic's raw regex message.
_FORMATS = {
    "role_arn": (r"arn:aws[a-z-]*:iam::\d{12}:role/.+",
                 "must be an IAM role ARN like arn:aws:iam::123456789012:role/SageMakerRole"),
    "bucket": (r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]",
               "must be an S3 bucket name: 3-63 lowercase letters, digits, dots and hyphens"),
    # The prefix starts every key: an empty one (or an empty part, a//b) made keys like "/data/..."
    "prefix": (r"/?[^/?#\\\x00-\x1f\x7f]+(/[^/?#\\\x00-\x1f\x7f]+)*/?",
               "must be an S3 key prefix: parts separated by single slashes, none empty, no ? # \\ or control "
               "characters"),
    "region": (REGION_PATTERN, "must be an AWS region like us-east-1 or eu-west-2"),
}


# SageMaker's names (training jobs, endpoints, their configs and models): letters, digits and single hyphens, at
# most 63 characters. deploy adds "-config" and "-model" to the endpoint's name, so that one has 7 fewer.
_NAME = re.compile(r"[a-zA-Z0-9](-*[a-zA-Z0-9])*")


def check_name(option: str, value: str, longest: int = 63) -> str:
    """``value`` as a SageMaker resource name, or one line naming the option and the rule."""
    if not (_NAME.fullmatch(value) and len(value) <= longest):
        raise UsageError(f"{option} {value!r} is not a SageMaker name: 1-{longest} letters, digits and hyphens, "
                         "starting and ending with a letter or digit")
    return value


class SageMakerSettings(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    region: str = "us-east-1"
    role_arn: str
    bucket: str
    prefix: str = "convlens"
    base_job_name: Annotated[str, Field(pattern=r"^[a-zA-Z0-9](-*[a-zA-Z0-9]){0,37}$")] = "convlens"
    training_instance: str = "ml.m5.large"
    inference_instance: str = "ml.m5.large"
    training_image: str | None = None
    inference_image: str | None = None
    max_runtime_s: Annotated[int, Field(ge=60, le=432_000)] = 3600
    hyperparameters: dict[str, str] = Field(default_factory=dict)

    @field_validator("role_arn", "bucket", "prefix", "region")
    @classmethod
    def _well_formed(cls, value: str, info) -> str:
        pattern, message = _FORMATS[info.field_name]
        if not re.fullmatch(pattern, value):
            raise ValueError(message)
        return value

    def image(self, kind: str) -> str:
        explicit = self.training_image if kind == "training" else self.inference_image
        return explicit or f"{DLC_ACCOUNT}.dkr.ecr.{self.region}.amazonaws.com/pytorch-{kind}:{DLC_TAG}"

    def s3(self, *parts: str) -> str:
        return "s3://" + "/".join([self.bucket, self.prefix.strip("/"), *parts])


@dataclass
class Gateway:
    """Sends AWS requests, or in dry-run mode records and prints them without sending anything."""

    region: str
    dry_run: bool = False  # boto3 honours $AWS_ENDPOINT_URL (tests point it at a local moto server)
    sent: list[dict] = field(default_factory=list)
    echo: Callable[[str], None] = print
    _session: Any = field(default=None, repr=False)
    _clients: dict = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        check_region(self.region)

    def _client(self, service: str):
        # One session per gateway: boto3's module-level default session would cache credentials across uses.
        if self._session is None:
            import boto3
            self._session = boto3.session.Session(region_name=self.region)
        if service not in self._clients:
            self._clients[service] = self._session.client(service)
        return self._clients[service]

    def call(self, service: str, operation: str, **params: Any) -> dict:
        shown = {k: (f"<{len(v)} bytes>" if isinstance(v, (bytes, bytearray)) else v) for k, v in params.items()}
        self.sent.append({"service": service, "operation": operation, "params": shown})
        if self.dry_run:
            self.echo(json.dumps({"service": service, "operation": operation, "params": shown}, indent=1))
            return {}
        method = re.sub(r"(?<!^)(?=[A-Z])", "_", operation).lower()  # CreateTrainingJob -> create_training_job
        try:
            return getattr(self._client(service), method)(**params)
        except Exception as e:  # noqa: BLE001 - translated to one actionable line below
            raise ConvlensError(explain(e, service, operation)) from None


def explain(error: Exception, service: str, operation: str) -> str:
    """The reference write-ups' failures (and a few more) as one line with what to do."""
    from botocore.exceptions import (
        ClientError,
        ConnectTimeoutError,
        EndpointConnectionError,
        NoCredentialsError,
        NoRegionError,
        PartialCredentialsError,
    )
    if isinstance(error, (NoCredentialsError, PartialCredentialsError)):
        return ("no AWS credentials: run 'aws configure', or set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY "
                "(or AWS_PROFILE); a lab account needs its temporary session token too")
    if isinstance(error, (ConnectTimeoutError, EndpointConnectionError)):
        url = getattr(error, "kwargs", {}).get("endpoint_url", service)
        return (f"cannot reach {url} ({type(error).__name__}): this network blocks or cannot route to AWS; "
                "check the proxy/VPC endpoints and --region, or work locally ('convlens train', 'convlens serve')")
    if isinstance(error, NoRegionError):
        return "no AWS region: pass --region (e.g. us-east-1) or set AWS_DEFAULT_REGION"
    if isinstance(error, ClientError):
        code = error.response.get("Error", {}).get("Code", "")
        message = error.response.get("Error", {}).get("Message", str(error))
        if code in {"AccessDenied", "AccessDeniedException", "UnauthorizedOperation"}:
            action = re.search(r"perform:?\s+([\w-]+:\w+)", message)
            missing = action.group(1) if action else f"{service}:{operation}"
            return (f"access denied: this identity is not allowed {missing}; ask an administrator to grant it "
                    "(AWS Academy/lab roles often deny endpoints: serve locally with 'convlens serve')")
        if code == "ResourceLimitExceeded":
            return (f"resource limit exceeded for {operation}: {message}; request a quota increase in Service "
                    "Quotas or use another --instance-type")
        if code in {"ExpiredToken", "ExpiredTokenException", "InvalidClientTokenId", "UnrecognizedClientException"}:
            return f"AWS credentials rejected ({code}): refresh them (lab sessions expire) and try again"
        return f"{service} {operation} failed: {code}: {message}"
    return f"{service} {operation} failed: {type(error).__name__}: {error}"


def source_tarball() -> bytes:
    """sourcedir.tar.gz for the training container: the convlens package, the entry script and requirements.txt
    (the training toolkit pip-installs it before running the entry script)."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        def add_bytes(name: str, data: bytes) -> None:
            info = tarfile.TarInfo(name)
            info.size, info.mtime = len(data), 0
            tar.addfile(info, io.BytesIO(data))
        for name, path in package_files():
            add_bytes(name, path.read_bytes())
        add_bytes(ENTRY_SCRIPT, ENTRY_SOURCE)
        add_bytes("requirements.txt", requirements_text(TRAINING_REQUIREMENTS))
    return buffer.getvalue()


def _split_s3(uri: str) -> tuple[str, str]:
    bucket, _, key = uri.removeprefix("s3://").partition("/")
    return bucket, key


def upload(gw: Gateway, uri: str, data: bytes) -> str:
    bucket, key = _split_s3(uri)
    gw.call("s3", "PutObject", Bucket=bucket, Key=key, Body=data)
    return uri


def wait_for(gw: Gateway, describe: Callable[[], dict], status_key: str, done: set[str], failed: set[str],
             poll_s: float, timeout_s: float, on_status: Callable[[str], None]) -> dict:
    if gw.dry_run:
        return {}
    deadline, last = time.monotonic() + timeout_s, None
    while True:
        description = describe()
        status = description[status_key]
        if status != last:
            on_status(status)
            last = status
        if status in done:
            return description
        if status in failed:
            reason = description.get("FailureReason", "no reason given")
            raise ConvlensError(f"{status}: {reason}")
        if time.monotonic() > deadline:
            raise ConvlensError(f"still {status} after {timeout_s:.0f} s; check the SageMaker console")
        time.sleep(poll_s)


def channel_name(dataset: str, files: dict[str, Path]) -> str | None:
    """The S3 prefix of a dataset's channel (a channel is everything under its prefix, so two datasets must never
    share one): the dataset's name; a folder's is named by a digest of its file list and sizes, so another folder,
    or the same one changed, never mixes with files uploaded before. Fashion-MNIST keeps the original prefix."""
    from convlens.data.catalog import FOLDER_PREFIX
    if dataset == "fashion-mnist":
        return None  # data/training, as before
    if dataset.startswith(FOLDER_PREFIX):
        listing = "\n".join(f"{name}\t{path.stat().st_size}" for name, path in sorted(files.items()))
        return f"folder-{hashlib.sha256(listing.encode()).hexdigest()[:12]}"
    return dataset


def training_files(dataset: str, data_dir: Path | None, train_subset: int | None = None,
                   test_subset: int | None = None) -> tuple[dict[str, Path], tuple[str, ...]]:
    """The verified local files of ``dataset`` to upload as the training channel (path in the channel -> file),
    and its class names. The data is loaded here first, so a broken copy (or a subset larger than the data) fails
    before anything is uploaded."""
    from convlens.data import load_named
    from convlens.data.catalog import FOLDER_PREFIX
    ds = load_named(dataset, data_dir)
    if train_subset is not None or test_subset is not None:
        ds.subset(train_subset, test_subset)  # its one-line error, as the container's run would give it
    if dataset == "digits":
        return {}, ds.class_names  # bundled with scikit-learn in the container
    if dataset.startswith(FOLDER_PREFIX):
        return dict(ds.source.paths), ds.class_names  # exactly the images the loader read, by class folder
    return {path.name: path for path in ds.source.paths.values()}, ds.class_names


def launch_training(gw: Gateway, s: SageMakerSettings, data_dir: Path, *, job_name: str | None = None,
                    wait: bool = True, poll_s: float = 15, on_status: Callable[[str], None] = print) -> dict:
    from convlens.cloud.sagemaker.train import normalize_hyperparameters, train_config
    hps = normalize_hyperparameters(s.hyperparameters)
    cfg = train_config(hps, data_dir)  # what the container will build, checked now
    job_name = check_name("--job-name", job_name) if job_name else f"{s.base_job_name}-{time.strftime('%Y%m%d-%H%M%S')}"
    files, class_names = training_files(cfg.dataset, data_dir, cfg.train_subset, cfg.test_subset)
    name = channel_name(cfg.dataset, files)
    channel = s.s3("data", "training") if name is None else s.s3("data", name, "training")
    for relative, path in files.items():
        upload(gw, f"{channel}/{relative}", path.read_bytes())
    source = upload(gw, s.s3("source", job_name, "sourcedir.tar.gz"), source_tarball())
    hyperparameters = {**s.hyperparameters, "sagemaker_program": ENTRY_SCRIPT, "sagemaker_submit_directory": source,
                       "sagemaker_region": s.region}
    # digits come with scikit-learn in the container: no channel at all (the API refuses an empty list)
    channels = [{"ChannelName": "training", "DataSource": {"S3DataSource": {
        "S3DataType": "S3Prefix", "S3Uri": channel + "/", "S3DataDistributionType": "FullyReplicated"}}}] if files else []
    gw.call("sagemaker", "CreateTrainingJob",
            TrainingJobName=job_name,
            AlgorithmSpecification={"TrainingImage": s.image("training"), "TrainingInputMode": "File"},
            RoleArn=s.role_arn,
            **({"InputDataConfig": channels} if channels else {}),
            OutputDataConfig={"S3OutputPath": s.s3("output")},
            ResourceConfig={"InstanceType": s.training_instance, "InstanceCount": 1, "VolumeSizeInGB": 10},
            StoppingCondition={"MaxRuntimeInSeconds": s.max_runtime_s},
            HyperParameters=hyperparameters)
    result = {"job_name": job_name, "model_data": s.s3("output", job_name, "output", "model.tar.gz"),
              "classes": list(class_names)}
    if wait:
        description = wait_for(gw, lambda: gw.call("sagemaker", "DescribeTrainingJob", TrainingJobName=job_name),
                               "TrainingJobStatus", {"Completed"}, {"Failed", "Stopped"}, poll_s,
                               s.max_runtime_s + 600, on_status)
        result["model_data"] = description.get("ModelArtifacts", {}).get("S3ModelArtifacts", result["model_data"])
    return result


# Where the inference image finds the code: model.tar.gz is unpacked to /opt/ml/model (see bundle.py). The
# sagemaker-pytorch-inference 2.x toolkit never reads SAGEMAKER_SUBMIT_DIRECTORY; it is set to the code
# directory as the SageMaker Python SDK does for a model with its code inside (Model._script_mode_env_vars).
MODEL_CODE_PATH = f"/opt/ml/model/{CODE_DIR}"


def check_model_code(gw: Gateway, model_data: str) -> None:
    """Refuse a model.tar.gz without code/inference.py before creating anything: the endpoint would spend
    minutes starting, then fail to load it (the image's default handlers look for a TorchScript model.pt)."""
    bucket, key = _split_s3(model_data)
    response = gw.call("s3", "GetObject", Bucket=bucket, Key=key)
    if gw.dry_run:
        return
    wanted = f"{CODE_DIR}/{INFERENCE_SCRIPT}"
    try:
        with tarfile.open(fileobj=response["Body"], mode="r|gz") as tar:  # streamed: stops at the script
            if any(member.name.removeprefix("./") == wanted for member in tar):
                return
    except (tarfile.TarError, OSError, EOFError) as e:
        raise ConvlensError(f"{model_data} is not a model.tar.gz ({type(e).__name__}: {e})") from None
    finally:
        response["Body"].close()
    raise ConvlensError(f"{model_data} holds no {wanted}: it comes from a training job of an older convlens; "
                        "train again with 'convlens sagemaker train' and deploy that job")


def deploy(gw: Gateway, s: SageMakerSettings, model_data: str, endpoint: str, *, wait: bool = True,
           poll_s: float = 20, on_status: Callable[[str], None] = print) -> dict:
    """Model, endpoint config and endpoint for ``model_data``; the inference image loads the code from
    model.tar.gz (code/), never from a submit directory."""
    check_name("--endpoint", endpoint, 63 - len("-config"))
    check_model_code(gw, model_data)
    names = {"model": f"{endpoint}-model", "config": f"{endpoint}-config", "endpoint": endpoint}
    gw.call("sagemaker", "CreateModel", ModelName=names["model"], ExecutionRoleArn=s.role_arn,
            PrimaryContainer={"Image": s.image("inference"), "ModelDataUrl": model_data,
                              "Environment": {"SAGEMAKER_PROGRAM": INFERENCE_SCRIPT,
                                              "SAGEMAKER_SUBMIT_DIRECTORY": MODEL_CODE_PATH,
                                              "SAGEMAKER_REGION": s.region}})
    gw.call("sagemaker", "CreateEndpointConfig", EndpointConfigName=names["config"], ProductionVariants=[{
        "VariantName": "AllTraffic", "ModelName": names["model"], "InstanceType": s.inference_instance,
        "InitialInstanceCount": 1}])
    gw.call("sagemaker", "CreateEndpoint", EndpointName=endpoint, EndpointConfigName=names["config"])
    if wait:
        wait_for(gw, lambda: gw.call("sagemaker", "DescribeEndpoint", EndpointName=endpoint), "EndpointStatus",
                 {"InService"}, {"Failed"}, poll_s, 3600, on_status)
    return names


def invoke(gw: Gateway, endpoint: str, body: bytes, content_type: str) -> dict:
    from convlens.serving.inputs import SERVER_LIMITS
    check_name("--endpoint", endpoint)
    if content_type not in CONTENT_TYPES:
        raise ConvlensError(f"unsupported content type {content_type}; use one of {', '.join(CONTENT_TYPES)}")
    if len(body) > SERVER_LIMITS.body_bytes:  # InvokeEndpoint's limit, and the server's: refused before sending
        raise UsageError(f"the request body is {len(body):,} bytes; an endpoint takes at most "
                         f"{SERVER_LIMITS.body_bytes:,} (send fewer images per request)")
    images = _images_in(body, content_type)
    if images is not None and images > SERVER_LIMITS.instances:  # the endpoint would answer 413
        raise UsageError(f"the request holds {images:,} images; an endpoint takes at most "
                         f"{SERVER_LIMITS.instances:,} per request (send them in parts)")
    response = gw.call("sagemaker-runtime", "InvokeEndpoint", EndpointName=endpoint, ContentType=content_type,
                       Accept="application/json", Body=body)
    if gw.dry_run:
        return {}
    return json.loads(response["Body"].read())


def _images_in(body: bytes, content_type: str) -> int | None:
    """How many images a request body holds, where that can be told without the model: the length of a JSON body's
    "instances" list; an array's first axis when the array has 4 axes or a first axis longer than any image side
    an endpoint takes (so it cannot be one image). None otherwise: the endpoint answers the rest."""
    from convlens.serving.inputs import SERVER_LIMITS, InputError, npy_header
    if content_type == "application/json":
        try:
            parsed = json.loads(body)
        except (ValueError, RecursionError):
            return None
        instances = parsed.get("instances") if isinstance(parsed, dict) else None
        return len(instances) if isinstance(instances, list) else None
    if content_type == "application/x-npy":
        try:
            shape = npy_header(io.BytesIO(body))[0]
        except InputError:
            return None
        if isinstance(shape, tuple) and all(type(d) is int for d in shape) and (
                len(shape) == 4 or (len(shape) >= 2 and shape[0] > SERVER_LIMITS.instances)):
            return shape[0]
    return None


def delete(gw: Gateway, endpoint: str) -> list[str]:
    """Delete the endpoint, its config and its model (the names ``deploy`` created)."""
    check_name("--endpoint", endpoint, 63 - len("-config"))  # as deploy names it
    gw.call("sagemaker", "DeleteEndpoint", EndpointName=endpoint)
    gw.call("sagemaker", "DeleteEndpointConfig", EndpointConfigName=f"{endpoint}-config")
    gw.call("sagemaker", "DeleteModel", ModelName=f"{endpoint}-model")
    return [endpoint, f"{endpoint}-config", f"{endpoint}-model"]
