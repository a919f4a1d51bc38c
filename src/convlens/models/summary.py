"""A Keras-like model summary: per layer output shape, parameters, MACs, receptive field and jump.

Parameters are counted as Keras' ``summary()`` counts them: weights and biases (and BatchNorm's gamma/beta)
are trainable; BatchNorm's moving mean and variance are non-trainable. MACs come from
``torch.utils.flop_counter`` (FLOPs / 2), for one image, forward pass. Shapes are printed Keras-style,
(batch, H, W, C), so they read like the reference write-ups' notebooks. Activations are folded into the layer before
them, like Keras' ``activation='relu'`` argument; an empty container (the MLP's ``features``) is no row.
"""

from __future__ import annotations

import copy
from dataclasses import asdict, dataclass

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from convlens.models.layers import LocallyConnected2d
from convlens.models.network import ACTIVATIONS, Network

_NON_TRAINABLE_BUFFERS = ("running_mean", "running_var")  # Keras: moving_mean, moving_variance
_CONTAINERS = (nn.Sequential, nn.ModuleList, nn.ModuleDict)


@dataclass(frozen=True)
class LayerSummary:
    name: str  # module path, e.g. "features.block1.conv"
    layer: str  # Keras-like description, e.g. "Conv2D 3x3 32 same relu"
    output_shape: list[int]  # without batch, Keras order: [H, W, C] or [features]
    params_trainable: int
    params_non_trainable: int
    macs: int
    receptive_field: int | None  # px side of the input square one output unit sees; None = the whole image
    jump: int | None  # input px between adjacent output units; None after flatten


@dataclass(frozen=True)
class ModelSummary:
    name: str
    input_shape: list[int]  # [H, W, C]
    layers: list[LayerSummary]
    params: dict[str, int]  # trainable, non_trainable, total
    macs: int  # forward, one image
    train_flops: int  # forward + backward, one image (what a training step costs)

    def to_dict(self) -> dict:
        return asdict(self)

    def rows(self) -> list[dict[str, str]]:
        """The table Keras prints, one dict per layer (shapes as Keras prints them: batch, H, W, C)."""
        return [{"Layer": row.name.split(".", 1)[-1], "Type": row.layer,
                 "Output Shape": str(tuple([None, *row.output_shape])),
                 "Param #": f"{row.params_trainable + row.params_non_trainable:,}", "MACs": f"{row.macs:,}",
                 "RF": "all" if row.receptive_field is None else f"{row.receptive_field}x{row.receptive_field}",
                 "Jump": "-" if row.jump is None else str(row.jump)} for row in self.layers]

    def totals(self) -> str:
        p = self.params
        return (f"Total params: {p['total']:,}\nTrainable params: {p['trainable']:,}\n"
                f"Non-trainable params: {p['non_trainable']:,}\nMACs per image (forward): {self.macs:,}\n"
                f"Training FLOPs per image (forward + backward): {self.train_flops:,}")

    def to_frame(self):
        """The per-layer table as a pandas DataFrame, with numbers as numbers."""
        import pandas as pd
        return pd.DataFrame([{"layer": row.name, "type": row.layer, "output_shape": tuple(row.output_shape),
                              "params": row.params_trainable + row.params_non_trainable, "macs": row.macs,
                              "receptive_field": row.receptive_field, "jump": row.jump} for row in self.layers])

    def __str__(self) -> str:
        rows = self.rows()
        widths = {k: max(len(k), *(len(r[k]) for r in rows)) for k in rows[0]}
        line = lambda r: "  ".join(r[k].ljust(w) for k, w in widths.items())  # noqa: E731
        return "\n".join([f'Model: "{self.name}"', line({k: k for k in widths}), *map(line, rows), self.totals()])

    def _repr_html_(self) -> str:
        from convlens.display import html_table
        return html_table(self.rows(), title=f'Model: "{self.name}"') + "<pre>" + self.totals() + "</pre>"


def count_params(module: nn.Module, recurse: bool = True) -> tuple[int, int]:
    """(trainable, non_trainable) parameter counts, the Keras way."""
    trainable = sum(p.numel() for p in module.parameters(recurse) if p.requires_grad)
    frozen = sum(p.numel() for p in module.parameters(recurse) if not p.requires_grad)
    moving = sum(b.numel() for n, b in module.named_buffers(recurse=recurse)
                 if n.split(".")[-1] in _NON_TRAINABLE_BUFFERS)
    return trainable, frozen + moving


def flops_per_image(model: nn.Module, input_shape: tuple[int, ...], backward: bool = False) -> tuple[int, dict]:
    """FLOPs of one image through ``model`` (forward, or forward + backward), total and per module path.

    Counted on a copy: a train-mode pass would move a trained model's BatchNorm running statistics, and a
    backward pass would leave gradients behind.
    """
    model = copy.deepcopy(model).train(backward)
    x = torch.zeros(1, *input_shape, device=next(model.parameters()).device)
    with FlopCounterMode(display=False) as counter:
        out = model(x)
        if backward:
            out.sum().backward()
    per_module = {path.split(".", 1)[1] if "." in path else "": sum(ops.values())
                  for path, ops in counter.get_flop_counts().items()}
    return counter.get_total_flops(), per_module


def _describe(module: nn.Module) -> str:
    if isinstance(module, nn.Conv2d):
        k = module.kernel_size
        pad = "valid" if module.padding in (0, (0, 0)) else "same"
        stride = f" stride {module.stride[0]}" if module.stride[0] != 1 else ""
        return f"Conv2D {k[0]}x{k[1]} {module.out_channels} {pad}{stride}"
    if isinstance(module, LocallyConnected2d):
        pad = "valid" if module.padding == 0 else "same"
        stride = f" stride {module.stride}" if module.stride != 1 else ""
        return f"LocallyConnected2D {module.kernel_size}x{module.kernel_size} {module.out_channels} {pad}{stride}"
    if isinstance(module, (nn.MaxPool2d, nn.AvgPool2d)):
        kind = "MaxPooling2D" if isinstance(module, nn.MaxPool2d) else "AveragePooling2D"
        return f"{kind} {module.kernel_size}x{module.kernel_size}"
    if isinstance(module, nn.BatchNorm2d):
        return "BatchNormalization"
    if isinstance(module, nn.ZeroPad2d):
        return f"ZeroPadding2D {tuple(module.padding)}"
    if isinstance(module, nn.Linear):
        return f"Dense {module.out_features}"
    if isinstance(module, nn.Dropout):
        return f"Dropout {module.p:g}"
    if isinstance(module, nn.Flatten):
        return "Flatten"
    return type(module).__name__


def _kernel_stride(module: nn.Module) -> tuple[int, int] | None:
    if isinstance(module, nn.Conv2d):
        return module.kernel_size[0], module.stride[0]
    if isinstance(module, LocallyConnected2d):
        return module.kernel_size, module.stride
    if isinstance(module, (nn.MaxPool2d, nn.AvgPool2d)):
        k, s = module.kernel_size, module.stride
        return (k if isinstance(k, int) else k[0]), (s if isinstance(s, int) else s[0])
    return None


def summarize(model: Network, name: str) -> ModelSummary:
    spec = model.spec
    input_shape = (spec.in_channels, spec.image_size, spec.image_size)  # (C, H, W)
    # An empty container is no layer (the MLP's `features`, an empty nn.Sequential): Keras prints no row for it.
    leaves = [(n, m) for n, m in model.named_modules()
              if n and not list(m.children()) and not isinstance(m, _CONTAINERS)]

    shapes: dict[str, tuple[int, ...]] = {}
    hooks = [m.register_forward_hook(lambda mod, inp, out, n=n: shapes.__setitem__(n, tuple(out.shape[1:])))
             for n, m in leaves]
    was_training = model.training
    model.eval()
    with torch.no_grad():
        model(torch.zeros(1, *input_shape))
    model.train(was_training)
    for h in hooks:
        h.remove()

    forward_flops, per_module = flops_per_image(model, input_shape)
    train_flops, _ = flops_per_image(model, input_shape, backward=True)

    rows: list[LayerSummary] = []
    rf, jump = 1, 1
    for n, m in leaves:
        if isinstance(m, tuple(ACTIVATIONS.values())) and rows:
            act = next(k for k, cls in ACTIVATIONS.items() if isinstance(m, cls))
            rows[-1] = LayerSummary(**{**asdict(rows[-1]), "layer": f"{rows[-1].layer} {act}"})
            continue
        ks = _kernel_stride(m)
        if ks is not None and rf is not None:
            rf, jump = rf + (ks[0] - 1) * jump, jump * ks[1]
        if isinstance(m, nn.Flatten):
            rf, jump = None, None
        shape = shapes[n]
        keras_shape = [shape[1], shape[2], shape[0]] if len(shape) == 3 else list(shape)
        trainable, non_trainable = count_params(m)
        rows.append(LayerSummary(n, _describe(m), keras_shape, trainable, non_trainable,
                                 per_module.get(n, 0) // 2, rf, jump))

    trainable, non_trainable = count_params(model)
    return ModelSummary(
        name=name, input_shape=[input_shape[1], input_shape[2], input_shape[0]], layers=rows,
        params={"trainable": trainable, "non_trainable": non_trainable, "total": trainable + non_trainable},
        macs=forward_flops // 2, train_flops=train_flops,
    )
