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
    package_files,
    requirements_text,
    training_requirements,
)
from convlens.errors import ConvlensError, UsageError
from convlens.serving.inputs import CONTENT_TYPES

# AWS Deep Learning Containers for PyTorch (CPU); any torch 2.x runs convlens' layers.
DLC_TAG = "2.5.1-cpu-py311-ubuntu22.04-sagemaker"
# The registry account of the Deep Learning Containers in each region that has them (aws/deep-learning-containers,
# docs/reference/region_availability.md; available_images.md before): most regions share 763104351884, the
# opt-in and newer ones have their own, and the China regions are in the amazonaws.com.cn domain.
DLC_ACCOUNTS = {
    **dict.fromkeys(["us-east-1", "us-east-2", "us-west-1", "us-west-2", "ap-south-1", "ap-northeast-1",
                     "ap-northeast-2", "ap-southeast-1", "ap-southeast-2", "ca-central-1", "eu-central-1",
                     "eu-west-1", "eu-west-2", "eu-west-3", "eu-north-1", "sa-east-1"], "763104351884"),
    "af-south-1": "626614931356", "ap-east-1": "871362719292", "ap-east-2": "975050140332",
    "ap-south-2": "772153158452", "ap-southeast-3": "907027046896", "ap-southeast-4": "457447274322",
    "ap-southeast-5": "550225433462", "ap-southeast-6": "633930458069", "ap-southeast-7": "590183813437",
    "ap-northeast-3": "364406365360", "ca-west-1": "204538143572", "eu-south-1": "692866216735",
    "eu-south-2": "503227376785", "eu-central-2": "380420809688", "il-central-1": "780543022126",
    "mx-central-1": "637423239942", "me-south-1": "217643126080", "me-central-1": "914824155844",
    "cn-north-1": "727897471807", "cn-northwest-1": "727897471807",
}
# Where neither --region, AWS_DEFAULT_REGION nor the AWS profile names a region (as boto3 finds them).
DEFAULT_REGION = "us-east-1"


REGION_PATTERN = r"[a-z]{2,4}(-[a-z]+)+-\d{1,2}"  # us-east-1, us-gov-west-1, ap-southeast-2, eusc-de-east-1


def check_region(region: str, source: str | None = None) -> str:
    """``region`` if it has the shape of an AWS region (botocore's own error for 'a/b' is about an endpoint URL);
    ``source`` says where it came from when it was not --region."""
    if not re.fullmatch(REGION_PATTERN, region):
        where = f"the region {region!r} from {source}" if source else f"--region {region!r}"
        raise UsageError(f"{where} {_FORMATS['region'][1]}")
    return region


def resolve_region(region: str | None) -> str:
    """``region``, else the one boto3 finds (AWS_DEFAULT_REGION, then the AWS profile's), else DEFAULT_REGION."""
    if region is not None:
        return check_region(region)
    import boto3
    from botocore.exceptions import BotoCoreError
    try:
        found = boto3.session.Session().region_name
    except BotoCoreError as e:  # a missing AWS_PROFILE, an unreadable config file
        raise UsageError(f"cannot read the AWS configuration: {e}") from None
    if not found:
        return DEFAULT_REGION
    return check_region(found, "AWS_DEFAULT_REGION or the AWS profile")


def dlc_image(region: str, kind: str) -> str:
    """The PyTorch ``kind`` ('training' or 'inference') container in ``region``'s Deep Learning Containers registry."""
    account = DLC_ACCOUNTS.get(region)
    if account is None:
        raise UsageError(f"no AWS Deep Learning Containers registry is known in region {region}: pass --image with "
                         f"a PyTorch {kind} image URI that SageMaker can pull there")
    domain = "amazonaws.com.cn" if region.startswith("cn-") else "amazonaws.com"
    return f"{account}.dkr.ecr.{region}.{domain}/pytorch-{kind}:{DLC_TAG}"


INSTANCE_TYPE_PATTERN = r"ml\.[a-z0-9-]+\.[a-z0-9]+"  # ml.m5.large, ml.g4dn.xlarge, ml.p4d.24xlarge


def check_instance_type(value: str, option: str = "--instance-type") -> str:
    """SageMaker's instance types carry the 'ml.' prefix; 'm5.large' (EC2's name) passed --dry-run, then failed in
    the API call."""
    if not re.fullmatch(INSTANCE_TYPE_PATTERN, value):
        raise UsageError(f"{option} {value!r} {_FORMATS['training_instance'][1]}")
    return value


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
    "training_instance": (INSTANCE_TYPE_PATTERN, "must be a SageMaker instance type like ml.m5.large (with 'ml.')"),
}
_FORMATS["inference_instance"] = _FORMATS["training_instance"]


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
    # the job is stopped after this many seconds (SageMaker's MaxRuntimeInSeconds; 5 days without a quota raise)
    max_runtime: Annotated[int, Field(ge=60, le=432_000)] = 3600
    volume_gb: Annotated[int, Field(ge=1, le=16_384)] = 10  # the training instance's storage (data, checkpoints)
    hyperparameters: dict[str, str] = Field(default_factory=dict)

    @field_validator("role_arn", "bucket", "prefix", "region", "training_instance", "inference_instance")
    @classmethod
    def _well_formed(cls, value: str, info) -> str:
        pattern, message = _FORMATS[info.field_name]
        if not re.fullmatch(pattern, value):
            raise ValueError(message)
        return value

    def image(self, kind: str) -> str:
        explicit = self.training_image if kind == "training" else self.inference_image
        return explicit or dlc_image(self.region, kind)

    def s3(self, *parts: str) -> str:
        return "s3://" + "/".join([self.bucket, self.prefix.strip("/"), *parts])


class AwsError(ConvlensError):
    """A failed AWS request as ``explain`` words it, with AWS's error code and message where AWS answered."""

    def __init__(self, message: str, code: str = "", aws_message: str = ""):
        super().__init__(message)
        self.code, self.aws_message = code, aws_message

    @property
    def not_found(self) -> bool:
        # SageMaker's Delete*/Describe* answer a missing resource with ValidationException "Could not find ...".
        return self.code in {"ResourceNotFound", "ResourceNotFoundException"} or (
            self.code in {"ValidationException", "ValidationError"} and "could not find" in self.aws_message.lower())


class FailedStatus(ConvlensError):
    """A job or endpoint that SageMaker reports as failed (not a wait that ran out of time)."""


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
            error = getattr(e, "response", None)
            error = error.get("Error", {}) if isinstance(error, dict) else {}
            raise AwsError(explain(e, service, operation), str(error.get("Code", "")),
                           str(error.get("Message", ""))) from None


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


def source_tarball(onnx: bool = False) -> bytes:
    """sourcedir.tar.gz for the training container: the convlens package, the entry script and requirements.txt
    (the training toolkit pip-installs it before running the entry script; with ``onnx``, the exporter's packages
    too)."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        def add_bytes(name: str, data: bytes) -> None:
            info = tarfile.TarInfo(name)
            info.size, info.mtime = len(data), 0
            tar.addfile(info, io.BytesIO(data))
        for name, path in package_files():
            add_bytes(name, path.read_bytes())
        add_bytes(ENTRY_SCRIPT, ENTRY_SOURCE)
        add_bytes("requirements.txt", requirements_text(training_requirements(onnx)))
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
            raise FailedStatus(f"{status}: {reason}")
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
    from convlens.cloud.sagemaker.train import METRIC_DEFINITIONS, _truthy, normalize_hyperparameters, train_config
    hps = normalize_hyperparameters(s.hyperparameters)
    cfg = train_config(hps, data_dir)  # what the container will build, checked now
    image = s.image("training")  # a region without a known registry fails before any upload
    job_name = check_name("--job-name", job_name) if job_name else f"{s.base_job_name}-{time.strftime('%Y%m%d-%H%M%S')}"
    files, class_names = training_files(cfg.dataset, data_dir, cfg.train_subset, cfg.test_subset)
    name = channel_name(cfg.dataset, files)
    channel = s.s3("data", "training") if name is None else s.s3("data", name, "training")
    for relative, path in files.items():
        upload(gw, f"{channel}/{relative}", path.read_bytes())
    source = upload(gw, s.s3("source", job_name, "sourcedir.tar.gz"),
                    source_tarball(onnx=_truthy(hps.get("onnx", "false"))))
    hyperparameters = {**s.hyperparameters, "sagemaker_program": ENTRY_SCRIPT, "sagemaker_submit_directory": source,
                       "sagemaker_region": s.region}
    # digits come with scikit-learn in the container: no channel at all (the API refuses an empty list)
    channels = [{"ChannelName": "training", "DataSource": {"S3DataSource": {
        "S3DataType": "S3Prefix", "S3Uri": channel + "/", "S3DataDistributionType": "FullyReplicated"}}}
    ] if files else []
    gw.call("sagemaker", "CreateTrainingJob",
            TrainingJobName=job_name,
            AlgorithmSpecification={"TrainingImage": image, "TrainingInputMode": "File",
                                    "MetricDefinitions": METRIC_DEFINITIONS},
            RoleArn=s.role_arn,
            **({"InputDataConfig": channels} if channels else {}),
            OutputDataConfig={"S3OutputPath": s.s3("output")},
            ResourceConfig={"InstanceType": s.training_instance, "InstanceCount": 1, "VolumeSizeInGB": s.volume_gb},
            StoppingCondition={"MaxRuntimeInSeconds": s.max_runtime},
            HyperParameters=hyperparameters)
    result = {"job_name": job_name, "model_data": s.s3("output", job_name, "output", "model.tar.gz"),
              "classes": list(class_names)}
    if wait:
        description = wait_for(gw, lambda: gw.call("sagemaker", "DescribeTrainingJob", TrainingJobName=job_name),
                               "TrainingJobStatus", {"Completed"}, {"Failed", "Stopped"}, poll_s,
                               s.max_runtime + 600, on_status)
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


def deployed_resources(endpoint: str) -> list[tuple[str, str, dict]]:
    """(what, delete operation, its parameters) for what ``deploy`` creates for ``endpoint``, in deletion order."""
    return [(f"endpoint {endpoint}", "DeleteEndpoint", {"EndpointName": endpoint}),
            (f"endpoint config {endpoint}-config", "DeleteEndpointConfig",
             {"EndpointConfigName": f"{endpoint}-config"}),
            (f"model {endpoint}-model", "DeleteModel", {"ModelName": f"{endpoint}-model"})]


def deploy(gw: Gateway, s: SageMakerSettings, model_data: str, endpoint: str, *, wait: bool = True,
           poll_s: float = 20, on_status: Callable[[str], None] = print) -> dict:
    """Model, endpoint config and endpoint for ``model_data``; the inference image loads the code from
    model.tar.gz (code/), never from a submit directory."""
    check_name("--endpoint", endpoint, 63 - len("-config"))
    image = s.image("inference")  # a region without a known registry fails before anything is read or created
    check_model_code(gw, model_data)
    names = {"model": f"{endpoint}-model", "config": f"{endpoint}-config", "endpoint": endpoint}
    undo_endpoint, undo_config, undo_model = deployed_resources(endpoint)
    created: list[tuple[str, str, dict]] = []  # most recent first: the order to delete them in
    try:
        gw.call("sagemaker", "CreateModel", ModelName=names["model"], ExecutionRoleArn=s.role_arn,
                PrimaryContainer={"Image": image, "ModelDataUrl": model_data,
                                  "Environment": {"SAGEMAKER_PROGRAM": INFERENCE_SCRIPT,
                                                  "SAGEMAKER_SUBMIT_DIRECTORY": MODEL_CODE_PATH,
                                                  "SAGEMAKER_REGION": s.region}})
        created.insert(0, undo_model)
        gw.call("sagemaker", "CreateEndpointConfig", EndpointConfigName=names["config"], ProductionVariants=[{
            "VariantName": "AllTraffic", "ModelName": names["model"], "InstanceType": s.inference_instance,
            "InitialInstanceCount": 1}])
        created.insert(0, undo_config)
        gw.call("sagemaker", "CreateEndpoint", EndpointName=endpoint, EndpointConfigName=names["config"])
        created.insert(0, undo_endpoint)
    except AwsError as e:
        # What this deploy created goes again, so that the same command can run again once the cause is fixed
        # (CreateModel refuses a name that exists, and the model alone is no use).
        if created:
            raise ConvlensError(f"{e}; {_roll_back(gw, created, endpoint)}") from None
        hint = (f"; an earlier deploy left it: 'convlens sagemaker delete --endpoint {endpoint}' removes that "
                "deploy's endpoint, config and model" if "already exist" in e.aws_message else "")
        raise ConvlensError(f"{e}{hint}") from None
    if wait:
        try:
            wait_for(gw, lambda: gw.call("sagemaker", "DescribeEndpoint", EndpointName=endpoint), "EndpointStatus",
                     {"InService"}, {"Failed"}, poll_s, 3600, on_status)
        except FailedStatus as e:  # a wait that ran out of time leaves the endpoint alone: it may still come up
            raise ConvlensError(f"endpoint {endpoint}: {e}; {_roll_back(gw, created, endpoint)}") from None
    return names


def _roll_back(gw: Gateway, created: list[tuple[str, str, dict]], endpoint: str) -> str:
    """Delete what a failed deploy created; says what it removed, or what is left and how to remove it."""
    removed = []
    for what, operation, params in created:
        try:
            gw.call("sagemaker", operation, **params)
        except AwsError as e:
            if not e.not_found:
                done = f"removed {', '.join(removed)}; " if removed else ""
                return (f"{done}could not remove the {what} it had created ({e}): run 'convlens sagemaker delete "
                        f"--endpoint {endpoint}'")
        removed.append(what)
    return f"removed the {', '.join(removed)} it had created, so the same deploy can run again"


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


def delete(gw: Gateway, endpoint: str) -> dict[str, list[str]]:
    """Delete the endpoint, its config and its model (the names ``deploy`` created); one already gone (a deploy that
    stopped halfway, an earlier delete) is reported as absent and the others are deleted all the same."""
    check_name("--endpoint", endpoint, 63 - len("-config"))  # as deploy names it
    result: dict[str, list[str]] = {"deleted": [], "absent": []}
    for what, operation, params in deployed_resources(endpoint):
        try:
            gw.call("sagemaker", operation, **params)
        except AwsError as e:
            if not e.not_found:
                done = f" (deleted before it: {', '.join(result['deleted'])})" if result["deleted"] else ""
                raise ConvlensError(f"{e}{done}") from None
            result["absent"].append(what)
        else:
            result["deleted"].append(what)
    return result
