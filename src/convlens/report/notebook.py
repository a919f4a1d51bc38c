"""report.ipynb: the report as a notebook a student can rerun and change.

The same sections as report.md (its generated text, cut at headings and figures, as Markdown cells), each
followed by code that uses the public API on this directory: the headline numbers, each experiment's table and
every figure are drawn again from results.json, the run store and the study's images (study/sections.py
``figure_drawers``). Plain nbformat 4, a python3 kernel, no extensions: it opens in Jupyter and
Colab. Saved executed (nbclient, a real ipykernel) when the notebook extra is installed, so it reads without a kernel.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

from convlens.atomic_files import atomic_write_text

NOTEBOOK_FILE = "report.ipynb"
SETUP = '''# Elsewhere (e.g. Colab): `pip install convlens`, upload this study's directory and name it here.
STUDY = "."  # the study directory: results.json, figures/, experiments/

import convlens

study = convlens.load_study(STUDY)
print(study.headline())'''
_IMAGE = re.compile(r"^!\[(?P<caption>[^\]]*)\]\((?P<path>[^)]+\.png)\)\s*$", re.M)
_EXPERIMENT_PLOT = re.compile(r"^experiments/(?P<name>[\w.-]+)/plots/(?P<kind>\w+)\.png$")
# Names that go into code cells: results.json may come from elsewhere, and a notebook's code is run. Anything
# else (quotes, brackets, newlines) gets no code cell; values are written with repr() in any case.
_SAFE_NAME = re.compile(r"[A-Za-z0-9_.-]{1,100}")  # whole names only: fullmatch


def _figure_code(path: str, rebuilt: set[str]) -> str | None:
    plot = _EXPERIMENT_PLOT.match(path)
    stem = Path(path).stem
    if plot and _SAFE_NAME.fullmatch(plot["name"]):  # rebuilt from the run store
        return f"study.experiment({plot['name']!r}).plot({plot['kind']!r})"
    if not _SAFE_NAME.fullmatch(stem):
        return None
    if stem in rebuilt:
        return f"study.plot({stem!r})  # drawn again from results.json, the run store and the images"
    return f"study.figure({stem!r})  # the saved figure"


def _table_code(name: str) -> str:
    return (f"experiment = study.experiment({name!r})\n"
            "experiment  # per level mean ± std and 95% CI; every comparison: paired difference, Holm p, verdict\n"
            "# experiment.table() and experiment.comparisons() are DataFrames, experiment.runs() one row per run.\n"
            "# More seeds, in place (resumes; then rerun `convlens study` to update the report):\n"
            "# experiment.run_more(seeds=5)")


def notebook_cells(markdown: str, experiments: list[str], rebuilt: set[str] = frozenset()) -> list[tuple[str, str]]:
    """(kind, source) cells from report.md: Markdown between headings and figures, code for each figure and, after
    each experiment's heading, its statistics table."""
    cells: list[tuple[str, str]] = []
    blocks = re.split(r"(?m)^(?=#{1,3} )", markdown)
    for block in blocks:
        heading = block.splitlines()[0] if block.strip() else ""
        name = heading[4:].strip() if heading.startswith("### ") else None
        table = name in experiments and bool(_SAFE_NAME.fullmatch(name))
        position = 0
        for image in _IMAGE.finditer(block):
            text = block[position:image.start()].strip()
            if text:
                cells.append(("markdown", text))
            if table:  # the experiment's statistics first, under its heading and text
                cells.append(("code", _table_code(name)))
                table = False
            code = _figure_code(image["path"], rebuilt)
            if code:
                cells.append(("code", code))
            position = image.end()
        rest = block[position:].strip()
        if rest:
            cells.append(("markdown", rest))
        if table:
            cells.append(("code", _table_code(name)))
        if heading.startswith("# ") and len(cells) == 1:
            cells.append(("code", SETUP))
    return cells


def write_notebook(out: Path, drawn: set[str], *, execute: bool = True, timeout: int = 600) -> tuple[Path, bool]:
    """Write OUT/report.ipynb from OUT/report.md, with code drawing each figure named in ``drawn`` again; returns
    (path, executed). Not executed when nbclient or ipykernel is missing (or ``execute`` is False): then it is
    saved without outputs."""

    import nbformat
    from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook
    out = Path(out)
    results = json.loads((out / "results.json").read_text())
    cells = [new_code_cell(src) if kind == "code" else new_markdown_cell(src)
             for kind, src in notebook_cells((out / "report.md").read_text(), list(results["experiments"]),
                                             drawn)]
    notebook = new_notebook(cells=cells, metadata={
        "kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"},
        "language_info": {"name": "python"}})
    executed = False
    if execute:
        try:
            import ipykernel  # noqa: F401
            from nbclient import NotebookClient
        except ImportError:
            pass
        else:
            import subprocess
            # The kernel listens on 127.0.0.1 only (Jupyter's default) and warns on stderr that TCP is not
            # encrypted: that is not the reader's concern here, and an error in a cell is reported anyway.
            NotebookClient(notebook, kernel_name="python3", timeout=timeout,
                           resources={"metadata": {"path": str(out)}}).execute(stderr=subprocess.DEVNULL)
            executed = True
    nbformat.validate(notebook)
    atomic_write_text(out / NOTEBOOK_FILE, nbformat.writes(notebook))
    return out / NOTEBOOK_FILE, executed
