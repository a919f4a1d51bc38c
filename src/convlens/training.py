"""Train and evaluate one model: resident data, sliced batches, no DataLoader, no host sync per step.

The whole dataset sits on the training device as one float tensor; each step slices a batch with
``index_select``. Per-step losses are written into a device tensor and checked once per epoch, so a NaN is
located to its exact step without a host sync on every step.
"""

from __future__ import annotations

import copy
import math
import os
import re
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from convlens.augment import augment_batch, augment_seed, parse_augment
from convlens.config import DEVICE_PATTERN, DEVICES, EVAL_BATCH_SIZE, Recipe
from convlens.data.dataset import DeviceSplits
from convlens.errors import TrainingDiverged, UsageError
from convlens.models.network import Network


def pick_device(requested: str = "auto") -> torch.device:
    if not re.fullmatch(DEVICE_PATTERN, requested):
        raise UsageError(f"device {requested!r} is not one of {', '.join(DEVICES)} (or cuda:N)")
    if requested.startswith("cuda") and not torch.cuda.is_available():
        raise UsageError(f"device {requested} (--device {requested}) was asked for but no CUDA device is available; "
                         "use auto or cpu")
    if requested.startswith("cuda:") and int(requested[5:]) >= torch.cuda.device_count():
        raise UsageError(f"device {requested}: this machine has {torch.cuda.device_count()} CUDA device(s)")
    if requested == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(requested)


def configure_threads(threads: int | None) -> int:
    """Use ``threads`` CPU threads (default: all cores this process may run on)."""
    n = threads or len(os.sched_getaffinity(0))
    torch.set_num_threads(n)
    return n


@contextmanager
def threads_kept() -> Iterator[None]:
    """Restore torch's thread count when the block ends, however: a run sets it for itself (configure_threads),
    and from Python the session's later work (a notebook, a grid search's next fit) keeps the count it had."""
    n = torch.get_num_threads()
    try:
        yield
    finally:
        torch.set_num_threads(n)


def seed_everything(seed: int) -> None:
    """Seed the global torch RNG (weight init, dropout). Data order uses its own generator, see ``train``."""
    torch.manual_seed(seed)


def bf16_is_native(device: torch.device) -> bool:
    """Whether ``precision="auto"`` trains in bf16 on ``device``: a CUDA GPU with bf16 in hardware, or a CPU with bf16
    dot products (AVX512_BF16; every CPU with AMX tiles has it too). Measured (bench/README.md): on an Intel Xeon with
    AMX a `fast` run was 2.1x faster in bf16, validation +0.03 pp [-0.15, +0.21] (n=5); on an AMD Zen 4 (AVX512_BF16,
    no AMX) 1.5x faster, validation -0.02 pp [-0.17, +0.13] (n=10, seeds 0-9; seeds 0-4 alone had said -0.15 pp,
    seeds 5-9 +0.11), held-out test -0.075 pp [-0.14, -0.01] (p=0.035, measured after the choice); an AMD Zen 5
    runs the same oneDNN kernels and gave the Zen 4's ten held-out accuracies exactly, 1.6x faster. An Intel CPU with
    AVX512_BF16 but no AMX (Cooper Lake) was not measured. Elsewhere (AVX2 only, e.g. a Zen 3) bf16 would be
    emulated: fp32."""
    if device.type == "cuda":  # in hardware (Ampere and later), not emulated (T4, V100: slower than fp32)
        with torch.cuda.device(device):
            return torch.cuda.is_bf16_supported(including_emulation=False)
    # private, hence looked up; absent (another torch): assume none
    return any(bool(check and check()) for check in (getattr(torch.cpu, "_is_avx512_bf16_supported", None),
                                                     getattr(torch.cpu, "_is_amx_tile_supported", None)))


def resolve_precision(requested: str, device: torch.device) -> str:
    """The precision a recipe's ``precision`` means on ``device``: "fp32" or "bf16"."""
    if requested == "auto":
        return "bf16" if bf16_is_native(device) else "fp32"
    return requested


def uses_channels_last(device: torch.device) -> bool:
    # oneDNN's convolutions are fastest on NHWC on CPU; cuDNN picks its own layout well enough.
    return device.type == "cpu"


@dataclass
class EpochRecord:
    epoch: int
    train_loss: float  # running mean over the epoch's steps, dropout on, before each update
    train_accuracy: float  # running, as train_loss: what a progress bar shows, biased against eval-mode numbers
    val_loss: float | None
    val_accuracy: float | None
    lr: float
    seconds: float  # wall time of this epoch (training + validation; the train-subset evaluation excluded)
    # Eval mode at the end of the epoch on a fixed training subset the size of the validation split: measured
    # exactly like val_accuracy, so train minus validation is a fair overfitting gap. Both are monitoring: they
    # run in the training step's precision (bf16 where it is bf16, 2.6x faster than fp32 on an AMX CPU); the kept
    # model's final validation and test metrics are evaluated in fp32 after training (runs.run_training).
    train_eval_loss: float | None = None
    train_eval_accuracy: float | None = None


@dataclass
class Evaluation:
    loss: float
    correct: int  # images classified correctly, of n
    n: int
    per_class_accuracy: list[float]
    confusion_matrix: list[list[int]]  # [true][predicted]
    predicted: torch.Tensor | None = None  # (N,) predicted class per image, on the CPU

    @property
    def accuracy(self) -> float:
        """correct / n as a Python float: equal predictions give exactly equal accuracies (no float32 noise)."""
        return self.correct / self.n

    def to_dict(self, prefix: str = "") -> dict:
        return {f"{prefix}loss": self.loss, f"{prefix}accuracy": self.accuracy, f"{prefix}correct": self.correct,
                "per_class_accuracy": self.per_class_accuracy, "confusion_matrix": self.confusion_matrix}


@dataclass
class TrainingOutcome:
    model: Network
    history: list[EpochRecord]
    train_seconds: float
    stopped_early_at: int | None = None
    precision: str = "fp32"  # of the training step and of the per-epoch monitoring, as resolved on the device
    # The kept model's validation when it is the last epoch's, measured in fp32 (no early stopping went back, fp32
    # training): not evaluated twice.
    final_validation: Evaluation | None = None


ProgressCallback = Callable[[str, dict], None]  # (event, payload): "start", "step", "epoch"


@torch.inference_mode()
def predict_logits(model: nn.Module, x: torch.Tensor, batch_size: int = EVAL_BATCH_SIZE) -> torch.Tensor:
    """(N, num_classes) logits in eval mode, in batches."""
    was_training = model.training
    model.eval()
    # max(.., 1): no images still make one (empty) batch, so the answer has its (0, num_classes) shape
    out = torch.cat([model(x[i : i + batch_size]).float() for i in range(0, max(len(x), 1), batch_size)])
    model.train(was_training)
    return out


def measure_inference_ms(model: nn.Module, x: torch.Tensor, batch_size: int, repeats: int = 5) -> float:
    """Median wall time in ms per image of eval-mode forward passes on batches of ``batch_size`` from ``x``."""
    was_training = model.training
    model.eval()
    batch = x[:batch_size]
    times = []
    with torch.inference_mode():
        model(batch)  # warm-up: first-call allocations and kernel selection
        for _ in range(repeats):
            start = time.perf_counter()
            model(batch)
            if batch.device.type == "cuda":
                torch.cuda.synchronize(batch.device)
            times.append((time.perf_counter() - start) * 1000 / len(batch))
    model.train(was_training)
    return float(sorted(times)[len(times) // 2])


def evaluate(model: nn.Module, x: torch.Tensor, y: torch.Tensor, num_classes: int,
             batch_size: int = EVAL_BATCH_SIZE) -> Evaluation:
    """Loss, accuracy, per-class accuracy and confusion matrix of ``model`` on (x, y)."""
    logits = predict_logits(model, x, batch_size)
    loss = F.cross_entropy(logits, y).item()
    pred = logits.argmax(1)
    confusion = torch.bincount(y * num_classes + pred, minlength=num_classes**2).view(num_classes, num_classes).cpu()
    per_class = [int(c) / max(int(t), 1) for c, t in zip(confusion.diag().tolist(), confusion.sum(1).tolist())]
    return Evaluation(loss=loss, correct=int(confusion.diag().sum()), n=len(y), per_class_accuracy=per_class,
                      confusion_matrix=confusion.tolist(), predicted=pred.cpu())


def precision_autocast(device: torch.device, precision: str) -> torch.autocast:
    """The autocast context of a ``precision`` ("fp32" or "bf16") step on ``device``."""
    return torch.autocast(device.type, dtype=torch.bfloat16, enabled=precision == "bf16")


def monitor(model: nn.Module, x: torch.Tensor, y: torch.Tensor, precision: str, recipe: Recipe) -> Evaluation:
    """A per-epoch evaluation (validation, the train subset): in the training step's precision."""
    with precision_autocast(x.device, precision):
        return evaluate(model, x, y, model.spec.num_classes, recipe.eval_batch_size)


def make_optimizer(params: Iterable[torch.Tensor], recipe: Recipe) -> torch.optim.Optimizer:
    params = list(params)
    fused = {"fused": True} if recipe.fused else {}  # else torch's default for the device
    if recipe.optimizer == "adam":  # Keras Adam defaults: eps 1e-7
        return torch.optim.Adam(params, lr=recipe.lr, eps=1e-7, weight_decay=recipe.weight_decay, **fused)
    if recipe.optimizer == "adamw":
        return torch.optim.AdamW(params, lr=recipe.lr, eps=1e-7, weight_decay=recipe.weight_decay, **fused)
    return torch.optim.SGD(params, lr=recipe.lr, momentum=recipe.momentum, nesterov=True,
                           weight_decay=recipe.weight_decay, **fused)


def one_cycle_factor(step: int, total_steps: int, warmup_fraction: float) -> float:
    """LR multiplier of the one-cycle schedule: linear warm-up from 1/10 to 1, then linear decay to 1/1000.

    Written out (rather than torch's OneCycleLR) so that any step count works, down to a one-step run.
    """
    warmup = max(1, round(total_steps * warmup_fraction))
    if step < warmup:
        return 0.1 + 0.9 * step / warmup
    remaining = max(1, total_steps - warmup)
    return 1e-3 + (1 - 1e-3) * max(0.0, 1 - (step - warmup) / remaining)


def make_schedule(optimizer: torch.optim.Optimizer, recipe: Recipe, total_steps: int):
    if recipe.schedule == "onecycle":
        return torch.optim.lr_scheduler.LambdaLR(
            optimizer, lambda step: one_cycle_factor(step, total_steps, recipe.warmup_fraction))
    if recipe.schedule == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=total_steps)
    return None


def train_subset_indices(n_train: int, n_val: int, seed: int) -> torch.Tensor:
    """Which training images (``n_val`` of them, sorted) are evaluated in eval mode after each epoch."""
    return torch.randperm(n_train, generator=torch.Generator().manual_seed(seed + 1))[:n_val].sort().values


def train(model: Network, splits: DeviceSplits, recipe: Recipe, *, seed: int,
          progress: ProgressCallback | None = None) -> TrainingOutcome:
    """Train ``model`` in place on ``splits`` following ``recipe``; returns history and timing.

    Same seed + same machine + same thread count -> same numbers on CPU: weight init was seeded by the
    caller (``seed_everything``) and the data order comes from a generator seeded here.
    """
    device = splits.device
    report = progress or (lambda event, payload: None)
    n = len(splits.y_train)
    steps_per_epoch = math.ceil(n / recipe.batch_size)
    total_steps = steps_per_epoch * recipe.epochs
    optimizer = make_optimizer(model.parameters(), recipe)
    schedule = make_schedule(optimizer, recipe, total_steps)
    order_rng = torch.Generator().manual_seed(seed)
    augmentation = parse_augment(recipe.augment)
    # its own generator on the device, seeded like the data order: augmenting changes no other random draw
    augment_rng = (torch.Generator(device=device).manual_seed(augment_seed(seed)) if augmentation.active else None)
    has_val = len(splits.y_val) > 0
    precision = resolve_precision(recipe.precision, device)
    # use_buffers: BatchNorm's running statistics are averaged with the weights, so the average is a usable model.
    average = (torch.optim.swa_utils.AveragedModel(model, multi_avg_fn=torch.optim.swa_utils.get_ema_multi_avg_fn(
        recipe.ema), use_buffers=True) if recipe.ema else None)
    kept = average.module if average is not None else model  # what is validated and, in the end, kept
    autocast = precision_autocast(device, precision)

    probe = train_subset_indices(n, len(splits.y_val), seed).to(device) if has_val else None
    x_probe = splits.x_train.index_select(0, probe) if has_val else None
    y_probe = splits.y_train.index_select(0, probe) if has_val else None
    probe_seconds = 0.0  # the train-subset evaluation is a measurement, not training: kept out of train_seconds
    history: list[EpochRecord] = []
    best_val, best_state, bad_epochs, stopped_at = math.inf, None, 0, None
    report("start", {"epochs": recipe.epochs, "steps_per_epoch": steps_per_epoch})
    step_losses = torch.empty(steps_per_epoch, device=device)
    t_start = time.perf_counter()
    for epoch in range(1, recipe.epochs + 1):
        t_epoch = time.perf_counter()
        model.train()
        perm = torch.randperm(n, generator=order_rng).to(device)
        correct = torch.zeros((), dtype=torch.long, device=device)
        lr = optimizer.param_groups[0]["lr"]
        for step in range(steps_per_epoch):
            idx = perm[step * recipe.batch_size : (step + 1) * recipe.batch_size]
            xb, yb = splits.x_train.index_select(0, idx), splits.y_train.index_select(0, idx)
            if recipe.hflip > 0:  # garments are roughly left-right symmetric: mirror on the device, per image
                mirror = torch.rand(len(idx), 1, 1, 1, device=device) < recipe.hflip
                xb = torch.where(mirror, xb.flip(3), xb)
            if augment_rng is not None:
                xb = augment_batch(xb, augmentation, augment_rng)
            with autocast:  # forward and loss; backward follows the forward's dtypes
                logits = model(xb)
                loss = F.cross_entropy(logits, yb, label_smoothing=recipe.label_smoothing)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            if schedule is not None:
                schedule.step()
            if average is not None:
                average.update_parameters(model)
            step_losses[step] = loss.detach()
            correct += (logits.detach().argmax(1) == yb).sum()
            if progress is not None and device.type == "cpu" and step % 10 == 0:
                report("step", {"epoch": epoch, "step": step + 1, "loss": loss.detach().item()})
        finite = torch.isfinite(step_losses)
        if not bool(finite.all()):
            bad = int((~finite).nonzero()[0])
            raise TrainingDiverged(epoch, bad + 1, float(step_losses[bad]))
        val = monitor(kept, splits.x_val, splits.y_val, precision, recipe) if has_val else None
        seconds = time.perf_counter() - t_epoch
        t_probe = time.perf_counter()
        seen = monitor(kept, x_probe, y_probe, precision, recipe) if has_val else None
        probe_seconds += time.perf_counter() - t_probe
        record = EpochRecord(epoch=epoch, train_loss=step_losses.mean().item(), train_accuracy=correct.item() / n,
                             val_loss=val.loss if val else None, val_accuracy=val.accuracy if val else None,
                             lr=lr, seconds=seconds, train_eval_loss=seen.loss if seen else None,
                             train_eval_accuracy=seen.accuracy if seen else None)
        history.append(record)
        report("epoch", {"record": record})
        if recipe.patience is not None and val is not None:
            if val.loss < best_val:
                best_val, best_state, bad_epochs = val.loss, copy.deepcopy(kept.state_dict()), 0
            else:
                bad_epochs += 1
                if bad_epochs >= recipe.patience:
                    stopped_at = epoch
                    break
    train_seconds = time.perf_counter() - t_start - probe_seconds
    if best_state is not None:
        model.load_state_dict(best_state)  # early stopping keeps the best validation weights
    elif average is not None:
        model.load_state_dict(average.module.state_dict())
    return TrainingOutcome(model=model, history=history, train_seconds=train_seconds, stopped_early_at=stopped_at,
                           precision=precision,
                           final_validation=val if best_state is None and precision == "fp32" else None)
