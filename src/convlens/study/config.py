"""The study's typed config: three presets (quick, default, full), optionally overridden by a YAML file.

The CNN-vs-MLP and locality experiments always run (the baseline, shift and locality sections read them);
``experiments`` lists the factor experiments on top, each a built-in with an optional subset of its levels.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from convlens.config import DEFAULT_RECIPE, MAX_LEVELS, RECIPES, DatasetName, Precision, read_yaml
from convlens.errors import UsageError, did_you_mean, first_repeated, format_validation_error
from convlens.experiments.builtin import BUILTIN_EXPERIMENTS
from convlens.experiments.spec import ExperimentSpec, one_factor_diff, parse_spec, resolve_levels, with_changes

CORE_EXPERIMENTS = ("cnn-vs-mlp", "locality")
Mode = Literal["quick", "default", "full", "custom"]


class ExperimentChoice(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str  # a built-in experiment (convlens experiment list)
    levels: Annotated[list[Any], Field(min_length=2, max_length=MAX_LEVELS)] | None = None  # default: all of the built-in's levels

    @field_validator("name")
    @classmethod
    def _builtin(cls, name: str) -> str:
        if name not in BUILTIN_EXPERIMENTS:
            raise ValueError(f"unknown experiment '{name}'{did_you_mean(name, BUILTIN_EXPERIMENTS)}; built-in "
                             f"experiments: {', '.join(BUILTIN_EXPERIMENTS)}")
        return name

    @model_validator(mode="after")
    def _core_levels_fixed(self) -> ExperimentChoice:
        if self.name in CORE_EXPERIMENTS and self.levels is not None:
            raise ValueError(f"{self.name} always runs with its built-in levels (the baseline, design and probe "
                             "sections read them); drop its levels")
        return self


class StudyConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    mode: Mode = "default"
    # every finding is a mean over seeds with its interval, and every comparison a paired test: one seed has none
    seeds: Annotated[int, Field(ge=2, le=100)] = 3
    recipe: str = DEFAULT_RECIPE
    epochs: Annotated[int, Field(ge=1, le=1000)] | None = None  # default: the recipe's
    # default: the recipe's ("auto" for fast: bf16 on CPUs with AVX512_BF16 or AMX and on CUDA, else fp32)
    precision: Precision | None = None
    train_subset: Annotated[int, Field(ge=100)] | None = None  # first N training images; None = all 60,000
    test_subset: Annotated[int, Field(ge=100)] | None = None
    experiments: list[ExperimentChoice] = Field(
        default_factory=lambda: [ExperimentChoice(name="kernel-size", levels=[3, 5])])
    shift_max: Annotated[int, Field(ge=1, le=14)] = 4  # px; the shift probe tests 0 .. shift_max
    # Runs training at once (cores split between them). None: 1 on the CPU (bench/workers.py: no gain on 2
    # cores); with CUDA, one per level (each level's seeds batched), at most 8 and the cores (bench/README.md).
    workers: Annotated[int, Field(ge=1, le=64)] | None = None
    onnx: bool = True  # also export model.onnx (needs the onnx extra; skipped with a note when missing)
    dataset: DatasetName = "fashion-mnist"

    @field_validator("experiments")
    @classmethod
    def _each_once(cls, choices: list[ExperimentChoice]) -> list[ExperimentChoice]:
        twice = first_repeated(c.name for c in choices)
        if twice is not None:  # experiment_specs keeps one of them: the other's levels were silently dropped
            raise ValueError(f"{twice} is listed twice; list each experiment once, with the levels meant")
        return choices

    @field_validator("recipe")
    @classmethod
    def _known_recipe(cls, name: str) -> str:
        if name not in RECIPES:
            raise ValueError(f"unknown recipe '{name}'{did_you_mean(name, RECIPES)}; valid recipes: "
                             f"{', '.join(RECIPES)}")
        return name

    def experiment_specs(self) -> list[ExperimentSpec]:
        """Factor experiments first, then the core ones; each with this study's seeds, recipe and data."""
        names = [c.name for c in self.experiments if c.name not in CORE_EXPERIMENTS]
        chosen = {c.name: c for c in self.experiments}
        specs = []
        for name in dict.fromkeys([*names, *CORE_EXPERIMENTS]):
            spec = BUILTIN_EXPERIMENTS[name]
            levels = chosen[name].levels if name in chosen else None
            if levels is not None:
                data = spec.model_dump(mode="json")
                reference = data["factor"].get("reference")
                data["factor"] = {**data["factor"], "levels": levels,
                                  "reference": reference if reference in levels else levels[0]}
                spec = parse_spec(data, origin=f"study experiment {name}")
            specs.append(with_changes(spec, seeds=self.seeds, recipe=self.recipe, epochs=self.epochs,
                                      precision=self.precision, train_subset=self.train_subset,
                                      test_subset=self.test_subset, dataset=self.dataset))
        return specs


STUDY_PRESETS: dict[str, dict[str, Any]] = {
    # A first look in about a minute (issue 16: <= 60 s on 2 cores): 3 seeds on the first 5,000 training and the
    # first 2,000 test images (the report says so). Every run, probe and figure of the default study, on less data.
    "quick": dict(mode="quick", seeds=3, train_subset=5000, test_subset=2000),
    # The study `make study` runs: full data, 3 seeds, kernel 3 vs 5 (as two reference write-ups compared) and CNN vs MLP; <= 15 min.
    "default": dict(mode="default"),
    # Everything the reference write-ups ran (kernel 3/5/7, depth 1/2/3, filters) and the weight-sharing grid (its
    # locally connected network trains 3-5x slower than the CNN on a CPU) and augmentation, no time budget.
    "full": dict(mode="full", experiments=[dict(name="kernel-size"), dict(name="depth"), dict(name="filters"),
                                           dict(name="weight-sharing"), dict(name="augmentation")]),
}


def load_study_config(mode: str = "default", path: str | Path | None = None, **overrides: Any) -> StudyConfig:
    """The preset ``mode``, then the YAML file's keys, then ``overrides`` (None values ignored)."""
    if mode not in STUDY_PRESETS:
        raise UsageError(f"unknown study preset {mode!r}{did_you_mean(mode, STUDY_PRESETS)}; presets: "
                         f"{', '.join(STUDY_PRESETS)}")
    data = dict(STUDY_PRESETS[mode])
    if path is not None:
        path = Path(path)
        if not path.is_file():
            state = ("is a directory, where a YAML file is needed" if path.is_dir() else
                     "is not a regular file, where a YAML file is needed" if path.exists() else "not found")
            raise UsageError(f"study config {path} {state}")
        loaded = read_yaml(path) or {}
        if not isinstance(loaded, dict):
            raise UsageError(f"{path}: expected a mapping of study options, got {type(loaded).__name__}")
        data.update(loaded)  # on top of the preset; the report prints the resolved config
    data.update({k: v for k, v in overrides.items() if v is not None})
    return validated_study_config(data, str(path or "study config"))


def validated_study_config(data: dict, origin: str = "study config") -> StudyConfig:
    """``data`` as a StudyConfig, every experiment's levels built and checked; one line (``origin``: ...) if not."""
    try:
        config = StudyConfig.model_validate(data)
        for spec in config.experiment_specs():  # every level built and checked now, not after an hour of training
            one_factor_diff(spec, resolve_levels(spec))
    except ValidationError as e:
        raise UsageError(f"{origin}: {format_validation_error(e)}") from None
    return config
