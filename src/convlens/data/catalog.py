"""The datasets convlens knows, by name, and how each is read into an :class:`ImageDataset`.

    fashion-mnist (default), mnist, kmnist   four IDX files (sources.py: explicit dir, cache, system path, download)
    cifar10                                  the official *binary* batches (never the pickled Python version)
    digits                                   scikit-learn's bundled 8x8 digits: real images on every machine
    folder:PATH                              PATH/<class>/*.png|jpg, or PATH/train/<class>/... and PATH/test/<class>/...

Every dataset says its image shape, channels, class names and whether a horizontal flip keeps an image's meaning
(a mirrored shoe is a shoe; a mirrored 3 is not a 3). Images are uint8: (N, H, W) with one channel, (N, H, W, 3)
with three. A dataset without its own test split gets a stratified one fixed by DATASET_SPLIT_SEED, so every
run of every seed tests on the same images.
"""

from __future__ import annotations

import hashlib
import io
import os
import tarfile
import urllib.error
import urllib.request
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from convlens.atomic_files import atomic_write_bytes
from convlens.data.idx import REFETCH, read_at_most
from convlens.data.sources import (
    DOWNLOAD_ERRORS,
    FASHION_MNIST,
    FIX_BY_ORIGIN,
    KMNIST,
    MNIST,
    DatasetManifest,
    LocatedFiles,
    download_problem,
    user_cache_dir,
)
from convlens.errors import DataError, UsageError, did_you_mean, user_path
from convlens.images import DEEP_GREY, MAX_IMAGE_PIXELS, to_8bit_grey, upright

DATASET_SPLIT_SEED = 0  # the test split of datasets that have none: fixed, independent of the training seed
TEST_FRACTION = 0.2
FOLDER_PREFIX = "folder:"
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")
MAX_FOLDER_IMAGES = 200_000


@dataclass(frozen=True)
class DatasetInfo:
    name: str
    channels: int
    size: int  # images are size x size
    class_names: tuple[str, ...]
    flips_preserve_meaning: bool
    description: str
    manifest: DatasetManifest | None = None  # the IDX datasets
    title: str = ""  # as the report names it; empty: the name
    # Light shapes on a black background (the MNIST family): an uploaded photo with a light border is inverted.
    light_on_dark: bool = False

    @property
    def input_shape(self) -> tuple[int, int, int]:
        return (self.channels, self.size, self.size)

    def spec_values(self) -> dict[str, int]:
        """The model spec fields this dataset fixes: channels, image size, number of classes."""
        return {"in_channels": self.channels, "image_size": self.size, "num_classes": len(self.class_names)}


CIFAR10_CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")
BUILTIN_DATASETS: dict[str, DatasetInfo] = {
    "fashion-mnist": DatasetInfo("fashion-mnist", 1, 28, FASHION_MNIST.class_names, True,
                                 "Zalando's garments, 60,000 + 10,000 28x28 grayscale", FASHION_MNIST,
                                 "Fashion-MNIST", light_on_dark=True),
    "mnist": DatasetInfo("mnist", 1, 28, MNIST.class_names, False,
                         "handwritten digits, 60,000 + 10,000 28x28 grayscale", MNIST, "MNIST", light_on_dark=True),
    "kmnist": DatasetInfo("kmnist", 1, 28, KMNIST.class_names, False,
                          "Kuzushiji (cursive Japanese) characters, 60,000 + 10,000 28x28 grayscale", KMNIST,
                          "Kuzushiji-MNIST", light_on_dark=True),
    "cifar10": DatasetInfo("cifar10", 3, 32, CIFAR10_CLASSES, True,
                           "photos in 10 classes, 50,000 + 10,000 32x32 RGB (binary version)", title="CIFAR-10"),
    "digits": DatasetInfo("digits", 1, 8, tuple(str(d) for d in range(10)), False,
                          "scikit-learn's handwritten digits, 1,797 8x8 images (pixels 0-16 scaled to 0-255)",
                          title="scikit-learn's digits", light_on_dark=True),
}
DATASET_NAMES = (*BUILTIN_DATASETS, f"{FOLDER_PREFIX}PATH")


def dataset_names_text() -> str:
    return ", ".join(DATASET_NAMES)


def takes_data_dir(name: str) -> bool:
    """Whether dataset ``name`` is read from a data directory (--data-dir): the IDX datasets and CIFAR-10, not
    scikit-learn's digits or a folder (named by its path)."""
    return name == "cifar10" or (name in BUILTIN_DATASETS and BUILTIN_DATASETS[name].manifest is not None)


def check_dataset_name(name: str) -> str:
    """``name`` if it names a dataset, a folder made absolute (a run records where its images were, not where
    the command happened to run); else one line listing the names. A folder is checked when it is read."""
    if not isinstance(name, str):  # None, a number, a Path: from Python
        raise UsageError(f"a dataset is named by text, e.g. 'fashion-mnist' or 'folder:PATH'; got {name!r}")
    if name in BUILTIN_DATASETS:
        return name
    if name.startswith(FOLDER_PREFIX) and len(name) > len(FOLDER_PREFIX):
        return FOLDER_PREFIX + str(user_path(name[len(FOLDER_PREFIX):], "the dataset folder").resolve())
    raise UsageError(f"unknown dataset '{name}'{did_you_mean(name, BUILTIN_DATASETS)}; valid datasets: "
                     f"{dataset_names_text()}")


# --- CIFAR-10, binary version -------------------------------------------------------------------------------
# https://www.cs.toronto.edu/~kriz/cifar.html: "CIFAR-10 binary version (suitable for C programs)", with the
# archive's md5 as published there. Each batch is 10,000 records of 1 label byte + 3,072 pixel bytes (R, G, B
# planes of 32x32). Not verified against the real archive on this project's machines (no network).
CIFAR10_URL = "https://www.cs.toronto.edu/~kriz/cifar-10-binary.tar.gz"
CIFAR10_MD5 = "c32a1d4ab5d03f1284b67883e8d87530"
CIFAR10_ARCHIVE_BYTES = 170_052_171  # the size of the archive with that md5
CIFAR10_TRAIN = tuple(f"data_batch_{i}.bin" for i in range(1, 6))
CIFAR10_TEST = ("test_batch.bin",)
CIFAR10_RECORD = 1 + 3 * 32 * 32
CIFAR10_BATCH_BYTES = 10_000 * CIFAR10_RECORD


def _cifar_dir(directory: Path) -> Path | None:
    for candidate in (directory, directory / "cifar-10-batches-bin"):
        if all((candidate / f).is_file() for f in CIFAR10_TRAIN + CIFAR10_TEST):
            return candidate
    return None


def read_cifar_batch(path: Path, fix: str = REFETCH) -> tuple[np.ndarray, np.ndarray]:
    """One binary batch -> images (N, 32, 32, 3) uint8, labels (N,) uint8; size and labels checked."""
    data = read_at_most(path, CIFAR10_BATCH_BYTES, fix)
    if len(data) != CIFAR10_BATCH_BYTES:
        raise DataError(f"{path}: {len(data):,} bytes, expected {CIFAR10_BATCH_BYTES:,} (10,000 records of "
                        f"{CIFAR10_RECORD} bytes); {fix}")
    records = np.frombuffer(data, dtype=np.uint8).reshape(-1, CIFAR10_RECORD)
    labels = records[:, 0].copy()
    if labels.max() >= 10:
        raise DataError(f"{path}: label {int(labels.max())} is out of range for 10 classes; not a CIFAR-10 batch")
    images = records[:, 1:].reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1).copy()
    return images, labels


def download_cifar10(directory: Path, url: str | None = None) -> Path:
    """Download the archive, check its md5, extract only the six batch files (no other member, no path from
    the archive is trusted), each written atomically."""
    url = url or os.environ.get("CONVLENS_CIFAR10_URL") or CIFAR10_URL
    try:
        with urllib.request.urlopen(url, timeout=120) as response:
            payload = response.read(CIFAR10_ARCHIVE_BYTES + 1)  # a mirror sending more is not sending the archive
    except DOWNLOAD_ERRORS as e:
        raise DataError(f"cannot download {url} ({download_problem(e)}); check the network, or pass "
                        "--data-dir with the CIFAR-10 binary batches") from None
    if len(payload) > CIFAR10_ARCHIVE_BYTES:
        raise DataError(f"{url}: the download is larger than the CIFAR-10 archive ({CIFAR10_ARCHIVE_BYTES:,} "
                        "bytes); check the mirror (CONVLENS_CIFAR10_URL)")
    if (digest := hashlib.md5(payload).hexdigest()) != CIFAR10_MD5:
        raise DataError(f"{url}: checksum mismatch (md5 {digest}, expected {CIFAR10_MD5}); run the command again")
    wanted = {f"cifar-10-batches-bin/{name}": name for name in CIFAR10_TRAIN + CIFAR10_TEST}
    found = {}
    try:
        with tarfile.open(fileobj=io.BytesIO(payload), mode="r:gz") as tar:
            for member in tar.getmembers():
                if member.name in wanted and member.isfile():
                    found[wanted[member.name]] = tar.extractfile(member).read()
    except (tarfile.TarError, OSError, EOFError) as e:
        raise DataError(f"{url}: not a valid tar.gz archive ({e}); run the command again") from None
    missing = sorted(set(wanted.values()) - set(found))
    if missing:
        raise DataError(f"{url}: the archive lacks {', '.join(missing)}")
    for name, data in found.items():
        atomic_write_bytes(directory / name, data)
    return directory


def load_cifar10(data_dir: str | os.PathLike | None, download: bool) -> tuple[dict[str, np.ndarray], LocatedFiles]:
    explicit = data_dir if data_dir is not None else os.environ.get("CONVLENS_DATA") or None
    cache = Path(os.environ.get("CONVLENS_CIFAR10_CACHE") or user_cache_dir(_named("cifar10")))
    if explicit is not None:
        # recorded in runs, as the IDX files' directory is
        directory = _cifar_dir(user_path(explicit, "data directory").absolute())
        if directory is None:
            raise DataError(f"{explicit} holds no CIFAR-10 binary batches ({', '.join(CIFAR10_TRAIN + CIFAR10_TEST)}"
                            ", directly or in cifar-10-batches-bin/); extract cifar-10-binary.tar.gz there")
        origin = "explicit"
    elif (directory := _cifar_dir(cache)) is not None:
        origin = "cache"
    elif download:
        directory, origin = download_cifar10(cache), "download"
    else:
        raise DataError(f"cifar10 not found in {cache}; run 'convlens data fetch --dataset cifar10'")
    fix = FIX_BY_ORIGIN.get(origin, REFETCH)
    train = [read_cifar_batch(directory / f, fix) for f in CIFAR10_TRAIN]
    test_images, test_labels = read_cifar_batch(directory / CIFAR10_TEST[0], fix)
    arrays = {"train_images": np.concatenate([b[0] for b in train]), "train_labels": np.concatenate([b[1] for b in train]),
              "test_images": test_images, "test_labels": test_labels}
    paths = {f: directory / f for f in CIFAR10_TRAIN + CIFAR10_TEST}
    return arrays, LocatedFiles(directory, origin, paths)


# --- scikit-learn's digits, a folder of images: datasets without a test split --------------------------------
def stratified_split(labels: np.ndarray, test_fraction: float = TEST_FRACTION,
                     seed: int = DATASET_SPLIT_SEED) -> tuple[np.ndarray, np.ndarray]:
    """(train indices, test indices): test_fraction of every class (at least one image of a class with two or
    more), chosen with ``seed``; both sorted."""
    rng = np.random.default_rng(seed)
    test = []
    for c in np.unique(labels):
        members = rng.permutation(np.flatnonzero(labels == c))
        n_test = int(round(len(members) * test_fraction)) if len(members) > 1 else 0
        test.extend(members[:max(n_test, 1 if len(members) > 1 else 0)])
    test_idx = np.sort(np.array(test, dtype=np.int64))
    return np.setdiff1d(np.arange(len(labels)), test_idx), test_idx


def digits_directory() -> Path:
    """Where scikit-learn keeps its digits (digits.csv.gz)."""
    try:
        import sklearn
    except ImportError:
        raise UsageError("the digits dataset is scikit-learn's: pip install 'convlens[digits]' "
                         "(or scikit-learn)") from None
    return Path(sklearn.__file__).parent / "datasets" / "data"


def load_digits_arrays() -> tuple[dict[str, np.ndarray], LocatedFiles]:
    source = digits_directory() / "digits.csv.gz"
    from sklearn.datasets import load_digits
    bunch = load_digits()
    images = np.round(bunch.images * (255 / 16)).astype(np.uint8)  # 0..16 -> 0..255, like every other dataset
    labels = bunch.target.astype(np.uint8)
    train, test = stratified_split(labels)
    arrays = {"train_images": images[train], "train_labels": labels[train], "test_images": images[test],
              "test_labels": labels[test]}
    return arrays, LocatedFiles(source.parent, "scikit-learn", {"digits": source})


MAX_FOLDER_SIDE = 512  # images are resized to at most this side (serving takes at most 512x512)
MAX_FOLDER_BYTES = 4 * 2**30  # the decoded dataset in memory


def _images_in(directory: Path) -> list[Path]:
    """The class folder's images; hidden files are not (macOS writes a "._photo.png" of metadata beside each
    photo copied to a foreign disk, and hidden class folders are skipped too)."""
    return sorted(p for p in directory.iterdir()
                  if p.suffix.lower() in IMAGE_SUFFIXES and not p.name.startswith(".") and p.is_file())


def _folder_classes(root: Path) -> list[str]:
    """Subfolders that hold at least one image (an empty or non-image folder is not a class). A class's name is its
    folder's, so it must be text: a name whose bytes are not UTF-8 would be written into config.json, the report and
    the server's answers as an undecodable surrogate."""
    classes = sorted(p.name for p in root.iterdir() if p.is_dir() and not p.name.startswith(".") and _images_in(p))
    for name in classes:
        try:
            name.encode("utf-8")
        except UnicodeEncodeError:
            raise DataError(f"{root}: the class folder {os.fsencode(name)!r} is not named in UTF-8 text (a class is "
                            "named by its folder); rename the folder") from None
    return classes


def _folder_images(root: Path, classes: list[str]) -> tuple[list[Path], np.ndarray]:
    paths, labels = [], []
    for i, name in enumerate(classes):
        files = _images_in(root / name) if (root / name).is_dir() else []
        paths += files
        labels += [i] * len(files)
    return paths, np.array(labels, dtype=np.int64)  # int64: a folder may have more than 255 classes


def _open_image(path: Path):
    """A PIL image, read as a served image is (convlens.images): upright as its EXIF orientation says, 16- and
    32-bit grey scaled to 8 bits (PIL's convert("L") would clip them)."""
    img = _open_header(path)
    try:
        img.load()  # here, where a corrupt pixel stream raises: upright() would swallow it and leave black pixels
    except BaseException:
        img.close()
        raise
    turned = upright(img)
    if turned is not img:
        img.close()  # the turned copy holds the pixels
    return to_8bit_grey(turned)


def _open_header(path: Path):
    """A PIL image with only its header read (size, mode, palette), its size checked before any pixel is decoded."""
    from PIL import Image
    with warnings.catch_warnings():  # Pillow's own warning, for images far above the limit refused just below
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        img = Image.open(path, formats=["PNG", "JPEG"])
    if img.width * img.height > MAX_IMAGE_PIXELS:
        img.close()
        raise DataError(f"{path}: {img.width}x{img.height} pixels is too large for a dataset image")
    return img


def _read_folder_images(paths: list[Path], size: int, channels: int) -> np.ndarray:
    from PIL import Image, UnidentifiedImageError
    mode = "L" if channels == 1 else "RGB"
    out = np.empty((len(paths), size, size) + (() if channels == 1 else (3,)), dtype=np.uint8)
    for k, path in enumerate(paths):
        try:
            with _open_image(path) as img:
                out[k] = np.asarray(img.convert(mode).resize((size, size), Image.Resampling.LANCZOS))
        except (UnidentifiedImageError, OSError, ValueError, SyntaxError, Image.DecompressionBombError) as e:
            raise DataError(f"{path}: not a readable PNG or JPEG ({type(e).__name__}); remove it or fix it") from None
    return out


def _split_layout(path: Path) -> bool:
    train, test = (path / "train").is_dir(), (path / "test").is_dir()
    if train != test:
        raise DataError(f"{path} has {'train/' if train else 'test/'} but no {'test/' if train else 'train/'}; "
                        "give both, or put the class folders directly in it")
    return train


def describe_folder(path: Path) -> DatasetInfo:
    """Classes from the subfolders that hold images; channels 1 when every image is grayscale, else 3; size the
    most common side (at most MAX_FOLDER_SIDE; each image is resized to it). Read from every image's header, which
    gives its side and mode without decoding its pixels (palette images aside; loading the dataset decodes them)."""
    from PIL import Image, UnidentifiedImageError
    if not path.is_dir():
        raise DataError(f"dataset folder {path} {'is not a directory' if path.exists() else 'does not exist'}")
    split = _split_layout(path)
    root = path / "train" if split else path
    classes = _folder_classes(root)
    if len(classes) < 2:
        raise DataError(f"{root} needs one subfolder per class (at least two) holding .png/.jpg images; "
                        f"found {len(classes)}")
    if split:
        test_classes = _folder_classes(path / "test")
        if test_classes != classes:
            raise DataError(f"{path}: train/ and test/ must hold the same class folders (train/: "
                            f"{', '.join(classes)}; test/: {', '.join(test_classes)})")
    paths = _folder_images(root, classes)[0] + (_folder_images(path / "test", classes)[0] if split else [])
    if len(paths) > MAX_FOLDER_IMAGES:  # before a header of millions is opened
        raise DataError(f"{path}: more than {MAX_FOLDER_IMAGES:,} images; convlens holds a dataset in memory")
    sides, gray = [], True
    for p in paths:
        try:
            with _open_header(p) as img:
                sides.append(max(img.size))  # an EXIF rotation swaps the sides, not the longer one
                gray &= img.mode in ("L", "1", "LA", *DEEP_GREY) or (img.mode == "P" and _palette_is_gray(img))
        except (UnidentifiedImageError, OSError, ValueError, SyntaxError, Image.DecompressionBombError) as e:
            raise DataError(f"{p}: not a readable PNG or JPEG ({type(e).__name__}); remove it or fix it") from None
    size = min(int(np.bincount(sides).argmax()), MAX_FOLDER_SIDE)
    return DatasetInfo(f"{FOLDER_PREFIX}{path}", 1 if gray else 3, size, tuple(classes), True,
                       f"images from {path.name}/, resized to {size}x{size}")


def _palette_is_gray(img) -> bool:  # Pillow decodes a palette image to give its palette
    palette = np.asarray(img.getpalette() or [], dtype=np.int64).reshape(-1, 3)
    return bool(len(palette)) and bool((palette == palette[:, :1]).all())


def load_folder(path: Path, info: DatasetInfo) -> tuple[dict[str, np.ndarray], LocatedFiles]:
    classes = list(info.class_names)
    if _split_layout(path):
        train_paths, train_labels = _folder_images(path / "train", classes)
        test_paths, test_labels = _folder_images(path / "test", classes)
    else:
        all_paths, all_labels = _folder_images(path, classes)
        counts = np.bincount(all_labels, minlength=len(classes))
        alone = [f"{classes[i]} ({counts[i]})" for i in np.flatnonzero(counts < 2)]
        if alone:  # the stratified split would leave it no test image, and a per-class accuracy of nothing
            raise DataError(f"{path}: each class needs at least 2 images (one goes to the test split); "
                            f"{', '.join(alone)} {'has' if len(alone) == 1 else 'have'} fewer; add images or remove "
                            f"the folder{'' if len(alone) == 1 else 's'}")
        train_idx, test_idx = stratified_split(all_labels)
        train_paths, test_paths = [all_paths[i] for i in train_idx], [all_paths[i] for i in test_idx]
        train_labels, test_labels = all_labels[train_idx], all_labels[test_idx]
    n = len(train_paths) + len(test_paths)  # at most MAX_FOLDER_IMAGES: describe_folder counted them
    if n * info.channels * info.size ** 2 > MAX_FOLDER_BYTES:
        raise DataError(f"{path}: {n:,} images at {info.size}x{info.size}x{info.channels} would take "
                        f"{n * info.channels * info.size ** 2 / 2**30:.1f} GiB in memory (limit "
                        f"{MAX_FOLDER_BYTES // 2**30} GiB); resize the images or use fewer")
    if not len(test_paths) or not len(train_paths):
        raise DataError(f"{path}: too few images for a train and a test split (give each class at least 2)")
    # Each split in one fixed shuffled order, not class by class: a subset is its first N images (--train-subset,
    # a quick study), which in folder order would draw from the first classes only. One generator per split, so
    # that images added to train/ leave test/'s order (and the digest evaluate checks) as it was.
    train_order = np.random.default_rng([DATASET_SPLIT_SEED, 0]).permutation(len(train_paths))
    test_order = np.random.default_rng([DATASET_SPLIT_SEED, 1]).permutation(len(test_paths))
    train_paths, train_labels = [train_paths[i] for i in train_order], train_labels[train_order]
    test_paths, test_labels = [test_paths[i] for i in test_order], test_labels[test_order]
    arrays = {"train_images": _read_folder_images(train_paths, info.size, info.channels), "train_labels": train_labels,
              "test_images": _read_folder_images(test_paths, info.size, info.channels), "test_labels": test_labels}
    files = {str(p.relative_to(path)): p for p in train_paths + test_paths}  # what was read, and uploaded
    return arrays, LocatedFiles(path, "folder", files)


def _named(name: str) -> DatasetManifest:
    """A manifest-like holder for the cache directory name of datasets that are not IDX."""
    return DatasetManifest(name, {}, (), "")


_FOLDER_INFOS: dict[tuple, DatasetInfo] = {}  # by the folder's signature: planning asks for it per level


def _folder_signature(path: Path) -> tuple:
    """The mtimes of the folder and its (class) directories, and each file's name, size and mtime: adding or
    removing an image changes a directory's mtime, rewriting one in place changes only its own."""
    if not path.is_dir():
        return (str(path), None)
    dirs = [path] + [d for top in (path, path / "train", path / "test") if top.is_dir()
                     for d in sorted(top.iterdir()) if d.is_dir()]
    signature = []
    for d in dirs:
        signature.append((str(d), d.stat().st_mtime_ns))
        with os.scandir(d) as entries:  # one stat a file, about 4 us: 0.2 s for 50,000 images
            files = sorted((entry.name, entry.stat()) for entry in entries if entry.is_file())
        # ctime and inode too: a copy that keeps size and mtime (cp -p, rsync -a, tar x) changes them
        signature += [(name, st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino) for name, st in files]
    return tuple(signature)


def dataset_info(name: str) -> DatasetInfo:
    """The description of dataset ``name`` (for a folder, every image's header is read: its side and mode)."""
    name = check_dataset_name(name)
    if not name.startswith(FOLDER_PREFIX):
        return BUILTIN_DATASETS[name]
    path = Path(name[len(FOLDER_PREFIX):])
    key = _folder_signature(path)
    if key not in _FOLDER_INFOS:
        _FOLDER_INFOS[key] = describe_folder(path)
    return _FOLDER_INFOS[key]
