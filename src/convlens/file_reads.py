"""Reading a named file safely: a regular file only, and never more than a bound, for every reader of files a user
names or a download left (dataset files, predict's inputs). Each caller words the two refusals in its own terms."""

from __future__ import annotations

import os
import stat
from pathlib import Path


class NotRegularFile(Exception):
    """A FIFO, a device, a directory: opening a FIFO blocks, and a link to /dev/zero (its size says 0) never ends."""


class TooLarge(Exception):
    """More than the bound: ``size`` is what the file said it holds, None when it grew while it was read."""

    def __init__(self, size: int | None):
        super().__init__(size)
        self.size = size


def read_bounded(path: Path, most: int) -> bytes:
    """The bytes of ``path``, at most ``most`` of them read. The file's type is checked before it is opened (a FIFO
    would block the open) and again on the open file, its size before it is read; OSError (not found, no
    permission) passes through."""
    if not stat.S_ISREG(Path(path).stat().st_mode):
        raise NotRegularFile(path)
    with open(path, "rb") as f:
        info = os.fstat(f.fileno())
        if not stat.S_ISREG(info.st_mode):  # replaced between the two looks
            raise NotRegularFile(path)
        if info.st_size > most:
            raise TooLarge(info.st_size)
        data = f.read(most + 1)
    if len(data) > most:
        raise TooLarge(None)
    return data
