"""The IDX file format (LeCun's MNIST format) and verification of one dataset file.

An IDX file is a big-endian header -- 2 zero bytes, a dtype code (0x08 = uint8), the number of dimensions --
followed by one uint32 per dimension and the raw values.
"""

from __future__ import annotations

import hashlib
import struct
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from convlens.errors import DataError
from convlens.file_reads import NotRegularFile, TooLarge, read_bounded

UINT8_CODE = 0x08


@dataclass(frozen=True)
class IdxFileSpec:
    """What one decompressed IDX file must be: its name, exact size, md5 and array shape."""

    name: str  # e.g. "train-images-idx3-ubyte" (without .gz)
    n_bytes: int
    md5: str | None  # of the decompressed bytes; None: shape and size check only (files that tests write)
    shape: tuple[int, ...]
    gz_md5: str | None = None  # of the official .gz file, where only that is published (MNIST, KMNIST)

    @property
    def header_bytes(self) -> int:
        return 4 + 4 * len(self.shape)


class LargerThanExpected(ValueError):
    """Gzip that decompresses past the size its file should have: valid gzip, but not the expected file."""


def gunzip_at_most(raw: bytes, limit: int) -> bytes:
    """The gzip-decompressed ``raw`` (every member), or a ValueError once it passes ``limit`` bytes: a few MB of
    zeros decompress to gigabytes, and the expected size of the file is known before it is read."""
    out, rest = bytearray(), raw
    while rest:
        member = zlib.decompressobj(wbits=31)  # 31: a gzip header and trailer around the deflate stream
        out += member.decompress(rest, limit + 1 - len(out))
        if len(out) > limit:
            raise LargerThanExpected(f"it decompresses to more than the {limit:,} bytes expected")
        if not member.eof:
            raise EOFError("compressed file ended before the end-of-stream marker was reached")
        rest = member.unused_data
    return bytes(out)


REFETCH = "delete it so convlens fetches it again (or copy a good one there)"  # a file in convlens' own cache


def gzip_bound(n_bytes: int) -> int:
    """The most bytes a gzip file of ``n_bytes`` can take: deflate's stored blocks add 5 bytes per 64 KiB, so twice
    the size and a MiB is far above any gzip of it, and a file past that is not the file expected."""
    return 2 * n_bytes + 2**20


def read_at_most(path: Path, most: int, fix: str = REFETCH) -> bytes:
    """The bytes of ``path``, at most ``most`` of them read: a wrong file of gigabytes is one line, not a
    MemoryError (nor is a link to /dev/zero, whose size says 0, or a file that grows while it is read)."""
    try:
        return read_bounded(path, most)
    except NotRegularFile:
        raise DataError(f"{path}: not a regular file; {fix}") from None
    except TooLarge as e:
        size = f"{e.size:,} bytes, more than the {most:,}" if e.size is not None else f"more than the {most:,} bytes"
        raise DataError(f"{path}: {size} its file can take; {fix}") from None
    except OSError as e:
        raise DataError(f"{path}: cannot read ({e.strerror})") from None


def read_file_bytes(path: Path, limit: int, fix: str = REFETCH) -> bytes:
    """The decompressed bytes of ``path`` (``.gz`` or raw), at most ``limit`` of them. Raises DataError if it
    cannot be decompressed or is larger; ``fix`` says what to do about it."""
    raw = read_at_most(path, gzip_bound(limit) if path.suffix == ".gz" else limit, fix)
    if path.suffix != ".gz":
        return raw
    try:
        return gunzip_at_most(raw, limit)
    except (OSError, EOFError, ValueError, zlib.error) as e:
        raise DataError(f"{path}: {gzip_problem(e)}; {fix}") from None


def gzip_problem(e: Exception) -> str:
    """What ``gunzip_at_most`` found wrong: not gzip at all, or gzip of something larger than the file expected."""
    return f"not the expected file ({e})" if isinstance(e, LargerThanExpected) else f"not a valid gzip file ({e})"


def parse_idx(data: bytes, spec: IdxFileSpec, origin: Path | str, fix: str = REFETCH) -> np.ndarray:
    """Check ``data`` against ``spec`` (header, shape, size, checksum) and return it as a uint8 array. ``origin``
    names where it came from (a path or a URL); ``fix`` says what to do if it is wrong."""
    if len(data) < spec.header_bytes:
        raise DataError(f"{origin}: truncated ({len(data)} bytes, no complete IDX header); {fix}")
    zero, dtype_code, ndim = struct.unpack(">HBB", data[:4])
    if zero != 0 or dtype_code != UINT8_CODE or ndim != len(spec.shape):
        raise DataError(
            f"{origin}: not an IDX uint8 file of {len(spec.shape)} dimensions "
            f"(header says dtype 0x{dtype_code:02x}, {ndim} dims); {fix}"
        )
    shape = struct.unpack(f">{ndim}I", data[4 : 4 + 4 * ndim])
    if tuple(shape) != spec.shape:
        raise DataError(f"{origin}: shape {tuple(shape)} in the header, expected {spec.shape}; {fix}")
    if len(data) != spec.n_bytes:
        what = "truncated" if len(data) < spec.n_bytes else "too long"
        raise DataError(f"{origin}: {what} ({len(data):,} bytes decompressed, expected {spec.n_bytes:,}); {fix}")
    if spec.md5 is not None:
        digest = hashlib.md5(data).hexdigest()
        if digest != spec.md5:
            raise DataError(f"{origin}: checksum mismatch (md5 {digest}, expected {spec.md5}); {fix}")
    # A copy: frombuffer views the immutable bytes, which torch cannot wrap safely.
    return np.frombuffer(data, dtype=np.uint8, offset=spec.header_bytes).reshape(spec.shape).copy()


def encode_idx(array: np.ndarray) -> bytes:
    """The IDX bytes of a uint8 array (used to write test fixtures and caches)."""
    array = np.ascontiguousarray(array, dtype=np.uint8)
    header = struct.pack(">HBB", 0, UINT8_CODE, array.ndim) + struct.pack(f">{array.ndim}I", *array.shape)
    return header + array.tobytes()
