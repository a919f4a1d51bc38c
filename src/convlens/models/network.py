"""Build a PyTorch network from a spec: ``features`` (conv blocks) then ``head`` (flatten + dense layers).

Layers mirror the reference write-ups' Keras models one to one, including Keras' initialisation (Glorot-uniform weights,
zero biases) and BatchNorm settings (eps 1e-3, momentum 0.99), so parameter counts and training behaviour
can be compared with the write-ups' notebooks.
"""

from __future__ import annotations

import os
from collections import OrderedDict
from pathlib import Path

import torch
from torch import nn

from convlens.errors import UsageError
from convlens.models.layers import LocallyConnected2d
from convlens.models.spec import CNNSpec, MLPSpec, conv_output_size, same_padding

ACTIVATIONS: dict[str, type[nn.Module]] = {
    "relu": nn.ReLU, "gelu": nn.GELU, "silu": nn.SiLU, "tanh": nn.Tanh, "elu": nn.ELU, "leaky_relu": nn.LeakyReLU,
}
KERAS_BN = {"eps": 1e-3, "momentum": 0.01}  # Keras BatchNormalization defaults (its momentum 0.99 = torch 0.01)


class Network(nn.Module):
    """logits = head(features(x)); x: (B, C, H, W) float in [0, 1]."""

    def __init__(self, spec: MLPSpec | CNNSpec):
        super().__init__()
        # A meta copy allocates nothing: counted before building. Asked of a new tensor, not get_default_device(),
        # which on torch 2.5 (SageMaker's images) ignores `with torch.device("meta")`: counting recursed forever.
        if torch.empty(()).device.type != "meta":
            check_size(spec, training=False)
        self.spec = spec
        if isinstance(spec, CNNSpec):
            self.features, (channels, size) = _conv_blocks(spec)
        else:
            self.features, (channels, size) = nn.Sequential(), (spec.in_channels, spec.image_size)
        self.head = _dense_head(channels * size * size, spec)
        self.apply(_keras_init)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))  # (B, num_classes) logits


# Training holds 4 copies of the fp32 weights (the weights, their gradients, Adam's two moments).
TRAINING_COPIES = 4


def parameter_count(spec: MLPSpec | CNNSpec) -> int:
    """Parameters (and buffers) of the network ``spec`` describes, counted on the meta device: nothing allocated."""
    with torch.device("meta"):
        network = Network(spec)
    return sum(t.numel() for t in (*network.parameters(), *network.buffers()))


def check_size(spec: MLPSpec | CNNSpec, *, training: bool, memory: int | None = None) -> None:
    """Refuse a spec whose fp32 weights (``training``: and their gradients and optimizer state) would not fit in
    ``memory`` bytes (by default the memory this process may use): ``--set dense=99999999999`` is one line, not an
    allocator's traceback or the OOM killer. A lower bound: activations and batched seeds come on top."""
    memory = memory or usable_memory()
    n = parameter_count(spec)
    need = n * 4 * (TRAINING_COPIES if training else 1)
    if memory is not None and need > memory:
        what = "training it needs" if training else "its weights alone take"
        raise UsageError(f"the model has {n:,} parameters: {what} {need / 2**30:,.1f} GiB, more than the "
                         f"{memory / 2**30:,.1f} GiB of memory here; use fewer or narrower layers (dense, filters)")


CGROUP_MEMORY_LIMITS = ("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes")  # v2, v1


def usable_memory(limits: tuple[str, ...] = CGROUP_MEMORY_LIMITS) -> int | None:
    """Bytes of RAM this process may use: the machine's, or its container's limit (the first of ``limits`` that
    exists) when lower; None where the OS does not say (``os.sysconf`` is POSIX)."""
    try:
        physical = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (AttributeError, ValueError, OSError):
        return None
    for limit in limits:
        try:
            text = Path(limit).read_text().strip()
        except OSError:
            continue
        if text.isdigit():  # 'max' (v2) means none
            return min(physical, int(text))
    return physical


def device_memory(device: torch.device) -> int | None:
    """Bytes of memory on ``device``: the GPU's own on CUDA, the process's RAM otherwise."""
    if device.type == "cuda":
        return torch.cuda.get_device_properties(device).total_memory
    return usable_memory()


def _conv_blocks(spec: CNNSpec) -> tuple[nn.Sequential, tuple[int, int]]:
    blocks, channels, size = OrderedDict(), spec.in_channels, spec.image_size
    for i, out_channels in enumerate(spec.filters, start=1):
        layers: OrderedDict[str, nn.Module] = OrderedDict()
        padding = 0
        if spec.padding == "same":
            before, after = same_padding(size, spec.kernel_size, spec.stride)
            if before == after:
                padding = before
            else:  # asymmetric (even kernel or stride > 1): pad explicitly, as Keras does
                layers["pad"] = nn.ZeroPad2d((before, after, before, after))
        if spec.layer == "local":
            padded = size + (0 if "pad" not in layers else sum(layers["pad"].padding[:2]))
            layers["conv"] = LocallyConnected2d(channels, out_channels, spec.kernel_size, spec.stride, padding, padded)
        else:
            layers["conv"] = nn.Conv2d(channels, out_channels, spec.kernel_size, spec.stride, padding)
        act = ACTIVATIONS[spec.activation]()
        if spec.batch_norm and spec.norm_order == "conv-bn-act":
            layers["bn"], layers["act"] = nn.BatchNorm2d(out_channels, **KERAS_BN), act
        elif spec.batch_norm:
            layers["act"], layers["bn"] = act, nn.BatchNorm2d(out_channels, **KERAS_BN)
        else:
            layers["act"] = act
        size = conv_output_size(size, spec.kernel_size, spec.stride, spec.padding)
        if spec.pool != "none":
            pool_cls = nn.MaxPool2d if spec.pool == "max" else nn.AvgPool2d
            layers["pool"] = pool_cls(spec.pool_size)  # floor mode, like Keras 'valid' pooling
            size //= spec.pool_size
        blocks[f"block{i}"] = ConvBlock(layers)
        channels = out_channels
    return nn.Sequential(blocks), (channels, size)


class ConvBlock(nn.Sequential):
    """One conv block, its layers in the write-ups' (Keras') order: conv, [bn,] act, [bn,] [pool].

    ReLU followed by max pooling runs as pooling followed by ReLU. The two orders give bit-identical outputs and
    gradients: ReLU keeps the order of positive values, so each window's first maximum is the same element, and
    a window with no positive value gets a zero gradient both ways. The ReLU then runs on a quarter of the
    elements; it is measured in bench/README.md. With a hook on either layer (the probes, the summary), the
    layers run in the order written, so each hook sees its own layer's output.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        layers = list(self._modules.values())
        if (len(layers) >= 2 and type(layers[-2]) is nn.ReLU and type(layers[-1]) is nn.MaxPool2d
                and not (layers[-2]._forward_hooks or layers[-1]._forward_hooks
                         or layers[-2]._forward_pre_hooks or layers[-1]._forward_pre_hooks)):
            for layer in layers[:-2]:
                x = layer(x)
            return layers[-2](layers[-1](x))
        return super().forward(x)


def _dense_head(in_features: int, spec: MLPSpec | CNNSpec) -> nn.Sequential:
    layers: OrderedDict[str, nn.Module] = OrderedDict(flatten=nn.Flatten())
    width = in_features
    for i, hidden in enumerate(spec.dense, start=1):
        layers[f"dense{i}"] = nn.Linear(width, hidden)
        layers[f"act{i}"] = ACTIVATIONS[spec.activation]()
        if spec.dropout > 0:
            layers[f"dropout{i}"] = nn.Dropout(spec.dropout)
        width = hidden
    layers["output"] = nn.Linear(width, spec.num_classes)  # logits; softmax lives in the loss / at inference
    return nn.Sequential(layers)


def _keras_init(module: nn.Module) -> None:
    if isinstance(module, (nn.Conv2d, nn.Linear)):
        nn.init.xavier_uniform_(module.weight)
        nn.init.zeros_(module.bias)
    elif isinstance(module, LocallyConnected2d):
        module.reset_parameters()  # its own: Glorot with the conv's fans
