"""Typed configs validated at the edge: recipes and the training run config. The only source of defaults.

YAML files and CLI flags both resolve into these; the resolved config is written next to every output.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from convlens.errors import UsageError, did_you_mean, format_validation_error
from convlens.models.registry import canonical_name, resolve_spec

Optimizer = Literal["adam", "adamw", "sgd"]
Schedule = Literal["constant", "onecycle", "cosine"]
# Arithmetic of the training step: "bf16" runs forward and loss under autocast to bfloat16 (weights and optimizer
# stay fp32; the per-epoch monitoring runs in bf16 too, the kept model's validation and test metrics in fp32); "auto"
# is bf16 where the hardware computes it natively (a CPU with AVX512_BF16 or AMX, a CUDA GPU with bf16), else fp32.
# The precision used is recorded with each run.
Precision = Literal["fp32", "bf16", "auto"]


# Evaluation batch: on 2 CPU cores 256 images per forward run ~2.2x faster than 1,000 (the activations stay in the
# caches; bench/README.md, "Training throughput").
DEVICES = ("auto", "cpu", "cuda")  # auto: CUDA when present; and cuda:N, one GPU of several (DEVICE_PATTERN)
DEVICE_PATTERN = r"auto|cpu|cuda(:\d{1,3})?"
EVAL_BATCH_SIZE = 256


class Recipe(BaseModel):
    """How a model is trained. Epoch counts are fixed in advance: nothing looks at test data."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = "custom"
    epochs: Annotated[int, Field(ge=1, le=1000)] = 15
    batch_size: Annotated[int, Field(ge=1, le=65536)] = 128
    optimizer: Optimizer = "adam"
    lr: Annotated[float, Field(gt=0, le=10)] = 1e-3  # peak LR for onecycle
    weight_decay: Annotated[float, Field(ge=0)] = 0.0
    momentum: Annotated[float, Field(ge=0, lt=1)] = 0.9  # SGD (Nesterov) only
    schedule: Schedule = "constant"
    warmup_fraction: Annotated[float, Field(ge=0, le=0.9)] = 0.25  # onecycle: share of steps spent warming up
    label_smoothing: Annotated[float, Field(ge=0, lt=1)] = 0.0
    hflip: Annotated[float, Field(ge=0, le=1)] = 0.0  # probability of mirroring a training image left-right
    # training-batch augmentation on the device, e.g. "shift:2,rotate:10" (convlens.augment); "none": none
    augment: str = "none"
    val_fraction: Annotated[float, Field(ge=0, lt=1)] = 0.1
    patience: Annotated[int, Field(ge=1)] | None = None  # early stopping on validation loss; best weights kept
    eval_batch_size: Annotated[int, Field(ge=1)] = EVAL_BATCH_SIZE
    precision: Precision = "fp32"
    # Decay of an exponential moving average of the weights (and BatchNorm statistics), updated every step;
    # validation, early stopping and the model that is kept use the average. None: the last weights. (torch's
    # AveragedModel reads a step counter on the host each step: one sync per step on CUDA.)
    ema: Annotated[float, Field(gt=0, lt=1)] | None = None
    # The optimizer's fused kernel (torch's fused=True): one pass per parameter instead of the loop over a dozen
    # elementwise ops, the same update to rounding.
    fused: bool = False

    @field_validator("augment")
    @classmethod
    def _one_spelling(cls, text: str) -> str:
        """'rotate:10, shift:2' and 'shift:2,rotate:10' are one recipe (one run identity, one factor level)."""
        from convlens.augment import canonical
        return canonical(text)

    @model_validator(mode="after")
    def _one_mirror(self) -> Recipe:
        """hflip and augment's flip both mirror the same images, one after the other: with both at 0.5 a quarter
        of the images would be mirrored twice (back to the original)."""
        from convlens.augment import parse_augment
        if self.hflip > 0 and parse_augment(self.augment).flip > 0:
            raise ValueError(f"hflip={self.hflip:g} and augment '{self.augment}' both mirror images left-right; "
                             "give one of them")
        return self


RECIPES: dict[str, Recipe] = {
    # The reference write-ups' Keras recipe: Adam 1e-3 (Keras defaults), batch 128, constant LR, 15 epochs, 10%
    # validation.
    "keras": Recipe(name="keras", epochs=15, batch_size=128, optimizer="adam", lr=1e-3, schedule="constant"),
    # convlens' faster recipe (bench/README.md, "Time to accuracy"): a one-cycle LR schedule peaking at 4e-3 lets a
    # fixed 4-epoch budget converge; label smoothing and decoupled weight decay regularise for free; bf16 autocast
    # where the hardware has it (2.1x faster on an AMX CPU, validation +0.03 pp [-0.15, +0.21]; 1.5x on an AMD Zen 4,
    # -0.02 pp [-0.17, +0.13] over seeds 0-9, held out -0.075 pp; see training.bf16_is_native). Batch 128 is the
    # fastest per image in the real loop on 2 cores (larger batches spill the caches). First chosen on test
    # accuracy (seeds 0-4), then every choice re-checked on validation accuracy (seeds 0-4, the 10% split):
    # bench/README.md lists every variant tried. Four epochs, not five or six (+0.31 / +0.68 pp on validation): the
    # study's time budget.
    # The fused AdamW kernel: 6% less time per run, validation -0.06 pp [-0.25, +0.13] (p=0.41, n=5).
    "fast": Recipe(name="fast", epochs=4, batch_size=128, optimizer="adamw", lr=4e-3, weight_decay=5e-4,
                   schedule="onecycle", warmup_fraction=0.25, label_smoothing=0.1, precision="auto", fused=True),
}
DEFAULT_RECIPE = "fast"
RECIPE_DESCRIPTIONS = {
    "keras": "the write-ups' Keras recipe: Adam 1e-3, batch 128, constant LR, 15 epochs",
    "fast": "convlens' default: AdamW, one-cycle LR peaking at 4e-3, label smoothing 0.1, 4 epochs, bf16 where native",
}


def recipe_label(recipe: dict) -> str:
    """'keras' or 'keras epochs=1': a recipe record's name plus what differs from the named recipe (as the CLI's
    experiment table and the notebook's title print it)."""
    named = RECIPES.get(recipe["name"])
    base = named.model_dump(mode="json") if named else {}
    return recipe["name"] + "".join(f" {k}={v}" for k, v in recipe.items() if base.get(k) != v)


def resolve_recipe(name: str, overrides: dict[str, Any] | None = None) -> Recipe:
    """Recipe ``name`` with ``overrides`` (None values are ignored), validated."""
    if name not in RECIPES:
        raise UsageError(f"unknown recipe '{name}'{did_you_mean(name, RECIPES)}; valid recipes: {', '.join(RECIPES)}")
    changes = {k: v for k, v in (overrides or {}).items() if v is not None}
    if not changes:
        return RECIPES[name]
    try:
        return Recipe.model_validate({**RECIPES[name].model_dump(), **changes})
    except ValidationError as e:
        raise UsageError(f"invalid training option: {format_validation_error(e, whole=None)}") from None


def _as_validation(check: Callable[[str], str]) -> Callable[[str], str]:
    """A check that raises UsageError (one line for the CLI) as a pydantic validator (which wants ValueError)."""
    def validate(value: str) -> str:
        try:
            return check(value)
        except UsageError as e:
            raise ValueError(str(e)) from None
    return validate


def _dataset_name(name: str) -> str:
    from convlens.data.catalog import check_dataset_name  # lazily: the catalog imports the data sources
    return check_dataset_name(name)


# A preset's full name (an alias such as ``cnn`` becomes it, so equal models always carry equal names), and a
# dataset of convlens.data.catalog (a folder as its absolute path): the types every config uses for them.
ModelName = Annotated[str, AfterValidator(_as_validation(canonical_name))]
DatasetName = Annotated[str, AfterValidator(_as_validation(_dataset_name))]


def _device_name(name: str) -> str:
    if not re.fullmatch(DEVICE_PATTERN, name):
        raise ValueError(f"must be {', '.join(DEVICES)} or cuda:N")
    return name


class TrainConfig(BaseModel):
    """Everything one training run needs; stored (resolved) in the run's config.json."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    model: ModelName
    overrides: dict[str, Any] = Field(default_factory=dict)
    recipe: Recipe = RECIPES[DEFAULT_RECIPE]
    seed: Annotated[int, Field(ge=0, lt=2**63)] = 0
    device: Annotated[str, AfterValidator(_device_name)] = "auto"  # as pick_device takes it
    threads: Annotated[int, Field(ge=1)] | None = None  # CPU threads; None = all cores
    # How many runs shared this machine while this one trained (experiment --workers): recorded with the timings,
    # which are compared only between runs trained under equal conditions. Not part of what a run trains.
    workers: Annotated[int, Field(ge=1)] = 1
    data_dir: Path | None = None
    train_subset: Annotated[int, Field(ge=1)] | None = None  # first N training images (quick runs, tests)
    test_subset: Annotated[int, Field(ge=1)] | None = None
    # "permuted": train and test images get one fixed pixel permutation (the locality probe, data/permutation.py)
    pixels: Literal["original", "permuted"] = "original"
    dataset: DatasetName = "fashion-mnist"


def train_config(model: str = "cnn", dataset: str = "fashion-mnist", *, recipe: str = DEFAULT_RECIPE, seed: int = 0,
                 set: dict[str, Any] | None = None, device: str = "auto", threads: int | None = None,
                 train_subset: int | None = None, test_subset: int | None = None, data_dir: str | Path | None = None,
                 **recipe_overrides: Any) -> TrainConfig:
    """The validated TrainConfig of ``convlens.train``'s and ``convlens train``'s arguments (a wrong name or value
    is one UsageError line, before torch is imported)."""
    if set is not None and not isinstance(set, dict):  # 'kernel_size=5' is the CLI's spelling
        raise UsageError(f"set takes a dict of model settings, e.g. set={{'kernel_size': 5}}; got {set!r}")
    from convlens.models.registry import model_fields
    misplaced = [k for k in recipe_overrides if k not in Recipe.model_fields and k in model_fields(model)]
    if misplaced:  # train(kernel_size=5): 'Extra inputs are not permitted' would not say where it goes
        k = misplaced[0]
        raise UsageError(f"{k} is a model setting, not a training option: set={{'{k}': {recipe_overrides[k]!r}}}")
    resolve_spec(model, set)  # a bad model name or field: the registry's message, before anything else
    try:
        return TrainConfig(model=model, overrides=dict(set or {}), recipe=resolve_recipe(recipe, recipe_overrides),
                           seed=seed, device=device, threads=threads, data_dir=data_dir, train_subset=train_subset,
                           test_subset=test_subset, dataset=dataset)
    except ValidationError as e:
        raise UsageError(f"invalid option: {format_validation_error(e)}") from None


MAX_LEVELS = 50  # levels of one factor: each is trained seeds times, so more is a mistake, not a design
MAX_CONFIG_BYTES = 1_000_000  # a spec or study config is a few hundred bytes; a megabyte is not a config


def read_yaml(path: Path) -> Any:
    """A YAML spec or config file, parsed safely: no Python objects, no anchors or aliases (nine nested aliases
    of ten items make a billion-element list that validation would walk for ever), no key given twice (YAML
    would keep the last one without a word), at most a megabyte. A syntax error names its line and column."""
    import yaml

    class StrictLoader(yaml.SafeLoader):
        def compose_node(self, parent, index):  # type: ignore[no-untyped-def]
            if self.check_event(yaml.AliasEvent):
                raise yaml.YAMLError("anchors and aliases (&name / *name) are not supported; write the values out")
            return super().compose_node(parent, index)

        def construct_mapping(self, node, deep=False):  # type: ignore[no-untyped-def]
            first_line: dict[Any, int] = {}
            for key_node, _ in node.value:
                if key_node.tag == "tag:yaml.org,2002:merge":
                    continue
                key = self.construct_object(key_node, deep=True)
                try:
                    earlier = first_line.get(key)
                except TypeError:  # an unhashable key: the base class says so
                    break
                if earlier is not None:
                    shown = repr(key) if len(repr(key)) <= 60 else repr(key)[:57] + "..."
                    raise yaml.MarkedYAMLError(problem=f"{shown} is given twice (first on line {earlier})",
                                               problem_mark=key_node.start_mark)
                first_line[key] = key_node.start_mark.line + 1
            return super().construct_mapping(node, deep=deep)

    if path.stat().st_size > MAX_CONFIG_BYTES:
        raise UsageError(f"{path}: {path.stat().st_size:,} bytes is too large for a config file")
    try:
        text = path.read_text()
    except UnicodeDecodeError:
        raise UsageError(f"{path}: not a text file (YAML is UTF-8 text)") from None
    try:
        return yaml.load(text, Loader=StrictLoader)  # noqa: S506 - a SafeLoader subclass
    except yaml.MarkedYAMLError as e:
        raise UsageError(f"{path}: not valid YAML ({yaml_error_where(e)})") from None
    except yaml.YAMLError as e:
        raise UsageError(f"{path}: not valid YAML ({str(e).splitlines()[0]})") from None
    except (ValueError, TypeError, OverflowError, RecursionError) as e:  # the constructors' own: 2020-13-01,
        # a 5,000-digit integer, nesting thousands deep
        raise UsageError(f"{path}: not valid YAML ({type(e).__name__}: {str(e)[:100]})") from None


def yaml_error_where(error: Any) -> str:
    """A YAML syntax error in one line: its line and column first (PyYAML counts from 0, editors from 1), then what
    was open when it happened, e.g. 'line 3, column 6: expected ',' or ']', but got ':' (while parsing a flow
    sequence that starts on line 2, column 9)'."""
    def where(mark: Any) -> str:
        return f"line {mark.line + 1}, column {mark.column + 1}"
    mark, context_mark = error.problem_mark, error.context_mark
    text = f"{where(mark)}: {error.problem or 'syntax error'}" if mark else (error.problem or "syntax error")
    if error.context:
        text += f" ({error.context}" + (f" that starts on {where(context_mark)})" if context_mark else ")")
    return text


def model_spec(config: TrainConfig):  # -> ModelSpec (models.spec; not imported here for the annotation)
    """The network ``config`` trains: its preset with the dataset's channels, image size and class count, then
    the overrides. One function, so training, experiments and the study agree on every spec."""
    from convlens.data.catalog import dataset_info
    fixed = dataset_info(config.dataset).spec_values()
    spec = resolve_spec(config.model, {**fixed, **config.overrides})
    overridden = [k for k, v in fixed.items() if k in config.overrides and getattr(spec, k) != v]
    if overridden:  # the model's settings, not the dataset, are what is wrong
        raise UsageError(f"{', '.join(f'{k}={getattr(spec, k)}' for k in overridden)} does not fit {config.dataset} "
                         f"({', '.join(f'{k}={fixed[k]}' for k in overridden)}): the dataset sets "
                         f"{', '.join(fixed)}; leave {' and '.join(overridden)} out of the model's settings (--set)")
    return spec


def check_augmentation(cfg: TrainConfig) -> None:
    """Augmentation that keeps each image's class, on this dataset: mirroring only where a mirrored image keeps its
    class (a mirrored shoe is a shoe, a mirrored 3 is not a 3; the dataset says which, convlens.data.catalog), and a
    shift of at most half the image's side (8x8 digits shifted by 8 px leave an empty canvas)."""
    from convlens.augment import parse_augment
    from convlens.data.catalog import dataset_info
    info = dataset_info(cfg.dataset)
    augmentation = parse_augment(cfg.recipe.augment)
    mirror = (f"--augment {cfg.recipe.augment}" if augmentation.flip > 0 else
              f"--hflip {cfg.recipe.hflip:g}" if cfg.recipe.hflip > 0 else None)
    if mirror and not info.flips_preserve_meaning:
        raise UsageError(f"{mirror} mirrors training images, but a mirrored image of {cfg.dataset} is not of the same "
                         "class (digits and characters are not symmetric); leave mirroring out for this dataset")
    if augmentation.shift > info.size // 2:
        raise UsageError(f"--augment {cfg.recipe.augment}: a shift of up to {augmentation.shift} px would move "
                         f"{cfg.dataset}'s {info.size}x{info.size} images off the canvas; use shift:"
                         f"{max(1, info.size // 8)} or so (at most {info.size // 2})")


def check_before_training(cfg: TrainConfig, train_images: int | None = None) -> None:
    """What can be refused in ``cfg`` before any data is read or anything written, beyond its fields' own checks: a
    run (runs.py) and each level of an experiment (its plan) call this first. ``train_images``: the training images
    of a dataset given already loaded (the API's ``train(data=...)``, changed or not), counted instead of the
    named dataset's."""
    check_augmentation(cfg)
    check_batch_size(cfg, train_images)


def _training_images(cfg: TrainConfig, given: int | None = None) -> tuple[int, int] | None:
    """(images the run trains on, the training images they are left from once validation is held out), known before
    the data is read: ``given`` (a loaded dataset's), else a built-in dataset's training images, or --train-subset's
    N when fewer; None for a folder dataset without --train-subset."""
    from convlens.data import catalog
    from convlens.data.dataset import validation_size
    info = catalog.dataset_info(cfg.dataset)
    if given is not None:  # a loaded dataset may hold more or fewer images than the one its name reads
        total = given
    elif info.manifest is not None:
        total = info.manifest.files["train_images"].shape[0]
    elif cfg.dataset == "cifar10":
        total = len(catalog.CIFAR10_TRAIN) * 10_000
    elif cfg.dataset == "digits":  # scikit-learn's 1,797 images less the fixed test split (a few ms to read)
        try:
            from sklearn.datasets import load_digits
        except ImportError:  # reading the data says what to install
            return None
        total = len(catalog.stratified_split(load_digits().target)[0])
    else:
        total = cfg.train_subset
    if total is None or (cfg.train_subset or 0) > total:  # a subset larger than the data: refused when it is read
        return None
    total = cfg.train_subset or total
    return total - validation_size(total, cfg.recipe.val_fraction), total


def check_batch_size(cfg: TrainConfig, train_images: int | None = None) -> None:
    """A batch size the user chose (other than its recipe's) no larger than the images a run trains on: a larger
    one trained one batch of all of them per epoch, without a word. The recipe's own batch size on a small
    --train-subset is not refused (its choice, not the user's): each epoch is then one smaller batch."""
    named = RECIPES.get(cfg.recipe.name)
    if named is not None and named.batch_size == cfg.recipe.batch_size:
        return
    sizes = _training_images(cfg, train_images)
    if sizes is None or cfg.recipe.batch_size <= sizes[0]:
        return
    n, total = sizes
    held_out = f" ({total:,} less the {total - n:,} held out for validation)" if total != n else ""
    # 'batch_size: ... (got N)': the CLI names it --batch-size when that is where N was typed (cli._in_the_users_words)
    raise UsageError(f"batch_size: larger than the {n:,} images {cfg.dataset} trains on{held_out}, so each epoch "
                     f"would be one batch of {n:,}; give at most {n:,} (got {cfg.recipe.batch_size})")
