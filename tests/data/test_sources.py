"""Finding, verifying and downloading dataset files: every failure names the file and leaves nothing behind."""

from __future__ import annotations

import gzip
import socket
import threading

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
    with pytest.raises(DataError,
                       match=r"train-labels-idx1-ubyte.gz: not a valid gzip file.*replace it with a good copy"):
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
    monkeypatch.chdir(tmp_path)  # a relative --data-dir is recorded where it is, not relative to today's directory
    assert locate("explicit", manifest, **kwargs).directory == tmp_path / "explicit"
    assert locate(None, manifest, **kwargs).directory == tmp_path / "env"
    monkeypatch.delenv("CONVLENS_DATA")
    assert locate(None, manifest, **kwargs).origin == "cache"
    kwargs["cache_dir"] = tmp_path / "empty-cache"
    assert locate(None, manifest, **kwargs).origin == "debian"  # the system (Debian) directory
    kwargs["system_dir"] = None
    with pytest.raises(DataError, match="convlens data fetch"):
        locate(None, manifest, **kwargs)


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


def _one_answer_server(answer: bytes) -> tuple[str, socket.socket]:
    """A server on 127.0.0.1 that answers each connection with ``answer`` and closes: not HTTP, or broken HTTP."""
    listener = socket.create_server(("127.0.0.1", 0))

    def serve():
        while True:
            try:
                connection, _ = listener.accept()
            except OSError:  # closed: the test is over
                return
            with connection:
                connection.recv(65536)
                connection.sendall(answer)
    threading.Thread(target=serve, daemon=True).start()
    return f"http://127.0.0.1:{listener.getsockname()[1]}/", listener


@pytest.mark.parametrize("answer, words", [
    (b"garbage\r\n\r\n", "the server's answer is not valid HTTP: BadStatusLine"),  # was http.client's traceback
    (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", "the download was cut off (IncompleteRead)"),
])
def test_a_mirror_that_does_not_speak_http_is_one_line_with_its_url(tmp_path, monkeypatch, answer, words):
    manifest, _ = write_tiny_dataset(tmp_path / "unused")
    url, listener = _one_answer_server(answer)
    monkeypatch.setenv("CONVLENS_DATA_URL", url)
    try:
        with pytest.raises(DataError) as info:
            locate(None, manifest, cache_dir=tmp_path / "cache", system_dir=None)
    finally:
        listener.close()
    message = str(info.value)
    assert message.startswith(f"cannot download {url}")  # the URL whole: "http://", not "http:/"
    assert f"({words}); check the network" in message and "\n" not in message
    assert not (tmp_path / "cache").exists() or not list((tmp_path / "cache").iterdir())


def test_what_to_do_about_a_bad_file_depends_on_where_it_was_found(tmp_path, http_dir, monkeypatch):
    served, url = http_dir
    manifest, _ = write_tiny_dataset(served, gz=True)
    bad = "t10k-images-idx3-ubyte.gz"
    raw = bytearray(gzip.decompress((served / bad).read_bytes()))
    raw[-1] ^= 0xFF
    (served / bad).write_bytes(gzip.compress(bytes(raw)))
    monkeypatch.setenv("CONVLENS_DATA_URL", url)
    with pytest.raises(DataError) as downloaded:  # nothing was written, so there is nothing to delete
        locate(None, manifest, cache_dir=tmp_path / "cache", system_dir=None)
    assert str(downloaded.value).startswith(f"{url}{bad}: checksum mismatch")
    assert str(downloaded.value).endswith("check the mirror (CONVLENS_DATA_URL) and run the command again; "
                                          "nothing was written")
    with pytest.raises(DataError) as explicit:  # convlens never downloads into a directory the user named
        load_arrays(locate(served, manifest), manifest)
    assert str(explicit.value).startswith(f"{served / bad}: checksum mismatch")
    assert "replace it with a good copy" in str(explicit.value) and "fetches it again" not in str(explicit.value)
    cache = tmp_path / "cache2"
    cache.mkdir()
    for path in served.iterdir():
        (cache / path.name).write_bytes(path.read_bytes())
    with pytest.raises(DataError, match="delete it so convlens fetches it again"):  # its own cache: it does
        load_arrays(locate(None, manifest, cache_dir=cache, system_dir=None), manifest)
    # a bad file already in the cache, the others fetched beside it: the bad one is the cache's, not the mirror's
    (served / bad).write_bytes(gzip.compress(bytes(raw[:-1]) + bytes([raw[-1] ^ 0xFF])))  # the mirror's is good again
    partial = tmp_path / "cache3"
    partial.mkdir()
    (partial / bad).write_bytes((cache / bad).read_bytes())
    located = locate(None, manifest, cache_dir=partial, system_dir=None)
    assert located.origin == "download"
    with pytest.raises(DataError) as cached:
        load_arrays(located, manifest)
    assert str(cached.value).startswith(f"{partial / bad}: checksum mismatch")
    assert str(cached.value).endswith("delete it so convlens fetches it again (or copy a good one there)")


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
    with pytest.raises(DataError, match=f"{spec.name}.gz: not the expected file .it decompresses to more than"):
        load_arrays(locate(tmp_path / "local", manifest), manifest)
    served, url = http_dir
    write_tiny_dataset(served, gz=True)
    (served / f"{spec.name}.gz").write_bytes(bomb)
    monkeypatch.setenv("CONVLENS_DATA_URL", url)
    cache = tmp_path / "cache"
    with pytest.raises(DataError,
                       match=f"{spec.name}.gz: not the expected file .it decompresses to more than.*nothing was written"):
        locate(None, manifest, cache_dir=cache, system_dir=None)
    assert not cache.exists() or f"{spec.name}.gz" not in {p.name for p in cache.iterdir()}
