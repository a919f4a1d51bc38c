"""The package's import graph has no cycle: every import inside src/convlens, including the ones deferred into
functions (which hide a cycle instead of removing it), points one way."""

from __future__ import annotations

import ast
from pathlib import Path

import convlens

SRC = Path(convlens.__file__).parent.parent


def import_graph(src: Path, package: str) -> dict[str, set[str]]:
    """module -> the package's modules it imports (absolute imports, at any depth of the file)."""
    modules = {}
    for path in (src / package).rglob("*.py"):
        parts = list(path.relative_to(src).with_suffix("").parts)
        modules[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    graph: dict[str, set[str]] = {m: set() for m in modules}
    for module, path in modules.items():
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                assert node.level == 0, f"{path}:{node.lineno}: a relative import; convlens imports absolutely"
                # `from a.b import c` imports the module a.b.c when there is one, else a.b
                targets = [f"{node.module}.{a.name}" if f"{node.module}.{a.name}" in modules else node.module
                           for a in node.names]
            else:
                continue
            for target in targets:
                while target and target not in modules:
                    target = target.rpartition(".")[0]
                if target and target != module:
                    graph[module].add(target)
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle as [a, b, ..., a], or None (depth-first search with colours)."""
    state: dict[str, str] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = "open"
        stack.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == "open":
                return stack[stack.index(nxt):] + [nxt]
            if nxt not in state and (cycle := visit(nxt)):
                return cycle
        state[node] = "done"
        stack.pop()
        return None

    for node in sorted(graph):
        if node not in state and (cycle := visit(node)):
            return cycle
    return None


def test_the_cycle_finder_finds_a_cycle_hidden_in_a_function(tmp_path):
    pkg = tmp_path / "pkg"
    (pkg / "models").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "models" / "__init__.py").write_text("")
    (pkg / "models" / "registry.py").write_text("def load():\n    import pkg.models.presets\n")
    (pkg / "models" / "presets.py").write_text("from pkg.models.registry import load\n")
    (pkg / "models" / "spec.py").write_text("from pkg.models import registry\n")
    graph = import_graph(tmp_path, "pkg")
    assert graph["pkg.models.spec"] == {"pkg.models.registry"}
    assert find_cycle(graph) == ["pkg.models.presets", "pkg.models.registry", "pkg.models.presets"]
    (pkg / "models" / "registry.py").write_text("")
    assert find_cycle(import_graph(tmp_path, "pkg")) is None


def test_convlens_has_no_import_cycle():
    graph = import_graph(SRC, "convlens")
    assert len(graph) > 40 and "convlens.cli.runs" in graph["convlens.cli"]
    assert find_cycle(graph) is None


def test_the_cli_the_run_store_and_the_statistics_load_without_torch(tmp_path):
    """``convlens --help``, config validation, reading a run store and its statistics table need no torch (it was
    ~0.9 s of a 1.3 s start); torch comes in with the first command that trains, evaluates or loads weights."""
    import subprocess
    import sys

    import numpy as np

    from convlens.run_files import PREDICTIONS_FILE, write_predictions
    write_predictions(tmp_path / PREDICTIONS_FILE, np.array([3, 1]), np.array([3, 2]))
    code = ("import sys, convlens.cli, convlens.experiments.analysis, convlens.experiments.compare, "
            "convlens.models.registry\n"
            "from convlens.config import TrainConfig\n"
            "from convlens.data.catalog import check_dataset_name\n"
            "from convlens.experiments.builtin import BUILTIN_EXPERIMENTS\n"
            "from convlens.run_files import read_predictions\n"
            "TrainConfig(model='cnn', overrides={'kernel_size': 5}, dataset='mnist')\n"
            f"predicted, label = read_predictions({str(tmp_path)!r})\n"
            "print(len(BUILTIN_EXPERIMENTS) > 3, predicted.tolist(), label.tolist())\n"
            "print(sorted(m for m in sys.modules if m == 'torch' or m.startswith('torch.')))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-800:]
    assert done.stdout.split("\n")[:2] == ["True [3, 1] [3, 2]", "[]"], done.stdout[:300]
    # the packages' names still resolve on first use, and a wrong one is an AttributeError
    code = ("import convlens.models as m, convlens.data as d\n"
            "print(m.Network.__name__, m.CNNSpec.__name__, m.create_model('cnn').spec.kind, d.ImageDataset.__name__, "
            "d.FASHION_MNIST.name)\n"
            "assert getattr(m, 'nope', None) is None and getattr(d, 'nope', None) is None")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert (done.returncode, done.stdout.split()) == (0, ["Network", "CNNSpec", "cnn", "ImageDataset",
                                                           "fashion-mnist"]), done.stderr[-500:]
