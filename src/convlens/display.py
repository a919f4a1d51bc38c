"""What convlens prints, from the CLI and from Python (a notebook too): the consoles, the progress displays for
training, sweeps and the study, and HTML tables for notebooks.

Rich markup is off everywhere, on a terminal too: level labels, model names, paths and error messages are
user or run data, and text in brackets (``[fast]``, ``[data]``) must print as written.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Mapping

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    TaskProgressColumn,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

PIPED_WIDTH = 160  # rich would assume 80 columns for a pipe and wrap the tables a script reads


def piped_width(environ: Mapping[str, str] = os.environ) -> int:
    """The width of output that goes to a pipe or file: COLUMNS when it is a positive integer (the user chose it:
    ``COLUMNS=60 convlens models list | cat``), else PIPED_WIDTH."""
    columns = environ.get("COLUMNS", "").strip()
    return int(columns) if columns.isdigit() and int(columns) > 0 else PIPED_WIDTH


def stdout_console(environ: Mapping[str, str] = os.environ, file=None) -> Console:
    """The console for stdout (``file``: another stream, for tests); a terminal gives its own width."""
    console = Console(highlight=False, soft_wrap=True, markup=False, file=file)
    if console.is_terminal:
        return console
    return Console(highlight=False, soft_wrap=True, markup=False, file=file, width=piped_width(environ))


out = stdout_console()
err = Console(stderr=True, highlight=False, soft_wrap=True, markup=False)


def print_json(obj: object) -> None:
    sys.stdout.write(json.dumps(obj, indent=2) + "\n")


def can_draw_live() -> bool:
    """Whether a live bar can be drawn: on a terminal, or in a notebook (one mechanism, rich, which draws there
    through an ipywidgets output; without ipywidgets the bar becomes one line per event)."""
    if out.is_terminal:
        return True
    if not out.is_jupyter:
        return False
    try:
        import ipywidgets  # noqa: F401
    except ImportError:
        return False
    return True


def live_progress(*columns: ProgressColumn) -> Progress:
    """A rich progress display whose description is plain text (a level label is data, not markup)."""
    return Progress(TextColumn("{task.description}", markup=False), *columns, console=out)


class TrainingProgress:
    """A progress bar with live loss on a terminal; one plain line per epoch otherwise."""

    def __init__(self, quiet: bool):
        self.quiet, self.live = quiet, not quiet and can_draw_live()
        self.progress = self.task = None

    def __call__(self, event: str, payload: dict) -> None:
        if self.quiet:
            return
        if event == "start" and self.live:
            self.progress = live_progress(BarColumn(), MofNCompleteColumn(),
                                          TextColumn("{task.fields[status]}", markup=False), TimeRemainingColumn())
            self.steps_per_epoch = payload["steps_per_epoch"]
            self.task = self.progress.add_task("training", total=payload["epochs"] * self.steps_per_epoch, status="")
            self.progress.start()
        elif event == "step" and self.progress is not None:
            done = (payload["epoch"] - 1) * self.steps_per_epoch + payload["step"]
            self.progress.update(self.task, completed=done, description=f"epoch {payload['epoch']}",
                                 status=f"loss {payload['loss']:.4f}")
        elif event == "epoch":
            r = payload["record"]
            val = f" val_loss {r.val_loss:.4f} val_acc {r.val_accuracy:.4f}" if r.val_loss is not None else ""
            line = (f"epoch {r.epoch}: loss {r.train_loss:.4f} acc {r.train_accuracy:.4f}{val} "
                    f"lr {r.lr:.2e} ({r.seconds:.1f}s)")
            if self.progress is not None:
                self.progress.update(self.task, completed=r.epoch * self.steps_per_epoch)
            (self.progress.console if self.progress else out).print(line)

    def close(self) -> None:
        if self.progress is not None:
            self.progress.stop()


class RunsProgress:
    """One line per finished run (level, seed, status); on a terminal also a bar over the runs (weighted by
    each run's estimated seconds when given, for an honest ETA) that names the stage or run in progress."""

    def __init__(self, quiet: bool):
        self.quiet, self.progress, self.task = quiet, None, None

    def start(self, total: float, weighted: bool) -> None:
        if self.quiet or not total or not can_draw_live():
            return
        columns = ((BarColumn(), TaskProgressColumn(), TimeElapsedColumn(), TextColumn("ETA"), TimeRemainingColumn())
                   if weighted else (BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(), TimeRemainingColumn()))
        self.progress = live_progress(*columns)
        self.task = self.progress.add_task("runs", total=total)
        self.progress.start()

    def line(self, text: str) -> None:
        if not self.quiet:
            (self.progress.console if self.progress else out).print(text)

    def describe(self, text: str) -> None:
        if self.progress is not None:
            self.progress.update(self.task, description=text)

    def run_started(self, job) -> None:
        self.describe(f"{job.level} seed {job.seed}")

    def run_finished(self, result, weight: float = 1.0) -> None:
        self.line(f"{result.level} seed {result.seed}: {result.status}"
                  + (f" ({result.reason})" if result.reason else ""))
        self.advance(weight)

    def advance(self, weight: float) -> None:
        if self.progress is not None:
            self.progress.advance(self.task, weight)

    def close(self) -> None:
        if self.progress is not None:
            self.progress.stop()


class StudyProgress(RunsProgress):
    """The study's events (convlens.study.pipeline.StudyEvents): a line per stage and run, one bar with an ETA."""

    def planned(self, total_seconds: float, runs: int, reused: int, kept: int = 0) -> None:
        shared = f" ({reused} more are the same runs, shared between experiments)" if reused else ""
        before = f"; {kept} trained before are kept" if kept else ""
        self.line(f"{runs} runs to train{shared}{before}; estimated {total_seconds / 60:.0f} min on this machine")
        self.start(total_seconds, weighted=True)

    def unchanged(self, out) -> None:
        self.line(f"0 runs to train, and nothing else changed since the study in {out} was made (the same runs, data, "
                  f"code and package versions): its results and report are kept. Delete {out / 'results.json'} to "
                  "analyse again, or --force to train again.")

    def stage(self, name: str, detail: str = "") -> None:
        self.line(f"[{name}] {detail}")
        self.describe(name)

    def run_started(self, job) -> None:
        self.describe(f"training {job.level} seed {job.seed}")

    def run_finished(self, result, weight: float = 1.0) -> None:  # indented under its stage line
        self.line(f"  {result.level} seed {result.seed}: {result.status}"
                  + (f" ({result.reason})" if result.reason else ""))
        self.advance(weight)


def html_table(rows: list[dict], title: str = "", styles: list[dict[str, str]] | None = None) -> str:
    """Rows (dicts of text) as an HTML table for notebooks; every value is escaped. ``styles``: per row, column ->
    CSS (e.g. a verdict's colour)."""
    from html import escape
    if not rows:
        return f"<p>{escape(title)}: nothing yet</p>"
    head = "".join(f"<th>{escape(str(k))}</th>" for k in rows[0])
    body = "".join("<tr>" + "".join(
        f"<td style=\"{escape((styles[i] if styles else {}).get(k, ''))}\">{escape(str(v))}</td>"
        for k, v in row.items()) + "</tr>" for i, row in enumerate(rows))
    caption = f"<caption style=\"text-align:left\"><b>{escape(title)}</b></caption>" if title else ""
    return f"<table>{caption}<thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


# Numbers as the tables print them (terminal and notebook alike) ----------------------------------------------

def model_label(name: str, overrides: dict | None) -> str:
    """'cnn-32-64-128 (kernel_size=4, layer=local)': a preset's name alone reads as the preset as it is."""
    changes = ", ".join(f"{k}={v}" for k, v in (overrides or {}).items())
    return f"{name} ({changes})" if changes else name


def pp(x: float | None, signed: bool = False) -> str:
    """A fraction in percent (points), two decimals; '-' when missing."""
    if x is None:
        return "-"
    return f"{x * 100:+.2f}" if signed else f"{x * 100:.2f}"


def mean_std(summary: dict) -> str:
    """'91.96 ± 0.32' from a mean_ci dict (fractions), or '-' without runs."""
    if not summary["n"]:
        return "-"
    return pp(summary["mean"]) + (f" ± {pp(summary['std'])}" if summary["std"] is not None else "")


def ci95(summary: dict) -> str:
    lo, hi = summary["ci95"]
    return f"{pp(lo)}..{pp(hi)}" if lo is not None else "-"


def comparisons_title(comparisons: list[dict]) -> str:
    """What the comparisons table holds: one Holm family of all of them, counting those that could not be tested
    (fewer than two paired seeds, or no spread) as p = 1 (convlens.stats.holm), and saying so."""
    untested = sum(c.get("p_value") is None or c["p_value"] != c["p_value"] for c in comparisons)  # None or NaN
    if comparisons and untested == len(comparisons):
        return "paired by seed; none could be tested (fewer than 2 paired seeds, or no spread between them)"
    note = (f", {untested} of them not testable (fewer than 2 paired seeds, or no spread) and counted as p = 1"
            if untested else "")
    return f"paired by seed; one Holm family of {len(comparisons)}{note}"


def experiment_rows(summary: dict) -> tuple[list[dict[str, str]], list[dict[str, str]]]:
    """An experiment's two tables as text rows: per level (n, mean ± std, CI, test-set SE, params, seconds,
    ms per image) and per comparison (n, diff with CI, Holm p, verdict, detectable effect)."""
    from convlens.stats import format_p
    levels = []
    for lv in summary["levels"]:
        n = f"{lv['n']}" + (f" ({len(lv['failed'])} failed)" if lv["failed"] else "") + (
            f" ({lv['pending']} pending)" if lv["pending"] else "")
        secs, ms = lv["train_seconds"]["mean"], lv["inference_ms_per_image"]["mean"]
        levels.append({
            "level": lv["label"] + (" (reference)" if lv["label"] == summary["reference"] else ""), "n": n,
            "test acc % (mean ± std)": mean_std(lv["test_accuracy"]), "95% CI": ci95(lv["test_accuracy"]),
            "test-set SE": f"± {pp(lv['sampling_noise'])}" if lv["sampling_noise"] is not None else "-",
            "params": f"{lv['params']:,}" if lv["params"] else "-",
            "train s": f"{secs:.1f}" if secs is not None else "-", "ms/img": f"{ms:.3f}" if ms is not None else "-"})
    tests = []
    for c in summary["comparisons"]:
        lo, hi = c["ci95"]
        diff = pp(c["diff"], True) + (f" [{pp(lo, True)}, {pp(hi, True)}]" if lo is not None else "")
        tests.append({"comparison": c["label"], "n": str(c["n"]), "diff, pp [95% CI]": diff if c["n"] else "-",
                      "p (Holm)": format_p(c["p_holm"]) if c["p_holm"] is not None else "-",
                      "verdict": c["verdict"].split(" (")[0],
                      "detectable, pp": "-" if c["mde"] is None else "> 100" if c["mde"] >= 1 else pp(c["mde"])})
    return levels, tests
