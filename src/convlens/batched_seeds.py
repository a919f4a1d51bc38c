"""Train every seed of one configuration at once, as one batched model: on a GPU that one small CNN cannot fill,
n seeds then cost about one run.

``torch.func.stack_module_state`` stacks the seeds' parameters and ``vmap`` runs the network on a (seeds, batch,
...) input, which turns each convolution into one grouped convolution. Each seed keeps everything that is its own
in a separate run: its weight initialisation, validation split, data order, augmentation draws and dropout masks.
The masks (and hflip's draws) come from a generator that continues the seed's own random stream exactly where the
separate run's global generator would be, so on the CPU each seed's numbers equal its separate run's to
floating-point rounding (the convolutions are grouped, so they sum in another order): tests/test_batched_seeds.py
checks that with the batched path forced. On CUDA the separate run draws its dropout masks with a fused kernel,
so there the masks differ (CUDA runs are not bit-reproducible anyway).

The optimizer updates the stacked tensors: Adam, AdamW and SGD are elementwise, so each seed's slice gets its
separate run's update. Early stopping (each seed would stop at its own epoch) and weight averaging are not
batched: ``not_batchable`` says why, and those configurations train one seed at a time.
"""

from __future__ import annotations

import copy
import math
import time

import torch
import torch.nn.functional as F
from torch import nn

from convlens.augment import augment_batch, augment_seed, parse_augment
from convlens.config import Recipe
from convlens.data.dataset import DeviceSplits
from convlens.errors import TrainingDiverged
from convlens.models.network import Network
from convlens.training import (
    EpochRecord,
    TrainingOutcome,
    make_optimizer,
    make_schedule,
    monitor,
    precision_autocast,
    resolve_precision,
    train_subset_indices,
)


def not_batchable(recipe: Recipe) -> str | None:
    """Why ``recipe``'s seeds cannot train as one batched model, or None when they can."""
    if recipe.patience is not None:
        return "early stopping ends each seed at its own epoch"
    if recipe.ema is not None:
        return "the weight average (ema) is kept per model"
    return None


def seed_generator(seed: int, device: torch.device) -> torch.Generator:
    """A generator in the state the separate run's global generator has right after its model was built (call
    this then): its hflip draws and dropout masks come next."""
    generator = torch.Generator(device=device)
    if device.type == "cpu":
        generator.set_state(torch.get_rng_state())
    else:  # the model is built on the CPU: the device's generator is as torch.manual_seed(seed) left it
        generator.manual_seed(seed)
    return generator


class _GivenMask(nn.Module):
    """Dropout with the mask drawn outside: ``x * mask``, the mask already scaled by 1 / (1 - p) as torch's own
    dropout scales its noise."""

    def __init__(self) -> None:
        super().__init__()
        self.mask: torch.Tensor | None = None  # set by StackedModels.loss for one call

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.mask


class StackedModels:
    """``models`` (one per seed, same architecture) as one function of their stacked parameters.

    ``params`` and ``buffers`` are new leaf tensors (seeds, ...) on the models' device: the optimizer's. ``loss``
    maps (params, buffers, images (seeds, batch, ...), labels (seeds, batch), one mask (seeds, batch, width) per
    dropout) to (per-seed losses (seeds,), logits (seeds, batch, classes)); each dropout multiplies by its mask,
    drawn by the caller (``draw_masks``) from each seed's own generator. ``unstack`` copies each seed's slice back
    into its model, which is then evaluated exactly like a separate run's.
    """

    def __init__(self, models: list[Network], label_smoothing: float, precision: str) -> None:
        from torch.func import functional_call, stack_module_state, vmap
        self.models = models
        self.params, self.buffers = stack_module_state(models)
        template = copy.deepcopy(models[0]).to("meta").train()  # the structure: no weights of its own
        self.dropouts = [(name, module.p) for name, module in template.named_modules()
                         if isinstance(module, nn.Dropout)]
        masked = []
        for name, _ in self.dropouts:
            parent, _, child = name.rpartition(".")
            holder = template.get_submodule(parent) if parent else template
            setattr(holder, child, _GivenMask())
            masked.append(getattr(holder, child))
        # What dropout's input is: (batch, width) of the autocast dtype (a Linear's output) or fp32.
        self.widths = [template.get_submodule(name.replace("dropout", "dense")).out_features
                       for name, _ in self.dropouts]
        self.mask_dtype = torch.bfloat16 if precision == "bf16" else torch.float32

        def loss_of_one(p, b, x, y, *masks):  # one seed: vmap slices the stacked tensors
            for module, mask in zip(masked, masks):
                module.mask = mask
            try:
                logits = functional_call(template, (p, b), (x,))
            finally:  # no vmap tensor left on a module: torch.compile would have to replay that side effect
                for module in masked:
                    module.mask = None
            return F.cross_entropy(logits, y, label_smoothing=label_smoothing), logits

        self.loss = vmap(loss_of_one)

    def draw_masks(self, n: int, generator: torch.Generator) -> list[torch.Tensor]:
        """One seed's dropout masks for a batch of ``n``, scaled by 1 / (1 - p) as torch's dropout scales its noise,
        drawn as its separate run's dropout layers draw them, in order, on the generator's device."""
        return [torch.empty(n, width, dtype=self.mask_dtype, device=generator.device)
                .bernoulli_(1 - p, generator=generator).div_(1 - p)
                for (_, p), width in zip(self.dropouts, self.widths)]

    @staticmethod
    def stack_masks(per_seed: list[list[torch.Tensor]]) -> list[torch.Tensor]:
        """Each seed's masks (``draw_masks``) as one (seeds, batch, width) tensor per dropout layer: ``loss``'s."""
        return [torch.stack(layer) for layer in zip(*per_seed)]

    def unstack(self) -> None:
        with torch.no_grad():
            for s, model in enumerate(self.models):
                for name, tensor in [*model.named_parameters(), *model.named_buffers()]:
                    tensor.copy_((self.params if name in self.params else self.buffers)[name][s])


def train_batched(models: list[Network], splits: list[DeviceSplits], recipe: Recipe, *, seeds: list[int],
                  generators: list[torch.Generator]) -> list[TrainingOutcome | TrainingDiverged]:
    """Train ``models`` (one per seed, built by the caller after ``seed_everything(seed)``, ``generators`` from
    ``seed_generator`` right after each) in place on their own ``splits``; per seed its outcome, or the
    divergence that ended it. ``train_seconds`` is each seed's share of the wall time: total / seeds."""
    reason = not_batchable(recipe)
    if reason:
        raise ValueError(f"these runs cannot train as one batched model: {reason}")
    device = splits[0].device
    n_seeds, n = len(models), len(splits[0].y_train)
    steps_per_epoch = math.ceil(n / recipe.batch_size)
    precision = resolve_precision(recipe.precision, device)
    stacked = StackedModels(models, recipe.label_smoothing, precision)
    optimizer = make_optimizer(stacked.params.values(), recipe)
    schedule = make_schedule(optimizer, recipe, steps_per_epoch * recipe.epochs)
    orders = [torch.Generator().manual_seed(seed) for seed in seeds]
    augmentation = parse_augment(recipe.augment)
    augment_rngs = ([torch.Generator(device=device).manual_seed(augment_seed(seed)) for seed in seeds]
                    if augmentation.active else None)

    probes = [train_subset_indices(n, len(sp.y_val), seed).to(device) for sp, seed in zip(splits, seeds)]
    histories: list[list[EpochRecord]] = [[] for _ in models]
    failed: dict[int, TrainingDiverged] = {}
    probe_seconds = 0.0
    step_losses = torch.empty(n_seeds, steps_per_epoch, device=device)
    start = time.perf_counter()
    for epoch in range(1, recipe.epochs + 1):
        t_epoch = time.perf_counter()
        perms = [torch.randperm(n, generator=order).to(device) for order in orders]
        correct = torch.zeros(n_seeds, dtype=torch.long, device=device)
        lr = optimizer.param_groups[0]["lr"]
        for step in range(steps_per_epoch):
            xs, ys, masks = [], [], []
            for s in range(n_seeds):  # each seed's batch, drawn in its separate run's order
                idx = perms[s][step * recipe.batch_size: (step + 1) * recipe.batch_size]
                xb, yb = splits[s].x_train.index_select(0, idx), splits[s].y_train.index_select(0, idx)
                if recipe.hflip > 0:
                    mirror = torch.rand(len(idx), 1, 1, 1, device=device, generator=generators[s]) < recipe.hflip
                    xb = torch.where(mirror, xb.flip(3), xb)
                if augment_rngs is not None:
                    xb = augment_batch(xb, augmentation, augment_rngs[s])
                masks.append(stacked.draw_masks(len(idx), generators[s]))
                xs.append(xb)
                ys.append(yb)
            y = torch.stack(ys)
            with precision_autocast(device, precision):
                losses, logits = stacked.loss(stacked.params, stacked.buffers, torch.stack(xs), y,
                                              *stacked.stack_masks(masks))
            optimizer.zero_grad(set_to_none=True)
            losses.sum().backward()  # the seeds share no parameter: each gets its own gradient
            optimizer.step()
            if schedule is not None:
                schedule.step()
            step_losses[:, step] = losses.detach()
            correct += (logits.detach().argmax(-1) == y).sum(-1)
        finite = torch.isfinite(step_losses)
        for s in range(n_seeds):
            if s not in failed and not bool(finite[s].all()):
                bad = int((~finite[s]).nonzero()[0])
                failed[s] = TrainingDiverged(epoch, bad + 1, float(step_losses[s, bad]))
        stacked.unstack()
        vals = [monitor(m, sp.x_val, sp.y_val, precision, recipe) if len(sp.y_val) and s not in failed else None
                for s, (m, sp) in enumerate(zip(models, splits))]
        seconds = time.perf_counter() - t_epoch
        t_probe = time.perf_counter()
        seen = [monitor(m, sp.x_train.index_select(0, probe), sp.y_train.index_select(0, probe), precision, recipe)
                if len(sp.y_val) and s not in failed else None
                for s, (m, sp, probe) in enumerate(zip(models, splits, probes))]
        probe_seconds += time.perf_counter() - t_probe
        for s in range(n_seeds):
            if s in failed:
                continue
            val = vals[s]
            histories[s].append(EpochRecord(
                epoch=epoch, train_loss=step_losses[s].mean().item(), train_accuracy=correct[s].item() / n,
                val_loss=val.loss if val else None, val_accuracy=val.accuracy if val else None, lr=lr,
                seconds=seconds / n_seeds, train_eval_loss=seen[s].loss if seen[s] else None,
                train_eval_accuracy=seen[s].accuracy if seen[s] else None))
        if len(failed) == n_seeds:
            break
    train_seconds = (time.perf_counter() - start - probe_seconds) / n_seeds
    return [failed[s] if s in failed else
            TrainingOutcome(model=models[s], history=histories[s], train_seconds=train_seconds,
                            precision=precision, final_validation=vals[s] if precision == "fp32" else None)
            for s in range(n_seeds)]
