"""Datasets, model summaries and single training runs, from Python: ``load_dataset``, ``summary``, ``train`` ->
``Run``, ``load_run``. The CLI's ``train`` and ``evaluate`` build on the same functions."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from convlens.config import TrainConfig, train_config
from convlens.data.dataset import ImageDataset, images_to_tensor, load_named
from convlens.errors import DataChanged, UsageError, user_path

if TYPE_CHECKING:  # imported where used: a notebook loads a study's dataset to draw its images without torch
    import torch

    from convlens.models.summary import ModelSummary


def load_dataset(name: str = "fashion-mnist", data_dir: str | Path | None = None, *,
                 download: bool = True) -> Dataset:
    """A dataset by name (fashion-mnist, mnist, kmnist, cifar10, digits or folder:PATH), verified: a Dataset.
    Found as ``convlens train`` finds it (``data_dir``, the cache, a distribution's copy), else downloaded from
    the official URLs into the cache, as train does (``download=False``: an error instead).

    Example: ``ds = convlens.load_dataset("digits"); ds.explore()["class_counts"]``
    """
    import dataclasses
    loaded = load_named(name, data_path(data_dir), download=download)
    return Dataset(**{f.name: getattr(loaded, f.name) for f in dataclasses.fields(loaded)})


def summary(model, *, dataset: str | None = None, **overrides: Any) -> ModelSummary:
    """The Keras-like summary of a model: print it, or ``.to_frame()``.

    ``model``: a name (sized for ``dataset``, default fashion-mnist; ``overrides`` change its fields) or a network
    from ``create_model`` or ``Run.model``.

    Example: ``convlens.summary("cnn", kernel_size=5).params["total"]``
    """
    from convlens.config import model_spec
    from convlens.models.network import Network
    from convlens.models.registry import canonical_name
    from convlens.models.summary import summarize
    if isinstance(model, Network):
        if overrides or dataset is not None:  # else silently not applied: the network's sizes are summarised
            raise UsageError(f"{'overrides apply' if overrides else 'dataset applies'} to a model name; a built "
                             "network is summarised as it is")
        return summarize(model, model.spec.kind)
    if not isinstance(model, str):
        raise UsageError(f"summary takes a model name or a convlens network, not {type(model).__name__}")
    # a wrong name or field: one line
    spec = model_spec(train_config(model, "fashion-mnist" if dataset is None else dataset, set=overrides))
    return summarize(Network(spec), canonical_name(model))


class Dataset(ImageDataset):
    """A loaded dataset: uint8 arrays (``train_images``, ``train_labels``, ``test_images``, ``test_labels``),
    ``class_names``, the EDA numbers and torch views.

    Example: ``ds = convlens.load_dataset("digits"); ds.explore()["class_counts"]; x, y = ds.tensors("test")``
    """

    def explore(self, *, samples_per_class: int = 8, seed: int = 0) -> dict:
        """The study's EDA numbers: sizes, balance, pixel statistics, normalisation, train/test duplicates."""
        import numbers

        from convlens.eda import explore
        for name, value in (("samples_per_class", samples_per_class), ("seed", seed)):
            # numpy's own errors ("negative dimensions are not allowed") named neither argument
            if not isinstance(value, numbers.Integral) or isinstance(value, bool) or value < 0:
                raise UsageError(f"{name} takes a whole number, 0 or more; got {value!r}")
        return explore(self, samples_per_class=samples_per_class, seed=seed)

    def tensors(self, split: str = "train") -> tuple[torch.Tensor, torch.Tensor]:
        """(images float32 (N, C, H, W) in [0, 1], labels int64 (N,)) of ``split`` ("train" or "test"), as the
        models take them."""
        if split not in ("train", "test"):
            raise UsageError(f"split is 'train' or 'test', not {split!r}")
        import torch
        images, labels = (self.train_images, self.train_labels) if split == "train" else (self.test_images,
                                                                                        self.test_labels)
        return images_to_tensor(images), torch.as_tensor(labels.astype(np.int64))

    def _repr_html_(self) -> str:
        from convlens.display import html_table
        c, h, w = self.input_shape
        return html_table([{"dataset": self.name, "train": f"{len(self.train_labels):,}",
                            "test": f"{len(self.test_labels):,}", "images": f"{h}x{w}, {c} channel(s), uint8",
                            "classes": ", ".join(self.class_names)}], title="Dataset")


class Run:
    """A trained run: its config, metrics and model; saved in ``directory`` when it has one.

    Example: ``run = convlens.train("cnn", "digits"); run.metrics["test_accuracy"]; run.history``
    """

    def __init__(self, config: dict, metrics: dict, directory: Path | None = None, model=None):
        self.config, self.metrics, self.directory, self._model = config, metrics, directory, model

    @property
    def test_accuracy(self) -> float:
        """Accuracy on the test set (a fraction)."""
        return self._finished()["test_accuracy"]

    @property
    def _failed(self) -> bool:  # diverged: metrics["reason"] says why
        return self.metrics.get("status") == "failed"

    def _finished(self) -> dict:
        # a failed run's metrics.json holds only why it failed, and its weights are whatever it had reached
        if self._failed:
            raise UsageError(f"{self.directory or 'this run'} is a failed run ({self.metrics.get('reason')}); it has "
                             "no test accuracy and its weights are not a trained model: train it again (force=True)")
        return self.metrics

    @property
    def history(self):
        """Per-epoch losses and accuracies as a pandas DataFrame indexed by epoch (empty for a run that failed
        before its first epoch ended)."""
        import pandas as pd
        return pd.DataFrame(self.metrics.get("history", []), columns=None if self.metrics.get("history") else
                            ["epoch"]).set_index("epoch")

    @property
    def model(self):
        """The trained network (torch), on the CPU, in eval mode when loaded from a directory."""
        if self._model is None:
            from convlens.models.checkpoint import load_model
            self._model, _ = load_model(self._saved("load its model"))
        return self._model

    @property
    def class_names(self) -> list[str]:
        """The names of the classes, in the order of the model's outputs."""
        return list(self.config["class_names"])

    def _saved(self, what: str) -> Path:
        if self.directory is None:
            raise UsageError(f"this run was not saved, so it cannot {what}; train it with out=DIRECTORY")
        return self.directory

    def evaluate(self, data_dir: str | Path | None = None, *, dataset: ImageDataset | None = None) -> dict:
        """Test accuracy and loss again, from the saved weights, on the test images the run was tested on: its
        dataset read again by name (from ``data_dir``), or ``dataset`` (the Dataset it was trained on, when that
        was changed in Python), checked against the images the run recorded."""
        from convlens.runs import evaluate_run
        if dataset is not None and not isinstance(dataset, ImageDataset):
            raise UsageError(f"dataset takes a Dataset (convlens.load_dataset, changed or not), got {dataset!r}")
        try:
            return evaluate_run(self._saved("be evaluated"), data_dir=data_path(data_dir), dataset=dataset)
        except DataChanged as e:
            if dataset is not None:
                raise
            # read by name, a dataset the run was trained on after changing it in Python gives other images
            raise DataChanged(f"{e}; if it was trained on a Dataset changed in Python, give that: "
                              "run.evaluate(dataset=...)") from None

    def export(self, directory: str | Path, *, onnx: bool = False, force: bool = False) -> Path:
        """A model directory that ``convlens serve``, ``predict`` and SageMaker load. ``directory`` holding another
        run's export is refused unless ``force``; this run's own export is replaced."""
        from convlens.serving.export import export_run
        out = output_path(directory, "directory")
        # a model's config.json in an experiment's or a study's directory makes it refuse to run again there
        refuse_results_directory(out, "an exported model", "directory")
        return export_run(self._saved("be exported"), out, onnx=onnx, replace_other=force)

    def predict_proba(self, images: np.ndarray) -> np.ndarray:
        """Class probabilities (N, classes) for images as the dataset holds them: uint8 (N, H, W) or (N, H, W, C)
        with C = 1 or 3, or float (N, C, H, W) in [0, 1]."""
        import copy

        import torch

        from convlens.serving.predictor import refuse_permuted
        from convlens.training import predict_logits, uses_channels_last
        self._finished()
        refuse_permuted(self.config, self.directory or "this run")  # plain images to such a model: nonsense
        try:
            images = np.asarray(images)
        except ValueError:  # ragged nested lists
            raise UsageError("images must be one array of equal-sized images") from None
        uint8 = images.dtype == np.uint8
        if images.dtype.kind in "iu" and not uint8:
            raise UsageError(f"integer images must be uint8 (0-255); got {images.dtype} (floats are read as [0, 1])")
        if images.dtype.kind not in "buf" or not (
                images.ndim == 4 and (not uint8 or images.shape[-1] in (1, 3)) or uint8 and images.ndim == 3):
            raise UsageError(f"expected uint8 images (N, H, W) or (N, H, W, C), or float images (N, C, H, W); got "
                             f"{images.dtype} of shape {tuple(images.shape)}")
        if not uint8 and not np.isfinite(images).all():
            raise UsageError("the images contain NaN or infinity")
        if not uint8 and images.size and (images.min() < 0 or images.max() > 1):  # 0-255 floats: wrong, silently
            raise UsageError(f"float images must be in [0, 1], as the model was trained; got {images.min():g}.."
                             f"{images.max():g} (divide by 255, or pass uint8 pixels)")
        x = images_to_tensor(images) if uint8 else torch.as_tensor(images, dtype=torch.float32)
        model = self.model
        spec = model.spec
        expected = (spec.in_channels, spec.image_size, spec.image_size)
        if tuple(x.shape[1:]) != expected:
            raise UsageError(f"the model takes images of (C, H, W) = {expected}; got {tuple(x.shape[1:])}")
        device = next(model.parameters()).device
        if uses_channels_last(device):
            # As runs evaluate on the CPU: 4x faster than one NCHW forward of 10,000 images. A copy (1 ms), so the
            # user's run.model keeps its layout (and, say, still saves with safetensors as it is).
            model = copy.deepcopy(model).to(memory_format=torch.channels_last)
            x = x.contiguous(memory_format=torch.channels_last)
        return torch.softmax(predict_logits(model, x.to(device)), dim=1).cpu().numpy()

    def predict(self, images: np.ndarray) -> np.ndarray:
        """Predicted class indices (N,); ``class_names`` names them."""
        return self.predict_proba(images).argmax(axis=1)

    def __repr__(self) -> str:
        m = self.metrics
        where = f" in {self.directory}" if self.directory else ""
        from convlens.display import model_label
        model = model_label(self.config["model"]["name"], self.config["model"].get("overrides"))
        if self._failed:
            return f"Run({model}, seed {self.config['seed']}: failed ({m.get('reason')}){where})"
        return (f"Run({model}, seed {self.config['seed']}: test accuracy "
                f"{m['test_accuracy']:.2%} after {m['epochs_run']} epoch{'s' if m['epochs_run'] != 1 else ''}{where})")

    def _repr_html_(self) -> str:
        from convlens.display import html_table, model_label
        m = self.metrics
        model = model_label(self.config["model"]["name"], self.config["model"].get("overrides"))
        title = f"Run{f' {self.directory}' if self.directory else ''}"
        if self._failed:
            return html_table([{"model": model, "dataset": self.config["data"]["dataset"],
                                "seed": str(self.config["seed"]), "status": "failed",
                                "reason": str(m.get("reason"))}], title=title)
        rows = [{"model": model, "dataset": self.config["data"]["dataset"],
                 "recipe": self.config["recipe"]["name"], "seed": str(self.config["seed"]),
                 "test accuracy": f"{m['test_accuracy']:.2%}", "test loss": f"{m['test_loss']:.4f}",
                 "epochs": str(m["epochs_run"]), "train s": f"{m['train_seconds']:.1f}",
                 "params": f"{m['params']['total']:,}"}]
        return html_table(rows, title=title)


def train(model: str = "cnn", data: str | ImageDataset = "fashion-mnist", *, recipe: str = "fast", seed: int = 0,
          out: str | Path | None = None, force: bool = False, quiet: bool = False, set: dict[str, Any] | None = None,
          device: str = "auto", threads: int | None = None, train_subset: int | None = None,
          test_subset: int | None = None, data_dir: str | Path | None = None, **recipe_overrides: Any) -> Run:
    """Train a model on a dataset with a recipe, and return the Run (saved in ``out`` when given).

    A run already in ``out`` is replaced only with ``force=True``.

    ``model``: a name (``set`` changes its fields); ``data``: a name or a loaded dataset; ``recipe_overrides``
    change the recipe's fields (``epochs=2``, ``lr=1e-3``, ...).

    Example: ``run = convlens.train("cnn", "digits", epochs=2, set={"kernel_size": 5}, out="runs/k5")``
    """
    if "dataset" in recipe_overrides:  # the CLI's --dataset; here it would collide with train_config's own
        raise UsageError("convlens.train takes the dataset as data=... (a name or a loaded dataset), not dataset=")
    if isinstance(data, ImageDataset) and data_dir is not None:  # else silently not read, yet recorded
        raise UsageError("data_dir applies to a dataset named by text; a loaded dataset is trained on as it is: "
                         "leave data_dir out")
    cfg = train_config(model, data.name if isinstance(data, ImageDataset) else data, recipe=recipe, seed=seed,
                       set=set, device=device, threads=threads, train_subset=train_subset, test_subset=test_subset,
                       data_dir=data_dir, **recipe_overrides)
    return train_from_config(cfg, out, force=force, quiet=quiet,
                             dataset=data if isinstance(data, ImageDataset) else None)


def output_path(out: str | Path, name: str = "out") -> Path:
    """``out`` as a Path with ``~`` expanded (as data_dir is): one line when it is not a path, or it or a parent is
    a file (mkdir's FileExistsError or NotADirectoryError, halfway through), worded as the CLI words those."""
    if not isinstance(out, (str, os.PathLike)):
        raise UsageError(f"{name} takes a directory (a path), got {out!r}")
    path = user_path(out, "--out" if name == "out" else name)
    blocking = next((p for p in (path, *path.parents) if p.exists() and not p.is_dir()), None)
    if blocking is not None:
        raise UsageError(f"{blocking} is a file, where a directory is needed; choose another "
                         + ("--out" if name == "out" else name))
    return path


def data_path(data_dir: str | Path | None) -> Path | None:
    """``data_dir`` as a Path with ``~`` expanded; None (and "", as the CLI's empty option) for the default places.
    One line when it is no path (an int from Python: a TypeError deep in the loader)."""
    return None if data_dir is None or data_dir == "" else user_path(data_dir, "data_dir")


def holds_experiments(directory: Path) -> bool:
    """Whether ``directory`` holds experiments as a study's directory does (experiments/NAME/experiment.json, which
    a study writes before anything else, so an interrupted one is recognised too). The default root of `convlens
    experiment run`, runs/, looks the same: the messages say "holds experiments", not "is a study"."""
    return any(Path(directory).glob("experiments/*/experiment.json"))


def refuse_results_directory(out: Path, what: str, option: str = "--out") -> None:
    """One line when ``out`` is a study's directory, or an experiment's or inside one (its runs): ``what`` written
    there would be mixed into their files. A study refuses to run again in a directory holding a config.json."""
    if holds_experiments(out):
        raise UsageError(f"{out} holds experiments ({out / 'experiments'}), as a study's directory does; {what} "
                         f"there would stop a study from running again in it: give another {option}")
    where = in_an_experiment(out)
    if where is not None:
        raise UsageError(f"{out} {where}, whose runs 'convlens experiment run' trains; give another {option}")


def in_an_experiment(out: Path) -> str | None:
    """'is the experiment' or 'is inside the experiment DIR' when ``out`` is an experiment's directory or in its
    runs (convlens.run_files.experiment_of), else None: the words of every refusal to write there."""
    from convlens.run_files import experiment_of
    experiment = experiment_of(out)
    if experiment is None:
        return None
    return "is the experiment" if experiment == Path(out).absolute() else f"is inside the experiment {experiment}"


def refuse_an_experiment(directory: Path, instead: str, statistics: str | None = None) -> None:
    """An experiment's directory given where a run is wanted: 'config.json not found; give a directory written by
    'convlens train' or an experiment' read as if one were accepted. ``instead``: what to do with its runs (where
    they are follows); ``statistics``: what shows the experiment's own (the CLI's command unless given)."""
    if (directory / "experiment.json").is_file() and not (directory / "config.json").exists():
        shows = statistics or f"'convlens experiment table {directory}'"
        raise UsageError(f"{directory} is an experiment, not a run: {shows} shows its statistics; {instead} "
                         f"({directory / 'runs'}/LEVEL/seedN)")


def refuse_to_replace(out: str | Path | None, force: bool) -> None:
    """Refuse ``out`` when it already holds a convlens run, unless ``force``: training there would replace its
    weights and metrics (a directory with another program's config.json is refused later, force or not)."""
    from convlens.models.checkpoint import CONFIG_FILE, stored_format
    from convlens.records import RUN_FORMAT
    from convlens.run_files import METRICS_FILE
    if out is not None:  # force or not: counted as the experiment's runs, or the study refusing to run there again
        refuse_results_directory(Path(out), "a run")
    if out is not None and not force and stored_format(Path(out) / CONFIG_FILE) == RUN_FORMAT:
        what = "a run" if (Path(out) / METRICS_FILE).exists() else "an unfinished run (interrupted, or still training)"
        raise UsageError(f"{out} already holds {what}; nothing was written: choose another output directory, or "
                         "replace it with --force (force=True in Python)")


def train_from_config(cfg: TrainConfig, out: str | Path | None = None, *, force: bool = False, quiet: bool = False,
                      dataset: ImageDataset | None = None) -> Run:
    """``train`` from a validated TrainConfig (what the CLI builds from its options)."""
    from contextlib import nullcontext

    from convlens.directory_lock import holding
    from convlens.display import TrainingProgress
    from convlens.runs import run_training
    from convlens.training import threads_kept
    out = output_path(out) if out is not None else None
    # two trains into one --out: one is refused; torch's thread count is the session's again afterwards
    with threads_kept(), holding(out, "a run") if out is not None else nullcontext():
        refuse_to_replace(out, force)  # again, now that no other process can write there
        progress = TrainingProgress(quiet)
        try:
            result = run_training(cfg, Path(out) if out is not None else None, dataset=dataset,
                                  progress=None if progress.quiet else progress)
        finally:
            progress.close()
    return Run(result.config, result.metrics, result.directory, result.model.eval().cpu())


def load_run(directory: str | Path) -> Run:
    """A run saved by ``train(out=...)``, ``convlens train`` or an experiment (its config.json and metrics.json).

    Example: ``convlens.load_run("runs/k5").history``
    """
    from convlens.models.checkpoint import MODEL_FORMAT, RUN_WRITERS, read_checked_config
    from convlens.run_files import read_metrics
    if not isinstance(directory, (str, os.PathLike)):
        raise UsageError(f"load_run takes a run's directory (a path), got {directory!r}")
    directory = user_path(directory, "run directory")
    refuse_an_experiment(directory, "to load one of its runs, name it",
                         f"convlens.load_experiment({str(directory)!r})")
    config = read_checked_config(directory, RUN_WRITERS)
    if config.get("format") == MODEL_FORMAT:  # it has no metrics.json: "has not finished" would mislead
        source = (config.get("source_run") or {}).get("directory")
        raise UsageError(f"{directory} is an exported model{f' (of the run {source})' if source else ''}, not a "
                         f"training run, which load_run reads; an exported model answers images with 'convlens "
                         f"predict {directory} IMAGE...' or 'convlens serve {directory}'")
    return Run(config, read_metrics(directory), directory)
