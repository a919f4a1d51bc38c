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
