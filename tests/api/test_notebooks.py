"""The notebooks run: the tutorial in examples/ (on the digits, 2 seeds, 1 epoch), executed with nbclient and a
real ipykernel, shows the numbers its experiment directory holds."""

from __future__ import annotations

import json
from pathlib import Path

import nbformat
from nbclient import NotebookClient

EXAMPLE = Path(__file__).parents[2] / "examples" / "kernel-size.ipynb"


def execute(notebook, cwd: Path):
    NotebookClient(notebook, kernel_name="python3", timeout=600, resources={"metadata": {"path": str(cwd)}}).execute()
    errors = [o for c in notebook.cells if c.cell_type == "code" for o in c.outputs if o.output_type == "error"]
    assert not errors, errors
    return notebook


def outputs(cell) -> str:
    return "".join(o.get("text", "") + "".join(str(v) for v in o.get("data", {}).values()) for o in cell.outputs)


def test_the_tutorial_runs_and_shows_its_experiments_numbers(tmp_path):
    notebook = nbformat.read(EXAMPLE, as_version=4)
    [parameters] = [c for c in notebook.cells if "parameters" in c.metadata.get("tags", [])]
    parameters.source = 'DATASET, SEEDS, EPOCHS = "digits", 2, 1'
    execute(notebook, tmp_path)
    summary = json.loads((tmp_path / "runs" / "kernel-size-tutorial" / "summary.json").read_text())
    assert [lv["n"] for lv in summary["levels"]] == [2, 2, 2]
    shown = "".join(outputs(c) for c in notebook.cells if c.cell_type == "code")
    for lv in summary["levels"]:  # the HTML table, as the CLI formats the numbers
        acc = lv["test_accuracy"]
        assert f"{acc['mean'] * 100:.2f} ± {acc['std'] * 100:.2f}" in shown
    for sentence in summary["conclusions"]:
        assert sentence in shown
    assert "image/png" in json.dumps([c.outputs for c in notebook.cells if "plot(" in c.source])
    [run] = [c for c in notebook.cells if ".run(" in c.source]  # the progress bar: rich, drawn in a widget
    assert any("application/vnd.jupyter.widget-view+json" in o.get("data", {}) for o in run.outputs)


def test_names_from_a_foreign_results_json_never_become_code():
    """results.json (hence report.md) may come from elsewhere and the notebook's cells are run: a crafted
    experiment name or figure path gets no code cell, and the code that is generated is only calls on ``study``."""
    import ast

    from convlens.report.notebook import notebook_cells
    evil = 'x"); __import__("os").system("id"); ("'
    markdown = (f"# Title\n\n## 4. Experiments\n\n### {evil}\n\ntext\n\n![a](experiments/{evil}/plots/curves.png)\n\n"
                "![b](figures/eda'+__import__('os').getcwd()+'.png)\n\n### kernel-size\n\n"
                "![c](experiments/kernel-size/plots/curves.png)\n")
    cells = notebook_cells(markdown, [evil, "kernel-size"])
    code = [source for kind, source in cells if kind == "code"]
    assert not any("__import__" in source or "system" in source for source in code)
    for source in code:
        for node in ast.walk(ast.parse(source)):
            if isinstance(node, ast.Call):  # study.x(...), experiment..., print(study.headline()), load_study
                assert ast.unparse(node.func).split(".")[0] in ("study", "convlens", "print"), source
    assert "study.experiment('kernel-size').plot('curves')" in code
