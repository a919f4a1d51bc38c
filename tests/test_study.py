"""`convlens study` end to end on a small real subset: the report embeds every image, every number it prints
equals the results files, a rerun reuses the runs, and the HTML opens cleanly in headless Chromium."""

from __future__ import annotations

import base64
import dataclasses
import html
import json
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
import yaml
from PIL import Image

from convlens.cli import main
from convlens.data import dataset as dataset_module
from convlens.errors import UsageError
from convlens.experiments import local
from convlens.report.render import FORMATS, lookup
from convlens.study.config import CORE_EXPERIMENTS, load_study_config
from tests.conftest import record_page_problems, skip_notebook_execution

TINY = {"train_subset": 600, "test_subset": 300, "epochs": 1, "seeds": 2, "shift_max": 2,
        "experiments": [{"name": "kernel-size", "levels": [3, 5]}, {"name": "weight-sharing"},
                        {"name": "augmentation"}]}


LOADS: list[str] = []  # the datasets read from disk while the study fixture ran


@pytest.fixture(scope="module")
def study(tmp_path_factory, fashion):
    root = tmp_path_factory.mktemp("study")
    config = root / "study.yaml"
    config.write_text(yaml.safe_dump(TINY))
    out = root / "out"
    real = dataset_module.load_arrays

    def counted(located, manifest):
        LOADS.append(manifest.name)
        return real(located, manifest)
    cached = dict(local._DATASETS)  # what earlier tests left in this process's cache
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(dataset_module, "load_arrays", counted)
        skip_notebook_execution(patch)  # the notebook is tested on the digits study (tests/test_study_datasets.py)
        assert main(["study", "--quick", "--config", str(config), "--out", str(out), "--quiet"]) == 0
    assert local._DATASETS == cached  # the study's dataset is not kept in the cache after it
    return out, config


def _results(out: Path) -> dict:
    return json.loads((out / "results.json").read_text())


def test_every_image_is_embedded_and_nothing_is_loaded_from_outside(study):
    out, _ = study
    page = (out / "report.html").read_text()
    sources = re.findall(r'<img [^>]*src="([^"]+)"', page)
    assert len(sources) == (out / "report.md").read_text().count("![") >= 25
    for src in sources:
        assert src.startswith("data:image/png;base64,")
        assert base64.b64decode(src.split(",", 1)[1])[:8] == b"\x89PNG\r\n\x1a\n"
    assert not re.search(r'(src|href)="(?!data:|#)', page)  # no file, no URL: one self-contained file


def test_every_number_in_the_report_equals_the_results_file(study):
    out, _ = study
    results, page = _results(out), (out / "report.html").read_text()
    facts = re.findall(r'<span class="fact" data-key="([^"]+)" data-format="([^"]+)">([^<]*)</span>', page)
    assert len(facts) > 150
    for key, fmt, text in facts:
        assert html.unescape(text) == FORMATS[fmt](lookup(results, html.unescape(key))), key
    md = (out / "report.md").read_text()
    for section in (results["eda"], results["baseline"], results["design"], *results["probes"].values()):
        for line in section.get("findings", []):
            assert line in md
    for summary in results["experiments"].values():
        for line in summary["conclusions"]:
            assert line in md
    for section in ("baseline", "design"):  # shares to 2 decimals in both sections (1 and 2 before)
        for pair in results[section]["most_confused"]:
            assert f"{pair['pair'][0]} / {pair['pair'][1]} ({pair['share'] * 100:.2f}%" in md
    # the mode is stated, with what each run trains and validates on (its config.json records the split)
    split = json.loads((out / "experiments" / "cnn-vs-mlp" / "runs" / "model=cnn-32-64-128" / "seed0" / "config.json")
                       .read_text())["data"]
    assert split["n_train"] + split["n_val"] == 600 and split["n_val"] == 60  # the recipe's 10%, by hand
    assert (f"**Quick look.** This report uses the first 600 training images only ({split['n_train']} to train each "
            f"run and {split['n_val']} to validate it, split anew for each seed)") in md
    # how the recipe was chosen, and what that can do to these numbers, is said where the recipe is named
    assert "first version was tuned on Fashion-MNIST's test images, the test images of this report" in md
    assert "It was not tuned for the MLP, which can favour the CNN in comparisons with it." in md
    for placeholder in ("None", "nan", "{{", "{%", "TODO", "XXX"):
        assert placeholder not in md, placeholder


def test_an_accuracy_the_same_on_every_seed_gets_no_zero_width_interval(study):
    from convlens.report.render import _render_markdown
    results = _results(study[0])
    accuracy = results["design"]["test_accuracy"]
    assert accuracy["std"] > 0
    assert (f"CNN reaches {accuracy['mean'] * 100:.2f}% ± {accuracy['std'] * 100:.2f} pp (95% CI "
            f"{accuracy['ci95'][0] * 100:.2f}% to {accuracy['ci95'][1] * 100:.2f}%, n=2)"
            ) in _render_markdown(results, html_facts=False)
    accuracy.update(std=0.0, ci95=[accuracy["mean"], accuracy["mean"]])  # what mean_ci gives for equal accuracies
    assert f"CNN reaches {accuracy['mean'] * 100:.2f}% ± 0.00 pp (the same on every seed, n=2)" in _render_markdown(
        results, html_facts=False)


def test_results_equal_the_run_files(study):
    out, _ = study
    results = _results(out)
    assert set(results["experiments"]) == {"kernel-size", "weight-sharing", "augmentation", *CORE_EXPERIMENTS}
    for name, summary in results["experiments"].items():
        assert summary == json.loads((out / "experiments" / name / "summary.json").read_text())
    runs = out / "experiments" / "cnn-vs-mlp" / "runs"
    for model, name, section in (("mlp-128-64", "MLP", "baseline"), ("cnn-32-64-128", "CNN", "design")):
        accuracies = [json.loads((runs / f"model={model}" / f"seed{s}" / "metrics.json").read_text())["test_accuracy"]
                      for s in range(2)]
        assert results[section]["test_accuracy"]["mean"] == pytest.approx(np.mean(accuracies), abs=1e-12)
        shifted = results["probes"]["shift"]["per_seed"][name]
        assert [shifted[str(s)][0] for s in range(2)] == accuracies  # shift 0 is the plain test accuracy, exactly
        assert len(shifted["0"]) == TINY["shift_max"] + 1
    # MLP, CNN, CNN 5x5, both permuted, the locally connected network on both pixel orders, MLP and CNN with
    # shift augmentation: 9 configurations
    assert results["study"]["runs"]["distinct"] == 2 * 9 and results["study"]["wall_seconds"] > 0 and set(results["study"]["stage_seconds"]) >= {"eda", "report"}
    assert results["deployment"]["exported"] and (out / "model" / "model.safetensors").is_file()
    seed0 = json.loads((runs / "model=cnn-32-64-128" / "seed0" / "metrics.json").read_text())["test_accuracy"]
    assert results["deployment"]["test_accuracy"] == seed0  # the exported model is seed 0's, said beside the mean
    assert (f"seed 0, chosen before training as the first seed, not for its score: test accuracy {seed0 * 100:.2f}%, "
            f"where the mean over seeds is {results['design']['test_accuracy']['mean'] * 100:.2f}%") in \
        (out / "report.md").read_text()
    locality = results["probes"]["locality"]
    assert set(locality["models"]) == {"MLP", "CNN"} and locality["interaction"]["n"] == 2
    augmentation = results["probes"]["augmentation"]
    aug_runs = out / "experiments" / "augmentation" / "runs"
    for name, cell in (("MLP + shift aug", "model=mlp-128-64__recipe.augment=shift_2"),
                       ("CNN + shift aug", "model=cnn-32-64-128__recipe.augment=shift_2")):
        accuracies = [json.loads((aug_runs / cell / f"seed{s}" / "metrics.json").read_text())["test_accuracy"]
                      for s in range(2)]
        assert [augmentation["per_seed"][name][str(s)][0] for s in range(2)] == accuracies  # shift 0: plain accuracy
        assert json.loads((aug_runs / cell / "seed0" / "config.json").read_text())["recipe"]["augment"] == "shift:2"
    assert augmentation["family"] == 2 * TINY["shift_max"] and len(augmentation["curves"]) == 4
    assumptions = results["probes"]["assumptions"]
    ws_runs = out / "experiments" / "weight-sharing" / "runs"
    for name, model in (("LCN", "lcn-32-64-128"), ("CNN", "cnn-32-64-128")):
        accuracies = [json.loads((ws_runs / f"model={model}__pixels=permuted" / f"seed{s}" / "metrics.json")
                                 .read_text())["test_accuracy"] for s in range(2)]
        cell = assumptions["weight_sharing"]["cells"][name]["permuted"]["test_accuracy"]
        assert cell["mean"] == pytest.approx(np.mean(accuracies), abs=1e-12)
    assert assumptions["equivariance"]["stages"][:2] == ["block1 conv", "block1 pool"]
    assert [s["mean"] for s in assumptions["equivariance"]["similarity"][0]] == pytest.approx([1.0, 1.0], abs=1e-5)
    assert [b["block"] for b in assumptions["receptive_field"]["cnn"]["blocks"]] == ["block1", "block2", "block3"]
    assert assumptions["receptive_field"]["kernel_sizes"]["family"] == 3  # kernel 5 vs 3 at each block
    for run_dir in runs.glob("*/seed*"):  # run directories record the presets' architecture names
        assert json.loads((run_dir / "config.json").read_text())["model"]["name"] in {"mlp-128-64", "cnn-32-64-128"}


def test_the_report_says_which_arithmetic_the_runs_trained_in(study):
    from convlens.report.render import _render_markdown
    out, _ = study
    results = _results(out)
    recorded = [json.loads(f.read_text()) for f in (out / "experiments").rglob("metrics.json")]
    used = sorted({m["precision"] for m in recorded if "test_accuracy" in m})  # finished runs
    assert used and set(used) <= {"fp32", "bf16"} and results["study"]["runs"]["precisions"] == used
    assert f"trained in {' and '.join(used)}), " in (out / "report.md").read_text()
    del results["study"]["runs"]["precisions"]  # a study written before the key existed still renders
    assert "trained in" not in _render_markdown(results, html_facts=False)


def test_an_experiment_run_on_fewer_levels_than_its_built_in_names_no_level_that_did_not_run(study):
    """The study runs kernel sizes 3 and 5 of the built-in 3/5/7: the report says nothing of a 7x7 kernel."""
    from convlens.experiments.builtin import BUILTIN_EXPERIMENTS
    out, _ = study
    ran = [level["values"]["kernel_size"] for level in _results(out)["experiments"]["kernel-size"]["levels"]]
    built_in = BUILTIN_EXPERIMENTS["kernel-size"].factors[0].levels
    assert ran == [3, 5] and 7 in built_in
    section = (out / "report.md").read_text().split("\n### kernel-size\n", 1)[1].split("\n### ", 1)[0]
    assert "Kernel size in the default CNN" in section  # the experiment's description is there ...
    assert all(f"{k}x{k}" not in section and f"kernel_size={k}" not in section for k in set(built_in) - set(ran))
    assert all(f"kernel_size={k}" in section for k in ran)  # ... with the levels that ran


def test_the_study_reads_the_dataset_once_and_exports_its_first_test_image_of_each_class(study, fashion):
    out, _ = study
    report = (out / "report.md").read_text()  # Fashion-MNIST's files are checked against published md5s
    assert f"(`{fashion.source.directory}`), checksums verified." in report
    assert "convlens sagemaker train --role-arn ARN --bucket BUCKET --dry-run" in report  # the entry point's default
    assert LOADS == ["fashion-mnist"]  # not again for the runs trained in this process, nor for the export
    firsts = sorted(int(np.flatnonzero(fashion.test_labels == c)[0]) for c in range(10))
    with np.load(out / "model" / "examples.npz", allow_pickle=False) as examples:
        assert np.array_equal(examples["images"], fashion.test_images[firsts])
        assert examples["labels"].tolist() == fashion.test_labels[firsts].tolist()


def test_identical_runs_are_trained_once_and_a_rerun_with_nothing_changed_keeps_every_output(study, capsys,
                                                                                              monkeypatch, fashion,
                                                                                              tmp_path):
    out, config = study
    skip_notebook_execution(monkeypatch)  # as when the fixture ran: whether the notebook can run is an input
    cnn_run = out / "experiments" / "cnn-vs-mlp" / "runs" / "model=cnn-32-64-128" / "seed0"
    twin = out / "experiments" / "kernel-size" / "runs" / "kernel_size=3" / "seed0"
    assert (cnn_run / "model.safetensors").read_bytes() == (twin / "model.safetensors").read_bytes()
    before = _results(out)
    # every file but experiment.json, which planning writes again (the same bytes: checked below)
    files = {p: (p.stat().st_mtime_ns, p.read_bytes()) for p in out.rglob("*") if p.is_file()}
    assert main(["study", "--quick", "--config", str(config), "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "0 runs to train, and nothing else changed" in printed and "Report:" in printed
    assert "[analysis]" not in printed and "[export]" not in printed
    after = {p: (p.stat().st_mtime_ns, p.read_bytes()) for p in out.rglob("*") if p.is_file()}
    assert after.keys() == files.keys()
    rewritten = {p for p in files if after[p][0] != files[p][0]}
    assert {p.name for p in rewritten} <= {"experiment.json"}
    assert all(after[p][1] == files[p][1] for p in rewritten)
    # What the rerun skipped gives the same numbers when done again: the shift probe, recomputed from the runs.
    from convlens.experiments.store import RunStore
    from convlens.study.sections import shift_section
    ds = fashion.subset(TINY["train_subset"], TINY["test_subset"])
    shift = shift_section(RunStore(out / "experiments" / "cnn-vs-mlp"), TINY["seeds"], ds, TINY["shift_max"],
                          tmp_path / "figures", tmp_path)
    recomputed = json.loads(json.dumps(shift))  # as results.json holds it
    assert recomputed["per_seed"] == before["probes"]["shift"]["per_seed"]
    assert recomputed["tests"] == before["probes"]["shift"]["tests"]


def test_a_copied_study_says_how_many_of_its_runs_were_trained_before(study, capsys, tmp_path):
    """A study copied elsewhere (or resumed) has all its runs: the plan trains nothing and says how many runs it
    keeps, not "0 runs to train, 0 reused" as if it had none."""
    import hashlib

    from convlens.display import StudyProgress
    from convlens.study.pipeline import plan_experiments
    out, config = study
    copy = Path(shutil.copytree(out, tmp_path / "copy"))
    weights = [hashlib.sha256(p.read_bytes()).digest() for p in (copy / "experiments").rglob("model.safetensors")]
    distinct = len(set(weights))  # a run shared by two experiments is copied byte for byte
    assert 0 < distinct < len(weights)
    runs = plan_experiments(load_study_config("quick", config), copy)
    assert (runs.unique, runs.copies, runs.kept) == ([], [], distinct)
    StudyProgress(quiet=False).planned(60.0, len(runs.unique), len(runs.copies), runs.kept)
    assert capsys.readouterr().out.startswith(f"0 runs to train; {distinct} trained before are kept; estimated 1 min")


def _edit(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 1
    path.write_bytes(bytes(data))


def test_any_change_to_what_a_study_is_made_from_or_wrote_means_analysing_again(study, fashion, tmp_path,
                                                                               monkeypatch):
    from convlens.study import unchanged
    out = Path(shutil.copytree(study[0], tmp_path / "copy"))
    config = _results(out)["study"]["config"]
    stores = sorted(p for p in (out / "experiments").iterdir())
    ds = fashion

    def inputs(**changes) -> str | None:
        args = {"config": config, "dataset": ds, "out": out, "experiment_dirs": stores, "device_type": "cpu",
                "notebook_runs": False, **changes}
        return unchanged.study_inputs(args.pop("config"), args.pop("dataset"), args.pop("out"),
                                      args.pop("experiment_dirs"), **args)
    reference = inputs()
    unchanged.remember(out, reference)
    assert unchanged.unchanged(out, reference)
    digests = {reference}

    def differs(digest: str | None) -> None:
        assert digest is not None and digest not in digests
        digests.add(digest)
    differs(inputs(config={**config, "seeds": config["seeds"] + 1}))
    differs(inputs(device_type="cuda"))
    differs(inputs(notebook_runs=True))
    differs(inputs(out=study[0]))  # the same study in another directory: its record does not travel with it
    pixels = ds.train_images.copy()
    pixels[123, 4, 5] ^= 1
    differs(inputs(dataset=dataclasses.replace(ds, train_images=pixels)))
    differs(inputs(dataset=dataclasses.replace(ds, source=dataclasses.replace(ds.source, directory=tmp_path))))
    real_version = unchanged.metadata.version
    monkeypatch.setattr(unchanged.metadata, "version",
                        lambda name: "0.0" if name == "matplotlib" else real_version(name))
    differs(inputs())
    monkeypatch.undo()
    monkeypatch.setattr(unchanged, "_key", lambda: b"another user's secret")  # a record made elsewhere
    differs(inputs())
    monkeypatch.undo()
    # how the figures look: the matplotlibrc matplotlib reads, and its font list
    import matplotlib
    rc = tmp_path / "matplotlibrc"
    rc.write_text("font.size: 13\n")
    monkeypatch.setenv("MATPLOTLIBRC", str(rc))
    differs(inputs())
    monkeypatch.undo()
    fonts = tmp_path / "matplotlib-cache"
    fonts.mkdir()
    for font_list in Path(matplotlib.get_cachedir()).glob("fontlist-v*.json"):
        shutil.copy(font_list, fonts)
    [font_list] = fonts.glob("fontlist-v*.json")  # the study drew its figures: matplotlib listed the fonts
    monkeypatch.setattr(matplotlib, "get_cachedir", lambda: str(fonts))
    assert inputs() == reference
    font_list.write_text(font_list.read_text().replace("DejaVu Sans", "DejaVu Serif", 1))
    differs(inputs())
    monkeypatch.undo()
    assert inputs() == reference
    # convlens's own code: a copy of the package with one template changed
    package = Path(unchanged.convlens.__file__).parent
    code = Path(shutil.copytree(package, tmp_path / "convlens", ignore=shutil.ignore_patterns("__pycache__")))
    monkeypatch.setattr(unchanged.convlens, "__file__", str(code / "__init__.py"))
    assert inputs() == reference
    (code / "report" / "templates" / "report.md.j2").write_text(
        (code / "report" / "templates" / "report.md.j2").read_text() + "\n")
    differs(inputs())
    monkeypatch.undo()
    for run_file in ("cnn-vs-mlp/experiment.json", "locality/runs/model=mlp-128-64__pixels=permuted/seed1/metrics.json",
                     "kernel-size/runs/kernel_size=5/seed0/model.safetensors"):
        path = out / "experiments" / run_file
        kept = path.read_bytes()
        _edit(path)
        differs(inputs())
        path.write_bytes(kept)
    assert inputs() == reference and unchanged.unchanged(out, reference)

    # an output changed or gone: analyse again
    for output in ("results.json", "report.html", "figures/probe_shift.png", "model/model.onnx",
                   "experiments/kernel-size/summary.json", "experiments/locality/plots/curves.png"):
        path = out / output
        kept = path.read_bytes()
        _edit(path)
        assert not unchanged.unchanged(out, reference), output
        path.unlink()
        assert not unchanged.unchanged(out, reference), output
        path.write_bytes(kept)
        assert unchanged.unchanged(out, reference)
    # links are not followed: one out of the directory is neither read nor part of the record
    (out / "figures" / "outside.png").symlink_to(tmp_path / "convlens" / "__init__.py")
    assert unchanged.unchanged(out, reference) and "figures/outside.png" not in unchanged.study_outputs(out)
    # a file that cannot be read: no digest, so the study counts as changed (and nothing is recorded)
    real_add_file = unchanged._add_file

    def unreadable(digest, label, path):
        if path.name == "metrics.json":
            raise PermissionError(13, "Permission denied", str(path))
        real_add_file(digest, label, path)
    monkeypatch.setattr(unchanged, "_add_file", unreadable)
    assert inputs() is None and not unchanged.unchanged(out, None)
    monkeypatch.undo()
    (out / unchanged.STATE_FILE).write_text("{not json")
    assert not unchanged.unchanged(out, reference)
    unchanged.forget(out)
    assert not (out / unchanged.STATE_FILE).exists() and not unchanged.unchanged(out, reference)


def test_the_html_report_opens_in_headless_chromium_from_a_file_url(study, browser):
    out, _ = study
    page = browser.new_page(viewport={"width": 1200, "height": 900})
    problems = record_page_problems(page)
    page.goto((out / "report.html").as_uri())
    page.wait_for_load_state("load")
    images = page.evaluate("Array.from(document.images).map(i => [i.complete, i.naturalWidth])")
    assert images and all(done and width > 0 for done, width in images)
    assert page.locator("h2").count() >= 7
    shot = out / "report.png"
    page.screenshot(path=str(shot), full_page=False)
    assert np.asarray(Image.open(shot)).std() > 10  # not a blank page
    assert problems == []
    page.close()


def test_report_refuses_a_results_file_of_another_format(study, tmp_path, capsys):
    out, _ = study
    old = tmp_path / "old"
    old.mkdir()
    results = _results(out)
    (old / "results.json").write_text(json.dumps({**results, "format": "convlens-study/1"}))
    assert main(["report", str(old)]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "has format 'convlens-study/1'" in err
    assert not (old / "report.html").exists()


def _figure_paths(node, path=()):
    """(key path, value) of every string in results.json that names a .png."""
    if isinstance(node, dict):
        for k, v in node.items():
            yield from _figure_paths(v, (*path, k))
    elif isinstance(node, list):
        for i, v in enumerate(node):
            yield from _figure_paths(v, (*path, i))
    elif isinstance(node, str) and node.endswith(".png"):
        yield path, node


@pytest.mark.parametrize("escape, message", [
    ("../secret.png", "outside the study directory"), ("ABSOLUTE", "outside the study directory"),
    ("figures/link.png", "outside the study directory"),
    # not a .png: it was left in the page as a link (<img src="figures/../../../etc/passwd">), not embedded
    ("figures/../../../etc/passwd", "names a figure that is not a .png file: figures/../../../etc/passwd"),
    ("https://example.com/x.png", "names a figure that does not exist")])  # a remote image: not self-contained
def test_report_embeds_no_file_from_outside_the_study_directory(study, tmp_path, capsys, escape, message):
    out, _ = study
    copy = tmp_path / "study"
    shutil.copytree(out, copy)
    secret = tmp_path / "secret.png"
    secret.write_bytes((out / "figures" / next(p.name for p in (out / "figures").glob("*.png"))).read_bytes())
    (copy / "figures" / "link.png").symlink_to(secret)
    results = _results(copy)
    (key, _), *_ = list(_figure_paths(results))
    node = results
    for k in key[:-1]:
        node = node[k]
    node[key[-1]] = str(secret) if escape == "ABSOLUTE" else escape
    (copy / "results.json").write_text(json.dumps(results))
    (copy / "report.html").unlink()
    assert main(["report", str(copy)]) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1
    assert not (copy / "report.html").exists()


def test_text_from_results_json_cannot_inject_html_into_the_report(study, tmp_path, monkeypatch):
    out, _ = study
    skip_notebook_execution(monkeypatch)
    copy = tmp_path / "study"
    shutil.copytree(out, copy)
    results = _results(copy)
    experiment = next(iter(results["experiments"].values()))
    experiment["conclusions"][0] = '<script>alert("x")</script><img src=x onerror=alert(1)>'
    (copy / "results.json").write_text(json.dumps(results))
    assert main(["report", str(copy)]) == 0
    page = (copy / "report.html").read_text()
    assert "<script>alert" not in page and "<img src=x" not in page
    assert "&lt;script&gt;alert" in page  # shown as text
    assert '<script>alert("x")</script>' in (copy / "report.md").read_text()  # the Markdown keeps the text


def test_report_on_an_altered_results_file_is_one_line(study, tmp_path, capsys):
    out, _ = study
    results = _results(out)
    del results["study"]
    (tmp_path / "results.json").write_text(json.dumps(results))
    assert main(["report", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "incomplete or altered" in err and len(err.strip().splitlines()) == 1


@pytest.mark.parametrize("argv, message", [
    (["study", "--quick", "--full"], "--quick and --full exclude each other"),
    (["study", "--seeds", "0"], "seeds: Input should be greater than or equal to 2"),
    (["report", "/nonexistent/study"], "results.json not found"),
    (["study", "--precision", "fp16"], "precision: Input should be 'fp32', 'bf16' or 'auto'"),
    (["study", "--epochs", "0"], "epochs: Input should be greater than or equal to 1"),
])
def test_study_usage_errors_are_one_line_with_exit_2(capsys, argv, message):
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1


def test_config_files_are_validated_at_the_edge(tmp_path):
    bad = tmp_path / "bad.yaml"
    for text, message in (("epochs: 2\nbogus: 1\n", "bogus: Extra inputs are not permitted"),
                          ("experiments: [{name: nope}]\n", "unknown experiment 'nope'"),
                          ("experiments: [{name: kernel-size, levels: [3, -1]}]\n", "kernel_size"),
                          ("- a list\n", "expected a mapping"),
                          ("experiments: [{name: cnn-vs-mlp, levels: [mlp, cnn]}]\n",
                           "cnn-vs-mlp always runs with its built-in levels")):
        bad.write_text(text)
        with pytest.raises(UsageError, match=re.escape(message)):
            load_study_config("default", bad)


def test_presets_meet_what_the_modes_promise():
    default, quick, full = (load_study_config(m) for m in ("default", "quick", "full"))
    assert default.seeds >= 3 and default.train_subset is None
    assert [s.name for s in default.experiment_specs()] == ["kernel-size", "cnn-vs-mlp", "locality"]
    assert default.experiment_specs()[0].factor.levels == [3, 5]
    assert quick.seeds >= 3 and quick.train_subset is not None and quick.test_subset is not None
    # quick is the default study on less data: the same experiments, levels, seeds and recipe
    same = lambda c: [(s.name, s.factor.levels, s.seeds, s.recipe) for s in c.experiment_specs()]  # noqa: E731
    assert same(quick) == same(default)
    names = [s.name for s in full.experiment_specs()]
    assert names == ["kernel-size", "depth", "filters", "weight-sharing", "augmentation", "cnn-vs-mlp", "locality"]
    assert full.experiment_specs()[0].factor.levels == [3, 5, 7]
    assert load_study_config("default", seeds=5).seeds == 5


def test_a_studys_precision_and_epochs_reach_every_run_and_unset_keep_the_recipes(tmp_path):
    from convlens.config import RECIPES
    from convlens.experiments.spec import resolve_levels
    chosen = tmp_path / "bf16.yaml"
    chosen.write_text("precision: bf16\nepochs: 5\n")
    for config, precision, epochs in ((load_study_config("default", chosen), "bf16", 5),
                                      (load_study_config("quick", precision="fp32"), "fp32", RECIPES["fast"].epochs),
                                      (load_study_config("default"), "auto", RECIPES["fast"].epochs)):
        recipes = [level.config.recipe for spec in config.experiment_specs() for level in resolve_levels(spec)]
        assert len(recipes) == 8  # kernel 3 and 5; MLP and CNN; each of those on ordered and permuted pixels
        assert {(r.precision, r.epochs) for r in recipes} == {(precision, epochs)}
    from convlens.api.study import Study
    kept = Study(load_study_config("default", chosen), precision=None, epochs=None, seeds=4).config  # None: unset
    assert (kept.precision, kept.epochs, kept.seeds) == ("bf16", 5, 4)


def _fact(page: str, key: str) -> str:
    match = re.search(rf'<span class="fact" data-key="{re.escape(html.escape(key))}"[^>]*>([^<]*)</span>', page)
    assert match, key
    return html.unescape(match.group(1))


def _p(p: float) -> str:  # the report's p format, written out again here
    return "<0.001" if p < 0.001 else f"{p:.3f}"


def test_headline_numbers_recomputed_from_the_run_files_match_the_html(study):
    """Means, intervals and (Holm-corrected) p-values recomputed from each run's metrics.json with numpy, scipy
    and statsmodels: a second route to the numbers the report prints."""
    from scipy import stats as sps
    from statsmodels.stats.multitest import multipletests
    out, _ = study
    page = (out / "report.html").read_text()

    def accuracies(experiment: str, level: str) -> np.ndarray:
        runs = out / "experiments" / experiment / "runs" / level.replace(" ", "__")
        metrics = [json.loads((runs / f"seed{s}" / "metrics.json").read_text()) for s in range(TINY["seeds"])]
        return np.array([m["test_correct"] / m["n_test"] for m in metrics])

    mlp, cnn = accuracies("cnn-vs-mlp", "model=mlp-128-64"), accuracies("cnn-vs-mlp", "model=cnn-32-64-128")
    assert _fact(page, "baseline.test_accuracy.mean") == f"{mlp.mean() * 100:.2f}%"
    assert _fact(page, "design.test_accuracy.std") == f"{cnn.std(ddof=1) * 100:.2f} pp"
    lo, hi = sps.t.interval(0.95, len(cnn) - 1, loc=cnn.mean(), scale=sps.sem(cnn))
    assert _fact(page, "design.test_accuracy.ci95.0") == f"{max(lo, 0) * 100:.2f}%"  # an accuracy: cut to 0-100%
    assert _fact(page, "design.test_accuracy.ci95.1") == f"{min(hi, 1) * 100:.2f}%"
    assert _fact(page, "experiments.cnn-vs-mlp.comparisons.0.diff") == f"{(cnn - mlp).mean() * 100:+.2f} pp"
    assert _fact(page, "experiments.cnn-vs-mlp.comparisons.0.p_holm") == _p(sps.ttest_rel(cnn, mlp).pvalue)

    cells = {(m, px): accuracies("locality", f"model={m} pixels={px}")
             for m in ("mlp-128-64", "cnn-32-64-128") for px in ("original", "permuted")}
    M, C = "mlp-128-64", "cnn-32-64-128"
    raw = [sps.ttest_rel(cells[C, "original"], cells[M, "original"]).pvalue,
           sps.ttest_rel(cells[C, "permuted"], cells[M, "permuted"]).pvalue,
           sps.ttest_rel(cells[M, "permuted"], cells[M, "original"]).pvalue,
           sps.ttest_rel(cells[C, "permuted"], cells[C, "original"]).pvalue,
           sps.ttest_rel(cells[C, "permuted"] - cells[C, "original"], cells[M, "permuted"] - cells[M, "original"]).pvalue]
    corrected = multipletests(raw, method="holm")[1]
    for i, p in enumerate(corrected):
        assert _fact(page, f"experiments.locality.comparisons.{i}.p_holm") == _p(p)
    interaction = (cells[C, "permuted"] - cells[C, "original"]) - (cells[M, "permuted"] - cells[M, "original"])
    assert _fact(page, "experiments.locality.comparisons.4.diff") == f"{interaction.mean() * 100:+.2f} pp"
    # The headline's CNN-vs-MLP test is also the locality family's first: both verdicts are printed, each with its
    # family's correction (they disagreed in a quick study: p=0.011 alone, p=0.054 among the 5)
    headline = next(line for line in (out / "report.md").read_text().splitlines() if line.startswith("**Headline.**"))
    assert f"significantly higher (p={_p(sps.ttest_rel(cnn, mlp).pvalue)}" in headline or \
        f"no significant difference (p={_p(sps.ttest_rel(cnn, mlp).pvalue)}" in headline
    assert ("The same comparison, on the same runs, is one of the locality experiment's 5 (section 4), corrected "
            "within that family: ") in headline and f"(p={_p(corrected[0])}, n={TINY['seeds']})." in headline
    assert headline.endswith("The cnn-vs-mlp result before it is the study's primary comparison: its family of "
                             "one was fixed by the study's design before anything trained.")  # said up front
    # the train-minus-validation gap with its spread, from each run's last epoch (it was printed as a bare mean)
    runs = out / "experiments" / "cnn-vs-mlp" / "runs" / "model=cnn-32-64-128"
    last = [json.loads((runs / f"seed{s}" / "metrics.json").read_text())["history"][-1] for s in range(TINY["seeds"])]
    gap = np.array([e["train_eval_accuracy"] - e["val_accuracy"] for e in last])
    lo, hi = sps.t.interval(0.95, len(gap) - 1, loc=gap.mean(), scale=sps.sem(gap))
    assert [_fact(page, f"design.overfit_gap.{k}") for k in ("mean", "std", "ci95.0", "ci95.1")] == [
        f"{gap.mean() * 100:+.2f} pp", f"{gap.std(ddof=1) * 100:.2f} pp", f"{lo * 100:+.2f} pp", f"{hi * 100:+.2f} pp"]


def test_every_experiment_reports_mcnemar_and_a_flip_gallery(study):
    out, _ = study
    results, md = _results(out), (out / "report.md").read_text()
    for name, summary in results["experiments"].items():
        evidence = [c["evidence"] for c in summary["comparisons"] if c.get("evidence")]
        assert evidence and all(len(e["per_seed"]) == TINY["seeds"] for e in evidence), name
        galleries = results["experiment_details"][name]["galleries"]
        assert galleries and all(f"]({path})" in md for path in galleries.values()), name
        assert f"{summary['comparisons'][0]['label']}, image by image (McNemar's exact test" in md


@pytest.mark.parametrize("name", ["probe_weight_sharing", "probe_augmentation", "probe_equivariance",
                                  "probe_receptive_field", "cnn_32_64_128_missed"])
def test_the_full_studys_extra_figures_are_drawn_again_pixel_for_pixel(study, name):
    import io

    import matplotlib.image

    import convlens
    loaded = convlens.load_study(study[0])
    assert name in loaded.rebuilt()
    buffer = io.BytesIO()
    loaded.plot(name).savefig(buffer, format="png", dpi=110, bbox_inches="tight")  # as the study saved it
    buffer.seek(0)
    np.testing.assert_array_equal(matplotlib.image.imread(buffer), matplotlib.image.imread(loaded.figures[name]))


def test_unset_workers_mean_one_on_the_cpu_and_one_per_distinct_level_on_a_gpu(tmp_path, monkeypatch):
    import torch

    from convlens.experiments.local import seed_groups
    from convlens.experiments.run import Backend
    from convlens.study import pipeline
    default, full = load_study_config("default"), load_study_config("full")
    assert default.workers is None
    assert pipeline.study_workers(default, Backend()) == (1 if not torch.cuda.is_available() else 5)
    assert pipeline.study_workers(default.model_copy(update={"workers": 3}), Backend()) == 3
    monkeypatch.setattr(pipeline, "pick_device", lambda requested: torch.device("cuda"))
    monkeypatch.setattr(pipeline.os, "sched_getaffinity", lambda pid: set(range(16)))  # the H100 machine's cores
    # the planner's own count: distinct runs after sharing identical ones between experiments, per seed
    one = {"workers": 1}  # planning reads a resolved count
    planned = pipeline.plan_experiments(default.model_copy(update=one), tmp_path / "default")
    assert len(planned.unique) == 15 and len(seed_groups(planned.unique)) == 5  # what the pool receives
    assert pipeline.study_workers(default, Backend()) == 5
    monkeypatch.setattr(pipeline.os, "sched_getaffinity", lambda pid: {0, 1})
    assert pipeline.study_workers(default, Backend()) == 2  # no more processes than cores
    monkeypatch.setattr(pipeline.os, "sched_getaffinity", lambda pid: set(range(16)))
    assert len(pipeline.plan_experiments(full.model_copy(update=one), tmp_path / "full").unique) // full.seeds > 8
    assert pipeline.study_workers(full, Backend()) == pipeline.GPU_WORKERS_MAX == 8
    assert pipeline.study_workers(default, Backend("ray")) == 1
    assert pipeline.study_workers(default, Backend(gpus_per_run=0.25)) == 1
