"""Models: typed specs, the network builder, presets named by architecture, registry and the Keras-like summary."""

from convlens.models.network import Network
from convlens.models.registry import create_model, list_models, resolve_spec
from convlens.models.spec import CNNSpec, MLPSpec

__all__ = ["CNNSpec", "MLPSpec", "Network", "create_model", "list_models", "resolve_spec"]
