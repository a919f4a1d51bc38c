"""ReLU then max pooling (the write-ups' order) against max pooling then ReLU (what ConvBlock runs): the training
step of the default CNN, alternating, on random inputs of its shape. The two orders give bit-identical weights
(checked here after the timed steps, and in tests/models/test_conv_block.py).

Usage:
  .venv/bin/python bench/conv_block.py [--kernel 3] [--steps 40] [--repeats 2]
"""

from __future__ import annotations

import argparse
import time

import torch
import torch.nn.functional as F

from convlens.config import TrainConfig, model_spec, resolve_recipe
from convlens.models.network import ConvBlock, Network
from convlens.training import make_optimizer


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--kernel", type=int, default=3)
    parser.add_argument("--steps", type=int, default=40)
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()
    spec = model_spec(TrainConfig(model="cnn-32-64-128", overrides={"kernel_size": args.kernel}))
    recipe = resolve_recipe("fast")
    x = torch.rand(recipe.batch_size, 1, 28, 28).contiguous(memory_format=torch.channels_last)
    y = torch.randint(0, 10, (recipe.batch_size,))
    reordered, written = ConvBlock.forward, torch.nn.Sequential.forward

    def run(order, bf16: bool) -> tuple[float, list[torch.Tensor]]:
        ConvBlock.forward = order
        try:
            torch.manual_seed(0)
            model = Network(spec).to(memory_format=torch.channels_last)
            optimizer = make_optimizer(model.parameters(), recipe)
            for i in range(8 + args.steps):
                if i == 8:
                    start = time.perf_counter()
                with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
                    loss = F.cross_entropy(model(x), y, label_smoothing=recipe.label_smoothing)
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
            return (time.perf_counter() - start) / args.steps * 1000, [p.detach().clone() for p in model.parameters()]
        finally:
            ConvBlock.forward = reordered

    print(f"cnn-32-64-128 with {args.kernel}x{args.kernel} kernels, batch {recipe.batch_size}, "
          f"{torch.get_num_threads()} threads, torch {torch.__version__}")
    print("| step | ReLU then pool, ms | pool then ReLU, ms | speed-up | weights bit-identical |\n|---|---|---|---:|---|")
    for bf16 in (True, False):
        times: dict[str, list[float]] = {"written": [], "reordered": []}
        for _ in range(args.repeats):
            for name, order in (("written", written), ("reordered", reordered)):
                ms, weights = run(order, bf16)
                times[name].append(ms)
                if name == "written":
                    reference = weights
        same = all(torch.equal(a, b) for a, b in zip(reference, weights))
        fmt = lambda values: " / ".join(f"{v:.1f}" for v in values)  # noqa: E731
        print(f"| {'bf16 autocast' if bf16 else 'fp32'} | {fmt(times['written'])} | {fmt(times['reordered'])} | "
              f"{min(times['written']) / min(times['reordered']):.2f} | {same} |")


if __name__ == "__main__":
    main()
