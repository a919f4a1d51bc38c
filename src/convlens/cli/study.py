"""``convlens study`` and ``convlens report``: the whole assignment end to end, and its report."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from convlens.cli.options import (
    AddressOption,
    BackendOption,
    BatchSeedsOption,
    CpusPerRunOption,
    DataDirOption,
    GpusPerRunOption,
    MlflowOption,
    MlflowUriOption,
    PrecisionOption,
    path_option,
)
from convlens.display import out
from convlens.errors import UsageError


def study_cmd(
    config_path: Annotated[Optional[Path], path_option("--config", "YAML file of study "
                                                        "options (seeds, recipe, epochs, train_subset, experiments, "
                                                        "shift_max, ...).")] = None,
    out_dir: Annotated[Path, path_option("--out", "Output directory (re-running reuses its finished runs).")]
        = Path("runs/study"),
    seeds: Annotated[Optional[int], typer.Option(help="Seeds per configuration (default 3).")] = None,
    epochs: Annotated[Optional[int], typer.Option(help="Epochs of every run (default: the recipe's).")] = None,
    quick: Annotated[bool, typer.Option("--quick", help="A first look in about a minute: 3 seeds on the first "
                                        "5,000 training and 2,000 test images.")] = False,
    full: Annotated[bool, typer.Option("--full", help="Everything the reference write-ups ran: kernel 3/5/7, "
                                       "depth 1/2/3, filters; no time budget.")] = False,
    workers: Annotated[Optional[int], typer.Option(
        help="Parallel training processes (cores are split; default: 1 on the CPU, with CUDA one per level of the "
             "study, at most 8 and the cores).")] = None,
    data_dir: DataDirOption = None,
    dataset: Annotated[Optional[str], typer.Option("--dataset", help="fashion-mnist (default), mnist, kmnist, "
                                                   "cifar10, digits or folder:PATH.")] = None,
    precision: PrecisionOption = None,
    force: Annotated[bool, typer.Option("--force", help="Discard the experiments' runs and train everything "
                                        "again (only runs the study's experiment directories own).")] = False,
    retry_failed: Annotated[bool, typer.Option("--retry-failed", help="Train failed runs again.")] = False,
    backend: BackendOption = "local",
    address: AddressOption = None,
    cpus_per_run: CpusPerRunOption = 1,
    gpus_per_run: GpusPerRunOption = 0,
    batch_seeds: BatchSeedsOption = None,
    mlflow: MlflowOption = False,
    mlflow_uri: MlflowUriOption = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q",
                                        help="No progress: print only the headline and where the report is.")] = False,
) -> None:
    """The whole assignment end to end: EDA, MLP baseline, CNN design, controlled experiments, probes, export,
    and one self-contained report (report.html, report.md, report.ipynb, results.json)."""
    from convlens.api.study import Study
    if quick and full:
        raise UsageError("--quick and --full exclude each other; pick one")
    mode = "quick" if quick else "full" if full else "default"
    study = Study(config_path or mode, preset=mode, seeds=seeds, epochs=epochs, workers=workers, dataset=dataset,
                  precision=precision)
    result = study.run(out_dir, force=force, retry_failed=retry_failed, data_dir=data_dir, backend=backend,
                       address=address, cpus_per_run=cpus_per_run, gpus_per_run=gpus_per_run,
                       mlflow=mlflow_uri or mlflow, quiet=quiet, batch_seeds=batch_seeds)
    out.print(result.headline())
    notebook = ", report.ipynb" if result.notebook_path.is_file() else ""
    out.print(f"Report: {out_dir / 'report.html'} (also report.md{notebook}, results.json)")
    if result.tracked:
        out.print(f"MLflow: {result.tracked}")


def report_cmd(directory: Annotated[Path, typer.Argument(help="A study directory (convlens study --out).")]) -> None:
    """Render report.html, report.md and report.ipynb again from a study's results.json (nothing is trained)."""
    from convlens.report.render import render_report
    from convlens.study.pipeline import notebook_status
    md, page = render_report(directory)
    notebook = notebook_status(directory)
    out.print(f"Wrote {page}, {md} and {directory / 'report.ipynb'}"
              + ("" if notebook["executed"] else f" (without outputs: {notebook['reason']})"))
