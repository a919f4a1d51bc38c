"""What convlens's own JSON files hold, as pydantic models: a run's metrics.json and config.json, an experiment's
experiment.json. They are checked where they are read back (the run store, the statistics, ``compare``,
``evaluate``, ``export``, the notebook API), so a file edited by hand or written by another tool is answered with
one line naming the file and the field, not a traceback from deep in the statistics.

Only the fields something reads are typed; the rest pass through unchecked (``extra="allow"``), so a record
written by a newer convlens with more fields still reads. Types are strict (a number written as a string is
refused, not converted): the readers use the parsed JSON as it is, so what passes must already have the
right type. Nothing here imports torch.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    NonNegativeInt,
    PositiveInt,
    StrictStr,
    ValidationError,
    model_validator,
)

from convlens.errors import UsageError, format_validation_error
from convlens.models.spec import SPEC_TYPES, ModelSpec

RUN_FORMAT = "convlens-run/1"  # a training run's config.json
MODEL_FORMAT = "convlens-model/1"  # an exported model's (convlens export)
SPEC_KINDS = set(SPEC_TYPES)
Fraction = Annotated[float, Field(ge=0, le=1)]
NonNegative = Annotated[float, Field(ge=0)]


class _Record(BaseModel):
    model_config = ConfigDict(extra="allow", strict=True)


class RunParams(_Record):
    total: NonNegativeInt
    trainable: NonNegativeInt | None = None
    non_trainable: NonNegativeInt | None = None


class RunTiming(_Record):
    """The conditions a run's seconds depend on (timings are compared only when these are equal)."""

    device_type: str
    device: str
    threads: PositiveInt
    workers: PositiveInt
    batched_seeds: PositiveInt | None = None


class EpochRecord(_Record):
    """One epoch of a run's history (``convlens.training.EpochRecord``); null where no validation split was held."""

    epoch: PositiveInt
    train_loss: float
    train_accuracy: Fraction
    val_loss: float | None
    val_accuracy: Fraction | None
    lr: float
    seconds: NonNegative
    train_eval_loss: float | None = None
    train_eval_accuracy: Fraction | None = None


# What the statistics read from every finished run (the rest is read where present).
DONE_RECORDS = ("test_accuracy", "test_loss", "train_seconds", "epochs_run", "per_class_accuracy", "confusion_matrix",
                "history")


class RunMetrics(_Record):
    """metrics.json: written last, so its presence means the run finished (done, or failed with a reason)."""

    status: Literal["done", "failed"]
    reason: str | None = None
    test_accuracy: Fraction | None = None
    test_correct: NonNegativeInt | None = None
    n_test: PositiveInt | None = None
    test_loss: float | None = None
    val_accuracy: Fraction | None = None
    val_loss: float | None = None
    train_seconds: NonNegative | None = None
    train_images_per_second: NonNegative | None = None
    epochs_run: NonNegativeInt | None = None
    precision: str | None = None
    inference_ms_per_image: NonNegative | None = None
    inference_ms_single: NonNegative | None = None
    stopped_early_at: PositiveInt | None = None
    per_class_accuracy: list[Fraction] | None = None  # 0 for a class with no test image
    confusion_matrix: list[list[NonNegativeInt]] | None = None
    params: RunParams | None = None
    macs: NonNegativeInt | None = None
    timing: RunTiming | None = None
    history: Annotated[list[EpochRecord], Field(min_length=1)] | None = None

    @model_validator(mode="before")
    @classmethod
    def _not_older(cls, data: Any) -> Any:
        if isinstance(data, dict) and data.get("status") == "ok":  # what convlens wrote before 'done' and 'failed'
            raise ValueError("found a run written by an older convlens (status 'ok'); train it again (experiment "
                             "run / study: --force)")
        return data

    @model_validator(mode="after")
    def _consistent(self) -> RunMetrics:
        missing = [name for name in DONE_RECORDS if getattr(self, name) is None]
        if self.status == "done" and missing:
            raise ValueError(f"a finished run ('status': 'done') records its {missing[0]}")
        if self.test_correct is not None and self.n_test is not None and self.test_correct > self.n_test:
            raise ValueError(f"test_correct {self.test_correct} exceeds n_test {self.n_test}")
        cm = self.confusion_matrix
        if cm is not None and any(len(row) != len(cm) for row in cm):
            raise ValueError("confusion_matrix is not square")
        if cm is not None and self.per_class_accuracy is not None and len(self.per_class_accuracy) != len(cm):
            raise ValueError(f"per_class_accuracy has {len(self.per_class_accuracy)} classes, the confusion matrix "
                             f"{len(cm)}")
        return self


class RunModel(BaseModel):
    # Not strict: the spec is validated as a spec is everywhere else (JSON lists for its tuples).
    model_config = ConfigDict(extra="allow")

    name: StrictStr
    overrides: dict[str, Any] = {}
    spec: ModelSpec


class RunRecipe(_Record):
    name: str
    epochs: PositiveInt | None = None
    batch_size: PositiveInt | None = None


class RunData(_Record):
    dataset: str
    directory: str | None = None
    train_subset: PositiveInt | None = None
    test_subset: PositiveInt | None = None
    pixels: Literal["original", "permuted"] = "original"
    permutation_seed: int | None = None


class RunProvenance(_Record):
    device: dict[str, Any] = {}  # its "type" is part of a run's identity (convlens compare)


class RunConfig(_Record):
    """A training run's config.json (format convlens-run/1): what rebuilds the model, how it was trained, on what."""

    format: str | None = None
    model: RunModel
    recipe: RunRecipe
    seed: NonNegativeInt
    data: RunData
    input: dict[str, Any] | None = None  # checked where it is served (predictor.check_servable)
    class_names: list[str] | None = None
    provenance: RunProvenance = RunProvenance()


class ModelConfig(_Record):
    """An exported model's config.json (format convlens-model/1, written by ``convlens export``)."""

    format: Literal[MODEL_FORMAT]
    model: RunModel
    dataset: str
    class_names: list[str]
    input: dict[str, Any]
    source_run: dict[str, Any] = {}


class LevelConfig(_Record):
    """A level's resolved training config, the seed left out (``convlens.config.TrainConfig`` as JSON)."""

    model: str
    recipe: RunRecipe


class LevelRecord(_Record):
    label: str
    values: dict[str, Any]
    config: LevelConfig


class ExperimentRecord(_Record):
    """experiment.json: the spec (checked again by ``parse_spec`` where it is used), the resolved levels, the
    one-factor diff."""

    spec: dict[str, Any]
    reference: str
    levels: Annotated[list[LevelRecord], Field(min_length=1)]
    diff: dict[str, dict[str, Any]] = {}

    @model_validator(mode="after")
    def _reference_is_a_level(self) -> ExperimentRecord:
        if self.reference not in {lv.label for lv in self.levels}:
            raise ValueError(f"the reference {self.reference!r} is none of the levels")
        return self


HINTS = {
    RunMetrics: "train the run again (in an experiment, delete this file and 'convlens experiment run' redoes the run)",
    RunConfig: "a run's config.json records how it was trained; train the run again",
    ModelConfig: "export the model again from its run (convlens export)",
    ExperimentRecord: "run the experiment again into another --out (or --force to discard this one's runs)",
}


def checked(record: dict, schema: type[_Record], path: Path) -> dict:
    """``record`` (parsed from ``path``) as it is, once it has the shape convlens writes; else one line naming
    the file and the first wrong field."""
    try:
        schema.model_validate(record)
    except ValidationError as e:
        error = e.errors()[0]
        # The field as a path into the file: 'history[2].lr', 'levels[0].label' (pydantic's own drops the index),
        # without the tag pydantic adds for the spec's union ('model.spec.cnn.filters').
        where = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for i, p in enumerate(error["loc"])
                        if not (i and error["loc"][i - 1] == "spec" and p in SPEC_KINDS)).lstrip(".")
        raise UsageError(f"{path}: {format_validation_error(e, whole=None, field=where)}; it is not as convlens "
                         f"writes it: {HINTS[schema]}") from None
    return record
