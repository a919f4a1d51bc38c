"""Where the training step's time goes, by oneDNN primitive: the default CNN's step (as `fast` trains it: NHWC,
autocast, fused AdamW, batch 128) run with oneDNN's verbose log on, each convolution's forward, backward-data and
backward-weights time summed per step with the implementation oneDNN chose (brg_conv_fwd:avx512_core_bf16,
jit_bf16:..., avx10_1_512_amx, ...) and its rate in GFLOP/s beside this machine's gemm measured in the same run.
The whole step is timed without the log first; what oneDNN does not run (pooling, ReLU, the loss, the optimizer)
is the difference. The log itself slows the primitives a little: read the rows as shares, not as a budget.

Usage:
  .venv/bin/python bench/onednn_primitives.py [--kernel 3] [--precision bf16] [--steps 20]
"""

from __future__ import annotations

import argparse
import os
import re
import tempfile
import time
from collections import defaultdict

import torch
import torch.nn.functional as F

from convlens.data import load_named
from convlens.data.dataset import images_to_tensor
from convlens.models.registry import create_model

SHAPE = re.compile(r"mb(\d+)_ic(\d+)oc(\d+)_ih(\d+)oh(\d+)kh(\d+)")


def gemm_gflops(dtype: torch.dtype, n: int = 2048) -> float:
    a, b = torch.randn(n, n, dtype=dtype), torch.randn(n, n, dtype=dtype)
    for _ in range(3):
        a @ b
    times = []
    for _ in range(10):
        start = time.perf_counter()
        a @ b
        times.append(time.perf_counter() - start)
    return 2 * n**3 / sorted(times)[len(times) // 2] / 1e9


def conv_gflop(shape: str) -> float:
    """FLOPs of one pass of the convolution named by oneDNN's problem descriptor (2 x multiply-adds)."""
    mb, ic, oc, _, oh, kh = map(int, SHAPE.search(shape).groups())
    return 2 * mb * oc * oh * oh * ic * kh * kh / 1e9


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--kernel", type=int, default=3)
    parser.add_argument("--precision", choices=["fp32", "bf16"], default="bf16")
    parser.add_argument("--steps", type=int, default=20)
    args = parser.parse_args()
    bf16 = args.precision == "bf16"
    torch.manual_seed(0)
    model = create_model("cnn-32-64-128", kernel_size=args.kernel).train().to(memory_format=torch.channels_last)
    # Real images, a new batch each step: one batch over and over drives the activations and gradients towards
    # denormal values, and the step measured 34 ms where training runs it in 22.
    data = load_named("fashion-mnist")
    images = images_to_tensor(data.train_images[:12_800], channels_last=True)
    labels = torch.as_tensor(data.train_labels[:12_800]).long()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3, eps=1e-7, fused=True)
    batches = iter(range(10**9))

    def step() -> None:
        k = next(batches) % 100
        x, y = images[k * 128:(k + 1) * 128], labels[k * 128:(k + 1) * 128]
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            loss = F.cross_entropy(model(x), y, label_smoothing=0.1)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    for _ in range(10):
        step()
    times = []
    for _ in range(args.steps * 2):
        start = time.perf_counter()
        step()
        times.append(time.perf_counter() - start)
    whole = sorted(times)[len(times) // 2] * 1e3
    gemm = gemm_gflops(torch.bfloat16 if bf16 else torch.float32)

    with tempfile.TemporaryFile("w+") as log:  # oneDNN prints to this process's stdout
        saved = os.dup(1)
        os.dup2(log.fileno(), 1)
        try:
            with torch.backends.mkldnn.verbose(torch.backends.mkldnn.VERBOSE_ON):
                for _ in range(args.steps):
                    step()
        finally:
            os.dup2(saved, 1)
            os.close(saved)
        log.seek(0)
        lines = [line.split(",") for line in log if line.startswith("onednn_verbose") and ",exec," in line]

    ms: dict[tuple[str, str, str], float] = defaultdict(float)
    other: dict[str, float] = defaultdict(float)
    for fields in lines:
        kind, impl, pass_, shape, seconds = fields[5], fields[6], fields[7], fields[-2], float(fields[-1])
        if kind == "convolution":
            ms[(shape, pass_, impl)] += seconds / args.steps
        else:
            other[kind] += seconds / args.steps
    print(f"{args.precision}, {args.kernel}x{args.kernel} kernels, batch 128, {torch.__version__}; "
          f"{'bf16' if bf16 else 'fp32'} gemm (n=2048): {gemm:.0f} GFLOP/s")
    print(f"{'ms/step':>8}  {'GFLOP/s':>8}  {'% gemm':>6}  pass, implementation, problem")
    for (shape, pass_, impl), t in sorted(ms.items(), key=lambda kv: -kv[1]):
        rate = conv_gflop(shape) / (t / 1e3)
        print(f"{t:8.2f}  {rate:8.0f}  {rate / gemm:6.0%}  {pass_}, {impl}, {shape}")
    convs = sum(ms.values())
    print(f"{convs:8.2f}  convolutions in all; other oneDNN primitives "
          + ", ".join(f"{k} {v:.2f}" for k, v in sorted(other.items(), key=lambda kv: -kv[1])))
    print(f"{whole:8.2f}  the whole step without the log (median of {len(times)}): "
          f"{whole - convs - sum(other.values()):.2f} ms outside oneDNN (pooling, ReLU, loss, optimizer)")


if __name__ == "__main__":
    main()
