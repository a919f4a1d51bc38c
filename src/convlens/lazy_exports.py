"""Packages whose public names are imported on first use (PEP 562), so that importing one costs nothing until a
name is used: ``import convlens`` stays light, and the CLI's help, config validation and the run store's tables
do not import torch (~1 s), which loading data or building, training or loading a network does."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from importlib import import_module
from typing import Any


def lazy_exports(namespace: dict[str, Any], home_of: Mapping[str, str]) -> tuple[Callable[[str], Any],
                                                                                  Callable[[], list[str]]]:
    """The module-level ``__getattr__`` and ``__dir__`` of the package whose globals are ``namespace``:
    ``home_of`` maps each lazily exported name to the module that defines it. A name is imported on first use
    and kept in the package's globals, so the next use is a plain attribute."""
    package = namespace["__name__"]

    def __getattr__(name: str) -> Any:
        if name not in home_of:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(import_module(home_of[name]), name)
        namespace[name] = value
        return value

    def __dir__() -> list[str]:
        return sorted(namespace["__all__"])

    return __getattr__, __dir__
