"""One convlens process at a time writes a run, an experiment or a study directory.

Two commands given the same --out would both train every pending run and leave a run directory holding one
command's config.json and the other's metrics.json. The lock is the kernel's (``flock`` on the directory itself):
no lock file to leave behind, and it is released when its process ends, however it ends (kill -9 included).
Worker processes write inside a directory their parent holds; they take no lock.
"""

from __future__ import annotations

import fcntl
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from convlens.errors import ConvlensError


class DirectoryInUse(ConvlensError):
    """Another process holds the directory (exit 1: nothing is wrong with the command; wait, or write elsewhere)."""


@contextmanager
def holding(directory: str | Path, what: str) -> Iterator[None]:
    """Hold ``directory`` (created if missing) for this process while the block runs; ``what`` names what is written
    there, for the refusal: 'the experiment', 'the run', 'the study'. A directory this call created and the block
    left empty is removed again (a refused command leaves nothing). A path that exists and is not a directory is
    not held: the command's own check refuses it."""
    path = Path(directory)
    if path.exists() and not path.is_dir():
        yield
        return
    created = not path.exists()
    path.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise DirectoryInUse(f"{path} is in use: another convlens process is writing {what} there; wait for it "
                                 "to end, or give another --out") from None
        try:
            yield
        finally:
            if created:
                try:
                    path.rmdir()  # only if the block wrote nothing
                except OSError:
                    pass
    finally:
        os.close(fd)  # releases the lock
