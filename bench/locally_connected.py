"""What the locally connected layer costs against the convolution it replaces, in one process.

Prints, for batch 128 on this machine:
  * a training step (forward, backward, AdamW) of cnn-32-64-128 and of lcn-32-64-128, fp32 and bf16 autocast, and
    their ratio (the time the weight-sharing experiment's middle level costs);
  * forward + backward of each block's layer alone: the conv, convlens' LocallyConnected2d, and the textbook
    F.unfold + einsum formulation it replaced (why models/layers.py is written the way it is).

Usage: .venv/bin/python bench/locally_connected.py [--steps 20]
"""

from __future__ import annotations

import argparse
import time

import torch
import torch.nn.functional as F

from convlens import create_model
from convlens.models.layers import LocallyConnected2d


def _seconds(fn, steps: int) -> float:
    for _ in range(3):
        fn()
    start = time.perf_counter()
    for _ in range(steps):
        fn()
    return (time.perf_counter() - start) / steps


def train_step_seconds(name: str, bf16: bool, steps: int, batch: int = 128) -> float:
    torch.manual_seed(0)
    model = create_model(name).train()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3, foreach=True)
    x, y = torch.rand(batch, 1, 28, 28), torch.randint(10, (batch,))

    def step():
        with torch.autocast("cpu", torch.bfloat16, enabled=bf16):
            loss = F.cross_entropy(model(x), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    return _seconds(step, steps)


def unfold_einsum(x: torch.Tensor, weight: torch.Tensor, k: int) -> torch.Tensor:
    """The textbook locally connected layer: im2col, then one einsum (weight: (L, C k k, O))."""
    cols = F.unfold(x, k, padding=k // 2)  # (B, C k k, L)
    return torch.einsum("bcl,lco->bol", cols, weight)


def layer_seconds(steps: int, batch: int = 128) -> list[tuple[str, float, float, float]]:
    rows = []
    for c_in, c_out, size in ((1, 32, 28), (32, 64, 14), (64, 128, 7)):
        x = torch.rand(batch, c_in, size, size, requires_grad=True)
        conv = torch.nn.Conv2d(c_in, c_out, 3, padding=1)
        local = LocallyConnected2d(c_in, c_out, 3, 1, 1, in_size=size)
        textbook = torch.randn(size * size, c_in * 9, c_out, requires_grad=True)
        times = [_seconds(lambda f=f: f().sum().backward(), steps)
                 for f in (lambda: conv(x), lambda: local(x), lambda: unfold_einsum(x, textbook, 3))]
        rows.append((f"{c_in}->{c_out} at {size}x{size}", *times))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=20)
    args = parser.parse_args()
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, batch 128")
    for bf16 in (False, True):
        cnn = train_step_seconds("cnn-32-64-128", bf16, args.steps)
        lcn = train_step_seconds("lcn-32-64-128", bf16, args.steps)
        print(f"training step, {'bf16' if bf16 else 'fp32'}: CNN {cnn * 1e3:.1f} ms, locally connected "
              f"{lcn * 1e3:.1f} ms ({lcn / cnn:.1f}x)")
    print("forward + backward of one layer (ms): conv / LocallyConnected2d / F.unfold + einsum")
    for label, conv, local, textbook in layer_seconds(args.steps):
        print(f"  {label:>16}: {conv * 1e3:6.1f} / {local * 1e3:6.1f} / {textbook * 1e3:6.1f}"
              f"  (unfold + einsum is {textbook / local:.1f}x ours)")


if __name__ == "__main__":
    main()
