"""Models: typed specs, the network builder, presets named by architecture, registry and the Keras-like summary.

The names are imported on first use (convlens.lazy_exports): ``convlens.config`` and the CLI read the registry's
names and specs without importing torch, which only building a network needs.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from convlens.lazy_exports import lazy_exports

if TYPE_CHECKING:
    from convlens.models.network import Network
    from convlens.models.registry import create_model, list_models, resolve_spec
    from convlens.models.spec import CNNSpec, MLPSpec

_HOME_OF = {"CNNSpec": "convlens.models.spec", "MLPSpec": "convlens.models.spec",
            "Network": "convlens.models.network", "create_model": "convlens.models.registry",
            "list_models": "convlens.models.registry", "resolve_spec": "convlens.models.registry"}
__all__ = ["CNNSpec", "MLPSpec", "Network", "create_model", "list_models", "resolve_spec"]
assert set(__all__) == set(_HOME_OF)
__getattr__, __dir__ = lazy_exports(globals(), _HOME_OF)
