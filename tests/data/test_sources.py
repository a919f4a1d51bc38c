"""Finding, verifying and downloading dataset files: every failure names the file and leaves nothing behind."""

from __future__ import annotations

import gzip
import http.server
import threading
from functools import partial

import numpy as np
import pytest

from convlens.data.idx import parse_idx, read_file_bytes
from convlens.data.sources import FASHION_MNIST, load_arrays, locate
from convlens.errors import DataError
from tests.conftest import fashion_files, write_tiny_dataset


@pytest.mark.parametrize("gz", [True, False])
def test_gz_and_raw_files_load_to_the_written_arrays(tmp_path, gz):
    manifest, arrays = write_tiny_dataset(tmp_path, gz=gz)
    located = locate(tmp_path, manifest)
    assert located.origin == "explicit"
    loaded = load_arrays(located, manifest)
    for role, array in arrays.items():
        np.testing.assert_array_equal(loaded[role], array)


def test_checksum_mismatch_names_the_file(tmp_path):
    manifest, _ = write_tiny_dataset(tmp_path, gz=False)
    path = tmp_path / "train-images-idx3-ubyte"
    data = bytearray(path.read_bytes())
    data[100] ^= 0xFF  # one flipped pixel: header and size still right
    path.write_bytes(bytes(data))
    with pytest.raises(DataError, match="train-images-idx3-ubyte: checksum mismatch"):
        load_arrays(locate(tmp_path, manifest), manifest)


def test_truncated_raw_file_is_reported_as_truncated(tmp_path):
    manifest, _ = write_tiny_dataset(tmp_path, gz=False)
    path = tmp_path / "t10k-images-idx3-ubyte"
    path.write_bytes(path.read_bytes()[:-500])
    with pytest.raises(DataError, match=r"t10k-images-idx3-ubyte: truncated \(.*expected"):
        load_arrays(locate(tmp_path, manifest), manifest)


def test_truncated_gzip_is_reported_with_a_fix(tmp_path):
    manifest, _ = write_tiny_dataset(tmp_path, gz=True)
    path = tmp_path / "train-labels-idx1-ubyte.gz"
    path.write_bytes(path.read_bytes()[:20])
    with pytest.raises(DataError, match=r"train-labels-idx1-ubyte.gz: not a valid gzip file.*delete it"):
        load_arrays(locate(tmp_path, manifest), manifest)


def test_wrong_header_and_wrong_shape_are_reported(tmp_path):
    manifest, _ = write_tiny_dataset(tmp_path, gz=False)
    spec = manifest.files["test_labels"]
    path = tmp_path / spec.name
    with pytest.raises(DataError, match="not an IDX uint8 file"):
        parse_idx(b"\x00\x00\x0d\x01" + path.read_bytes()[4:], spec, path)  # dtype 0x0d = float
    with pytest.raises(DataError, match=r"shape \(20,\) in the header, expected \(10000,\)"):
        parse_idx(path.read_bytes(), FASHION_MNIST.files["test_labels"], path)
    with pytest.raises(DataError, match="no complete IDX header"):
        parse_idx(b"\x00\x00", spec, path)


def test_missing_file_in_explicit_directory_is_named(tmp_path):
    manifest, _ = write_tiny_dataset(tmp_path)
    (tmp_path / "t10k-labels-idx1-ubyte.gz").unlink()
    with pytest.raises(DataError, match=r"t10k-labels-idx1-ubyte\(\.gz\) is missing"):
        locate(tmp_path, manifest)
    with pytest.raises(DataError, match="does not exist"):
        locate(tmp_path / "nowhere", manifest)


def test_search_order_explicit_then_env_then_cache_then_system(tmp_path, monkeypatch):
    manifest, _ = write_tiny_dataset(tmp_path / "explicit")
    write_tiny_dataset(tmp_path / "env")
    write_tiny_dataset(tmp_path / "cache")
    write_tiny_dataset(tmp_path / "system")
    monkeypatch.setenv("CONVLENS_DATA", str(tmp_path / "env"))
    kwargs = dict(cache_dir=tmp_path / "cache", system_dir=tmp_path / "system", download=False)
    assert locate(tmp_path / "explicit", manifest, **kwargs).directory == tmp_path / "explicit"
    assert locate(None, manifest, **kwargs).directory == tmp_path / "env"
    monkeypatch.delenv("CONVLENS_DATA")
    assert locate(None, manifest, **kwargs).origin == "cache"
    kwargs["cache_dir"] = tmp_path / "empty-cache"
    assert locate(None, manifest, **kwargs).origin == "debian"  # the system (Debian) directory
    kwargs["system_dir"] = None
    with pytest.raises(DataError, match="convlens data fetch"):
        locate(None, manifest, **kwargs)


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):  # keep pytest output clean
        pass


@pytest.fixture
def http_dir(tmp_path):
    """A local HTTP server on 127.0.0.1 serving a directory; yields (directory, base_url)."""
    served = tmp_path / "served"
    served.mkdir()
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), partial(_QuietHandler, directory=str(served)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield served, f"http://127.0.0.1:{server.server_address[1]}/"
    server.shutdown()
    server.server_close()


def test_download_from_a_local_server_into_the_cache(tmp_path, http_dir, monkeypatch):
    served, url = http_dir
    manifest, arrays = write_tiny_dataset(served, gz=True)
    monkeypatch.setenv("CONVLENS_DATA_URL", url)
    monkeypatch.delenv("CONVLENS_DATA", raising=False)
    cache = tmp_path / "cache"
    located = locate(None, manifest, cache_dir=cache, system_dir=None)
    assert located.origin == "download"
    np.testing.assert_array_equal(load_arrays(located, manifest)["train_images"], arrays["train_images"])
    assert sorted(p.name for p in cache.iterdir()) == sorted(f"{s.name}.gz" for s in manifest.files.values())
    assert locate(None, manifest, cache_dir=cache, system_dir=None).origin == "cache"  # second time: no download


def test_corrupt_download_leaves_nothing_in_the_cache(tmp_path, http_dir, monkeypatch):
    served, url = http_dir
    manifest, _ = write_tiny_dataset(served, gz=True)
    bad = served / "t10k-images-idx3-ubyte.gz"
    raw = bytearray(gzip.decompress(bad.read_bytes()))
    raw[-1] ^= 0xFF
    bad.write_bytes(gzip.compress(bytes(raw)))
    monkeypatch.setenv("CONVLENS_DATA_URL", url)
    cache = tmp_path / "cache"
    with pytest.raises(DataError, match="t10k-images-idx3-ubyte.gz: checksum mismatch"):
        locate(None, manifest, cache_dir=cache, system_dir=None)
    leftovers = {p.name for p in cache.iterdir()}
    assert "t10k-images-idx3-ubyte.gz" not in leftovers
    assert not [n for n in leftovers if n.endswith(".tmp")]


def test_unreachable_server_gives_one_line_with_alternatives(tmp_path, monkeypatch):
    manifest, _ = write_tiny_dataset(tmp_path / "unused")
    monkeypatch.setenv("CONVLENS_DATA_URL", "http://127.0.0.1:9/")  # discard port: connection refused
    with pytest.raises(DataError, match="cannot download .*pass --data-dir") as info:
        locate(None, manifest, cache_dir=tmp_path / "cache", system_dir=None)
    assert "\n" not in str(info.value)


def test_real_files_downloaded_through_the_official_code_path(tmp_path, http_dir, monkeypatch):
    """Debian's recompressed .gz files, served over HTTP, pass the real manifest's decompressed checksums."""
    served, url = http_dir
    for path in fashion_files():
        (served / path.name).write_bytes(path.read_bytes())
    monkeypatch.setenv("CONVLENS_DATA_URL", url)
    located = locate(None, FASHION_MNIST, cache_dir=tmp_path / "cache", system_dir=None)
    arrays = load_arrays(located, FASHION_MNIST)
    assert arrays["train_images"].shape == (60_000, 28, 28) and arrays["test_labels"].shape == (10_000,)
    labels = FASHION_MNIST.files["test_labels"].n_bytes
    assert read_file_bytes(located.paths["test_labels"], labels)[:4] == b"\x00\x00\x08\x01"


def test_a_gzip_that_decompresses_past_the_expected_size_is_refused_before_it_is_all_read(tmp_path, http_dir,
                                                                                          monkeypatch):
    """A few KB of zeros can decompress to gigabytes: reading stops one byte past the file's expected size, on
    disk and when downloading (nothing lands in the cache)."""
    from convlens.data.idx import gunzip_at_most
    manifest, arrays = write_tiny_dataset(tmp_path / "local", gz=True)
    spec = manifest.files["train_images"]
    bomb = gzip.compress(b"\0" * (spec.n_bytes + 10**7))
    assert len(bomb) < 50_000
    with pytest.raises(ValueError, match=f"more than the {spec.n_bytes:,} bytes expected"):
        gunzip_at_most(bomb, spec.n_bytes)
    # a file of two gzip members (as `cat a.gz b.gz` writes) is still read whole
    whole = gzip.decompress((tmp_path / "local" / f"{spec.name}.gz").read_bytes())
    assert gunzip_at_most(gzip.compress(whole[:100]) + gzip.compress(whole[100:]), spec.n_bytes) == whole
    (tmp_path / "local" / f"{spec.name}.gz").write_bytes(bomb)
    with pytest.raises(DataError, match=f"{spec.name}.gz: not a valid gzip file .it decompresses to more than"):
        load_arrays(locate(tmp_path / "local", manifest), manifest)
    served, url = http_dir
    write_tiny_dataset(served, gz=True)
    (served / f"{spec.name}.gz").write_bytes(bomb)
    monkeypatch.setenv("CONVLENS_DATA_URL", url)
    cache = tmp_path / "cache"
    with pytest.raises(DataError, match="downloaded file is not valid gzip .it decompresses to more than"):
        locate(None, manifest, cache_dir=cache, system_dir=None)
    assert not cache.exists() or f"{spec.name}.gz" not in {p.name for p in cache.iterdir()}
