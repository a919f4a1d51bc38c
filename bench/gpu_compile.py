"""Do torch.compile and CUDA graphs pay for the default CNN's training step on a GPU? (issue 16)

One small CNN (cnn-32-64-128, 241,546 parameters) at batch 128 is far too little work for an H100: its step is a
few dozen small kernels, so the host's launches, not the GPU's arithmetic, may well set its pace. This measures what the
usual cures buy, each row the same training (same seed, same batches, the ``fast`` recipe's fused AdamW, one-cycle
schedule and label smoothing) as convlens.training.train runs it:

  * eager fp32, and eager in the precision the ``fast`` recipe resolves to on the device (bf16 autocast on a GPU
    with native bf16): the latter is marked "as convlens trains" and is the row the others are compared with;
  * torch.compile of forward and loss (backward compiled with it by AOTAutograd; the fused optimizer stays eager),
    default mode, optionally max-autotune-no-cudagraphs (--autotune: minutes of autotuning), and reduce-overhead
    (inductor's CUDA graph trees around forward and backward);
  * one CUDA graph of the whole step captured by hand: batch selection, forward, loss, backward and the fused
    AdamW update (capturable, its learning rate a device tensor so the schedule still reaches the replays), in
    both precisions;
  * the batched-seeds model (``--seeds`` seeds as one vmap'd model, as convlens.batched_seeds builds it), eager
    in both precisions and under torch.compile.

Each row prints images/s over ``--steps`` timed steps after ``--warmup`` steps, the wall time of its first step
(compilation, cuDNN's algorithm search), and two losses so a reader can see the variants train the same thing:
the mean training loss of the last 10 steps and the fp32 eval-mode loss on a fixed probe set afterwards. Compiled
single-model rows draw their dropout masks with inductor's own generator (the batched model's are drawn outside
it, so its two rows should agree closely), and bf16 rounds differently from fp32: losses agree to within noise, not
bit for bit.

The images are random tensors shaped like Fashion-MNIST (1x28x28, 10 classes), each class a fixed random pattern
plus noise: learnable, so a variant that silently stopped training (a stale graph, an optimizer that never
updates) shows a loss that stays at ln(10) ~ 2.3 while the others fall.

Usage (from the repo root, PYTHONPATH=src or convlens installed):
  python3 bench/gpu_compile.py [--steps 300] [--batch 128] [--seeds 3] [--autotune]
  python3 bench/gpu_compile.py --device cpu --steps 3 --compile-backend aot_eager   # smoke run, no CUDA rows
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

from convlens.batched_seeds import StackedModels, seed_generator
from convlens.config import Recipe, resolve_recipe
from convlens.models.network import Network
from convlens.models.registry import create_model
from convlens.training import make_optimizer, make_schedule, precision_autocast, resolve_precision, uses_channels_last

MODEL = "cnn-32-64-128"
CLASSES = 10
POOL = 16_384  # resident training images the batches are drawn from (convlens keeps all 54,000 resident)
PROBE = 2_048  # held-out images for the eval-mode loss after training
GRAPH_WARMUP = 3  # eager steps on a side stream before capturing, as torch.cuda.graphs' documentation asks
LOSS_TAIL = 10  # the training loss printed is the mean of the last this-many steps (dropout makes one step noisy)


@dataclass
class Setup:
    device: torch.device
    recipe: Recipe
    precision: str  # what the recipe resolves to on the device: "fp32" or "bf16"
    batch: int
    warmup: int
    steps: int
    seeds: int
    x: torch.Tensor  # (POOL, 1, 28, 28) in [0, 1], on the device, in convlens' memory format there
    y: torch.Tensor  # (POOL,) int64
    x_probe: torch.Tensor
    y_probe: torch.Tensor
    idx: torch.Tensor  # (warmup + steps, batch): the single-model rows' batches, the same for every row
    seed_idx: torch.Tensor  # (warmup + steps, seeds, batch): each seed's own batches in the batched rows

    @property
    def total(self) -> int:
        return self.warmup + self.steps


@dataclass
class Variant:
    """One way of training: ``step(i)`` trains on batch i; ``losses`` (seeds, total) collects each step's loss on
    the device (no host sync per step, as in convlens); ``models`` are evaluated on the probe set afterwards."""

    step: Callable[[int], None]
    losses: torch.Tensor
    models: list[nn.Module]
    images_per_step: int
    before_eval: Callable[[], None] = lambda: None  # batched: copy each seed's slice into its model
    notes: list[str] = field(default_factory=list)  # e.g. the capture time, printed with the row


def make_setup(device: torch.device, batch: int, warmup: int, steps: int, seeds: int) -> Setup:
    gen = torch.Generator().manual_seed(0)
    patterns = torch.rand(CLASSES, 1, 28, 28, generator=gen)

    def images(n: int) -> tuple[torch.Tensor, torch.Tensor]:
        y = torch.randint(0, CLASSES, (n,), generator=gen)
        return (0.7 * patterns[y] + 0.3 * torch.rand(n, 1, 28, 28, generator=gen)), y

    fmt = torch.channels_last if uses_channels_last(device) else torch.contiguous_format  # as runs._prepare_run
    (x, y), (x_probe, y_probe) = images(POOL), images(PROBE)
    total = warmup + steps
    return Setup(device=device, recipe=resolve_recipe("fast"), precision=resolve_precision("auto", device),
                 batch=batch, warmup=warmup, steps=steps, seeds=seeds,
                 x=x.to(device).contiguous(memory_format=fmt), y=y.to(device),
                 x_probe=x_probe.to(device).contiguous(memory_format=fmt), y_probe=y_probe.to(device),
                 idx=torch.randint(0, POOL, (total, batch), generator=gen).to(device),
                 seed_idx=torch.randint(0, POOL, (total, seeds, batch), generator=gen).to(device))


def new_model(setup: Setup, seed: int) -> Network:
    """The default CNN as convlens builds it for a run: seeded, built on the CPU, moved to the device."""
    torch.manual_seed(seed)
    model = create_model(MODEL).to(setup.device).train()
    if uses_channels_last(setup.device):
        model = model.to(memory_format=torch.channels_last)
    return model


def compiler(backend: str, mode: str | None) -> Callable[[Callable], Callable]:
    """torch.compile with ``mode`` under inductor; another backend (aot_eager for a cheap CPU smoke run) takes no
    mode."""
    if backend == "inductor":
        return lambda fn: torch.compile(fn, mode=mode)
    return lambda fn: torch.compile(fn, backend=backend)


def single(setup: Setup, precision: str, compile_fn: Callable[[Callable], Callable] | None = None,
           mark_steps: bool = False) -> Variant:
    """convlens.training.train's step (its hflip and augmentation are off in the fast recipe), optionally with
    forward and loss compiled. ``mark_steps``: tell CUDA graph trees where each step begins (reduce-overhead)."""
    recipe, device = setup.recipe, setup.device
    model = new_model(setup, 0)
    optimizer = make_optimizer(model.parameters(), recipe)
    schedule = make_schedule(optimizer, recipe, setup.total)
    assert schedule is not None  # the fast recipe is one-cycle

    def forward(xb: torch.Tensor, yb: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        with precision_autocast(device, precision):  # forward and loss; backward follows the forward's dtypes
            logits = model(xb)
            return logits, F.cross_entropy(logits, yb, label_smoothing=recipe.label_smoothing)

    run = compile_fn(forward) if compile_fn else forward
    losses = torch.empty(1, setup.total, device=device)
    correct = torch.zeros((), dtype=torch.long, device=device)  # convlens counts these every step, so this does

    def step(i: int) -> None:
        if mark_steps:
            torch.compiler.cudagraph_mark_step_begin()
        idx = setup.idx[i]
        xb, yb = setup.x.index_select(0, idx), setup.y.index_select(0, idx)
        logits, loss = run(xb, yb)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        schedule.step()
        losses[0, i] = loss.detach()
        correct.add_((logits.detach().argmax(1) == yb).sum())

    return Variant(step, losses, [model], setup.batch)


def graphed(setup: Setup, precision: str) -> Variant:
    """The whole step as one CUDA graph: the first GRAPH_WARMUP steps eager on a side stream (they also create
    AdamW's state, which capture needs), then one capture; every later step copies its batch's indices into the
    graph's static index tensor, replays, and steps the schedule, which writes the graph's learning-rate tensor."""
    recipe, device = setup.recipe, setup.device
    if recipe.optimizer != "adamw" or not recipe.fused:
        raise ValueError(f"written for the fast recipe's fused AdamW, not {recipe.optimizer} (fused={recipe.fused})")
    model = new_model(setup, 0)
    # make_optimizer's AdamW, but capturable and with a device-tensor LR: a float LR would be baked into the graph.
    optimizer = torch.optim.AdamW(model.parameters(), lr=torch.tensor(recipe.lr, device=device), eps=1e-7,
                                  weight_decay=recipe.weight_decay, fused=True, capturable=True)
    schedule = make_schedule(optimizer, recipe, setup.total)
    assert schedule is not None
    # A graph must not reuse autocast's cache of cast weights across replays (torch.cuda.graphs' documentation).
    autocast = torch.autocast(device.type, dtype=torch.bfloat16, enabled=precision == "bf16", cache_enabled=False)
    losses = torch.empty(1, setup.total, device=device)
    correct = torch.zeros((), dtype=torch.long, device=device)
    static_idx = setup.idx[0].clone()
    side = torch.cuda.Stream(device)
    graph: torch.cuda.CUDAGraph | None = None
    static_loss = torch.empty((), device=device)
    notes: list[str] = []

    def body() -> torch.Tensor:
        xb, yb = setup.x.index_select(0, static_idx), setup.y.index_select(0, static_idx)
        with autocast:
            logits = model(xb)
            loss = F.cross_entropy(logits, yb, label_smoothing=recipe.label_smoothing)
        loss.backward()
        optimizer.step()
        correct.add_((logits.detach().argmax(1) == yb).sum())
        return loss.detach()

    def step(i: int) -> None:
        nonlocal graph, static_loss
        static_idx.copy_(setup.idx[i])
        if i < GRAPH_WARMUP:
            side.wait_stream(torch.cuda.current_stream(device))
            with torch.cuda.stream(side):
                optimizer.zero_grad(set_to_none=True)
                losses[0, i] = body()
            torch.cuda.current_stream(device).wait_stream(side)
        else:
            if graph is None:
                start = time.perf_counter()
                graph = torch.cuda.CUDAGraph()
                # No gradients at capture: backward allocates them in the graph's pool and each replay
                # overwrites them (no accumulation, so no zero_grad inside the graph).
                optimizer.zero_grad(set_to_none=True)
                with torch.cuda.graph(graph):
                    static_loss = body()
                torch.cuda.synchronize(device)
                notes.append(f"capture {time.perf_counter() - start:.2f} s")
            graph.replay()  # capture ran nothing: this replay is step i's training
            losses[0, i] = static_loss
        schedule.step()

    return Variant(step, losses, [model], setup.batch, notes=notes)


def batched(setup: Setup, precision: str, compile_fn: Callable[[Callable], Callable] | None = None) -> Variant:
    """``setup.seeds`` seeds as one model, convlens.batched_seeds.StackedModels as train_batched steps it: stacked
    parameters, vmap over functional_call, dropout masks drawn per seed outside the network from each seed's
    generator, each seed's batch selected on its own."""
    recipe, device = setup.recipe, setup.device
    models, generators = [], []
    for seed in range(setup.seeds):
        models.append(new_model(setup, seed))
        generators.append(seed_generator(seed, device))
    stacked = StackedModels(models, recipe.label_smoothing, precision)
    optimizer = make_optimizer(stacked.params.values(), recipe)
    schedule = make_schedule(optimizer, recipe, setup.total)
    assert schedule is not None
    loss = compile_fn(stacked.loss) if compile_fn else stacked.loss
    losses = torch.empty(setup.seeds, setup.total, device=device)
    correct = torch.zeros(setup.seeds, dtype=torch.long, device=device)

    def step(i: int) -> None:
        idx = setup.seed_idx[i]
        xs = [setup.x.index_select(0, idx[s]) for s in range(setup.seeds)]
        ys = [setup.y.index_select(0, idx[s]) for s in range(setup.seeds)]
        masks = [stacked.draw_masks(setup.batch, generators[s]) for s in range(setup.seeds)]
        y = torch.stack(ys)
        with precision_autocast(device, precision):
            per_seed, logits = loss(stacked.params, stacked.buffers, torch.stack(xs), y,
                                    *stacked.stack_masks(masks))
        optimizer.zero_grad(set_to_none=True)
        per_seed.sum().backward()
        optimizer.step()
        schedule.step()
        losses[:, i] = per_seed.detach()
        correct.add_((logits.detach().argmax(-1) == y).sum(-1))

    return Variant(step, losses, list(models), setup.seeds * setup.batch, before_eval=stacked.unstack)


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def measure(setup: Setup, variant: Variant) -> tuple[float, float]:
    """(seconds of the first step, images/s over the timed steps)."""
    sync(setup.device)
    start = time.perf_counter()
    variant.step(0)
    sync(setup.device)
    first = time.perf_counter() - start
    for i in range(1, setup.warmup):
        variant.step(i)
    sync(setup.device)
    start = time.perf_counter()
    for i in range(setup.warmup, setup.total):
        variant.step(i)
    sync(setup.device)
    return first, setup.steps * variant.images_per_step / (time.perf_counter() - start)


@torch.no_grad()
def probe_losses(setup: Setup, variant: Variant) -> list[float]:
    """Each model's fp32 eval-mode loss on the probe images (no dropout, no label smoothing)."""
    variant.before_eval()
    result = []
    for model in variant.models:
        model.eval()
        result.append(F.cross_entropy(model(setup.x_probe).float(), setup.y_probe).item())
        model.train()
    return result


def first_line(error: Exception) -> str:
    """The error's first line, and the next one where the first only introduces it (torch.compile's
    "backend='inductor' raised:")."""
    lines = [line.strip() for line in str(error).splitlines() if line.strip()] or [""]
    text = f"{lines[0]} {lines[1]}" if lines[0].endswith(":") and len(lines) > 1 else lines[0]
    return text[:200]


@dataclass
class Row:
    label: str
    build: Callable[[], Variant]
    skip: str | None = None  # why the row does not run here
    reference: bool = False  # the row as convlens trains: the others' speedups are against it


@dataclass
class Result:
    first: float  # seconds of the first step
    rate: float  # images/s over the timed steps
    train_loss: list[float]  # per model: mean of its last LOSS_TAIL steps
    probe_loss: list[float]  # per model
    notes: list[str]


def run_row(setup: Setup, row: Row) -> Result:
    """Build, train and evaluate one row; its model, graphs and compiled code go when this returns."""
    variant = row.build()
    first, rate = measure(setup, variant)
    probe = probe_losses(setup, variant)
    tail = variant.losses[:, -min(LOSS_TAIL, setup.steps):].mean(1).tolist()
    return Result(first, rate, tail, probe, variant.notes)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=300, help="timed steps per row")
    parser.add_argument("--warmup", type=int, default=10, help="steps before timing (the first one timed alone)")
    parser.add_argument("--batch", type=int, default=128, help="images per step (per seed in the batched rows)")
    parser.add_argument("--seeds", type=int, default=3, help="seeds in the batched-seeds rows")
    parser.add_argument("--device", default="cuda", choices=["cuda", "cpu"])
    parser.add_argument("--autotune", action="store_true", help="also compile with max-autotune-no-cudagraphs")
    parser.add_argument("--skip-compile", action="store_true", help="no torch.compile rows")
    parser.add_argument("--only", default="",
                        help="comma-separated parts of row labels: run only the rows whose label contains one "
                             "(e.g. 'eager,by hand'); the speedups need the 'as convlens trains' row")
    parser.add_argument("--compile-backend", default="inductor",
                        help="torch.compile backend; aot_eager traces and differentiates like inductor but "
                             "generates no code: a cheap check on the CPU")
    args = parser.parse_args()
    if args.warmup < GRAPH_WARMUP + 1:
        parser.error(f"--warmup must be at least {GRAPH_WARMUP + 1}: the CUDA graph row captures after "
                     f"{GRAPH_WARMUP} eager steps")
    if args.steps < 1:
        parser.error("--steps must be at least 1")
    if args.device == "cuda" and not torch.cuda.is_available():
        parser.error("no CUDA device; --device cpu runs the rows that need none")
    device = torch.device(args.device)
    setup = make_setup(device, args.batch, args.warmup, args.steps, args.seeds)
    p = setup.precision
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else f"CPU, {torch.get_num_threads()} threads"
    cuda = f", CUDA {torch.version.cuda}, cuDNN {torch.backends.cudnn.version()}" if device.type == "cuda" else ""
    print(f"gpu_compile: {name}; torch {torch.__version__}{cuda}")
    print(f"{MODEL}, recipe fast (fused AdamW, one-cycle, label smoothing {setup.recipe.label_smoothing}), "
          f"batch {args.batch}; convlens trains in {p} here; {args.warmup} warm-up + {args.steps} timed steps; "
          f"cudnn.allow_tf32 {torch.backends.cudnn.allow_tf32}, "
          f"matmul precision {torch.get_float32_matmul_precision()}")

    compile_skip = "--skip-compile" if args.skip_compile else None
    graph_skip = None if device.type == "cuda" else "CUDA graphs need a CUDA device"
    backend = args.compile_backend
    tag = "" if backend == "inductor" else f" [backend {backend}, no mode]"

    def compiled(mode: str | None) -> Callable[[Callable], Callable]:
        return compiler(backend, mode)

    # convlens' own precision first: it is the reference the speedups are against
    both = [p, *({"fp32", "bf16"} - {p})]
    rows = [Row(f"eager {precision}" + (" (as convlens trains)" if precision == p else ""),
                lambda precision=precision: single(setup, precision), reference=precision == p)
            for precision in both]
    rows += [
        Row(f"compile default, {p}{tag}", lambda: single(setup, p, compiled(None)), compile_skip),
        Row(f"compile max-autotune-no-cudagraphs, {p}{tag}",
            lambda: single(setup, p, compiled("max-autotune-no-cudagraphs")),
            compile_skip or (None if args.autotune else "minutes of autotuning; --autotune runs it")),
        Row(f"compile reduce-overhead (CUDA graph trees), {p}",
            lambda: single(setup, p, compiled("reduce-overhead"), mark_steps=True),
            compile_skip or graph_skip or (None if backend == "inductor" else "needs the inductor backend")),
        *(Row(f"CUDA graph of the whole step, by hand, {precision}",
              lambda precision=precision: graphed(setup, precision), graph_skip) for precision in both),
        *(Row(f"batched {args.seeds} seeds, eager, {precision}", lambda precision=precision: batched(setup, precision))
          for precision in both),
        Row(f"batched {args.seeds} seeds, compile default, {p}{tag}", lambda: batched(setup, p, compiled(None)),
            compile_skip),
    ]
    wanted = [part.strip() for part in args.only.split(",") if part.strip()]
    for row in rows:
        if wanted and not row.skip and not any(part in row.label for part in wanted):
            row.skip = "not in --only"
    width = max(len(row.label) for row in rows)
    reference: float | None = None  # images/s of the row as convlens trains
    for row in rows:
        if row.skip:
            print(f"{row.label:<{width}}  skipped: {row.skip}")
            continue
        try:
            r = run_row(setup, row)
        except Exception as e:  # noqa: BLE001 - a failing row (compile error, out of memory) says so; the rest run
            print(f"{row.label:<{width}}  failed: {type(e).__name__}: {first_line(e)}")
        else:
            if row.reference:
                reference = r.rate
            per_seed = f" ({r.rate / len(r.probe_loss):,.0f} per seed)" if len(r.probe_loss) > 1 else ""
            speedup = f"  {r.rate / reference:5.2f}x" if reference else ""
            notes = "".join(f", {n}" for n in r.notes)
            print(f"{row.label:<{width}}  {r.rate:9,.0f} img/s{per_seed}{speedup}  first step {r.first:6.2f} s{notes}"
                  f"  train loss {' '.join(f'{v:.4f}' for v in r.train_loss)}"
                  f"  probe loss {' '.join(f'{v:.4f}' for v in r.probe_loss)}")
        finally:
            torch._dynamo.reset()  # each compiled row starts from nothing (and frees the last one's code)
            if device.type == "cuda":
                torch.cuda.empty_cache()
    print("(speedups are against the row marked 'as convlens trains'; batched rows count every seed's images. "
          "Compiled single-model rows draw dropout masks with inductor's generator: losses agree to within noise.)")


if __name__ == "__main__":
    main()
