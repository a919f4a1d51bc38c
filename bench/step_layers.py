"""Where the training step's time goes: each layer of the default CNN timed alone, forward and backward, at the
recipe's batch size in NHWC, on random inputs of its shape (median of repeated calls; the autograd profiler
inflates small CPU ops several-fold, so this times them instead). Each convolution's FLOP rate is printed as a
share of this machine's sgemm, measured in the same run (a reference, not a ceiling: oneDNN's convolutions can
beat it), and so is the share the whole step would reach if every layer but the convolutions after the first
(conv1, pooling, ReLU, head) took no time. Layers timed alone may run faster than inside the step (warm caches);
the loss and the optimizer are not included.

Usage:
  .venv/bin/python bench/step_layers.py [--kernel 3] [--batch 128] [--precision fp32 bf16]
"""

from __future__ import annotations

import argparse
import time

import torch
from torch import nn

from convlens.config import TrainConfig, model_spec
from convlens.models.network import ConvBlock, Network
from convlens.models.summary import flops_per_image


def median_ms(fn, repeats: int = 30) -> float:
    for _ in range(5):
        fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return sorted(times)[len(times) // 2] * 1e3


def sgemm_gflops(n: int = 2048) -> float:
    a, b = torch.randn(n, n), torch.randn(n, n)
    return 2 * n**3 / median_ms(lambda: a @ b, 10) / 1e6


def layers_in_run_order(model: Network) -> list[tuple[str, nn.Module]]:
    """The layers as ``ConvBlock`` runs them: a block ending in ReLU, max pool pools first."""
    order = []
    for block_name, block in model.features.named_children():
        named = list(block.named_children())
        if isinstance(block, ConvBlock) and len(named) >= 2 and isinstance(named[-2][1], nn.ReLU) \
                and isinstance(named[-1][1], nn.MaxPool2d):
            named = named[:-2] + [named[-1], named[-2]]
        order += [(f"{block_name}.{name}", layer) for name, layer in named]
    return order + [("head", model.head)]


def conv_flops(layer: nn.Conv2d, out: torch.Tensor) -> int:
    """Multiply-adds x 2 of one forward pass of ``layer`` producing ``out`` (the whole batch)."""
    k = layer.kernel_size[0] * layer.kernel_size[1]
    return 2 * out.numel() * layer.in_channels * k // layer.groups


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--kernel", type=int, default=3)
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--precision", nargs="+", default=["fp32", "bf16"], choices=["fp32", "bf16"])
    args = parser.parse_args()
    # sgemm_gflops() runs first and frees its 16 MiB matrices: that raises glibc's mmap threshold, as loading a
    # dataset does before convlens trains (else a fresh process faults each step's activations in again).
    spec = model_spec(TrainConfig(model="cnn-32-64-128", overrides={"kernel_size": args.kernel}))
    shape = (spec.in_channels, spec.image_size, spec.image_size)
    train_flops = flops_per_image(Network(spec), shape, backward=True)[0] * args.batch  # as bench/throughput.py
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, cnn-32-64-128 kernel {args.kernel}, "
          f"batch {args.batch}, NHWC; {train_flops / args.batch / 1e6:.1f} MFLOP per training image")
    for precision in args.precision:
        roofline = sgemm_gflops()
        torch.manual_seed(0)
        model = Network(spec).to(memory_format=torch.channels_last)
        autocast = torch.autocast("cpu", dtype=torch.bfloat16, enabled=precision == "bf16")
        h = torch.rand(args.batch, *shape).contiguous(memory_format=torch.channels_last)
        total, conv_total, conv_flops_total = 0.0, 0.0, 0
        print(f"\n{precision}: sgemm {roofline:.0f} GFLOP/s")
        print(f"{'layer':14s} {'input':20s} {'dtype':9s} {'fwd ms':>7s} {'bwd ms':>7s}  conv GFLOP/s (% of sgemm)")
        for index, (name, layer) in enumerate(layers_in_run_order(model)):
            x = h.detach().requires_grad_(index > 0)  # the images need no gradient, as in training
            with autocast:
                out = layer(x)
            grad = torch.randn_like(out)
            wrt = ([x] if x.requires_grad else []) + list(layer.parameters())

            def forward(layer=layer, x=x, autocast=autocast):
                with autocast:
                    layer(x)

            def forward_backward(layer=layer, x=x, wrt=wrt, grad=grad, autocast=autocast):
                with autocast:
                    y = layer(x)
                if wrt:  # autograd.grad: nothing accumulates into .grad between repeats
                    torch.autograd.grad(y, wrt, grad)

            fwd = median_ms(forward)
            bwd = median_ms(forward_backward) - fwd
            total += fwd + bwd
            rate = ""
            if isinstance(layer, nn.Conv2d):
                # backward: the weights' gradient, and the input's except for the first conv (images need none)
                flops = (3 if x.requires_grad else 2) * conv_flops(layer, out)
                gflops = flops / (fwd + bwd) / 1e6
                rate = f"{gflops:6.0f} ({gflops / roofline:.0%})"
                if index > 0:  # the first conv (few input channels, few FLOPs) counts with the rest
                    conv_total += fwd + bwd
                    conv_flops_total += flops
            print(f"{name:14s} {tuple(x.shape)!s:20s} {str(out.dtype).removeprefix('torch.'):9s} "
                  f"{fwd:7.2f} {bwd:7.2f}  {rate}")
            h = out.detach()
        step_rate = train_flops / total / 1e6
        print(f"sum of layers: {total:.2f} ms = {args.batch / total * 1e3:,.0f} img/s, {step_rate / roofline:.0%} of "
              f"sgemm (the optimizer and the loss not included)")
        print(f"convolutions after the first: {conv_total:.2f} ms ({conv_total / total:.0%} of the layers' time) at "
              f"{conv_flops_total / conv_total / 1e6 / roofline:.0%} of sgemm; the rest (conv1, pooling, ReLU, head): "
              f"{total - conv_total:.2f} ms. If the rest took no time, the step would reach "
              f"{train_flops / conv_total / 1e6 / roofline:.0%} of sgemm")


if __name__ == "__main__":
    main()
