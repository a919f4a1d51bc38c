"""The ``convlens`` command: a thin layer over the library. Each module is one command group and only parses,
validates, calls one library function and prints:

    data.py        convlens data info | fetch
    models.py      convlens models list | show
    runs.py        convlens train | evaluate | compare
    experiment.py  convlens experiment list | run | plan | status | table
    study.py       convlens study | report
    serving.py     convlens export | predict | serve
    sagemaker.py   convlens sagemaker train | deploy | invoke | delete
    tables.py      the experiment table and the comparison table
    json_output.py where --json differs from the library's record (parameter counts as metrics.json has them)
    options.py     options shared by several commands
(Consoles and progress displays are convlens/display.py: the Python API shows them too.)

Expected mistakes (bad flags, unknown models, broken data files) end with one line on stderr and a non-zero
exit: 2 for usage errors, 1 for everything else. No traceback is shown for them.
"""

from __future__ import annotations

import ast
import re
import sys
from pathlib import Path
from typing import Annotated

import typer

from convlens.cli import data, experiment, models, runs, sagemaker, serving, study
from convlens.display import err, out
from convlens.errors import ConvlensError, UsageError
from convlens.shutdown import skip_the_last_collection

app = typer.Typer(help="Controlled, multi-seed experiments on convolutional architectures (Fashion-MNIST by default; "
                       "MNIST, KMNIST, CIFAR-10, scikit-learn's digits or a folder of your images).",
                  no_args_is_help=True, add_completion=False, pretty_exceptions_enable=False, rich_markup_mode=None,
                  context_settings={"help_option_names": ["--help", "-h"]})


def _print_version(asked: bool) -> None:
    if asked:
        from convlens import __version__
        out.print(f"convlens {__version__}")
        raise typer.Exit()


@app.callback()
def _options(version: Annotated[bool, typer.Option("--version", callback=_print_version, is_eager=True,
                                                   help="Print convlens' version and exit.")] = False) -> None:
    pass  # the top-level options; the app's help text is Typer(help=...) above


app.add_typer(data.app, name="data")
app.add_typer(models.app, name="models")
for name, command in (("train", runs.train_cmd), ("evaluate", runs.evaluate_cmd), ("compare", runs.compare_cmd)):
    app.command(name)(command)
app.add_typer(experiment.app, name="experiment")
app.command("study")(study.study_cmd)
app.command("report")(study.report_cmd)
for name, command in (("export", serving.export_cmd), ("predict", serving.predict_cmd), ("serve", serving.serve_cmd)):
    app.command(name)(command)
app.add_typer(sagemaker.app, name="sagemaker")


INTERRUPTED = 130  # the shell's code for a process ended by SIGINT (128 + 2)
TERMINATED = 143  # and by SIGTERM (128 + 15)
_terminated = False  # set by the console script's SIGTERM handler, read once the command has unwound


def _stop_like_ctrl_c(number: int, frame: object) -> None:
    """SIGTERM (kill, docker stop, a scheduler's time limit) ends the command the way Ctrl-C does: the same
    unwinding (worker pools stopped, directory locks released, temporary files removed) and one line, then exit
    143. Python's default for SIGTERM ends the process at once, silently."""
    global _terminated
    _terminated = True
    raise KeyboardInterrupt


def _stop_children() -> None:
    """After Ctrl-C, worker processes still alive (a figure drawer, a --workers pool) are stopped here: the
    interpreter's exit would otherwise wait for each (multiprocessing joins its children), and one that never got
    its pool's shutdown kept the command from ever ending (seen with the study's figure drawer)."""
    import multiprocessing
    for child in multiprocessing.active_children():
        child.terminate()
    for child in multiprocessing.active_children():
        child.join(timeout=5)


def interrupted_message(argv: list[str], terminated: bool = False) -> str:
    """What Ctrl-C (or SIGTERM: ``terminated``) leaves: an experiment or a study keeps its finished runs and
    resumes; a server has stopped (as uvicorn stops on Ctrl-C); anything else was interrupted (a SageMaker job
    being waited for goes on remotely)."""
    words = [a for a in argv if not a.startswith("-")][:2]
    if words[:1] == ["serve"]:
        return "convlens: the server stopped"
    stopped = "stopped by SIGTERM" if terminated else "interrupted"
    if words[:1] == ["study"] or words in (["experiment", "run"], ["experiment", "plan"]):
        return f"convlens: {stopped}; finished runs are kept, and the same command resumes where it stopped"
    if words[:1] == ["sagemaker"]:
        return f"convlens: {stopped}; a job or endpoint already started on SageMaker goes on there"
    return f"convlens: {stopped}"


def _typed_values(args: list[str]) -> dict[str, list[str]]:
    """Each --option on the command line and the values typed for it (--opt=value or --opt value)."""
    values: dict[str, list[str]] = {}
    for i, arg in enumerate(args):
        if arg.startswith("--"):
            flag, eq, value = arg.partition("=")
            if eq or i + 1 < len(args):
                values.setdefault(flag, []).append(value if eq else args[i + 1])
    return values


def _is_typed(shown: str, typed: str) -> bool:
    """Whether a message's '(got X)' (X as Python's repr) is the text the user typed: 'nope' for nope, -1.0 for -1."""
    try:
        value = ast.literal_eval(shown)
    except (ValueError, SyntaxError, MemoryError, RecursionError):
        return False
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        try:
            return float(typed) == float(value)
        except ValueError:
            return False
    return isinstance(value, str) and value == typed


def _in_the_users_words(message: str, args: list[str]) -> str:
    """A setting the user gave as an option is named as they typed it: '--train-subset: Input should be ...', where
    the library (and a YAML spec) says 'train_subset: ...'. Only when the value the message quotes ('(got 0)') is
    the one typed after that option: the same field written in a spec file, or a file name before a colon, keeps
    its own words."""
    got = re.search(r" \(got (.*)\)(?:; and \d+ more)?$", message)
    field = re.search(r"(?:^|: )([a-z][a-z0-9_]*):", message)  # 'invalid option: train_subset: ...'
    if got is None or field is None:
        return message
    flag = "--" + field.group(1).replace("_", "-")
    if not any(_is_typed(got.group(1), value) for value in _typed_values(args).get(flag, [])):
        return message
    return message[:field.start(1)] + flag + message[field.end(1):]


def main(argv: list[str] | None = None) -> int:
    """Entry point: run the app and turn expected errors into one line on stderr."""
    command = typer.main.get_command(app)
    try:
        # Not standalone, typer returns an Exit's code instead of raising it; Ctrl-C (KeyboardInterrupt) is Exit(130)
        code = command.main(args=argv, prog_name="convlens", standalone_mode=False)
    except SystemExit as e:  # the report notebook's kernels were stopped by SIGTERM (convlens.report.notebook)
        if e.code != TERMINATED:
            raise
        code = TERMINATED
    except typer.Abort:  # EOF at a prompt
        err.print("convlens: aborted")
        return 130
    except typer.TyperException as e:  # usage errors from parsing: exit 2
        message = e.format_message()
        if "\n" in message:  # `convlens` or a group alone: the message is the help text
            out.print(message)
            return 0 if argv == [] else 2
        ctx = getattr(e, "ctx", None)
        hint = f" (see '{ctx.command_path} --help')" if ctx is not None else ""
        err.print(f"convlens: error: {message}{hint}")
        return e.exit_code
    except ConvlensError as e:
        message = _in_the_users_words(str(e), sys.argv[1:] if argv is None else argv) if isinstance(e, UsageError) \
            else str(e)
        err.print(f"convlens: error: {message}")
        return e.exit_code
    except OSError as e:
        if e.filename is None:  # not about a path the user named: a real fault, keep the traceback
            raise
        if isinstance(e, (FileExistsError, NotADirectoryError)):  # mkdir on a file, or a path through one
            path = Path(e.filename)
            blocking = next((p for p in (path, *path.parents) if p.exists() and not p.is_dir()), None)
            if blocking is not None:
                err.print(f"convlens: error: {blocking} is a file, where a directory is needed; choose another "
                          "--out")
                return 2
        # e.g. --out naming an existing file, a read-only directory, a full disk: say which path and why
        err.print(f"convlens: error: {e.strerror or e}: {e.filename}")
        return 1
    if _terminated and code in (None, 0, INTERRUPTED):  # None, 0: the interrupt was taken as the end (by uvicorn)
        code = TERMINATED
    if code in (INTERRUPTED, TERMINATED):
        err.print(interrupted_message(argv if argv is not None else sys.argv[1:], terminated=code == TERMINATED))
        _stop_children()
    return code if isinstance(code, int) and not isinstance(code, bool) else 0


def run() -> int:
    """The ``convlens`` console script: ``main`` in a process of its own, which SIGTERM stops as Ctrl-C does and
    which it leaves without a last pass of the garbage collector (convlens.shutdown)."""
    import signal
    skip_the_last_collection()
    signal.signal(signal.SIGTERM, _stop_like_ctrl_c)
    return main()


if __name__ == "__main__":
    sys.exit(run())
