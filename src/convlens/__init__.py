"""convlens: controlled, multi-seed experiments on convolutional architectures.

Data flows one way: config -> data -> model -> training -> run store -> statistics -> report.
"""

__version__ = "0.1.0"

from convlens.errors import ConvlensError, UsageError  # noqa: E402
from convlens.models.registry import create_model, list_models  # noqa: E402

__all__ = ["ConvlensError", "UsageError", "create_model", "list_models", "__version__"]
