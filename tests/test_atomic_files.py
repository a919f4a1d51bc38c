"""Atomic writes: the target appears whole or not at all, with the permissions a plain open() would give."""

from __future__ import annotations

import os
import stat

import pytest

from convlens.atomic_files import atomic_write_json, atomic_write_with


def test_written_files_get_the_umask_mode_not_mkstemps_0600(tmp_path):
    path = atomic_write_json(tmp_path / "r.json", {"a": 1})
    mask = os.umask(0)
    os.umask(mask)
    assert stat.S_IMODE(path.stat().st_mode) == 0o666 & ~mask
    assert path.read_text() == '{\n  "a": 1\n}\n'


def test_a_failing_writer_leaves_neither_target_nor_temp_file(tmp_path):
    def broken(f):
        f.write(b"half")
        raise RuntimeError("disk full")
    with pytest.raises(RuntimeError):
        atomic_write_with(tmp_path / "x.bin", broken)
    assert list(tmp_path.iterdir()) == []


def test_a_directory_where_the_file_goes_is_named_not_the_temporary_file(tmp_path):
    """The rename over a directory failed naming '.runs.csv.j9djha4v.tmp', which the user never saw."""
    (tmp_path / "runs.csv").mkdir()
    with pytest.raises(IsADirectoryError) as raised:
        atomic_write_json(tmp_path / "runs.csv", {"a": 1})
    assert raised.value.filename == str(tmp_path / "runs.csv")
    assert [p.name for p in tmp_path.iterdir()] == ["runs.csv"]  # no temporary file left
