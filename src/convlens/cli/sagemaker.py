"""``convlens sagemaker``: train, deploy, invoke and delete on Amazon SageMaker (the 'cloud' extra)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from convlens.cli.options import DataDirOption, overrides
from convlens.display import out, print_json
from convlens.errors import UsageError, format_validation_error

app = typer.Typer(help="Train and deploy on Amazon SageMaker (needs the 'cloud' extra and AWS credentials).",
                  no_args_is_help=True)
RegionOption = Annotated[Optional[str], typer.Option(
    help="AWS region (default: AWS_DEFAULT_REGION, else the AWS profile's region, else us-east-1).")]
DryRunOption = Annotated[bool, typer.Option("--dry-run", help="Print the exact API requests; send nothing.")]


def _region(region: str | None) -> str:
    """The region to work in (see RegionOption), checked; first, since it needs the 'cloud' extra's boto3."""
    try:
        import boto3  # noqa: F401
    except ImportError:
        raise UsageError("SageMaker commands need the 'cloud' extra: pip install 'convlens[cloud]'") from None
    from convlens.cloud.sagemaker.launcher import resolve_region
    return resolve_region(region)


def _gateway(region: str, dry_run: bool):
    from convlens.cloud.sagemaker.launcher import Gateway
    return Gateway(region=region, dry_run=dry_run, echo=lambda text: out.print(text))


def _settings(**kwargs):
    from pydantic import ValidationError

    from convlens.cloud.sagemaker.launcher import SageMakerSettings, check_instance_type
    for key in ("training_instance", "inference_instance"):  # worded with the option's name, as --region is
        if kwargs.get(key) is not None:
            check_instance_type(kwargs[key])
    try:
        return SageMakerSettings(**{k: v for k, v in kwargs.items() if v is not None})
    except ValidationError as e:
        raise UsageError(f"invalid SageMaker setting: {format_validation_error(e)}") from None


@app.command("train")
def sagemaker_train(
    role_arn: Annotated[str, typer.Option(help="IAM role SageMaker assumes (arn:aws:iam::ACCOUNT:role/NAME).")],
    bucket: Annotated[str, typer.Option(help="S3 bucket for data, source and model artifacts.")],
    region: RegionOption = None,
    prefix: Annotated[str, typer.Option(help="S3 key prefix.")] = "convlens",
    instance_type: Annotated[str, typer.Option(help="Training instance type.")] = "ml.m5.large",
    image: Annotated[Optional[str], typer.Option(
        help="Training image URI (default: the AWS PyTorch CPU container in the region's registry).")] = None,
    hp: Annotated[Optional[list[str]], typer.Option(help="Hyperparameter key=value (repeatable), e.g. "
                                                     "--hp model=cnn --hp epochs=5.")] = None,
    base_job_name: Annotated[str, typer.Option(help="Job name prefix.")] = "convlens",
    job_name: Annotated[Optional[str], typer.Option(help="Exact job name (default: prefix + time).")] = None,
    data_dir: DataDirOption = None,
    max_runtime: Annotated[Optional[int], typer.Option(
        help="Stop the job after this many seconds, 60 to 432,000 (default 3,600).")] = None,
    volume_gb: Annotated[Optional[int], typer.Option(
        help="The training instance's storage in GB, 1 to 16,384 (default 10).")] = None,
    wait: Annotated[bool, typer.Option(help="Wait for the job, showing its status.")] = True,
    dry_run: DryRunOption = False,
) -> None:
    """Upload data and code to S3 and start a SageMaker training job."""
    region = _region(region)
    from convlens.cloud.sagemaker.launcher import launch_training
    settings = _settings(role_arn=role_arn, bucket=bucket, region=region, prefix=prefix, base_job_name=base_job_name,
                         training_instance=instance_type, training_image=image, max_runtime=max_runtime,
                         volume_gb=volume_gb, hyperparameters=overrides(hp, "--hp epochs=5"))
    result = launch_training(_gateway(region, dry_run), settings, data_dir, job_name=job_name, wait=wait,
                             on_status=lambda status: out.print(f"training job: {status}"))
    if not dry_run:
        out.print(f"training job {result['job_name']} ({region}): model at {result['model_data']}")


@app.command("deploy")
def sagemaker_deploy(
    role_arn: Annotated[str, typer.Option(help="IAM role the endpoint runs as.")],
    bucket: Annotated[str, typer.Option(help="S3 bucket used by 'convlens sagemaker train'.")],
    job_name: Annotated[str, typer.Option(help="The training job whose model to deploy.")],
    endpoint: Annotated[str, typer.Option(help="Endpoint name to create.")],
    region: RegionOption = None,
    prefix: Annotated[str, typer.Option(help="S3 key prefix used for training.")] = "convlens",
    instance_type: Annotated[str, typer.Option(help="Inference instance type.")] = "ml.m5.large",
    image: Annotated[Optional[str], typer.Option(
        help="Inference image URI (default: the AWS PyTorch CPU container in the region's registry).")] = None,
    wait: Annotated[bool, typer.Option(help="Wait until the endpoint is InService.")] = True,
    dry_run: DryRunOption = False,
) -> None:
    """Create model, endpoint config and endpoint for a finished training job."""
    region = _region(region)
    from convlens.cloud.sagemaker.launcher import check_name, deploy
    check_name("--job-name", job_name)  # it becomes part of the model's S3 key
    settings = _settings(role_arn=role_arn, bucket=bucket, region=region, prefix=prefix,
                         inference_instance=instance_type, inference_image=image)
    names = deploy(_gateway(region, dry_run), settings, settings.s3("output", job_name, "output", "model.tar.gz"),
                   endpoint, wait=wait,
                   on_status=lambda status: out.print(f"endpoint: {status}"))
    if not dry_run:
        out.print(f"endpoint {names['endpoint']} created in {region} "
                  f"(model {names['model']}, config {names['config']})")


@app.command("invoke")
def sagemaker_invoke(endpoint: Annotated[str, typer.Option(help="Endpoint name.")],
                     image: Annotated[Path, typer.Argument(help="A PNG/JPEG image, .npy array or .json body.")],
                     region: RegionOption = None, dry_run: DryRunOption = False) -> None:
    """Send one image to an endpoint and print the class probabilities."""
    region = _region(region)
    from convlens.cloud.sagemaker.launcher import invoke
    from convlens.serving.inputs import CONTENT_TYPE_BY_SUFFIX
    kind = CONTENT_TYPE_BY_SUFFIX.get(image.suffix.lower())
    if kind is None or not image.is_file():
        raise UsageError(f"{image}: give an existing .png, .jpg, .npy or .json (request body) file")
    result = invoke(_gateway(region, dry_run), endpoint, image.read_bytes(), kind)
    if result:
        print_json(result)


@app.command("delete")
def sagemaker_delete(endpoint: Annotated[str, typer.Option(help="Endpoint name (its -config and -model too).")],
                     region: RegionOption = None, dry_run: DryRunOption = False) -> None:
    """Delete an endpoint and the endpoint config and model that 'deploy' created for it."""
    region = _region(region)
    from convlens.cloud.sagemaker.launcher import delete
    result = delete(_gateway(region, dry_run), endpoint)
    if not dry_run:
        parts = [f"deleted {', '.join(result['deleted'])}"] if result["deleted"] else []
        parts += [f"not found (already gone): {', '.join(result['absent'])}"] if result["absent"] else []
        out.print("; ".join(parts))


