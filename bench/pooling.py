"""Max pooling 2x2 of the default CNN's three blocks, forward + backward: five ways to run it on the CPU.

The native kernel on channels_last (NHWC, how convlens trains on the CPU), the same on NCHW, and oneDNN's own
pooling (``torch.mkldnn_max_pool2d`` between ``to_mkldnn`` and ``to_dense``, which keeps a byte-sized workspace
where the native kernel keeps int64 indices); and two ways as tensor operations that autograd differentiates: the
maximum of four strided slices, and ``amax`` over a (N, H/2, 2, W/2, 2, C) view. Each is checked against the native
NHWC result, outputs and input gradients, before it is timed. The tensor operations split the gradient between tied
values where the native kernel gives it to one ("grad split at ties", checked window by window). Issue 16: pooling
is a third of the bf16 training step (bench/step_layers.py).

    python bench/pooling.py [--batch 128] [--repeats 50]
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable

import torch
import torch.nn.functional as F

SHAPES = {"block1": (32, 28, 28), "block2": (64, 14, 14), "block3": (128, 7, 7)}  # (C, H, W) entering each pool


def native(x: torch.Tensor) -> torch.Tensor:
    return F.max_pool2d(x, 2)


def onednn(x: torch.Tensor) -> torch.Tensor:
    return torch.mkldnn_max_pool2d(x.to_mkldnn(), [2, 2], [2, 2]).to_dense()


def slices(x: torch.Tensor) -> torch.Tensor:
    x = x[:, :, : x.shape[2] // 2 * 2, : x.shape[3] // 2 * 2]  # floor, as max_pool2d: 7x7 -> 3x3
    return torch.maximum(torch.maximum(x[:, :, 0::2, 0::2], x[:, :, 0::2, 1::2]),
                         torch.maximum(x[:, :, 1::2, 0::2], x[:, :, 1::2, 1::2]))


def window_amax(x: torch.Tensor) -> torch.Tensor:
    n, c, h, w = x.shape
    nhwc = x[:, :, : h // 2 * 2, : w // 2 * 2].permute(0, 2, 3, 1)
    return nhwc.reshape(n, h // 2, 2, w // 2, 2, c).amax(dim=(2, 4)).permute(0, 3, 1, 2)


def differs_only_at_ties(x: torch.Tensor, grad: torch.Tensor, reference: torch.Tensor) -> bool:
    """Whether ``grad`` equals the native ``reference`` except in pooling windows whose maximum is tied, and
    there splits the same gradient (each window's sum equal): what autograd does with ``torch.maximum`` or
    ``amax`` at ties, where the native kernel gives the whole gradient to one of them."""
    h, w = x.shape[2] // 2 * 2, x.shape[3] // 2 * 2
    inside = (slice(None), slice(None), slice(0, h), slice(0, w))
    if not torch.equal(grad[:, :, h:], reference[:, :, h:]) or not torch.equal(grad[..., w:], reference[..., w:]):
        return False
    x, grad, reference = x[inside].float(), grad[inside].float(), reference[inside].float()
    peak = F.interpolate(F.max_pool2d(x, 2), scale_factor=2, mode="nearest")
    tied = F.avg_pool2d((x == peak).float(), 2) * 4 > 1
    differs = F.max_pool2d((grad != reference).float(), 2) > 0
    same_sums = torch.allclose(F.avg_pool2d(grad, 2), F.avg_pool2d(reference, 2), rtol=1e-2, atol=1e-6)
    return bool((differs <= tied).all()) and same_sums


def forward_backward(pool: Callable, x: torch.Tensor, grad: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    x = x.detach().requires_grad_()
    y = pool(x)
    y.backward(grad.contiguous(memory_format=torch.channels_last) if y.is_contiguous(
        memory_format=torch.channels_last) else grad.contiguous())
    return y.detach(), x.grad


def ms_per_call(pool: Callable, x: torch.Tensor, grad: torch.Tensor, repeats: int) -> float:
    for _ in range(5):  # warm-up: allocations, oneDNN primitive creation
        forward_backward(pool, x, grad)
    start = time.perf_counter()
    for _ in range(repeats):
        forward_backward(pool, x, grad)
    return (time.perf_counter() - start) / repeats * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--repeats", type=int, default=50)
    args = parser.parse_args()
    print(f"threads {torch.get_num_threads()}, torch {torch.__version__}, batch {args.batch}; "
          "ms per forward + backward")
    torch.manual_seed(0)
    for dtype in (torch.bfloat16, torch.float32):
        for block, shape in SHAPES.items():
            nchw = torch.randn(args.batch, *shape, dtype=dtype)
            nhwc = nchw.contiguous(memory_format=torch.channels_last)
            grad = torch.randn(args.batch, shape[0], shape[1] // 2, shape[2] // 2, dtype=dtype)
            reference = forward_backward(native, nhwc, grad)
            row = []
            for name, pool, x in (("native NHWC", native, nhwc), ("native NCHW", native, nchw),
                                  ("oneDNN", onednn, nhwc), ("slices", slices, nhwc), ("amax", window_amax, nhwc)):
                y, g = forward_backward(pool, x, grad)
                flag = ("" if torch.equal(g, reference[1]) else " (grad split at ties)"
                        if differs_only_at_ties(x, g, reference[1]) else " (grad DIFFERS)")
                flag = flag if torch.equal(y, reference[0]) else " (output DIFFERS)"
                row.append(f"{name} {ms_per_call(pool, x, grad, args.repeats):6.2f}{flag}")
            print(f"{str(dtype).removeprefix('torch.'):>8} {block}: " + "   ".join(row))


if __name__ == "__main__":
    main()
