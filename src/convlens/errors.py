"""Errors meant for people: one line that says what was wrong and what to do.

The CLI prints ``str(error)`` and exits with ``error.exit_code``; no traceback is shown for these.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pydantic import ValidationError


class ConvlensError(Exception):
    """An expected failure (bad data file, failed run, ...). Exit code 1."""

    exit_code = 1

    def __str__(self) -> str:
        # Messages quote what the user typed (a recipe name, a path, a YAML value); a newline or other control
        # character in it is shown escaped, so the message stays the one line the CLI promises.
        return one_line(super().__str__())


class UsageError(ConvlensError, ValueError):
    """The user asked for something invalid (unknown model, bad override, bad flag value). Exit code 2. A
    ValueError too: from Python, a wrong argument is caught as Python's own convention (and scikit-learn's) has it."""

    exit_code = 2


class DataError(ConvlensError):
    """A dataset file is missing, truncated or corrupt; the message names the file and the fix."""


class DataChanged(DataError):
    """The images a dataset holds now are not those a run recorded (by their digests)."""


class TrainingDiverged(ConvlensError):
    """The loss became NaN or infinite; the message says at which epoch and step."""

    def __init__(self, epoch: int, step: int, value: float):
        self.epoch, self.step, self.value = epoch, step, value
        super().__init__(
            f"training diverged: loss is {value} at epoch {epoch}, step {step}; "
            "lower the learning rate or check the inputs"
        )


def one_line(text: str) -> str:
    """``text`` with each non-printable character (newline, tab, escape, ...) written as its escape: ``\\n``."""
    return text if text.isprintable() else "".join(
        c if c.isprintable() else c.encode("unicode_escape").decode("ascii") for c in text)


def first_repeated(keys: Iterable[Any]) -> Any | None:
    """The first key that comes again in ``keys`` (a JSON object's, in order), or None: json.loads keeps the last
    of two, another parser the first, so which was meant is not known."""
    seen: set[Any] = set()
    for key in keys:
        if key in seen:
            return key
        seen.add(key)
    return None


def first_sentence(text: str, limit: int = 240) -> str:
    """The first sentence of another library's message (often a paragraph), whole words only: ``…`` marks a cut."""
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    sentence = re.split(r"(?<=[.!?])\s+(?=[A-Z`'\"(])", lines[0], maxsplit=1)[0] if lines else ""
    if len(sentence) > limit:
        sentence = sentence[:limit].rsplit(" ", 1)[0].rstrip(",;:") + "…"
    return one_line(sentence)


def format_validation_error(e: ValidationError, whole: str | None = "spec", field: str | None = None) -> str:
    """A pydantic error as one line: 'kernel_size: Input should be greater than or equal to 1 (got 0)'. An error
    about the whole object (no field) is prefixed with ``whole`` ('spec: ...'), or with nothing when it is None;
    ``field`` names the field in the caller's own words instead of pydantic's location."""
    errors = e.errors()
    # A misspelled key is two errors: the field it should have been is missing, and the typo is an extra input.
    # The typo's error names what to fix, so it is shown first.
    err = next((x for x in errors if x["type"] == "extra_forbidden"), errors[0])
    loc = field if field is not None else ".".join(str(p) for p in err["loc"] if not isinstance(p, int))
    msg = re.sub(r" or instance of \w+", "", err["msg"].removeprefix("Value error, "))  # a class name says nothing
    shown = repr(err.get("input"))
    shown = shown if len(shown) <= 80 else shown[:77] + "..."  # a 100-item list must not fill the terminal
    got = f" (got {shown})" if loc and not isinstance(err.get("input"), dict) else ""
    missing = [".".join(str(p) for p in x["loc"] if not isinstance(p, int)) for x in errors if x["type"] == "missing"]
    if err["type"] == "extra_forbidden" and missing and field is None:
        msg += f" (is it {' or '.join(missing)}, which is missing?)"
    rest = len(errors) - 1 - (len(missing) if err["type"] == "extra_forbidden" and field is None else 0)
    more = f"; and {rest} more" if rest > 0 else ""
    where = f"{loc}: " if loc else f"{whole}: " if whole else ""
    return f"{where}{msg}{got}{more}"


def user_path(path: str | os.PathLike, what: str = "path") -> Path:
    """``path`` with ``~`` and ``~user`` expanded, as a shell would; one line where it cannot be (an unknown user,
    no home directory) or is no path at all (a NUL byte, from Python), where pathlib raises RuntimeError or
    ValueError deep inside whatever reads it."""
    if not isinstance(path, (str, os.PathLike)):  # an int or None from Python: os.fspath's TypeError, a traceback
        raise UsageError(f"{what} takes a path, got {path!r}")
    text = os.fspath(path)
    if "\0" in str(text):
        raise UsageError(f"{what} {str(text)!r} holds a NUL byte, which no path can")
    try:
        return Path(text).expanduser()
    except RuntimeError:  # "Could not determine home directory."
        user = str(text)[1:].split("/", 1)[0]
        raise UsageError(f"{what} {text}: " + (f"there is no user {user!r} (~{user} is that user's home)" if user
                                               else "this process has no home directory for ~ (set HOME)")) from None


def did_you_mean(word: object, choices: Iterable[str]) -> str:
    """" (did you mean 'x'?)" for the one choice closest to a misspelled ``word``, else "" (difflib's ratio, at
    least 0.6: "cnnn" finds "cnn", "kernel-sise" "kernel-size"; nothing is offered for a word unlike every choice)."""
    import difflib
    close = difflib.get_close_matches(str(word), list(choices), n=1, cutoff=0.6)
    return f" (did you mean '{close[0]}'?)" if close else ""
