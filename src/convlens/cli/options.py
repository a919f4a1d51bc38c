"""Options shared by several commands, and turning ``--set key=value`` pairs into overrides."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Optional

import typer


def path_value(value: str | Path) -> Path:
    """A path option's value. An empty one, most often an unset shell variable (``--out "$OUT"``), is refused:
    as a Path it would be '.', and a command would write into (or read) the current directory unasked."""
    if not str(value).strip():  # a default arrives as a Path
        raise typer.BadParameter("is empty (an unset shell variable?); give a path")
    return Path(value)


def path_option(name: str, help: str, **kwargs: object) -> Any:
    """An option naming a file or directory (``--out``, ``--data-dir``, ``--config``), empty refused."""
    return typer.Option(name, parser=path_value, metavar="<path>", help=help, **kwargs)


DataDirOption = Annotated[Optional[Path], path_option(
    "--data-dir", "Directory with the dataset's files (IDX .gz or raw; CIFAR-10 binary batches); default: "
    "$CONVLENS_DATA, the user cache, the Debian package path (Fashion-MNIST), else download.", show_default=False)]
EvaluateDataDirOption = Annotated[Optional[Path], path_option(
    "--data-dir", "Directory with the dataset's files (as for train); for a run on a folder dataset that moved, "
    "where the folder is now (its images are checked against the run's).", show_default=False)]
DatasetOption = Annotated[str, typer.Option(
    "--dataset", help="fashion-mnist, mnist, kmnist, cifar10, digits (scikit-learn's 8x8), or folder:PATH "
    "(PATH/<class>/*.png|jpg).")]
SetOption = Annotated[Optional[list[str]], typer.Option(
    "--set", help="Override a spec field, e.g. --set kernel_size=5 --set filters=16,32 (repeatable).")]
JsonOption = Annotated[bool, typer.Option("--json", help="Print machine-readable JSON instead of text.")]
QuietOption = Annotated[bool, typer.Option("--quiet", "-q", help="Print only the final result.")]
DeviceOption = Annotated[str, typer.Option(help="auto (CUDA when present), cpu, cuda or cuda:N (one GPU of several).")]
PrecisionOption = Annotated[Optional[str], typer.Option(
    help="fp32, bf16 (autocast) or auto (the recipe's default: bf16 on CPUs with AVX512_BF16 or AMX and on CUDA, "
         "else fp32).")]


def overrides(pairs: list[str] | None, example: str = "--set kernel_size=5") -> dict[str, str]:
    """['kernel_size=5', 'dropout=0.5'] -> {'kernel_size': '5', 'dropout': '0.5'}; the spec validates values.
    ``example``: the option as the user writes it (the error shows it)."""
    from convlens.models.registry import parse_overrides
    return parse_overrides(pairs or [], example)


BackendOption = Annotated[str, typer.Option(help="local (this machine) or ray (tasks on a local Ray, or the cluster "
                                            "at --address / $RAY_ADDRESS).")]
AddressOption = Annotated[Optional[str], typer.Option(help="Ray cluster address (with --backend ray).")]
CpusPerRunOption = Annotated[float, typer.Option(help="CPUs each Ray task asks for (and its torch threads).")]
GpusPerRunOption = Annotated[float, typer.Option(help="GPU each run takes; a fraction shares one (0.25: four runs "
                                                 "at once per GPU, as Ray tasks or local workers).")]
BatchSeedsOption = Annotated[Optional[bool], typer.Option(
    "--batch-seeds/--no-batch-seeds", help="Train all seeds of a level as one batched model, one per worker "
    "with --workers (default: where CUDA is, on the local backend without --gpus-per-run; on the CPU it is slower "
    "than separate runs).",
    show_default=False)]


MlflowOption = Annotated[bool, typer.Option("--mlflow", help="Log to MLflow (default store: mlflow.db, SQLite, and "
                                            "mlartifacts/ in the output directory).")]
TrainMlflowOption = Annotated[bool, typer.Option("--mlflow", help="Log to MLflow (default store: mlflow.db, SQLite, "
                                                 "and mlartifacts/ beside the run directory).")]
MlflowUriOption = Annotated[Optional[str], typer.Option("--mlflow-uri", help="MLflow tracking URI (a server's "
                                                        "http://... or sqlite:///...); implies --mlflow.")]
