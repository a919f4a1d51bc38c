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


def python_output(code: str) -> str:
    """What ``code`` prints in a fresh interpreter (this one has imported torch long ago); it must exit 0."""
    import os
    import subprocess
    import sys
    # os.environ, not the C environment: GNU readline (imported by pytest) puts COLUMNS=80 in the latter, and the
    # CLI's piped output takes its width from COLUMNS
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=dict(os.environ))
    assert done.returncode == 0, done.stderr[-800:]
    return done.stdout


def test_the_cli_reads_an_experiment_without_torch_and_prints_what_it_printed_with_it(tmp_path, capsys):
    """``convlens --help``, ``experiment list/status/table`` and ``compare`` need no torch (it was ~0.9 s of a
    1.3 s start): run in a fresh interpreter on a real experiment, they leave torch out of ``sys.modules`` and print
    the tables this process (which has torch) prints."""
    import json

    import yaml

    from convlens.cli import main
    spec = tmp_path / "k.yaml"
    spec.write_text(yaml.safe_dump({"name": "k", "model": "cnn-16-32", "recipe": "fast", "recipe_set": {"epochs": 1},
                                    "factor": {"name": "kernel_size", "levels": [3, 5]}, "seeds": 2,
                                    "dataset": "digits"}))
    out = tmp_path / "k"
    assert main(["experiment", "run", str(spec), "--out", str(out), "--quiet"]) == 0
    runs = [str(out / "runs" / "kernel_size=3" / f"seed{s}") for s in (0, 1)]
    commands = [["--help"], ["experiment", "list"], ["experiment", "status", str(out), "--json"],
                ["experiment", "table", str(out), "--json"], ["compare", *runs, "--json"]]
    printed = []
    for argv in commands[1:]:
        capsys.readouterr()
        assert main(argv) == 0
        printed.append(capsys.readouterr().out)
    code = ("import contextlib, io, json, sys\n"
            "from convlens.cli import main\n"
            f"for argv in {commands!r}:\n"
            "    with contextlib.redirect_stdout(io.StringIO()) as text:\n"
            "        code = main(argv)\n"
            "    print(json.dumps([code, text.getvalue()]))\n"
            "print(json.dumps(sorted(m for m in sys.modules if m == 'torch' or m.startswith('torch.'))))")
    *answers, torch_modules = [json.loads(line) for line in python_output(code).splitlines()]
    assert torch_modules == []
    assert [code for code, _ in answers] == [0] * len(commands)
    assert "experiment" in answers[0][1] and "Usage: convlens" in answers[0][1]
    assert [text for _, text in answers[1:]] == printed
    table = json.loads(printed[2])
    assert [(lv["label"], lv["n"]) for lv in table["levels"]] == [("kernel_size=3", 2), ("kernel_size=5", 2)]


def test_the_packages_names_load_on_first_use():
    """convlens.models and convlens.data import their submodules when a name is first used; a name they do not
    export is an AttributeError, and dir() lists what they export."""
    code = ("import sys, convlens.models as m, convlens.data as d\n"
            "from convlens.config import TrainConfig\n"
            "TrainConfig(model='cnn', overrides={'kernel_size': 5}, dataset='mnist')\n"
            "print('torch' in sys.modules, dir(m) == sorted(m.__all__), 'locate' in dir(d))\n"
            "print(m.Network.__name__, m.CNNSpec.__name__, m.create_model('cnn').spec.kind, d.ImageDataset.__name__, "
            "d.FASHION_MNIST.name, 'torch' in sys.modules)\n"
            "assert getattr(m, 'nope', None) is None and getattr(d, 'nope', None) is None")
    assert python_output(code).split() == ["False", "True", "True", "Network", "CNNSpec", "cnn", "ImageDataset",
                                            "fashion-mnist", "True"]


def test_a_mistake_in_train_options_is_answered_before_torch_is_imported():
    """``convlens train`` checks its options (model, recipe values, dataset) before it imports torch to train."""
    code = ("import contextlib, io, sys\n"
            "from convlens.cli import main\n"
            "for argv in (['train', '--model', 'nope'], ['train', '--model', 'cnn', '--epochs', '0'],\n"
            "             ['train', '--model', 'cnn', '--dataset', 'nope']):\n"
            "    with contextlib.redirect_stderr(io.StringIO()) as text:\n"
            "        code = main(argv)\n"
            "    print(code, repr(text.getvalue()))\n"
            "print('torch' in sys.modules)")
    *answers, torch_imported = python_output(code).splitlines()
    assert torch_imported == "False"
    expected = ("convlens: error: unknown model 'nope'; valid models: cnn, mlp",
                "convlens: error: invalid training option: --epochs: Input should be greater than or equal to 1",
                "convlens: error: invalid option: --dataset: unknown dataset 'nope'")
    for answer, start in zip(answers, expected, strict=True):
        code, message = answer.split(" ", 1)
        message = ast.literal_eval(message)
        assert code == "2" and message.startswith(start) and message.count("\n") == 1, message


def test_a_wrong_directory_is_answered_before_torch_is_imported(tmp_path):
    """``export``, ``evaluate``, ``predict`` and ``serve`` read the directory's config.json before they import torch
    to load the network."""
    image = tmp_path / "x.png"
    image.write_bytes(b"")
    code = ("import contextlib, io, sys\n"
            "from convlens.cli import main\n"
            f"for argv in (['export', {str(tmp_path)!r}], ['evaluate', {str(tmp_path)!r}],\n"
            f"             ['predict', {str(tmp_path)!r}, {str(image)!r}], ['serve', {str(tmp_path)!r}]):\n"
            "    with contextlib.redirect_stderr(io.StringIO()) as text:\n"
            "        code = main(argv)\n"
            "    print(code, repr(text.getvalue()))\n"
            "print('torch' in sys.modules)")
    *answers, torch_imported = python_output(code).splitlines()
    assert torch_imported == "False" and len(answers) == 4
    for answer in answers:
        code, message = answer.split(" ", 1)
        assert code == "2" and ast.literal_eval(message) == (
            f"convlens: error: {tmp_path / 'config.json'} not found; give a directory written by 'convlens train' or "
            "'convlens export'\n")
