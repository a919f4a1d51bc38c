"""Built-in experiments: what the reference write-ups ran, one factor at a time, reachable by name."""

from __future__ import annotations

from convlens.experiments.spec import ExperimentSpec, parse_spec

_BUILTIN = [
    dict(name="kernel-size", model="cnn-32-64-128",
         # Descriptions name the factor, not its levels: a study or a spec may run other levels of the same
         # experiment (the default study runs kernel sizes 3 and 5), and the report lists the levels that ran.
         description="Kernel size in the default CNN (four of the five reference write-ups varied it, 000 and 001 "
                    "3/5, 002 and 003 3/5/7, each run once).",
         factor=dict(name="kernel_size", levels=[3, 5, 7], reference=3)),
    dict(name="depth", model="cnn-32-64-128-bn",
         description="The number of conv blocks in the BatchNorm CNN (one of the reference write-ups varied it, "
                     "once).",
         factor=dict(name="depth", levels=[1, 2, 3], reference=3)),
    dict(name="filters", model="cnn-32-64-128",
         description="Width: the filters per block in the default CNN (one of the reference write-ups varied "
                     "filters).",
         factor=dict(name="filters", levels=[[16, 32, 64], [32, 64, 128], [64, 128, 256]], reference=[32, 64, 128])),
    dict(name="pooling", model="cnn-32-64-128",
         description="The pooling between conv blocks in the default CNN.",
         factor=dict(name="pool", levels=["max", "avg", "none"], reference="max")),
    dict(name="batch-norm", model="cnn-32-64-128",
         description="The default CNN without and with BatchNorm after each convolution.",
         factor=dict(name="batch_norm", levels=[False, True], reference=False)),
    dict(name="cnn-vs-mlp", model="mlp-128-64",
         # "what convolution buys" would overclaim: the two models differ in more than convolution (head, dropout)
         description="The fully connected baseline vs the CNN, both as the reference write-ups built them: what this "
                     "CNN gains over this MLP (the model is one factor; every setting it changes is listed).",
         factor=dict(name="model", levels=["mlp-128-64", "cnn-32-64-128"], reference="mlp-128-64")),
    dict(name="locality", model="mlp-128-64",
         description="MLP and CNN on original vs pixel-permuted images (one fixed permutation for train and "
                     "test): what convolution assumes, and when it is the wrong tool.",
         factor=dict(name="model", levels=["mlp-128-64", "cnn-32-64-128"], reference="mlp-128-64"),
         second_factor=dict(name="pixels", levels=["original", "permuted"], reference="original")),
    # The locally connected twin sits between the two: MLP -> LCN adds locality, LCN -> CNN adds weight sharing, so
    # with it as the reference each effect the design tests is one of the two parts of the CNN's advantage.
    dict(name="weight-sharing", model="lcn-32-64-128",
         description="MLP vs the default CNN locally connected (locality, no weight sharing) vs the CNN, on original "
                     "and pixel-permuted images: how much of convolution's advantage is locality and how much is "
                     "sharing weights.",
         factor=dict(name="model", levels=["mlp-128-64", "lcn-32-64-128", "cnn-32-64-128"],
                     reference="lcn-32-64-128"),
         second_factor=dict(name="pixels", levels=["original", "permuted"], reference="original")),
    # Convolution builds tolerance to shifts in; augmentation teaches it from data. Both models with and without
    # random 2-px shifts of the training images; the shift probe then measures what each bought.
    dict(name="augmentation", model="mlp-128-64",
         description="MLP and CNN trained without and with random shifts of up to 2 px (on the device, per batch): "
                     "bias from the data vs bias from the architecture.",
         factor=dict(name="model", levels=["mlp-128-64", "cnn-32-64-128"], reference="mlp-128-64"),
         second_factor=dict(name="recipe.augment", levels=["none", "shift:2"], reference="none")),
]

BUILTIN_EXPERIMENTS: dict[str, ExperimentSpec] = {d["name"]: parse_spec(d, origin=f"built-in {d['name']}")
                                                  for d in _BUILTIN}
