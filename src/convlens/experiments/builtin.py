"""Built-in experiments: what the seeds ran, one factor at a time, reachable by name."""

from __future__ import annotations

from convlens.experiments.spec import ExperimentSpec, parse_spec

_BUILTIN = [
    dict(name="kernel-size", model="seed000-cnn",
         description="Kernel size 3x3 vs 5x5 vs 7x7 in seed 000's CNN (seeds 000, 002, 003 ran this once each).",
         factor=dict(name="kernel_size", levels=[3, 5, 7], reference=3)),
    dict(name="depth", model="seed004-cnn",
         description="1, 2 or 3 conv blocks in seed 004's BatchNorm CNN (seed 004 ran this once).",
         factor=dict(name="depth", levels=[1, 2, 3], reference=3)),
    dict(name="filters", model="seed000-cnn",
         description="Width: half, seed 000's and double filters per block (seed 003 varied filters).",
         factor=dict(name="filters", levels=[[16, 32, 64], [32, 64, 128], [64, 128, 256]], reference=[32, 64, 128])),
    dict(name="pooling", model="seed000-cnn",
         description="Max vs average vs no pooling between conv blocks in seed 000's CNN.",
         factor=dict(name="pool", levels=["max", "avg", "none"], reference="max")),
    dict(name="batch-norm", model="seed000-cnn",
         description="Seed 000's CNN without and with BatchNorm after each convolution.",
         factor=dict(name="batch_norm", levels=[False, True], reference=False)),
    dict(name="cnn-vs-mlp", model="seed000-mlp",
         description="Seed 000's fully connected baseline vs its CNN: what convolution buys.",
         factor=dict(name="model", levels=["seed000-mlp", "seed000-cnn"], reference="seed000-mlp")),
    dict(name="locality", model="seed000-mlp",
         description="MLP and CNN on original vs pixel-permuted images (one fixed permutation for train and "
                     "test): what convolution assumes, and when it is the wrong tool.",
         factor=dict(name="model", levels=["seed000-mlp", "seed000-cnn"], reference="seed000-mlp"),
         second_factor=dict(name="pixels", levels=["original", "permuted"], reference="original")),
]

BUILTIN_EXPERIMENTS: dict[str, ExperimentSpec] = {d["name"]: parse_spec(d, origin=f"built-in {d['name']}")
                                                  for d in _BUILTIN}
