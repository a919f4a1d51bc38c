"""Datasets by name: scikit-learn's real digits, folders of PNG/JPEG, CIFAR-10 binary batches (written here, and
downloaded from a local server), MNIST-style .gz checksums; training, export and serving on each shape."""

from __future__ import annotations

import gzip
import hashlib
import http.server
import io
import json
import os
import tarfile
import threading
from functools import partial
from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient
from PIL import Image

from convlens.cli import main
from convlens.data import catalog, load_named
from convlens.data.idx import IdxFileSpec, encode_idx
from convlens.data.sources import DatasetManifest, load_arrays, locate
from convlens.errors import DataError, UsageError
from convlens.models.registry import resolve_spec
from convlens.serving.app import create_app


def test_digits_are_scikit_learns_images_scaled_and_split_by_class():
    from sklearn.datasets import load_digits
    raw = load_digits()
    ds = load_named("digits")
    assert ds.input_shape == (1, 8, 8) and len(ds.train_labels) + len(ds.test_labels) == 1_797
    for c in range(10):  # 20% of every class in the test split, rounded
        n_c = int((raw.target == c).sum())
        assert int((ds.test_labels == c).sum()) == round(0.2 * n_c)
    # every image is one of sklearn's, scaled 0..16 -> 0..255 (computed here independently)
    scaled = {(np.round(img * 255 / 16).astype(np.uint8).tobytes(), int(t)) for img, t in zip(raw.images, raw.target)}
    assert all((img.tobytes(), int(t)) in scaled for img, t in zip(ds.test_images, ds.test_labels))
    assert ds.train_images.max() == 255 and ds.train_images.dtype == np.uint8
    assert load_named("digits").test_labels.tolist() == ds.test_labels.tolist()  # the split is fixed


def write_folder(root: Path, classes: dict[str, tuple[int, int, int]], n: int = 10, size: int = 12,
                 mode: str = "RGB") -> None:
    rng = np.random.default_rng(0)
    for name, colour in classes.items():
        (root / name).mkdir(parents=True)
        for k in range(n):
            pixels = np.clip(np.array(colour) + rng.integers(-20, 21, (size, size, 3)), 0, 255).astype(np.uint8)
            Image.fromarray(pixels).convert(mode).save(root / name / f"{k}.{'png' if k % 2 else 'jpg'}")


def test_a_folder_of_images_is_a_dataset(tmp_path):
    write_folder(tmp_path / "colours", {"red": (220, 30, 30), "green": (30, 200, 40), "blue": (20, 40, 230)})
    ds = load_named(f"folder:{tmp_path / 'colours'}")
    assert ds.input_shape == (3, 12, 12) and ds.class_names == ("blue", "green", "red")
    assert np.bincount(ds.test_labels).tolist() == [2, 2, 2] and len(ds.train_labels) == 24
    red = ds.train_images[ds.train_labels == 2]
    assert red[..., 0].mean() > 180 and red[..., 2].mean() < 80  # channels in RGB order
    write_folder(tmp_path / "gray" / "train", {"a": (30, 30, 30), "b": (200, 200, 200)}, mode="L", size=16)
    write_folder(tmp_path / "gray" / "test", {"a": (30, 30, 30), "b": (200, 200, 200)}, n=3, mode="L", size=16)
    gray = load_named(f"folder:{tmp_path / 'gray'}")
    assert gray.input_shape == (1, 16, 16) and len(gray.test_labels) == 6 and len(gray.train_labels) == 20


def test_folder_details_classes_paths_and_bit_depths(tmp_path, monkeypatch):
    write_folder(tmp_path / "d", {"a": (30, 30, 30), "b": (200, 200, 200)}, n=5, mode="L")
    (tmp_path / "d" / "notes").mkdir()  # no images: not a class
    (tmp_path / "d" / "notes" / "README.txt").write_text("x")
    wide = (np.arange(12 * 12).reshape(12, 12) * 400).astype(np.uint16)  # 16-bit grey 0..57,200
    Image.fromarray(wide).save(tmp_path / "d" / "a" / "wide.png")
    monkeypatch.chdir(tmp_path)
    ds = load_named("folder:d")  # a relative path is recorded absolute
    assert ds.name == f"folder:{tmp_path / 'd'}" and ds.class_names == ("a", "b")
    k = [str(p) for p in ds.source.paths.values()].index(str(tmp_path / "d" / "a" / "wide.png"))
    split = "train" if k < len(ds.train_labels) else "test"
    image = (ds.train_images if split == "train" else ds.test_images)[k if split == "train" else k - len(ds.train_labels)]
    expected = np.asarray(Image.fromarray(np.round(wide / 65535 * 255).astype(np.uint8)).resize(
        (12, 12), Image.Resampling.LANCZOS))
    np.testing.assert_array_equal(image, expected)  # scaled from 16 bits, not clipped at 255
    many = tmp_path / "many"
    for c in range(300):  # more classes than a uint8 label holds
        (many / f"c{c:03d}").mkdir(parents=True)
        for j in range(2):
            Image.new("L", (4, 4), c % 256).save(many / f"c{c:03d}" / f"{j}.png")
    wide_ds = load_named(f"folder:{many}")
    assert len(wide_ds.class_names) == 300 and int(wide_ds.train_labels.max()) == 299


def test_a_photo_stored_sideways_is_read_upright_as_the_server_reads_it(tmp_path):
    """A phone stores a photo taken sideways as it was shot, with an EXIF orientation tag (6: turn it 90 degrees
    clockwise to view it). A folder dataset reads it upright, as the server does with the same file."""
    from convlens.serving.inputs import ImageShape, decode_image
    write_folder(tmp_path / "d", {"a": (30, 30, 30), "b": (200, 200, 200)}, n=3, mode="L", size=12)
    shot = np.zeros((12, 12), dtype=np.uint8)
    shot[:, :3] = 255  # a bar on the left edge as stored; upright (turned clockwise) it is along the top
    exif = Image.Exif()
    exif[0x0112] = 6
    Image.fromarray(shot).save(tmp_path / "d" / "a" / "phone.jpg", exif=exif.tobytes(), quality=100)
    ds = load_named(f"folder:{tmp_path / 'd'}")
    k = [str(p) for p in ds.source.paths.values()].index(str(tmp_path / "d" / "a" / "phone.jpg"))
    image = np.concatenate([ds.train_images, ds.test_images])[k].astype(np.float64)
    upright = np.rot90(shot, k=-1)  # clockwise, by numpy
    assert upright[:3].mean() > 250 and image[:3].mean() > 240 and image[4:].mean() < 20  # the bar along the top
    served = decode_image((tmp_path / "d" / "a" / "phone.jpg").read_bytes(),
                          image=ImageShape(channels=1, size=12, invert_light_background=False))
    np.testing.assert_allclose(served[0, 0], image / 255, atol=1e-6)  # the same pixels as the server's


@pytest.mark.parametrize("setup, message", [
    (lambda root: (root / "only").mkdir(parents=True), "one subfolder per class"),
    (lambda root: [write_folder(root / "train", {"a": (0, 0, 0), "b": (9, 9, 9)}, n=2)], "has train/ but no test/"),
    (lambda root: [write_folder(root / "train", {"a": (0, 0, 0), "b": (9, 9, 9)}, n=2),
                   write_folder(root / "test", {"a": (0, 0, 0), "b": (9, 9, 9), "c": (5, 5, 5)}, n=2)],
     "must hold the same class folders"),
    (lambda root: [write_folder(root, {"a": (0, 0, 0), "b": (9, 9, 9)}, n=2),
                   (root / "a" / "bomb.png").write_bytes(_png_header(20_000, 20_000))], "bomb.png"),
    (lambda root: [(root / c).mkdir(parents=True) for c in "ab"], "one subfolder per class"),
    (lambda root: [write_folder(root, {"a": (0, 0, 0), "b": (255, 255, 255)}, n=2),
                   (root / "a" / "9.png").write_bytes(b"not a png")], "9.png: not a readable PNG or JPEG"),
    (lambda root: [write_folder(root, {"a": (0, 0, 0), "b": (255, 255, 255)}, n=5),
                   write_folder(root, {"lonely": (90, 90, 90)}, n=1)],
     r"each class needs at least 2 images \(one goes to the test split\); lonely \(1\) has fewer"),
])
def test_a_bad_folder_is_one_line(tmp_path, setup, message):
    root = tmp_path / "data"
    setup(root)
    with pytest.raises(DataError, match=message) as info:
        load_named(f"folder:{root}")
    assert "\n" not in str(info.value)


def _png_header(width: int, height: int) -> bytes:
    from tests.serving.test_hostile_requests import png_header_only
    return png_header_only(width, height)


def cifar_batch(labels: np.ndarray, rng: np.random.Generator) -> tuple[bytes, np.ndarray]:
    """A binary batch: per record a label byte, then the R, G and B planes; returns it and the (N, 32, 32, 3)
    images it encodes (assembled here from the planes, independently of the loader)."""
    planes = rng.integers(0, 256, (len(labels), 3, 32, 32), dtype=np.uint8)
    planes[:, 0] = np.where(labels[:, None, None] % 2 == 0, 250, 5)  # a class signal in the red plane
    records = np.concatenate([labels[:, None].astype(np.uint8), planes.reshape(len(labels), -1)], axis=1)
    images = np.stack([planes[:, 0], planes[:, 1], planes[:, 2]], axis=-1)
    return records.tobytes(), images


@pytest.fixture(scope="module")
def cifar_dir(tmp_path_factory):
    """Full-size CIFAR-10 binary batches (6 x 30.7 MB) of synthetic images, in cifar-10-batches-bin/."""
    root = tmp_path_factory.mktemp("cifar")
    directory = root / "cifar-10-batches-bin"
    directory.mkdir()
    rng = np.random.default_rng(0)
    expected = {}
    for name in catalog.CIFAR10_TRAIN + catalog.CIFAR10_TEST:
        labels = rng.integers(0, 10, 10_000).astype(np.uint8)
        data, images = cifar_batch(labels, rng)
        (directory / name).write_bytes(data)
        expected[name] = (images, labels)
    return root, expected


def test_cifar10_binary_batches_load_in_rgb_order(cifar_dir):
    root, expected = cifar_dir
    ds = load_named("cifar10", root)
    assert ds.input_shape == (3, 32, 32) and ds.train_images.shape == (50_000, 32, 32, 3)
    assert np.array_equal(ds.test_images, expected["test_batch.bin"][0])
    assert np.array_equal(ds.train_labels[10_000:20_000], expected["data_batch_2.bin"][1])
    assert ds.class_names[0] == "airplane" and ds.source.origin == "explicit"


def test_a_truncated_cifar_batch_is_named(cifar_dir, tmp_path):
    root, _ = cifar_dir
    for name in catalog.CIFAR10_TRAIN + catalog.CIFAR10_TEST:
        data = (root / "cifar-10-batches-bin" / name).read_bytes()
        (tmp_path / name).write_bytes(data[:-100] if name == "data_batch_3.bin" else data)
    with pytest.raises(DataError, match=r"data_batch_3.bin: 30,729,900 bytes, expected 30,730,000"):
        load_named("cifar10", tmp_path)


@pytest.fixture
def http_root(tmp_path):
    root = tmp_path / "www"
    root.mkdir()

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), partial(Quiet, directory=str(root)))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield root, f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


def _archive(members: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz", compresslevel=1) as tar:  # random pixels: level 9 only costs time
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def test_cifar10_download_checks_the_archive_and_extracts_only_the_batches(http_root, tmp_path, monkeypatch):
    root, url = http_root
    rng = np.random.default_rng(1)
    members = {f"cifar-10-batches-bin/{n}": cifar_batch(rng.integers(0, 10, 10_000).astype(np.uint8), rng)[0]
               for n in catalog.CIFAR10_TRAIN + catalog.CIFAR10_TEST}
    archive = _archive({**members, "../evil.txt": b"outside", "cifar-10-batches-bin/readme.html": b"x"})
    (root / "cifar-10-binary.tar.gz").write_bytes(archive)
    cache = tmp_path / "cache"
    monkeypatch.setenv("CONVLENS_CIFAR10_URL", f"{url}/cifar-10-binary.tar.gz")
    monkeypatch.setenv("CONVLENS_CIFAR10_CACHE", str(cache))
    monkeypatch.delenv("CONVLENS_DATA", raising=False)
    with pytest.raises(DataError, match="checksum mismatch"):  # the official md5 refuses a stand-in archive
        load_named("cifar10")
    assert not cache.exists() or not list(cache.iterdir())
    monkeypatch.setattr(catalog, "CIFAR10_MD5", hashlib.md5(archive).hexdigest())  # as if it were the real one
    ds = load_named("cifar10")
    assert ds.source.origin == "download" and len(ds.train_labels) == 50_000
    assert sorted(p.name for p in cache.iterdir()) == sorted(catalog.CIFAR10_TRAIN + catalog.CIFAR10_TEST)
    assert not (tmp_path / "evil.txt").exists() and not (cache.parent / "evil.txt").exists()
    assert load_named("cifar10").source.origin == "cache"  # second time: no download
    (root / "cifar-10-binary.tar.gz").write_bytes(archive[:1000])  # truncated on the way
    monkeypatch.setenv("CONVLENS_CIFAR10_CACHE", str(tmp_path / "cache2"))
    with pytest.raises(DataError, match="checksum mismatch"):
        load_named("cifar10")
    # A mirror sending more than the archive's size is cut off one byte past it (it read everything, 400 MB in a
    # review); the real size is 170,052,171 bytes, so the stand-in's is set here
    monkeypatch.setattr(catalog, "CIFAR10_ARCHIVE_BYTES", len(archive) - 1)
    (root / "cifar-10-binary.tar.gz").write_bytes(archive)
    read = []
    real_urlopen = catalog.urllib.request.urlopen

    def counting(*args, **kwargs):
        response = real_urlopen(*args, **kwargs)
        real_read = response.read
        response.read = lambda n=None: read.append(n) or real_read(n)
        return response
    monkeypatch.setattr(catalog.urllib.request, "urlopen", counting)
    with pytest.raises(DataError, match="larger than the CIFAR-10 archive"):
        load_named("cifar10")
    assert read == [len(archive)]  # at most one byte past the size asked for


def test_mnist_style_files_are_checked_against_the_official_gz_md5(tmp_path):
    labels = (np.arange(20) % 10).astype(np.uint8)
    gz = gzip.compress(encode_idx(labels))
    spec = IdxFileSpec("t10k-labels-idx1-ubyte", 8 + 20, None, (20,), hashlib.md5(gz).hexdigest())
    manifest = DatasetManifest("tiny", {"test_labels": spec}, tuple("0123456789"), "http://127.0.0.1:9/")
    (tmp_path / "t10k-labels-idx1-ubyte.gz").write_bytes(gz)
    assert load_arrays(locate(tmp_path, manifest), manifest)["test_labels"].tolist() == labels.tolist()
    (tmp_path / "t10k-labels-idx1-ubyte.gz").write_bytes(gzip.compress(encode_idx(labels), mtime=1))  # other bytes
    with pytest.raises(DataError, match="checksum mismatch .* official .gz file"):
        load_arrays(locate(tmp_path, manifest), manifest)
    (tmp_path / "t10k-labels-idx1-ubyte.gz").unlink()
    (tmp_path / "t10k-labels-idx1-ubyte").write_bytes(encode_idx(labels))
    with pytest.raises(DataError, match="only the official .gz file's checksum is known"):
        load_arrays(locate(tmp_path, manifest), manifest)


def test_an_mnist_style_download_is_checked_against_the_official_gz_md5(http_root, tmp_path, monkeypatch):
    from convlens.data.sources import download_manifest
    root, url = http_root
    labels = (np.arange(20) % 10).astype(np.uint8)
    official = gzip.compress(encode_idx(labels), mtime=0)
    spec = IdxFileSpec("t10k-labels-idx1-ubyte", 8 + 20, None, (20,), hashlib.md5(official).hexdigest())
    manifest = DatasetManifest("tiny", {"test_labels": spec}, tuple("0123456789"), url)
    (root / "t10k-labels-idx1-ubyte.gz").write_bytes(gzip.compress(encode_idx(labels), mtime=1))  # same data, other .gz
    with pytest.raises(DataError, match="checksum mismatch .* official .gz file"):
        download_manifest(manifest, tmp_path / "cache")
    assert not (tmp_path / "cache").exists() or not list((tmp_path / "cache").iterdir())  # nothing half-written
    (root / "t10k-labels-idx1-ubyte.gz").write_bytes(official[:-8])  # truncated on the way
    with pytest.raises(DataError):
        download_manifest(manifest, tmp_path / "cache")
    (root / "t10k-labels-idx1-ubyte.gz").write_bytes(official)
    paths = download_manifest(manifest, tmp_path / "cache")
    assert paths["test_labels"].read_bytes() == official


def test_model_shapes_follow_the_dataset_by_hand_arithmetic(capsys):
    assert main(["models", "show", "cnn", "--dataset", "cifar10", "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    convs = (3 * 3 * 3 * 32 + 32) + (3 * 3 * 32 * 64 + 64) + (3 * 3 * 64 * 128 + 128)
    head = (4 * 4 * 128 * 128 + 128) + (128 * 10 + 10)  # 32 -> 16 -> 8 -> 4 after three 2x2 pools
    assert summary["params"]["total"] == convs + head == 356_810
    assert main(["models", "show", "mlp", "--dataset", "digits", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["params"]["total"] == (64 * 128 + 128) + (128 * 64 + 64) + (64 * 10 + 10)
    # Fashion-MNIST's spec is the preset's own: its numbers do not change
    assert resolve_spec("cnn", {"in_channels": 1, "image_size": 28, "num_classes": 10}) == resolve_spec("cnn")
    assert main(["models", "show", "cnn", "--dataset", "digits", "--set", "depth=4"]) == 2
    assert "vanishes after block 4" in capsys.readouterr().err
    with pytest.raises(UsageError, match="unknown dataset 'svhn'; valid datasets: fashion-mnist"):
        catalog.dataset_info("svhn")


def _train_export(tmp_path: Path, *args: str) -> Path:
    run, model = tmp_path / "run", tmp_path / "model"
    assert main(["train", "-m", "cnn-16-32", "--epochs", "2", "--out", str(run), "--quiet", *args]) == 0
    assert main(["export", str(run), "--out", str(model)]) == 0
    return model


def test_a_run_records_the_checksums_its_files_were_verified_against(exported):
    from tests.conftest import fashion_files
    config = json.loads((exported[0].parent / "run" / "config.json").read_text())
    recorded = config["data"]["checksums"]
    computed = {p.name.removesuffix(".gz"): hashlib.md5(gzip.decompress(p.read_bytes()) if p.suffix == ".gz"
                                                        else p.read_bytes()).hexdigest() for p in fashion_files()}
    assert recorded == computed and len(recorded) == 4


def test_train_export_and_serve_on_digits(tmp_path, capsys):
    model = _train_export(tmp_path, "--dataset", "digits")
    config = json.loads((model / "config.json").read_text())
    assert config["dataset"] == "digits" and config["input"]["shape"] == [1, 8, 8]
    assert main(["evaluate", str(tmp_path / "run"), "--json"]) == 0
    capsys.readouterr()
    ds = load_named("digits")
    client = TestClient(create_app(model))
    answer = client.post("/invocations", json={"instances": ds.test_images[:50].tolist()})
    assert answer.status_code == 200 and len(answer.json()["predictions"]) == 50
    accuracy = (np.argmax(answer.json()["predictions"], 1) == ds.test_labels[:50]).mean()
    assert accuracy > 0.5  # a 2-epoch CNN on real digits
    wrong = client.post("/invocations", json={"instances": np.zeros((1, 28, 28)).tolist()})
    assert wrong.status_code == 400 and "(8, 8)" in wrong.json()["error"]
    assert client.get("/model").json()["dataset"] == "digits"


def test_train_on_cifar10_binary_files_then_predict_rgb(cifar_dir, tmp_path, capsys):
    root, expected = cifar_dir
    model = _train_export(tmp_path, "--dataset", "cifar10", "--data-dir", str(root), "--train-subset", "2000",
                          "--test-subset", "500")
    run_config = json.loads((tmp_path / "run" / "config.json").read_text())
    assert run_config["data"]["dataset"] == "cifar10" and run_config["model"]["spec"]["in_channels"] == 3
    image, label = expected["test_batch.bin"][0][0], int(expected["test_batch.bin"][1][0])
    Image.fromarray(image).save(tmp_path / "test0.png")
    capsys.readouterr()
    assert main(["predict", str(model), str(tmp_path / "test0.png"), "--json", "--top-k", "10"]) == 0
    top = json.loads(capsys.readouterr().out)[0]["top"]
    assert len(top) == 10 and abs(sum(t["probability"] for t in top) - 1) < 1e-4
    client = TestClient(create_app(model))
    hwc = client.post("/invocations", json={"instances": [image.tolist()]})
    chw = client.post("/invocations", json={"instances": [image.transpose(2, 0, 1).tolist()]})
    single = client.post("/invocations", json=image.tolist())  # one image, (32, 32, 3), no batch dimension
    assert hwc.status_code == chw.status_code == single.status_code == 200
    np.testing.assert_allclose(hwc.json()["predictions"], chw.json()["predictions"], atol=1e-6)
    np.testing.assert_allclose(single.json()["predictions"], chw.json()["predictions"], atol=1e-6)
    np.save(tmp_path / "hwc.npy", image)
    assert main(["predict", str(model), str(tmp_path / "hwc.npy"), "--json"]) == 0
    assert label in range(10)


def test_a_folder_subset_is_a_sample_of_every_class_not_the_first_classes(tmp_path):
    """--train-subset and a quick study take a split's first N images; in class order those were the first classes
    only (a reviewer's folder scored 100% on a test subset of one class). Each split is now in one fixed shuffled
    order: the same at every load, every image still there, the test split still stratified."""
    write_folder(tmp_path / "d", {"a": (30, 30, 30), "b": (120, 120, 120), "c": (220, 220, 220)}, n=10, size=4)
    ds = load_named(f"folder:{tmp_path / 'd'}")
    assert np.bincount(ds.train_labels).tolist() == [8, 8, 8] and np.bincount(ds.test_labels).tolist() == [2, 2, 2]
    small = ds.subset(8, 3)
    assert len(np.unique(small.train_labels)) >= 2 and len(np.unique(small.test_labels)) >= 2
    assert (np.diff(ds.train_labels) < 0).any()  # not sorted by class
    again = load_named(f"folder:{tmp_path / 'd'}")
    np.testing.assert_array_equal(again.train_labels, ds.train_labels)
    np.testing.assert_array_equal(again.train_images, ds.train_images)
    means = {0: 30, 1: 120, 2: 220}  # each image still carries its own class's label
    assert all(abs(float(img.mean()) - means[int(t)]) < 25 for img, t in zip(ds.train_images, ds.train_labels))


def test_images_added_to_train_leave_the_test_splits_order_as_it_was(tmp_path):
    """Each split is shuffled by its own generator: with one generator the test order hung on how many training
    images drew before it, so adding one to train/ changed test/'s digest and evaluate refused a run."""
    for split, n in (("train", 3), ("test", 4)):  # 6 then 7 training images: sizes where one generator differed
        write_folder(tmp_path / "d" / split, {"a": (30, 30, 30), "b": (220, 220, 220)}, n=n, size=4)
    before = load_named(f"folder:{tmp_path / 'd'}")
    Image.new("RGB", (4, 4), (30, 30, 30)).save(tmp_path / "d" / "train" / "a" / "extra.png")
    after = load_named(f"folder:{tmp_path / 'd'}")
    assert len(after.train_labels) == len(before.train_labels) + 1
    assert after.digest("test") == before.digest("test")


def test_a_corrupt_pixel_stream_is_refused_not_read_as_black(tmp_path):
    """A PNG whose header is intact but whose compressed pixels are not: Pillow refuses it, and convlens read it as
    an all-black image (the EXIF lookup's decode failed quietly, and the next one found a zeroed buffer)."""
    write_folder(tmp_path / "d", {"a": (30, 30, 30), "b": (220, 220, 220)}, n=3, size=12)
    bad = tmp_path / "d" / "b" / "1.png"
    raw = bad.read_bytes()
    k = raw.find(b"IDAT") + 4
    bad.write_bytes(raw[:k] + bytes(b ^ 0x5A for b in raw[k:k + 40]) + raw[k + 40:])
    with pytest.raises(OSError):  # Pillow alone
        Image.open(bad).load()
    with pytest.raises(DataError, match=r"b/1\.png: not a readable PNG or JPEG"):
        load_named(f"folder:{tmp_path / 'd'}")


def test_every_image_decides_grey_or_colour_and_hidden_files_are_not_images(tmp_path, recwarn):
    """Channels were decided from the first 200 images: colour photos after 205 grey ones were read as grey. A
    macOS "._photo.png" (metadata, not an image) failed the whole folder. A header over Pillow's own bomb
    threshold warned on stderr before convlens' one line."""
    root = tmp_path / "d"
    for k in range(205):
        (root / "a").mkdir(parents=True, exist_ok=True)
        Image.new("L", (4, 4), k).save(root / "a" / f"{k:03d}.png")
    (root / "b").mkdir()
    for k in range(3):
        Image.new("RGB", (4, 4), (200, 10 * k, 0)).save(root / "b" / f"{k}.png")
    (root / "b" / "._0.png").write_bytes(b"\x00\x05\x16\x07 AppleDouble")
    ds = load_named(f"folder:{root}")
    assert ds.input_shape == (3, 4, 4) and ds.class_names == ("a", "b")
    colour = ds.train_images[ds.train_labels == 1]
    assert (colour[..., 0] > 150).all() and (colour[..., 2] < 50).all()  # red, not its grey
    (root / "b" / "big.png").write_bytes(_png_header(10_000, 10_000))  # 100 MP: above Pillow's 89 MP warning
    with pytest.raises(DataError, match="10000x10000 pixels is too large"):
        load_named(f"folder:{root}")
    assert not [w for w in recwarn if "DecompressionBomb" in type(w.message).__name__]


def test_an_image_rewritten_in_place_is_seen_in_the_same_session(tmp_path):
    """The folder's description was cached by its directories' mtimes, which a file rewritten in place leaves as
    they were: a notebook kept the old shape until it restarted."""
    write_folder(tmp_path / "d", {"a": (30, 30, 30), "b": (220, 220, 220)}, n=3, size=8, mode="L")
    assert catalog.dataset_info(f"folder:{tmp_path / 'd'}").input_shape == (1, 8, 8)
    for path in (tmp_path / "d").glob("*/*"):
        Image.new("RGB", (24, 24), (200, 0, 0)).save(path, format="PNG" if path.suffix == ".png" else "JPEG")
    assert catalog.dataset_info(f"folder:{tmp_path / 'd'}").input_shape == (3, 24, 24)


@pytest.mark.parametrize("name, message", [
    ("folder:~no_such_user_convlens/x", "there is no user 'no_such_user_convlens'"),
    ("folder:a\x00b", "holds a NUL byte"),
])
def test_a_path_that_cannot_be_a_path_is_one_usage_line(name, message):
    with pytest.raises(UsageError, match=message) as info:
        load_named(name)
    assert "\n" not in str(info.value)


def test_data_files_far_larger_than_their_dataset_are_refused_before_they_are_read(tmp_path):
    """A wrong file of gigabytes was read whole (a MemoryError under a memory cap). The bound: the file's size for
    a raw file; for a .gz, twice it and a MiB, which no gzip of it reaches (deflate adds 5 bytes per 64 KiB)."""
    from convlens.data.idx import read_file_bytes
    big = tmp_path / "train-images-idx3-ubyte.gz"
    with big.open("wb") as f:
        f.truncate(2 * 1000 + 2**20 + 1)  # sparse: no disk used
    with pytest.raises(DataError, match=f"{2 * 1000 + 2**20 + 1:,} bytes, more than the {2 * 1000 + 2**20:,}"):
        read_file_bytes(big, 1000)
    raw = tmp_path / "raw-idx"
    raw.write_bytes(b"\x00" * 1001)
    with pytest.raises(DataError, match="1,001 bytes, more than the 1,000"):
        read_file_bytes(raw, 1000)
    (tmp_path / "zeros.gz").symlink_to("/dev/zero")  # its size says 0, and it never ends
    with pytest.raises(DataError, match="zeros.gz: not a regular file"):
        read_file_bytes(tmp_path / "zeros.gz", 1000)
    os.mkfifo(tmp_path / "fifo.gz")  # no writer: opening it for reading would block for ever
    with pytest.raises(DataError, match="fifo.gz: not a regular file"):
        read_file_bytes(tmp_path / "fifo.gz", 1000)
    batch = tmp_path / "test_batch.bin"
    with batch.open("wb") as f:
        f.truncate(3 * 2**30)  # 3 GiB, sparse
    with pytest.raises(DataError, match=f"test_batch.bin: {3 * 2**30:,} bytes, more than the {10_000 * 3073:,}"):
        catalog.read_cifar_batch(batch)
