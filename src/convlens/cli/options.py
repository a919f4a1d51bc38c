"""Options shared by several commands, and turning ``--set key=value`` pairs into overrides."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

DataDirOption = Annotated[Optional[Path], typer.Option(
    "--data-dir", help="Directory with the dataset's files (IDX .gz or raw; CIFAR-10 binary batches); default: "
    "$CONVLENS_DATA, the user cache, the Debian package path (Fashion-MNIST), else download.", show_default=False)]
DatasetOption = Annotated[str, typer.Option(
    "--dataset", help="fashion-mnist, mnist, kmnist, cifar10, digits (scikit-learn's 8x8), or folder:PATH "
    "(PATH/<class>/*.png|jpg).")]
SetOption = Annotated[Optional[list[str]], typer.Option(
    "--set", help="Override a spec field, e.g. --set kernel_size=5 --set filters=16,32 (repeatable).")]
JsonOption = Annotated[bool, typer.Option("--json", help="Print machine-readable JSON instead of a table.")]
QuietOption = Annotated[bool, typer.Option("--quiet", "-q", help="Print only the final result.")]
DeviceOption = Annotated[str, typer.Option(help="auto (CUDA when present), cpu or cuda.")]


def overrides(pairs: list[str] | None) -> dict[str, str]:
    """['kernel_size=5', 'dropout=0.5'] -> {'kernel_size': '5', 'dropout': '0.5'}; the spec validates values."""
    from convlens.models.registry import parse_override
    return dict(parse_override(text) for text in pairs or [])


BackendOption = Annotated[str, typer.Option(help="local (this machine) or ray (tasks on a local Ray, or the cluster "
                                            "at --address / $RAY_ADDRESS).")]
AddressOption = Annotated[Optional[str], typer.Option(help="Ray cluster address (with --backend ray).")]
CpusPerRunOption = Annotated[float, typer.Option(help="CPUs each Ray task asks for (and its torch threads).")]
GpusPerRunOption = Annotated[float, typer.Option(help="GPU each run takes; a fraction shares one (0.25: four runs "
                                                 "at once per GPU, as Ray tasks or local workers).")]


def make_backend(name: str, address: str | None, cpus_per_run: float, gpus_per_run: float):
    """The validated Backend of experiments.run (Ray is imported now, so a missing extra is one line up front)."""
    from convlens.errors import UsageError
    from convlens.experiments.run import Backend
    if name not in ("local", "ray"):
        raise UsageError(f"unknown backend '{name}'; use local or ray")
    if not cpus_per_run > 0 or gpus_per_run < 0:
        raise UsageError(f"--cpus-per-run must be > 0 and --gpus-per-run >= 0 (got {cpus_per_run:g}, {gpus_per_run:g})")
    if name == "ray":
        from convlens.experiments.ray_backend import import_ray
        import_ray()
    elif gpus_per_run > 0:
        from convlens.experiments.run import shared_gpu_workers
        shared_gpu_workers(gpus_per_run)  # no CUDA here: one line now, not after planning
    return Backend(name, address, cpus_per_run, gpus_per_run)


MlflowOption = Annotated[bool, typer.Option("--mlflow", help="Log to MLflow (default store: OUT/mlflow.db, SQLite; "
                                            "artifacts in OUT/mlartifacts).")]
MlflowUriOption = Annotated[Optional[str], typer.Option("--mlflow-uri", help="MLflow tracking URI (a server's "
                                                        "http://... or sqlite:///...); implies --mlflow.")]


def make_tracker(enabled: bool, uri: str | None, out_dir: Path):
    """The MLflow tracker of --mlflow / --mlflow-uri, or None (MLflow is imported only when asked for)."""
    if not (enabled or uri):
        return None
    from convlens.tracking import Tracker, default_uri
    if not uri:
        out_dir.mkdir(parents=True, exist_ok=True)  # SQLite creates the database file, not its directory
    # Artifacts of a SQLite store go beside its database (MLflow's default is ./mlruns of the working directory);
    # a server decides for itself.
    database = uri[len("sqlite:///"):] if uri and uri.startswith("sqlite:///") else None
    artifacts = out_dir if not uri else Path(database).parent if database else None
    return Tracker(uri or default_uri(out_dir), artifact_dir=artifacts / "mlartifacts" if artifacts else None)

