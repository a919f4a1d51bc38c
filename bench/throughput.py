"""Training throughput of the default CNN (cnn-32-64-128) as a fraction of this machine's sgemm roofline, in one process.

Prints, for the same process and machine state:
  * the sgemm roofline: best FLOP/s of large fp32 matmuls (n = 1024..4096);
  * a plain PyTorch loop of the write-ups' Keras recipe (DataLoader over a TensorDataset, NCHW, Adam 1e-3, batch 128):
    the in-run reference, so the ratio can be checked on any machine without TensorFlow;
  * convlens' training step (resident tensors, index_select batches, channels_last) at several batch sizes.
Training FLOPs per image come from torch.utils.flop_counter (45.1 MFLOP for the 3x3 seed CNN).

Usage: .venv/bin/python bench/throughput.py [--steps 60] [--batch-sizes 128,256,512]
       .venv/bin/python bench/throughput.py --levers [--compile] [--bf16]   (the issue-16 levers at batch 128; the
       bf16 rows only where bf16 is native, or with --bf16)
"""

from __future__ import annotations

import argparse
import os
import time

import torch
import torch.nn.functional as F

from convlens import create_model
from convlens.config import EVAL_BATCH_SIZE
from convlens.models.summary import summarize
from convlens.training import bf16_is_native


def sgemm_roofline(repeats: int = 5, dtype: torch.dtype = torch.float32) -> float:
    """Best FLOP/s of large square matmuls in ``dtype`` (float32: sgemm; bfloat16: the AMX/bf16 roofline)."""
    best = 0.0
    for n in (1024, 2048, 4096):
        a, b = torch.randn(n, n, dtype=dtype), torch.randn(n, n, dtype=dtype)
        a @ b  # warm-up
        for _ in range(repeats):
            start = time.perf_counter()
            a @ b
            best = max(best, 2 * n**3 / (time.perf_counter() - start))
    return best


def plain_loop(x: torch.Tensor, y: torch.Tensor, steps: int) -> float:
    """The write-ups' Keras recipe written the usual PyTorch way; returns images/s."""
    torch.manual_seed(0)
    model = create_model("cnn-32-64-128").train()
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x, y), batch_size=128, shuffle=True)
    it = iter(loader)
    for _ in range(5):  # warm-up
        xb, yb = next(it)
        opt.zero_grad()
        F.cross_entropy(model(xb), yb).backward()
        opt.step()
    start, seen = time.perf_counter(), 0
    for _ in range(steps):
        xb, yb = next(it)
        opt.zero_grad()
        loss = F.cross_entropy(model(xb), yb)
        loss.backward()
        opt.step()
        seen += len(xb)
    return seen / (time.perf_counter() - start)


def convlens_step(x: torch.Tensor, y: torch.Tensor, batch: int, steps: int, channels_last: bool = True,
                  bf16: bool = False, fused: bool = False) -> float:
    """convlens' training step (as in convlens.training.train); returns images/s. ``bf16``: forward and loss under
    CPU autocast to bfloat16 (oneDNN uses AMX where the CPU has it); ``fused``: the fused AdamW kernel."""
    torch.manual_seed(0)
    model = create_model("cnn-32-64-128").train()
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    model = model.to(memory_format=fmt)
    x = x.contiguous(memory_format=fmt)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3, eps=1e-7, fused=fused or None)
    gen = torch.Generator().manual_seed(0)
    perm = torch.randperm(len(y), generator=gen)
    losses = torch.empty(steps + 5)

    def step(i: int) -> None:
        idx = perm[(i * batch) % (len(y) - batch):][:batch]
        xb, yb = x.index_select(0, idx), y.index_select(0, idx)
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            loss = F.cross_entropy(model(xb), yb, label_smoothing=0.1)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        losses[i] = loss.detach()

    for i in range(5):
        step(i)
    start = time.perf_counter()
    for i in range(5, steps + 5):
        step(i)
    return steps * batch / (time.perf_counter() - start)


def eval_rate(x: torch.Tensor, batch: int, bf16: bool, repeats: int = 3) -> float:
    """Eval-mode forward over ``x`` in batches (the per-epoch validation pass); returns images/s (best of repeats)."""
    model = create_model("cnn-32-64-128").eval().to(memory_format=torch.channels_last)
    x = x.contiguous(memory_format=torch.channels_last)
    best = 0.0
    with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
        model(x[:batch])
        for _ in range(repeats):
            start = time.perf_counter()
            for i in range(0, len(x), batch):
                model(x[i:i + batch])
            best = max(best, len(x) / (time.perf_counter() - start))
    return best


def compiled_step(x: torch.Tensor, y: torch.Tensor, steps: int, bf16: bool) -> tuple[float, float]:
    """The training step under torch.compile (inductor): (seconds to the first step, images/s after it)."""
    torch.manual_seed(0)
    model = create_model("cnn-32-64-128").train().to(memory_format=torch.channels_last)
    x = x.contiguous(memory_format=torch.channels_last)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3, eps=1e-7)

    @torch.compile
    def loss_of(xb, yb):
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            return F.cross_entropy(model(xb), yb, label_smoothing=0.1)

    def step(i: int) -> None:
        xb, yb = x[i * 128 % 19_000:][:128], y[i * 128 % 19_000:][:128]
        loss = loss_of(xb, yb)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    start = time.perf_counter()
    step(0)
    first = time.perf_counter() - start
    for i in range(1, 4):
        step(i)
    start = time.perf_counter()
    for i in range(4, steps + 4):
        step(i)
    return first, steps * 128 / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--steps", type=int, default=60)
    parser.add_argument("--batch-sizes", default="32,64,128,256")
    parser.add_argument("--levers", action="store_true",
                        help="batch 128 only: fp32 vs bf16 autocast, fused AdamW, eval batch sizes")
    parser.add_argument("--compile", action="store_true", help="with --levers: torch.compile'd steps too")
    parser.add_argument("--bf16", action="store_true",
                        help="with --levers: the bf16 rows also where bf16 is not native (no AVX512_BF16 or AMX), "
                             "emulated and slow")
    args = parser.parse_args()
    torch.set_num_threads(len(os.sched_getaffinity(0)))
    flops_per_image = summarize(create_model("cnn-32-64-128"), "cnn-32-64-128").train_flops
    x = torch.rand(20_000, 1, 28, 28)
    y = torch.randint(0, 10, (20_000,))

    roofline = sgemm_roofline()
    print(f"threads {torch.get_num_threads()}, torch {torch.__version__}")
    print(f"sgemm roofline: {roofline / 1e9:.0f} GFLOP/s; seed CNN training cost {flops_per_image / 1e6:.1f} MFLOP/image "
          f"-> roofline {roofline / flops_per_image:,.0f} img/s")

    def report(name: str, ips: float) -> None:
        print(f"{name:<44} {ips:8,.0f} img/s  {ips * flops_per_image / roofline:6.1%} of roofline")

    reference = plain_loop(x, y, args.steps)
    report("plain loop (DataLoader, NCHW, Adam, batch 128)", reference)
    if args.levers:
        # Without AVX512_BF16 (and so without AMX) convlens trains in fp32 ("auto" precision) and oneDNN emulates
        # bf16: its large matmuls alone took minutes on a Zen 3 (bench/README.md). Skipped unless asked for.
        bf16 = args.bf16 or bf16_is_native(torch.device("cpu"))
        if bf16:
            bf16_roofline = sgemm_roofline(dtype=torch.bfloat16)
            print(f"bf16 gemm roofline: {bf16_roofline / 1e9:.0f} GFLOP/s -> "
                  f"{bf16_roofline / flops_per_image:,.0f} img/s")
        else:
            print("bf16 rows skipped: this CPU has neither AVX512_BF16 nor AMX, so convlens trains in fp32 here "
                  "(precision auto); --bf16 runs them, emulated (~100x slower)")
        rows = [("fp32", {}), ("fp32, fused AdamW", {"fused": True}), ("bf16 autocast", {"bf16": True}),
                ("bf16 autocast, fused AdamW", {"bf16": True, "fused": True}), ("fp32 again", {})]
        for name, kwargs in [(name, kwargs) for name, kwargs in rows if bf16 or not kwargs.get("bf16")]:
            ips = convlens_step(x, y, 128, args.steps, **kwargs)
            report(f"convlens step, batch 128, {name}", ips)
            share = f", {ips * flops_per_image / bf16_roofline:.1%} of the bf16 roofline" if kwargs.get("bf16") else ""
            print(f"{'':<44} {ips / reference:8.2f}x the plain loop{share}")
        precisions = (False, True) if bf16 else (False,)
        for in_bf16 in precisions:
            for batch in sorted({128, EVAL_BATCH_SIZE, 1000, 6000}):
                print(f"eval pass of 6,000 images, batch {batch}, {'bf16' if in_bf16 else 'fp32'}: "
                      f"{eval_rate(x[:6000], batch, in_bf16):8,.0f} img/s")
        if args.compile:
            for in_bf16 in precisions:
                first, ips = compiled_step(x, y, args.steps, in_bf16)
                report(f"torch.compile step, batch 128, {'bf16' if in_bf16 else 'fp32'}", ips)
                print(f"{'':<44} first step (compilation) {first:.1f} s")
        print(f"roofline re-measured at the end: {sgemm_roofline() / 1e9:.0f} GFLOP/s (drift check)")
        return
    for batch in (int(b) for b in args.batch_sizes.split(",")):
        for channels_last in (True, False):
            ips = convlens_step(x, y, batch, max(10, args.steps * 128 // batch), channels_last)
            report(f"convlens step, {'channels_last' if channels_last else 'NCHW'}, batch {batch}", ips)
            print(f"{'':<44} {ips / reference:8.2f}x the plain loop")
    print(f"roofline re-measured at the end: {sgemm_roofline() / 1e9:.0f} GFLOP/s (drift check)")


if __name__ == "__main__":
    main()
