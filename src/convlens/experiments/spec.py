"""Experiment specs: a base configuration, one factor (optionally two) with levels, a reference, seeds.

Before anything runs, every level is resolved to a full training config and compared with the reference:
levels may differ only in the named factor(s) (and fields the factor determines, e.g. ``depth`` sets
``filters``). Anything else that differs is an error that shows the diff.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from convlens.config import (
    DEFAULT_RECIPE,
    MAX_LEVELS,
    RECIPES,
    DatasetName,
    ModelName,
    Recipe,
    TrainConfig,
    model_spec,
    read_yaml,
    resolve_recipe,
)
from convlens.errors import UsageError, did_you_mean, format_validation_error
from convlens.models.registry import canonical_name, resolve_spec
from convlens.models.spec import SPEC_TYPES, CNNSpec, MLPSpec

# Fields a factor changes along with itself: they are part of the factor, not a confound.
COUPLED_FIELDS = {"depth": {"spec.filters"}, "filters": {"spec.depth"}}
DATA_FACTORS = {"pixels"}  # TrainConfig fields about the data that a factor may vary


class Factor(BaseModel):
    """One factor: a model spec field (``kernel_size``), ``model`` (a preset) or ``recipe.FIELD``.

    A level is a value of the factor, or a mapping of overrides (``{kernel_size: 7, dropout: 0.5}``) whose
    extra keys the one-factor check will reject unless they are the factor's own.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str
    levels: Annotated[list[Any], Field(min_length=2, max_length=MAX_LEVELS)]
    reference: Any = None  # default: the first level

    @field_validator("name")
    @classmethod
    def _known_name(cls, name: str) -> str:
        spec_fields = set(CNNSpec.model_fields) | set(MLPSpec.model_fields)
        if name == "model" or name in DATA_FACTORS or name in spec_fields - {"kind"}:
            return name
        if name == "recipe.name":  # a recipe's name only labels it: two recipes differ in several fields
            raise ValueError("recipe.name is not a factor: two recipes differ in several settings; vary one of them "
                             "(e.g. recipe.optimizer), or run one experiment per recipe (recipe: in each spec)")
        if name.startswith("recipe.") and name.removeprefix("recipe.") in Recipe.model_fields:
            return name
        valid = (sorted(spec_fields - {"kind"}) + ["model", *sorted(DATA_FACTORS)]
                 + [f"recipe.{f}" for f in Recipe.model_fields if f != "name"])
        raise ValueError(f"unknown factor '{name}'; valid factors: {', '.join(valid)}")

    @model_validator(mode="before")
    @classmethod
    def _full_model_names(cls, data: Any) -> Any:
        """Levels of the ``model`` factor name presets by their full name (an alias names the same preset), so
        labels and run directories do, and ``[cnn, cnn-32-64-128]`` is seen as one level given twice."""
        if not isinstance(data, dict) or data.get("name") != "model":
            return data
        full = lambda v: _full_model_name(v) if isinstance(v, str) else v  # noqa: E731 (mapping levels stay)
        return {**data, "levels": [full(v) for v in data.get("levels") or []],
                **({"reference": full(data["reference"])} if data.get("reference") is not None else {})}

    @model_validator(mode="before")
    @classmethod
    def _one_spelling_per_augmentation(cls, data: Any) -> Any:
        """Levels of ``recipe.augment`` in their one spelling, so ``[shift:2,rotate:10, rotate:10,shift:2]`` is
        one level given twice (refused) and labels and run directories agree with the recipes they train."""
        if not isinstance(data, dict) or data.get("name") != "recipe.augment":
            return data
        from convlens.augment import canonical
        one = lambda v: canonical(v) if isinstance(v, str) else v  # noqa: E731
        return {**data, "levels": [one(v) for v in data.get("levels") or []],
                **({"reference": one(data["reference"])} if data.get("reference") is not None else {})}

    @model_validator(mode="after")
    def _reference_is_a_level(self) -> Factor:
        labels = [level_label(self.name, v) for v in self.levels]
        if len(set(labels)) != len(labels):
            raise ValueError(f"factor {self.name} lists a level twice: {labels}")
        if self.reference is not None and level_label(self.name, self.reference) not in labels:
            raise ValueError(f"reference {self.reference!r} is not among the levels of {self.name}: {labels}")
        return self

    @property
    def reference_label(self) -> str:
        return level_label(self.name, self.levels[0] if self.reference is None else self.reference)

    def labelled_levels(self) -> list[tuple[str, Any]]:
        return [(level_label(self.name, v), v) for v in self.levels]


class ExperimentSpec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    name: Annotated[str, Field(pattern=r"^[A-Za-z0-9_.-]+$")]
    description: str = ""
    model: ModelName  # base preset
    set: dict[str, Any] = Field(default_factory=dict)  # base model overrides
    recipe: str = DEFAULT_RECIPE
    recipe_set: dict[str, Any] = Field(default_factory=dict)  # base recipe overrides
    factor: Factor
    second_factor: Factor | None = None  # a full grid with the first
    seeds: Annotated[int, Field(ge=1, le=100)] = 3  # seeds 0 .. seeds-1; runs are paired by seed
    train_subset: Annotated[int, Field(ge=1)] | None = None
    test_subset: Annotated[int, Field(ge=1)] | None = None
    dataset: DatasetName = "fashion-mnist"  # every level trains on it

    @model_validator(mode="after")
    def _distinct_factors(self) -> ExperimentSpec:
        if self.second_factor is not None and self.second_factor.name == self.factor.name:
            raise ValueError(f"second_factor repeats the factor '{self.factor.name}'")
        if self.recipe not in RECIPES:
            raise ValueError(f"unknown recipe '{self.recipe}'{did_you_mean(self.recipe, RECIPES)}; valid recipes: "
                             f"{', '.join(RECIPES)}")
        return self

    @property
    def factors(self) -> list[Factor]:
        return [self.factor] + ([self.second_factor] if self.second_factor else [])


def _full_model_name(name: str) -> str:
    try:
        return canonical_name(name)
    except UsageError as e:
        raise ValueError(str(e)) from None


def level_label(factor: str, value: Any) -> str:
    """'kernel_size=5', 'filters=16,32', 'model=mlp-128-64'; a mapping level: its sorted overrides."""
    if isinstance(value, dict):
        return ",".join(f"{k}={_fmt(v)}" for k, v in sorted(value.items()))
    return f"{factor}={_fmt(value)}"


def _fmt(value: Any) -> str:
    if isinstance(value, (list, tuple)):
        return "-".join(str(v) for v in value)
    if isinstance(value, bool):
        return str(value).lower()
    return str(value)


def load_spec(source: str | Path, builtins: dict[str, ExperimentSpec]) -> ExperimentSpec:
    """A built-in name (``kernel-size``) or a YAML file."""
    if str(source) in builtins:
        return builtins[str(source)]
    path = Path(source)
    if path.is_dir():
        raise UsageError(f"experiment spec '{source}' is a directory; give a YAML file or a built-in experiment "
                         f"({', '.join(builtins)})")
    if path.exists() and not path.is_file():  # a FIFO, a device: reading it would block or never end
        raise UsageError(f"experiment spec '{source}' is not a regular file; give a YAML file")
    if not path.is_file() and (path.suffix.lower() in (".yaml", ".yml") or len(path.parts) > 1):
        raise UsageError(f"experiment spec file '{source}' not found")  # meant as a file: no list of built-ins
    if not path.is_file():
        raise UsageError(f"'{source}'{did_you_mean(source, builtins)} is neither a built-in experiment "
                         f"({', '.join(builtins)}) nor a YAML file")
    return parse_spec(read_yaml(path), origin=str(path))


def parse_spec(data: Any, origin: str = "spec") -> ExperimentSpec:
    try:
        return ExperimentSpec.model_validate(data)
    except ValidationError as e:
        raise UsageError(f"{origin}: {format_validation_error(e, whole=None)}") from None


def with_changes(spec: ExperimentSpec, *, seeds: int | None = None, recipe: str | None = None,
                 epochs: int | None = None, precision: str | None = None, train_subset: int | None = None,
                 test_subset: int | None = None, dataset: str | None = None) -> ExperimentSpec:
    """``spec`` with run-wide settings replaced (None keeps the spec's), validated again."""
    changes: dict[str, Any] = {k: v for k, v in dict(seeds=seeds, recipe=recipe, train_subset=train_subset,
                                                     test_subset=test_subset, dataset=dataset).items()
                               if v is not None}
    recipe_set = {k: v for k, v in dict(epochs=epochs, precision=precision).items() if v is not None}
    factors = {f.name for f in (spec.factor, spec.second_factor) if f is not None}
    for option, factor in [*((k, f"recipe.{k}") for k in recipe_set), *((k, k) for k in changes if k != "seeds")]:
        if factor in factors:  # else the option is set "for every level" and the factor quietly wins
            raise UsageError(f"--{option.replace('_', '-')} sets every level, but {factor} is what {spec.name}'s "
                             "levels vary; drop the option, or change the levels in the spec")
    if recipe_set:
        for option, value in recipe_set.items():  # 'epochs: ...' (the CLI says --epochs), not recipe_set's or a level's
            resolve_recipe(spec.recipe, {option: value})
        changes["recipe_set"] = {**spec.recipe_set, **recipe_set}
    if not changes:
        return spec
    return parse_spec({**spec.model_dump(mode="json"), **changes}, origin=f"experiment {spec.name}")


class Level(BaseModel):
    """One cell of the design: its label, factor values and the resolved config (seed left out)."""

    model_config = ConfigDict(frozen=True)

    label: str
    values: dict[str, Any]
    config: TrainConfig  # seed 0; each run sets its own

    def for_seed(self, seed: int) -> TrainConfig:
        return self.config.model_copy(update={"seed": seed})


def _apply(factor: Factor, value: Any, model: str, overrides: dict, recipe_overrides: dict,
           data: dict) -> tuple[str, dict, dict, dict]:
    changes = value if isinstance(value, dict) else {factor.name: value}
    for key, v in changes.items():
        if key == "model":
            model = v
        elif key in DATA_FACTORS:
            data = {**data, key: v}
        elif key.startswith("recipe."):
            recipe_overrides = {**recipe_overrides, key.removeprefix("recipe."): v}
        else:
            overrides = {**overrides, key: v}
    return model, overrides, recipe_overrides, data


def resolve_levels(spec: ExperimentSpec) -> list[Level]:
    """Every level (or grid cell) as a full, validated training config."""
    grids = [f.labelled_levels() for f in spec.factors]
    levels = []
    for cell in itertools.product(*grids):
        model, overrides, recipe_overrides, data = spec.model, dict(spec.set), dict(spec.recipe_set), {}
        for factor, (_, value) in zip(spec.factors, cell):
            model, overrides, recipe_overrides, data = _apply(factor, value, model, overrides, recipe_overrides, data)
        label = " ".join(lbl for lbl, _ in cell)
        try:
            resolve_spec(model, overrides)
        except UsageError as e:
            raise _base_or_level(e, label, "set", lambda: resolve_spec(spec.model, dict(spec.set))) from None
        try:
            recipe = resolve_recipe(spec.recipe, recipe_overrides)
        except UsageError as e:
            raise _base_or_level(e, label, "recipe_set",
                                 lambda: resolve_recipe(spec.recipe, dict(spec.recipe_set))) from None
        try:
            config = TrainConfig(model=model, overrides=overrides, recipe=recipe, seed=0, dataset=spec.dataset,
                                 train_subset=spec.train_subset, test_subset=spec.test_subset, **data)
            model_spec(config)  # the preset on this dataset's images (a depth that shrinks 8x8 to nothing fails)
        except ValidationError as e:
            raise UsageError(f"level {label}: {format_validation_error(e)}") from None
        except UsageError as e:
            raise UsageError(f"level {label}: {e}") from None
        levels.append(Level(label=label, values={f.name: v for f, (_, v) in zip(spec.factors, cell)}, config=config))
    return levels


def _base_or_level(error: UsageError, label: str, key: str, resolve_base: Callable[[], object]) -> UsageError:
    """The error of a level, named by what the spec file says: the base's ``key`` (set, recipe_set) when the base
    alone fails the same way (the mistake is there, in every level), else the level."""
    try:
        resolve_base()
    except UsageError as base:
        if str(base) == str(error):
            return UsageError(f"{key}: {error}")
    return UsageError(f"level {label}: {error}")


def reference_level(spec: ExperimentSpec, levels: list[Level]) -> Level:
    label = " ".join(f.reference_label for f in spec.factors)
    return next(level for level in levels if level.label == label)


def design_keys(spec: dict[str, Any], recipe: dict[str, Any], data: dict[str, Any]) -> dict[str, Any]:
    """A run's design as flat keys: spec.* (the resolved architecture), recipe.* (its values, not its name)
    and data.* (subsets, pixel order). Two runs with equal keys and equal seeds train the same way."""
    if spec.get("kind") in SPEC_TYPES:  # fields added since a run was recorded, at their defaults (e.g. layer=conv)
        spec = SPEC_TYPES[spec["kind"]].model_validate(spec).model_dump(mode="json")
    flat = {f"spec.{k}": v for k, v in spec.items()}
    missing = {k: f.default for k, f in Recipe.model_fields.items() if k not in recipe}  # fields added since
    flat.update({f"recipe.{k}": v for k, v in {**missing, **recipe}.items() if k != "name"})
    flat.update({f"data.{k}": data.get(k) for k in ("train_subset", "test_subset", "pixels")})
    flat["data.dataset"] = data.get("dataset") or "fashion-mnist"
    return flat


def flatten_config(config: TrainConfig) -> dict[str, Any]:
    """The resolved config as flat keys: model, spec.*, recipe.*, data.* (what the one-factor check compares)."""
    spec = model_spec(config)
    return {"model": config.model, **design_keys(spec.model_dump(mode="json"), config.recipe.model_dump(mode="json"),
                                                 config.model_dump(include={"train_subset", "test_subset", "pixels",
                                                                            "dataset"}))}


def run_identity(run_config: dict[str, Any]) -> dict[str, Any]:
    """What a finished run's config.json says it was, seed left out: its design keys plus the dataset and the
    device type. Runs with equal identities are seeds of one configuration (``convlens compare`` groups by it)."""
    data = run_config.get("data", {})
    return {**design_keys(run_config["model"]["spec"], run_config["recipe"], data),
            "device": run_config.get("provenance", {}).get("device", {}).get("type")}


def _allowed_keys(factor_name: str) -> set[str]:
    if factor_name == "model":
        return {"model"} | {"spec.*"}  # the architecture as a whole is the factor
    if factor_name in DATA_FACTORS:
        return {f"data.{factor_name}"}
    key = factor_name if factor_name.startswith("recipe.") else f"spec.{factor_name}"
    return {key} | COUPLED_FIELDS.get(factor_name, set())


def one_factor_diff(spec: ExperimentSpec, levels: list[Level]) -> dict[str, dict[str, list]]:
    """Per level: {key: [reference value, level value]} for every key that differs from the reference.

    Raises UsageError if a level differs in anything but the factor(s) and the fields they determine.
    """
    reference = reference_level(spec, levels)
    ref_flat = flatten_config(reference.config)
    allowed = set().union(*(_allowed_keys(f.name) for f in spec.factors))
    diffs = {}
    for level in levels:
        flat = flatten_config(level.config)
        diff = {k: [ref_flat.get(k), flat.get(k)] for k in sorted(set(ref_flat) | set(flat))
                if ref_flat.get(k) != flat.get(k)}
        extra = {k: v for k, v in diff.items() if k not in allowed and not ("spec.*" in allowed and k.startswith("spec."))}
        if extra:
            shown = "; ".join(f"{k}: {a!r} -> {b!r}" for k, (a, b) in extra.items())
            raise UsageError(f"level {level.label} differs from the reference {reference.label} in more than "
                             f"the factor: {shown}")
        if not diff and level.label != reference.label:
            raise UsageError(f"level {level.label} trains exactly what the reference {reference.label} trains; "
                             "it compares nothing, so drop it")
        diffs[level.label] = diff
    return diffs
