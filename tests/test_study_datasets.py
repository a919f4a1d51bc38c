"""The study on other datasets: scikit-learn's real 8x8 digits (no download) and a folder of RGB PNGs written here.
Each produces the complete report, sized and worded for its data."""

from __future__ import annotations

import io
import json
from datetime import datetime
from pathlib import Path

import numpy as np
import pytest
from matplotlib.colors import Normalize
from PIL import Image

from convlens.cli import main
from tests.conftest import skip_notebook_execution


def _results(out: Path) -> dict:
    return json.loads((out / "results.json").read_text())


def recording_stages(patch: pytest.MonkeyPatch) -> list[str]:
    """The study's stages, and where its notebook's kernels start ("kernel"), in the order they begin."""
    from contextlib import contextmanager

    from convlens.study import pipeline
    order: list[str] = []
    real_kernels, real_stage = pipeline.warm_kernels, pipeline._stage

    @contextmanager
    def kernels(out, count=None):
        order.append("kernel")
        with real_kernels(out, count) as started:
            yield started

    @contextmanager
    def stage(name, *args, **kwargs):
        order.append(name)
        with real_stage(name, *args, **kwargs):
            yield
    patch.setattr(pipeline, "warm_kernels", kernels)
    patch.setattr(pipeline, "_stage", stage)
    return order


def notebook_up_to_its_first_figure(patch: pytest.MonkeyPatch, figures: int = 1) -> None:
    """report.ipynb cut after its first ``figures`` figure cells (setup, headline, redrawn figures): for tests of
    where and how the notebook runs, which the whole notebook (every figure drawn again) makes 10-20 s longer on 2
    cores. The whole one is executed by the digits study fixture and again from scratch below."""
    from convlens.report import notebook
    real = notebook.notebook_cells

    def first_cells(*args, **kwargs):
        cells = real(*args, **kwargs)
        drawn = [i for i, (kind, source) in enumerate(cells) if kind == "code" and ".plot(" in source]
        return cells[:drawn[figures - 1] + 1]
    patch.setattr(notebook, "notebook_cells", first_cells)


NOTEBOOK_KERNELS = 2  # the digits study's notebook runs in this many kernels, whatever the machine's cores


DIGITS_STUDY_STAGES: list[str] = []  # the digits_study fixture's, in order (recording_stages)


@pytest.fixture(scope="module")
def digits_study(tmp_path_factory, mlflow_db):
    out = tmp_path_factory.mktemp("digits") / "study"
    mlflow_db(out)
    with pytest.MonkeyPatch.context() as patch:
        from convlens.report import notebook
        order = recording_stages(patch)
        patch.setattr(notebook, "notebook_kernels", lambda: NOTEBOOK_KERNELS)
        assert main(["study", "--dataset", "digits", "--quick", "--out", str(out), "--quiet", "--mlflow"]) == 0
    DIGITS_STUDY_STAGES[:] = order
    return out


def test_a_quick_study_of_the_digits_is_complete_and_sized_for_8x8(digits_study):
    results = _results(digits_study)
    assert results["study"]["dataset"]["name"] == "digits" and results["eda"]["train"]["shape"] == [8, 8]
    assert results["eda"]["train"]["n"] + results["eda"]["test"]["n"] == 1_797  # the quick subset is all of it
    # cnn-32-64-128 on 8x8x1, by hand: three 3x3 'same' convs, pools 8 -> 4 -> 2 -> 1, dense 128, 10 classes
    convs = (3 * 3 * 1 * 32 + 32) + (3 * 3 * 32 * 64 + 64) + (3 * 3 * 64 * 128 + 128)
    assert results["design"]["summary"]["params"]["total"] == convs + (1 * 1 * 128 * 128 + 128) + (128 * 10 + 10)
    report = (digits_study / "report.md").read_text()
    assert "scikit-learn's digits" in report and "garment" not in report and "collar" not in report
    assert "60,000" not in report and "28x28" not in report
    # scikit-learn's bundled copy has no published checksums: not "checksums verified" (the run records none)
    assert "not verified against published checksums" in report and "checksums verified" not in report
    assert json.loads(next((digits_study / "experiments").rglob("config.json")).read_text())["data"]["checksums"] == {}
    # the SageMaker command the report gives trains on the study's dataset, not the entry point's default
    assert "convlens sagemaker train --role-arn ARN --bucket BUCKET --hp dataset=digits --dry-run" in report
    # and so do the experiments it says were left out (pasted as they were, they trained on Fashion-MNIST)
    assert "`convlens experiment run augmentation --dataset digits`" in report
    assert "`convlens experiment run weight-sharing --dataset digits`" in report
    assert any("a digit" in f for f in results["design"]["findings"] + results["baseline"]["findings"]) or \
        any("a stroke" in f for f in results["baseline"]["findings"])
    html = (digits_study / "report.html").read_text()
    assert 'src="figures/' not in html and html.count('src="data:image/png;base64,') >= 10
    config = json.loads(next((digits_study / "model").glob("config.json")).read_text())
    assert config["dataset"] == "digits" and config["input"]["shape"] == [1, 8, 8]
    # the model card's accuracy over seeds is the study's CNN level, not the one exported run
    assert config["test_accuracy_over_seeds"] == {k: results["design"]["test_accuracy"][k]
                                                  for k in ("n", "mean", "std", "ci95")}


def test_a_study_of_a_folder_of_rgb_images(tmp_path, monkeypatch):
    skip_notebook_execution(monkeypatch)  # the notebook is tested on the digits study
    rng = np.random.default_rng(0)
    for name, colour in {"red": (220, 30, 30), "green": (30, 200, 40), "blue": (20, 40, 230)}.items():
        (tmp_path / "photos" / name).mkdir(parents=True)
        for k in range(30):
            pixels = np.clip(np.array(colour) + rng.integers(-60, 61, (16, 16, 3)), 0, 255).astype(np.uint8)
            Image.fromarray(pixels).save(tmp_path / "photos" / name / f"{k}.png")
    out = tmp_path / "study"
    assert main(["study", "--dataset", f"folder:{tmp_path / 'photos'}", "--quick", "--out", str(out), "--quiet"]) == 0
    results = _results(out)
    assert results["eda"]["train"]["shape"] == [16, 16, 3] and results["eda"]["class_names"] == ["blue", "green", "red"]
    assert results["design"]["summary"]["params"]["total"] == (
        (3 * 3 * 3 * 32 + 32) + (3 * 3 * 32 * 64 + 64) + (3 * 3 * 64 * 128 + 128) + (2 * 2 * 128 * 128 + 128)
        + (128 * 3 + 3))  # 16 -> 8 -> 4 -> 2 after three pools; 3 classes
    assert results["design"]["test_accuracy"]["mean"] > 0.9  # colour alone separates these classes
    from convlens.data import load_named
    train = load_named(f"folder:{tmp_path / 'photos'}").train_images.astype(np.float64) / 255
    np.testing.assert_allclose(results["eda"]["normalisation"]["channel_means"],
                               [train[..., c].mean() for c in range(3)], rtol=1e-12)
    assert any(f.startswith("Per channel (R, G, B): mean") for f in results["eda"]["findings"])
    assert (out / "report.html").stat().st_size > 50_000
    report = (out / "report.md").read_text()
    assert f"--hp dataset=folder --data-dir {tmp_path / 'photos'} --dry-run" in report
    assert "a flat vector of 768 numbers (16×16 pixels × 3 channels)" in report  # 16 x 16 x 3: what Flatten says
    layers = {lay["name"]: lay["output_shape"] for lay in results["baseline"]["summary"]["layers"]}
    assert layers["head.flatten"] == [768]
    assert "after the first block (its input has only 3 channels)" in report and "single input channel" not in report


def test_a_study_is_tracked_as_a_parent_with_an_experiment_per_child(digits_study):
    from mlflow.tracking import MlflowClient
    client = MlflowClient(f"sqlite:///{digits_study / 'mlflow.db'}")
    runs = client.search_runs([client.get_experiment_by_name("convlens").experiment_id])
    [study] = [r for r in runs if r.data.tags.get("convlens.kind") == "study"]
    experiments = [r for r in runs if r.data.tags.get("mlflow.parentRunId") == study.info.run_id]
    results = _results(digits_study)
    assert sorted(r.data.tags["convlens.experiment"] for r in experiments) == sorted(results["experiments"])
    for experiment in experiments:
        name = experiment.data.tags["convlens.experiment"]
        children = [r for r in runs if r.data.tags.get("mlflow.parentRunId") == experiment.info.run_id]
        on_disk = list((digits_study / "experiments" / name).glob("runs/*/seed*/metrics.json"))
        assert len(children) == len(on_disk) > 0
    assert {a.path for a in client.list_artifacts(study.info.run_id)} == {"report.html", "report.md", "results.json"}



def timestamp(cell, event: str) -> datetime:
    """When nbclient saw ``event`` for ``cell`` (it records them in the cell's metadata)."""
    return datetime.fromisoformat(cell.metadata.execution[event].replace("Z", "+00:00"))


def test_the_report_notebook_is_saved_executed_and_reruns_elsewhere(digits_study, tmp_path):
    import shutil

    import nbformat

    from tests.api.test_notebooks import execute, outputs
    results = _results(digits_study)
    assert results["study"]["notebook"]["executed"] is True
    saved = nbformat.read(digits_study / "report.ipynb", as_version=4)
    nbformat.validate(saved)
    assert all(o.output_type != "error" for c in saved.cells if c.cell_type == "code" for o in c.outputs)
    headings = [line for line in (digits_study / "report.md").read_text().splitlines() if line.startswith("## ")]
    assert [c.source.splitlines()[0] for c in saved.cells
            if c.cell_type == "markdown" and c.source.startswith("## ")] == headings
    copy = Path(shutil.copytree(digits_study, tmp_path / "elsewhere"))  # a student's copy, run again from scratch
    notebook = nbformat.read(copy / "report.ipynb", as_version=4)
    for cell in notebook.cells:
        if cell.cell_type == "code":
            cell.outputs = []
    execute(notebook, copy)  # in one kernel, in order: what the study's kernels in parallel must have given
    ran, again = ([c for c in nb.cells if c.cell_type == "code"] for nb in (saved, notebook))
    assert [c.execution_count for c in ran] == [c.execution_count for c in again] == list(range(1, len(ran) + 1))
    assert [c.outputs for c in ran] == [c.outputs for c in again]  # text, tables and each figure's PNG bytes
    spans = [(timestamp(c, "iopub.execute_input"), timestamp(c, "shell.execute_reply")) for c in ran[1:]]
    assert any(later[0] < earlier[1] for earlier, later in zip(spans, spans[1:])), \
        f"no two cells ran at once in the study's {NOTEBOOK_KERNELS} kernels"
    cnn, mlp = results["design"]["test_accuracy"], results["baseline"]["test_accuracy"]
    headline = outputs(next(c for c in notebook.cells if c.cell_type == "code"))
    assert headline.startswith(f"CNN {cnn['mean'] * 100:.2f}% ± {cnn['std'] * 100:.2f} pp, MLP "
                               f"{mlp['mean'] * 100:.2f}% ± {mlp['std'] * 100:.2f} pp (n={cnn['n']} seeds)")
    for name, summary in results["experiments"].items():
        [table] = [c for c in notebook.cells if c.source.startswith(f"experiment = study.experiment({name!r})")]
        for lv in summary["levels"]:
            acc = lv["test_accuracy"]
            assert f"{acc['mean'] * 100:.2f} ± {acc['std'] * 100:.2f}" in outputs(table), (name, lv["label"])
    rebuilt = [c for c in notebook.cells if ".plot(" in c.source]
    assert rebuilt and all(any("image/png" in o.get("data", {}) for o in c.outputs) for c in rebuilt)
    assert not [c.source for c in notebook.cells if "study.figure(" in c.source]  # every figure is drawn again


def test_without_the_notebook_extra_report_ipynb_is_saved_without_outputs_and_says_why(digits_study, tmp_path,
                                                                                         monkeypatch):
    import shutil
    import sys

    import nbformat

    from convlens.study.pipeline import notebook_status
    copy = Path(shutil.copytree(digits_study, tmp_path / "copy"))
    monkeypatch.setitem(sys.modules, "nbclient", None)  # `from nbclient import ...` raises ImportError
    status = notebook_status(copy)
    assert status == {"executed": False, "reason": "nbclient or ipykernel is not installed (pip install "
                                                    "'convlens[notebook]')"}
    notebook = nbformat.read(copy / "report.ipynb", as_version=4)
    code = [c for c in notebook.cells if c.cell_type == "code"]
    assert code and all(not c.outputs for c in code)


def test_warm_kernels_have_the_api_imported_each_run_a_share_of_the_notebook_and_are_gone_after(digits_study,
                                                                                                   tmp_path,
                                                                                                   monkeypatch):
    import shutil

    import nbformat
    from jupyter_client import BlockingKernelClient

    from convlens.report.notebook import kernel_alive, warm_kernels
    from convlens.study.pipeline import notebook_status
    copy = Path(shutil.copytree(digits_study, tmp_path / "warm"))
    notebook_up_to_its_first_figure(monkeypatch, figures=2)  # setup, then two cells: one for each kernel

    def ask(kernel, code: str) -> list[str]:
        """What ``code`` prints in ``kernel``, through a second client of it (to look inside)."""
        client = BlockingKernelClient()
        client.load_connection_info(kernel.get_connection_info())
        client.start_channels()
        client.wait_for_ready(timeout=60)
        printed: list[str] = []
        client.execute_interactive(code, store_history=False, timeout=60,
                                   output_hook=lambda msg: printed.append(msg["content"].get("text", "")))
        client.stop_channels()
        return "".join(printed).split()

    with warm_kernels(copy, 2) as kernels:
        assert len(kernels) == 2 and all(kernel_alive(k) for k in kernels)
        for kernel in kernels:  # imported before any cell ran, in the study's directory
            assert ask(kernel, "import os, sys; print('convlens.study.redraw' in sys.modules, os.getcwd())") == \
                ["True", str(copy)]
        assert notebook_status(copy, kernels) == {"executed": True, "reason": None}
        for kernel in kernels:  # each ran the setup cell, then its own share: one figure cell
            assert ask(kernel, "print('study' in globals(), len(_ih) - 1)") == ["True", "2"]
        assert all(kernel_alive(k) for k in kernels)  # the notebook used them; their owner shuts them down
    assert not any(kernel_alive(k) for k in kernels)
    code = [c for c in nbformat.read(copy / "report.ipynb", as_version=4).cells if c.cell_type == "code"]
    assert [c.execution_count for c in code] == list(range(1, len(code) + 1))  # the warm-up left no count behind
    assert all(o.output_type != "error" for c in code for o in c.outputs)
    assert all(any("image/png" in o.get("data", {}) for o in c.outputs) for c in code[-2:])  # both figures drawn


def test_a_warm_kernel_that_dies_before_or_during_the_notebook_neither_hangs_the_study_nor_loses_it(
        digits_study, tmp_path, monkeypatch):
    import faulthandler
    import shutil
    import signal

    from jupyter_core.utils import run_sync

    from convlens.report import notebook
    from convlens.study.pipeline import notebook_status
    faulthandler.dump_traceback_later(300, exit=True)  # a hang ends the test run, loudly, instead of CI's clock
    try:
        before = Path(shutil.copytree(digits_study, tmp_path / "before"))
        notebook_up_to_its_first_figure(monkeypatch)
        with notebook.warm_kernels(before, 1) as kernels:
            run_sync(kernels[0].signal_kernel)(signal.SIGKILL)
            assert notebook_status(before, kernels) == {"executed": True, "reason": None}  # a fresh kernel ran it
        during = Path(shutil.copytree(digits_study, tmp_path / "during"))
        monkeypatch.setattr(notebook, "notebook_cells", lambda *a, **k: [
            ("code", "import os, signal\nos.kill(os.getpid(), signal.SIGKILL)")])
        with notebook.warm_kernels(during, 1) as kernels:
            status = notebook_status(during, kernels)
        assert not status["executed"] and status["reason"].startswith("running it failed (DeadKernelError")
        assert (during / "report.ipynb").is_file()  # saved without outputs
    finally:
        faulthandler.cancel_dump_traceback_later()


def test_a_notebook_cell_that_fails_is_named_by_its_error_not_by_nbclients_preamble(digits_study, tmp_path,
                                                                                    monkeypatch):
    import shutil

    from convlens.report import notebook
    from convlens.study.pipeline import notebook_status
    out = Path(shutil.copytree(digits_study, tmp_path / "s"))
    monkeypatch.setattr(notebook, "notebook_cells", lambda *a, **k: [("code", "{}['mean']")])
    assert notebook_status(out) == {"executed": False,
                                    "reason": "running it failed (CellExecutionError: KeyError: 'mean')"}
    assert (out / "report.ipynb").is_file()  # saved without outputs


def test_without_the_notebook_extra_or_a_kernel_no_warm_kernel_is_started(tmp_path, monkeypatch):
    import sys

    from jupyter_client.manager import AsyncKernelManager

    from convlens.report.notebook import warm_kernels
    with monkeypatch.context() as m:
        m.setitem(sys.modules, "nbclient", None)
        with warm_kernels(tmp_path, 2) as kernels:
            assert kernels == []

    async def fail(self, **kwargs):
        raise RuntimeError("no kernel here")
    monkeypatch.setattr(AsyncKernelManager, "start_kernel", fail)
    with warm_kernels(tmp_path, 2) as kernels:
        assert kernels == []


def test_a_notebook_kernel_imports_torch_only_for_the_figures_that_load_a_model(digits_study):
    """The kernels' warm-up (report/notebook.py WARM_UP) and the figures drawn from results.json, the run store and
    the images leave torch and scipy out; the first-layer kernels load a model and bring torch in."""
    import subprocess
    import sys

    from convlens.report.notebook import WARM_UP
    code = (f"import sys\n{WARM_UP}\n"
            "import convlens\n"
            "study = convlens.load_study(sys.argv[1])\n"
            "loaded = lambda: [m for m in ('torch', 'scipy') if m in sys.modules]\n"
            "print(loaded())\n"
            "for name in ('eda_class_balance', 'probe_shift', 'cnn_32_64_128_curves', "
            "'experiment_kernel-size_confusion'):\n"
            "    study.plot(name)\n"
            "print(loaded())\n"
            "study.plot('eda_samples')\n"  # loads the digits (scikit-learn, which imports scipy)
            "print('torch' in sys.modules)\n"
            "study.plot('probe_filters')\n"
            "print('torch' in sys.modules)\n")
    done = subprocess.run([sys.executable, "-c", code, str(digits_study)], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.split("\n")[:4] == ["[]", "[]", "False", "True"], done.stdout
    # The study's kernels are started before its notebook is written: the last one imports the model code, as the
    # report's model figures are in the last share however many kernels run it.
    import nbformat

    from convlens.report import notebook
    nb = nbformat.read(digits_study / "report.ipynb", as_version=4)
    for parts in range(1, notebook.MAX_KERNELS + 1):
        shares = notebook.cell_shares(nb, parts)
        assert [k for k, share in enumerate(shares) for i in share
                if any(f"study.plot('{name}')" in nb.cells[i].source for name in notebook.MODEL_FIGURES)] == \
            [parts - 1] * len(notebook.MODEL_FIGURES)


def _first_tile(fig, size: int) -> np.ndarray:
    """The (size, size, 4) tile of an image grid under its first row and column ticks."""
    ax = fig.axes[0]
    canvas = np.asarray(ax.images[0].get_array())
    top, left = (int(round(c - (size - 1) / 2)) for c in (ax.get_yticks()[0], ax.get_xticks()[0]))
    return canvas[top:top + size, left:left + size]


def test_every_report_figure_is_drawn_again_from_results_json_the_run_store_and_the_images(digits_study):
    import matplotlib.image
    from safetensors.numpy import load_file

    import convlens
    from convlens.report.figures import FROM_RESULTS
    study = convlens.load_study(digits_study)
    ds = convlens.load_dataset("digits")
    bars = study.plot("eda_class_balance").axes[0].patches
    heights = [int(b.get_height()) for b in bars]
    assert heights == np.bincount(ds.train_labels, minlength=10).tolist() + \
        np.bincount(ds.test_labels, minlength=10).tolist()  # train bars, then test bars
    shift = study.plot("probe_shift").axes[0]
    curves = _results(digits_study)["probes"]["shift"]["curves"]
    assert [line.get_label() for line in shift.get_lines()][:len(curves)] == list(curves)
    rebuilt = study.rebuilt()
    assert set(FROM_RESULTS) - {"probe_augmentation", "probe_weight_sharing"} < set(rebuilt)  # these two: --full
    assert "probe_augmentation" not in rebuilt and "probe_weight_sharing" not in rebuilt
    assert set(rebuilt) == set(study.figures)  # every figure of the report, and nothing else
    for name in rebuilt:
        fig = study.plot(name)
        buffer = io.BytesIO()
        fig.savefig(buffer, format="png", dpi=110, bbox_inches="tight")  # as the study saved it
        buffer.seek(0)
        np.testing.assert_array_equal(matplotlib.image.imread(buffer), matplotlib.image.imread(study.figures[name]),
                                      err_msg=name)  # the same picture, pixel for pixel
    confusion = study.plot("mlp_128_64_confusion").axes[0].images[0].get_array()
    level = digits_study / "experiments" / "cnn-vs-mlp" / "runs" / "model=mlp-128-64"
    summed = np.sum([json.loads(p.read_text())["confusion_matrix"] for p in level.glob("seed*/metrics.json")], axis=0)
    assert np.allclose(confusion, 100 * summed / summed.sum(axis=1, keepdims=True))  # % of each true class
    # The kernels and the sample images, against the weights file and the dataset read here.
    weights = load_file(digits_study / "experiments" / "kernel-size" / "runs" / "kernel_size=3" / "seed0" /
                        "model.safetensors")
    [first] = [w for k, w in weights.items() if w.ndim == 4 and w.shape[1:] == (1, 3, 3)]
    # Each grid is one picture: the tile under the first row and column labels, against the colours imshow gives
    # the kernel (red/blue around 0) and the sample (its own grey range) on an axes of their own.
    lim = np.abs(first[0, 0]).max()
    expected = matplotlib.colormaps["RdBu_r"](Normalize(-lim, lim)(first[0, 0]))
    np.testing.assert_allclose(_first_tile(study.plot("probe_filters"), 15), np.kron(expected, np.ones((5, 5, 1))),
                               atol=1e-6)  # 3x3 beside 5x5 kernels: tiles of 15 px
    index = _results(digits_study)["eda"]["sample_indices"][ds.class_names[0]][0]
    expected = matplotlib.colormaps["gray_r"](Normalize()(ds.train_images[index].squeeze().astype(float)))
    np.testing.assert_allclose(_first_tile(study.plot("eda_samples"), 8), expected, atol=1e-6)
    with pytest.raises(convlens.UsageError, match="no figure 'nope' to draw"):
        study.plot("nope")


def test_the_notebooks_kernel_boots_beside_the_onnx_export(digits_study):
    """Where the warm kernel starts (one core for ~3 s): beside the one-thread ONNX export when there is one
    (bench/README.md, "One session, two paces"), and the notebook runs in it."""
    results = _results(digits_study)
    assert results["deployment"]["onnx"] is True and (digits_study / "model" / "model.onnx").exists()
    expected = ["analysis", "kernel", "export"]
    assert [s for s in DIGITS_STUDY_STAGES if s in expected] == expected
    assert results["study"]["notebook"]["executed"] is True


def test_without_an_onnx_export_the_notebooks_kernel_boots_beside_the_analysis(tmp_path):
    """No ONNX export (onnx: false, or no onnx extra): the kernel starts before the analysis instead, and the
    notebook still runs in it."""
    from convlens.study import pipeline
    from convlens.study.config import load_study_config
    with pytest.MonkeyPatch.context() as patch:
        order = recording_stages(patch)
        notebook_up_to_its_first_figure(patch)
        config = load_study_config("quick", dataset="digits", seeds=2, epochs=1, onnx=False)
        results = pipeline.run_study(config, tmp_path / "study")
    expected = ["kernel", "analysis", "export"]
    assert [s for s in order if s in expected] == expected
    assert results["study"]["notebook"]["executed"] is True
    assert results["deployment"]["onnx"] is False and not (tmp_path / "study" / "model" / "model.onnx").exists()
