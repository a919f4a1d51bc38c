"""Model registry: preset names (and the aliases ``cnn``, ``mlp``) -> validated specs -> networks (as in timm).

``create_model(name, **overrides)`` resolves a preset plus overrides into a validated spec and builds it;
unknown names and invalid overrides raise a one-line UsageError that lists what is valid. The presets
themselves are data in presets.py; the dependency runs one way, registry -> presets.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any, get_args, get_origin

import numpy as np
from pydantic import ValidationError

from convlens.errors import UsageError, did_you_mean, format_validation_error
from convlens.models.presets import ALIASES, PRESETS
from convlens.models.spec import SPEC_TYPES, CNNSpec, MLPSpec

if TYPE_CHECKING:  # torch is imported where a network is built, not where a name is checked (config, --help)
    from convlens.models.network import Network

Spec = MLPSpec | CNNSpec


def model_names() -> list[str]:
    """Every name ``--model`` accepts: the aliases first, then the presets."""
    return [*ALIASES, *PRESETS]


def canonical_name(name: str) -> str:
    """The preset's full name (``cnn`` -> ``cnn-32-64-128``); what run directories record."""
    if name in PRESETS:
        return name
    if name in ALIASES:
        return ALIASES[name]
    raise UsageError(f"unknown model '{name}'{did_you_mean(name, model_names())}; valid models: "
                     f"{', '.join(model_names())}")


def list_models() -> list[dict[str, Any]]:
    """One row per preset: name, aliases, description, Keras parameter total and the write-ups it reproduces.

    Example: ``[row["name"] for row in convlens.list_models()]``
    """
    from convlens.models.network import Network
    from convlens.models.summary import count_params
    rows = []
    for name, preset in PRESETS.items():
        trainable, non_trainable = count_params(Network(preset.spec))
        rows.append({"name": name, "aliases": [a for a, target in ALIASES.items() if target == name],
                     "kind": preset.spec.kind, "description": preset.description,
                     "params": {"trainable": trainable, "non_trainable": non_trainable,
                                "total": trainable + non_trainable},
                     "reproduces": [{"write_up": r.write_up, "overrides": r.overrides, "note": r.note,
                                     "text": r.describe()} for r in preset.reproduces]})
    return rows


def parse_override(text: str, example: str = "--set kernel_size=5") -> tuple[str, str]:
    """'key=value' -> (key, value); the value stays a string until the spec validates it. ``example``: how the
    option that took ``text`` is written, for the error."""
    key, sep, value = text.partition("=")
    if not sep or not key.strip():
        raise UsageError(f"override '{text}' is not of the form key=value (e.g. {example})")
    return key.strip(), value.strip()


def parse_overrides(texts: Iterable[str], example: str = "--set kernel_size=5") -> dict[str, str]:
    """['kernel_size=5', 'dropout=0.5'] -> {'kernel_size': '5', 'dropout': '0.5'}; a key given twice is refused
    (which one was meant is not known, and the last would win without a word)."""
    changes: dict[str, str] = {}
    for key, value in (parse_override(text, example) for text in texts):
        if key in changes:
            option = example.split()[0]
            raise UsageError(f"{option} {key}= is given twice ({key}={changes[key]}, {key}={value}); give it once")
        changes[key] = value
    return changes


def _wants_number(annotation: Any) -> bool:
    """Whether a field's annotation (Annotated, Optional, tuple[...] included) takes int or float values."""
    return annotation in (int, float) or any(_wants_number(a) for a in get_args(annotation))


def _coerce_text(key: str, field_annotation: Any, value: Any) -> Any:
    """Comma-separated text for tuple fields ('16,32' -> ['16', '32']; an empty item stays, for validation to
    refuse: '16,,32' is a typo, not two blocks), and one number as one block (16 -> [16], as '16' is); pydantic does
    the rest. True and False are refused where a number is wanted (pydantic would read True as 1)."""
    if isinstance(value, (bool, np.bool_)) and _wants_number(field_annotation):
        raise UsageError(f"{key}: expected a number, got {value!r}")
    if get_origin(field_annotation) is not tuple:
        return value
    if isinstance(value, str):
        return [v.strip() for v in value.split(",")] if value.strip() else []  # '': none (dense= : no hidden layer)
    if isinstance(value, (int, float)):
        return [value]
    if isinstance(value, (list, tuple)) and any(isinstance(v, (bool, np.bool_)) for v in value):
        raise UsageError(f"{key}: expected numbers, got {list(value)!r}")
    return value


def model_fields(name: str) -> set[str]:
    """The settings of preset ``name``'s kind (what ``set`` / --set may change); none for an unknown name."""
    try:
        kind = PRESETS[canonical_name(name)].spec.kind
    except (UsageError, KeyError, TypeError):
        return set()
    return set(SPEC_TYPES[kind].model_fields) - {"kind"}


def resolve_spec(name: str, overrides: Mapping[str, Any] | None = None) -> Spec:
    """The preset ``name`` (or alias) with ``overrides`` applied and validated."""
    base = PRESETS[canonical_name(name)].spec
    if not overrides:
        return base
    spec_cls = SPEC_TYPES[base.kind]
    fields = {k: f for k, f in spec_cls.model_fields.items() if k != "kind"}
    unknown = sorted(set(overrides) - set(fields))
    if unknown:
        raise UsageError(f"unknown override '{unknown[0]}'{did_you_mean(unknown[0], fields)} for {name} "
                         f"({base.kind}); valid keys: {', '.join(fields)}")
    typed = {k: _coerce_text(k, fields[k].annotation, v) for k, v in overrides.items()}
    merged = spec_cls.reconcile_overrides(base.model_dump(), typed)
    try:
        return spec_cls.model_validate(merged)
    except ValidationError as e:
        raise UsageError(f"invalid override for {name}: {format_validation_error(e)}") from None


def create_model(name: str, **overrides: Any) -> Network:
    """Build preset ``name`` with ``overrides`` changing its fields (a torch module).

    Example: ``convlens.create_model("cnn", kernel_size=5)``
    """
    from convlens.models.network import Network
    return Network(resolve_spec(name, overrides))
