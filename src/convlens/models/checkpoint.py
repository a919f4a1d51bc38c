"""Saved models: ``model.safetensors`` (weights, no pickle) + ``config.json`` (the spec that rebuilds it).

Loading is ``Network(spec_from_config(config))`` then the weights; nothing is unpickled, so a model
directory from elsewhere cannot run code. Training code is not imported here (the server uses this).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

from pydantic import TypeAdapter, ValidationError

from convlens.atomic_files import atomic_write_bytes
from convlens.errors import UsageError
from convlens.models.spec import ModelSpec
from convlens.records import MODEL_FORMAT, ModelConfig, RunConfig, checked

if TYPE_CHECKING:  # reading a run's JSON (the run store, the CLI) needs no torch; saving and loading weights do
    import torch

    from convlens.models.network import Network

WEIGHTS_FILE, CONFIG_FILE = "model.safetensors", "config.json"
_SPEC_ADAPTER = TypeAdapter(ModelSpec)


def save_weights(model: torch.nn.Module, path: Path) -> None:
    from safetensors.torch import save
    # safetensors wants contiguous tensors; channels_last conv weights are not.
    tensors = {k: v.detach().to("cpu").contiguous() for k, v in model.state_dict().items()}
    atomic_write_bytes(path, save(tensors))


def read_json_object(path: Path, missing: str) -> dict:
    """A JSON object from ``path``, or one line: ``missing`` when absent, 'not valid JSON' when broken."""
    if not path.is_file():
        raise UsageError(f"{path} not found; {missing}")
    try:
        obj = json.loads(path.read_text())
    except json.JSONDecodeError as e:
        raise UsageError(f"{path} is not valid JSON ({e.msg} at line {e.lineno})") from None
    except (UnicodeDecodeError, RecursionError, ValueError):
        raise UsageError(f"{path} is not valid JSON") from None
    if not isinstance(obj, dict):
        raise UsageError(f"{path} holds no JSON object; {missing}")
    return obj


def stored_format(path: Path) -> str | None:
    """The "format" a convlens JSON file declares, or None for any file that is absent, unreadable, not JSON
    (nested too deep included) or not an object: what may be replaced is decided from it."""
    try:
        return json.loads(path.read_text()).get("format")
    except (OSError, ValueError, AttributeError, RecursionError):
        return None


def model_file(directory: Path, name: str) -> Path:
    """``directory / name``, refused when it resolves outside ``directory`` (a symlink planted in a model or
    run directory from elsewhere must not make convlens read, or name, a file of the host)."""
    path = Path(directory) / name
    if path.is_symlink() and not path.resolve().is_relative_to(Path(directory).resolve()):
        raise UsageError(f"{path} is a link to a file outside {directory}; copy the file into the directory")
    return path


ANY_WRITER = "'convlens train' or 'convlens export'"
RUN_WRITERS = "'convlens train' or an experiment"  # for what reads training runs only (compare, load_run)


def read_config(directory: Path, written_by: str = ANY_WRITER) -> dict:
    """``written_by``: what the message says writes the directory the caller takes."""
    if not Path(directory).is_dir():  # not '.../notes.txt/config.json not found'
        state = "is a file" if Path(directory).exists() else "does not exist"
        raise UsageError(f"{directory} {state}; give a directory written by {written_by}")
    return read_json_object(model_file(directory, CONFIG_FILE), f"give a directory written by {written_by}")


def read_checked_config(directory: Path, written_by: str = ANY_WRITER) -> dict:
    """A training run's config.json or an exported model's, checked against its shape (``convlens.records``
    RunConfig, ModelConfig): what compare, evaluate and export read from a directory."""
    config = read_config(directory, written_by)
    return checked(config, ModelConfig if config.get("format") == MODEL_FORMAT else RunConfig,
                   Path(directory) / CONFIG_FILE)


def dataset_of(config: dict) -> str:
    """The dataset a saved model was trained on: a run's ``data.dataset``, an exported model's ``dataset`` (read
    leniently: the server describes a run directory whatever its config holds)."""
    data = config if config.get("format") == MODEL_FORMAT else config.get("data")
    name = data.get("dataset") if isinstance(data, dict) else None
    return name if isinstance(name, str) else "fashion-mnist"


def spec_from_config(config: dict, origin: Path) -> ModelSpec:
    try:
        return _SPEC_ADAPTER.validate_python(config["model"]["spec"])
    except (KeyError, TypeError, ValidationError):
        raise UsageError(f"{origin / CONFIG_FILE} has no valid model spec under model.spec") from None


def load_model(directory: str | Path, device: torch.device | str = "cpu") -> tuple[Network, dict]:
    """Rebuild the model saved in ``directory`` and load its weights; returns (model in eval mode, config)."""
    directory = Path(directory)
    config = read_config(directory)  # a wrong directory is answered before torch is imported (1.3-2.2 s)
    spec = spec_from_config(config, directory)
    import torch
    from safetensors import SafetensorError, safe_open
    from safetensors.torch import load_file

    from convlens.models.network import Network
    weights = model_file(directory, WEIGHTS_FILE)
    # The spec is checked against the weights file's header before the network is built: a config.json from
    # elsewhere with "dense": [10**12] would otherwise allocate terabytes (meta tensors allocate nothing).
    with torch.device("meta"):
        expected = {name: tuple(t.shape) for name, t in Network(spec).state_dict().items()}
    try:
        with safe_open(weights, framework="pt") as f:
            stored = {name: tuple(f.get_slice(name).get_shape()) for name in f.keys()}
    except (FileNotFoundError, SafetensorError, OSError) as e:
        raise UsageError(f"{weights}: cannot load weights ({e})") from None
    if stored != expected:
        differs = sorted(set(stored) ^ set(expected)) or sorted(k for k in stored if stored[k] != expected[k])
        name = differs[0]
        raise UsageError(f"{weights} does not match the spec in {CONFIG_FILE}: {name} is "
                         f"{stored.get(name, 'missing')} in the weights, {expected.get(name, 'absent')} in the spec")
    model = Network(spec)
    try:
        state = load_file(weights, device=str(device))
    except (FileNotFoundError, SafetensorError, OSError) as e:
        raise UsageError(f"{weights}: cannot load weights ({e})") from None
    try:
        model.load_state_dict(state)
    except RuntimeError as e:
        raise UsageError(f"{weights} does not match the spec in {CONFIG_FILE}: {str(e).splitlines()[0]}") from None
    return model.to(device).eval(), config
