"""Model registry: each preset is one small decorated function returning a spec (as in timm).

``create_model(name, **overrides)`` resolves a preset plus overrides into a validated spec and builds it;
unknown names and invalid overrides raise a one-line UsageError that lists what is valid.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, get_origin

from pydantic import ValidationError

from convlens.errors import UsageError
from convlens.models.network import Network
from convlens.models.spec import SPEC_TYPES, CNNSpec, MLPSpec

Spec = MLPSpec | CNNSpec
_PRESETS: dict[str, Callable[[], Spec]] = {}


def register_model(fn: Callable[[], Spec]) -> Callable[[], Spec]:
    """Register ``fn`` under its name with underscores as dashes (``seed000_cnn`` -> ``seed000-cnn``)."""
    _PRESETS[fn.__name__.replace("_", "-")] = fn
    return fn


def list_models() -> dict[str, str]:
    """Preset name -> first line of its docstring."""
    _load_presets()
    return {name: (fn.__doc__ or "").strip().splitlines()[0] for name, fn in sorted(_PRESETS.items())}


def _load_presets() -> None:
    import convlens.models.presets  # noqa: F401  (registers the presets on import)


def _preset(name: str) -> Callable[[], Spec]:
    _load_presets()
    if name not in _PRESETS:
        raise UsageError(f"unknown model '{name}'; valid models: {', '.join(sorted(_PRESETS))}")
    return _PRESETS[name]


def parse_override(text: str) -> tuple[str, str]:
    """'key=value' -> (key, value); the value stays a string until the spec validates it."""
    key, sep, value = text.partition("=")
    if not sep or not key.strip():
        raise UsageError(f"override '{text}' is not of the form key=value (e.g. --set kernel_size=5)")
    return key.strip(), value.strip()


def _coerce_text(field_annotation: Any, value: Any) -> Any:
    """Comma-separated text for tuple fields ('16,32' -> ['16', '32']); pydantic does the rest."""
    if isinstance(value, str) and get_origin(field_annotation) is tuple:
        return [v.strip() for v in value.split(",") if v.strip()]
    return value


def resolve_spec(name: str, overrides: Mapping[str, Any] | None = None) -> Spec:
    """The preset ``name`` with ``overrides`` applied and validated."""
    base = _preset(name)()
    if not overrides:
        return base
    spec_cls = SPEC_TYPES[base.kind]
    fields = {k: f for k, f in spec_cls.model_fields.items() if k != "kind"}
    unknown = sorted(set(overrides) - set(fields))
    if unknown:
        raise UsageError(f"unknown override '{unknown[0]}' for {name} ({base.kind}); "
                         f"valid keys: {', '.join(fields)}")
    typed = {k: _coerce_text(fields[k].annotation, v) for k, v in overrides.items()}
    merged = spec_cls.reconcile_overrides(base.model_dump(), typed)
    try:
        return spec_cls.model_validate(merged)
    except ValidationError as e:
        raise UsageError(f"invalid override for {name}: {format_validation_error(e)}") from None


def format_validation_error(e: ValidationError) -> str:
    """A pydantic error as one line: 'kernel_size: Input should be greater than or equal to 1 (got 0)'."""
    err = e.errors()[0]
    loc = ".".join(str(p) for p in err["loc"] if not isinstance(p, int)) or "spec"
    msg = err["msg"].removeprefix("Value error, ")
    got = f" (got {err['input']!r})" if loc != "spec" and not isinstance(err.get("input"), dict) else ""
    more = f"; and {len(e.errors()) - 1} more" if len(e.errors()) > 1 else ""
    return f"{loc}: {msg}{got}{more}"


def build_model(spec: Spec) -> Network:
    return Network(spec)


def create_model(name: str, **overrides: Any) -> Network:
    """Build preset ``name`` with ``overrides`` (e.g. ``create_model("seed000-cnn", kernel_size=5)``)."""
    return Network(resolve_spec(name, overrides))
