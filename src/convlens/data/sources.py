"""Where Fashion-MNIST comes from, in order, and how a missing copy is downloaded.

Search order (the first directory that holds all four files wins):
  1. an explicit directory: ``--data-dir`` or ``$CONVLENS_DATA`` (an error if the files are not there);
  2. the user cache directory (``platformdirs.user_cache_dir("convlens")/fashion-mnist``);
  3. the Debian package path ``/usr/share/datasets/fashion-mnist/`` (``apt-get install dataset-fashion-mnist``);
  4. otherwise download from the official URLs into the cache directory.

Files may be gzipped or raw. Checksums are of the *decompressed* bytes, so Debian's recompressed ``.gz``
files and the official ones both pass.
"""

from __future__ import annotations

import hashlib
import http.client
import os
import urllib.error
import urllib.request
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import platformdirs

from convlens.atomic_files import atomic_write_bytes
from convlens.data.idx import (
    REFETCH,
    IdxFileSpec,
    gunzip_at_most,
    gzip_bound,
    gzip_problem,
    parse_idx,
    read_at_most,
    read_file_bytes,
)
from convlens.errors import DataError, user_path

DEBIAN_DIR = Path("/usr/share/datasets/fashion-mnist")
OFFICIAL_BASE_URL = "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/"


@dataclass(frozen=True)
class DatasetManifest:
    """The four files of an MNIST-style dataset and where to download them."""

    name: str
    files: dict[str, IdxFileSpec]  # role ("train_images", ...) -> spec
    class_names: tuple[str, ...]
    base_url: str
    system_dir: Path | None = None  # a distribution's copy (Debian's package for Fashion-MNIST)


FASHION_MNIST = DatasetManifest(
    name="fashion-mnist",
    files={
        "train_images": IdxFileSpec("train-images-idx3-ubyte", 47_040_016, "f4a8712d7a061bf5bd6d2ca38dc4d50a", (60_000, 28, 28)),
        "train_labels": IdxFileSpec("train-labels-idx1-ubyte", 60_008, "9018921c3c673c538a1fc5bad174d6f9", (60_000,)),
        "test_images": IdxFileSpec("t10k-images-idx3-ubyte", 7_840_016, "8181f5470baa50b63fa0f6fddb340f0a", (10_000, 28, 28)),
        "test_labels": IdxFileSpec("t10k-labels-idx1-ubyte", 10_008, "15d484375f8d13e6eb1aabb0c3f46965", (10_000,)),
    },
    class_names=("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
                 "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"),
    base_url=OFFICIAL_BASE_URL,
    system_dir=DEBIAN_DIR,
)


def _mnist_style(name: str, base_url: str, class_names: tuple[str, ...], gz_md5: tuple[str, str, str, str]
                 ) -> DatasetManifest:
    """A dataset in MNIST's four IDX files and sizes, for which only the .gz files' md5 are published."""
    shapes = {"train_images": ("train-images-idx3-ubyte", (60_000, 28, 28)),
              "train_labels": ("train-labels-idx1-ubyte", (60_000,)),
              "test_images": ("t10k-images-idx3-ubyte", (10_000, 28, 28)),
              "test_labels": ("t10k-labels-idx1-ubyte", (10_000,))}
    files = {role: IdxFileSpec(file, 4 + 4 * len(shape) + int(np.prod(shape)), None, shape, md5)
             for (role, (file, shape)), md5 in zip(shapes.items(), gz_md5)}
    return DatasetManifest(name, files, class_names, base_url)


# URLs and md5 of the .gz files as torchvision's MNIST / KMNIST classes list them (the MNIST mirror PyTorch
# hosts, since yann.lecun.com refuses scripted downloads; KMNIST's own server). Not verified against the real
# files on this project's machines (no network): a mismatch is reported, never loaded.
MNIST = _mnist_style("mnist", "https://ossci-datasets.s3.amazonaws.com/mnist/", tuple(str(d) for d in range(10)),
                     ("f68b3c2dcbeaaa9fbdd348bbdeb94873", "d53e105ee54ea40749a09fcbcd1e9432",
                      "9fb629c4189551a2d022fa330f9573f3", "ec29112dd5afa0611ce80d1b7f02629c"))
KMNIST = _mnist_style("kmnist", "http://codh.rois.ac.jp/kmnist/dataset/kmnist/",
                      ("o", "ki", "su", "tsu", "na", "ha", "ma", "ya", "re", "wo"),
                      ("bdb82020997e1d708af4cf47b453dcf7", "e144d726b3acfaa3e44228e80efcd344",
                       "5c965bf0a639b31b8f53240b1b52f4d7", "7320c461ea6c1c855c0b718fb2a4b134"))


@dataclass(frozen=True)
class LocatedFiles:
    """The four files found for a manifest, and how they were found."""

    directory: Path
    origin: str  # "explicit", "cache", "debian" or "download"
    paths: dict[str, Path]


def user_cache_dir(manifest: DatasetManifest = FASHION_MNIST) -> Path:
    return Path(platformdirs.user_cache_dir("convlens")) / manifest.name


def _find_in(directory: Path, manifest: DatasetManifest) -> dict[str, Path] | None:
    """The path of each file in ``directory`` (raw preferred over .gz), or None if any is missing."""
    paths = {}
    for role, spec in manifest.files.items():
        raw, gz = directory / spec.name, directory / f"{spec.name}.gz"
        if gz.is_file() and spec.md5 is None and spec.gz_md5 is not None:  # only the .gz can be verified
            paths[role] = gz
        elif raw.is_file():
            paths[role] = raw
        elif gz.is_file():
            paths[role] = gz
        else:
            return None
    return paths


def _missing_in(directory: Path, manifest: DatasetManifest) -> str:
    return next(spec.name for spec in manifest.files.values()
                if not (directory / spec.name).is_file() and not (directory / f"{spec.name}.gz").is_file())


def locate(
    data_dir: str | os.PathLike | None = None,
    manifest: DatasetManifest = FASHION_MNIST,
    *,
    download: bool = True,
    cache_dir: Path | None = None,
    system_dir: Path | None | str = "manifest",
) -> LocatedFiles:
    """Find the dataset files following the search order above; download them if allowed and needed."""
    explicit = data_dir if data_dir is not None else os.environ.get("CONVLENS_DATA") or None
    if explicit is not None:
        # recorded in runs: not relative to today's directory
        directory = user_path(explicit, "data directory").absolute()
        if not directory.is_dir():
            state = "is not a directory" if directory.exists() else "does not exist"
            raise DataError(f"data directory {directory} {state}; pass an existing --data-dir "
                            "or unset CONVLENS_DATA to use the cache or the Debian package")
        paths = _find_in(directory, manifest)
        if paths is None:
            raise DataError(f"{directory / _missing_in(directory, manifest)}(.gz) is missing; copy the "
                            f"{manifest.name} IDX files there, or drop --data-dir/CONVLENS_DATA to download them")
        return LocatedFiles(directory, "explicit", paths)

    cache = cache_dir if cache_dir is not None else user_cache_dir(manifest)
    system_dir = manifest.system_dir if system_dir == "manifest" else system_dir  # None: no system copy
    for directory, origin in ((cache, "cache"), (system_dir, "debian")):
        if directory is not None and directory.is_dir() and (paths := _find_in(directory, manifest)):
            return LocatedFiles(directory, origin, paths)
    if not download:
        where = f"{cache} or {system_dir}" if system_dir else str(cache)
        raise DataError(f"{manifest.name} not found in {where}; run 'convlens data fetch --dataset {manifest.name}'"
                        + (" or 'apt-get install dataset-fashion-mnist'" if manifest is FASHION_MNIST else ""))
    return LocatedFiles(cache, "download", download_manifest(manifest, cache))


# What to do about a bad file on disk, by where it was found (LocatedFiles.origin): convlens downloads into its
# cache only ("download": the missing files were just fetched into it, the others were there).
FIX_BY_ORIGIN = {
    "cache": REFETCH,
    "download": REFETCH,
    "explicit": "replace it with a good copy (convlens downloads into its cache only, never into --data-dir)",
    "debian": "reinstall the Debian package (apt-get install --reinstall dataset-fashion-mnist)",
}
MIRROR_FIX = "check the mirror (CONVLENS_DATA_URL) and run the command again; nothing was written"  # a download
# What urllib raises for a network fault or a mirror that does not speak HTTP (http.client's BadStatusLine,
# IncompleteRead...), and for a URL it cannot open at all (ValueError: "unknown url type").
DOWNLOAD_ERRORS = (urllib.error.URLError, OSError, http.client.HTTPException, ValueError)


def download_problem(e: Exception) -> str:
    """A download error of DOWNLOAD_ERRORS in a few words."""
    if isinstance(e, http.client.IncompleteRead):
        return "the download was cut off (IncompleteRead)"
    if isinstance(e, http.client.HTTPException):  # BadStatusLine('garbage'), ...: say what it is
        return f"the server's answer is not valid HTTP: {type(e).__name__}"
    return str(getattr(e, "reason", None) or e or type(e).__name__)


def download_manifest(manifest: DatasetManifest, directory: Path, base_url: str | None = None) -> dict[str, Path]:
    """Download each missing ``.gz`` file, verify it, and move it into place (never a half-written file).

    Only the decompressed bytes are checked: mirrors (and Debian) recompress, the content is what matters.
    """
    base_url = base_url or os.environ.get("CONVLENS_DATA_URL") or manifest.base_url
    paths = {}
    for role, spec in manifest.files.items():
        target = directory / f"{spec.name}.gz"
        if not target.is_file():
            url = base_url.rstrip("/") + f"/{spec.name}.gz"
            try:
                with urllib.request.urlopen(url, timeout=60) as response:
                    # a .gz of the file is never much larger than the file: read no more than twice it
                    payload = response.read(gzip_bound(spec.n_bytes) + 1)
            except DOWNLOAD_ERRORS as e:
                reason = download_problem(e)
                raise DataError(f"cannot download {url} ({reason}); check the network, or pass --data-dir with "
                                f"the {manifest.name} files") from None
            if len(payload) > gzip_bound(spec.n_bytes):
                raise DataError(f"{url}: the download is larger than any .gz of {spec.name} ({spec.n_bytes:,} "
                                "bytes) can be; check the mirror (CONVLENS_DATA_URL)")
            # before decompressing: what it decompresses to is then known
            check_gz_md5(payload, spec, url, MIRROR_FIX)
            try:
                decompressed = gunzip_at_most(payload, spec.n_bytes)
            except (OSError, EOFError, ValueError, zlib.error) as e:
                raise DataError(f"{url}: {gzip_problem(e)}; {MIRROR_FIX}") from None
            parse_idx(decompressed, spec, url, MIRROR_FIX)  # verify before anything lands on disk
            atomic_write_bytes(target, payload)
        paths[role] = target
    return paths


def check_gz_md5(payload: bytes, spec: IdxFileSpec, origin: Path | str, fix: str = REFETCH) -> None:
    if spec.gz_md5 is not None and (digest := hashlib.md5(payload).hexdigest()) != spec.gz_md5:
        raise DataError(f"{origin}: checksum mismatch (md5 {digest}, expected {spec.gz_md5} for the official "
                        f".gz file); {fix}")


def load_arrays(located: LocatedFiles, manifest: DatasetManifest = FASHION_MNIST) -> dict[str, np.ndarray]:
    """Read and verify every file; returns role -> uint8 array."""
    arrays, fix = {}, FIX_BY_ORIGIN.get(located.origin, REFETCH)
    for role, path in located.paths.items():
        spec = manifest.files[role]
        if spec.md5 is None and spec.gz_md5 is not None:
            if path.suffix != ".gz":
                raise DataError(f"{path}: only the official .gz file's checksum is known for {manifest.name}; "
                                f"put {spec.name}.gz there instead of the decompressed file")
            check_gz_md5(read_at_most(path, gzip_bound(spec.n_bytes), fix), spec, path, fix)
        arrays[role] = parse_idx(read_file_bytes(path, spec.n_bytes, fix), spec, path, fix)
    n_classes = len(manifest.class_names)
    for role in ("train_labels", "test_labels"):
        if role in arrays and len(arrays[role]) and int(arrays[role].max()) >= n_classes:
            # A checksum only proves the file is the one the manifest names; a label past the class list would
            # index out of the loss and every per-class table.
            raise DataError(f"{located.paths[role]}: label {int(arrays[role].max())} is out of range for "
                            f"{n_classes} classes (0..{n_classes - 1})")
    return arrays
