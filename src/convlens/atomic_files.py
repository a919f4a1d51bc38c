"""Atomic file writes: a reader (or a crash) never sees a half-written file.

Every file convlens writes goes to a temporary file in the same directory, is flushed and fsynced,
then renamed over the target (rename is atomic on POSIX within one filesystem), and the directory is fsynced
so that the rename itself survives a power loss.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any, BinaryIO


def _current_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


_UMASK = _current_umask()  # read once at import: os.umask can only be read by setting it


def atomic_write_with(path: str | os.PathLike, write: Callable[[BinaryIO], None]) -> Path:
    """Call ``write(f)`` on a temp file beside ``path``, then rename it to ``path``."""
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    except OSError as e:
        raise _naming(e, path) from None
    try:
        os.fchmod(fd, 0o666 & ~_UMASK)  # mkstemp creates 0600; give the file the mode open() would have
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except OSError as e:  # a full disk or a read-only directory: the old file stays, the temp file goes
        Path(tmp).unlink(missing_ok=True)
        raise _naming(e, path, tmp) from None
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    fsync_dir(path.parent)
    return path


def _naming(error: OSError, path: Path, tmp: str | None = None) -> OSError:
    """``error`` with the file it was about: write() and fsync() errors (ENOSPC, EIO) carry no file name, and
    the CLI prints 'No space left on device: PATH' only for errors that name one. One that names the temporary
    file (the rename over a directory: 'Is a directory: .runs.csv.j9dj.tmp') names the target instead."""
    if error.filename is not None and error.filename != tmp:
        return error
    return type(error)(error.errno, error.strerror or str(error), str(path))


def fsync_dir(directory: str | os.PathLike) -> None:
    """Make renames and unlinks in ``directory`` durable (a no-op where directories cannot be opened)."""
    try:
        fd = os.open(directory, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:  # some filesystems refuse fsync on a directory; the rename is still atomic
        pass
    finally:
        os.close(fd)


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    return atomic_write_with(path, lambda f: f.write(data))


def atomic_write_text(path: str | os.PathLike, text: str) -> Path:
    return atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: str | os.PathLike, obj: Any) -> Path:
    return atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=False) + "\n")
