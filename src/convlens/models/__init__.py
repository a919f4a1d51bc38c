"""Models: typed specs, the network builder, presets named by architecture, registry and the Keras-like summary.

The names are imported on first use (PEP 562), so that ``convlens.config`` and the CLI's ``--help`` can read the
registry's names and specs without importing torch (~0.9 s).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from convlens.models.network import Network
    from convlens.models.registry import create_model, list_models, resolve_spec
    from convlens.models.spec import CNNSpec, MLPSpec

__all__ = ["CNNSpec", "MLPSpec", "Network", "create_model", "list_models", "resolve_spec"]

_HOME = {"CNNSpec": "spec", "MLPSpec": "spec", "Network": "network", "create_model": "registry",
         "list_models": "registry", "resolve_spec": "registry"}


def __getattr__(name: str) -> Any:
    if name not in _HOME:
        raise AttributeError(f"module 'convlens.models' has no attribute '{name}'")
    return getattr(importlib.import_module(f"convlens.models.{_HOME[name]}"), name)
