"""Declarative architecture specs. A spec is all that is needed to rebuild a model (stored in config.json)."""

from __future__ import annotations

from typing import Annotated, Any, Literal, Union

from pydantic import BaseModel, ConfigDict, Field, model_validator

from convlens.errors import UsageError

Activation = Literal["relu", "gelu", "silu", "tanh", "elu", "leaky_relu"]
PositiveInt = Annotated[int, Field(ge=1)]


class _SpecBase(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    in_channels: PositiveInt = 1
    image_size: PositiveInt = 28  # square inputs: (in_channels, image_size, image_size)
    num_classes: Annotated[int, Field(ge=2)] = 10
    activation: Activation = "relu"
    dense: tuple[PositiveInt, ...] = Field((128,), description="hidden sizes of the dense head")
    dropout: Annotated[float, Field(ge=0.0, lt=1.0)] = 0.0  # after each hidden dense layer

    @classmethod
    def reconcile_overrides(cls, base: dict[str, Any], overrides: dict[str, Any]) -> dict[str, Any]:
        """Merge ``overrides`` into the ``base`` spec dict (hook for fields that depend on each other)."""
        return {**base, **overrides}


class MLPSpec(_SpecBase):
    """A fully connected baseline: flatten -> [dense -> activation -> dropout] * len(dense) -> logits."""

    kind: Literal["mlp"] = "mlp"
    dense: tuple[PositiveInt, ...] = (128, 64)


MAX_DEPTH = 8  # conv blocks; a 28x28 image with pool 2 vanishes after 4, with pool=none 8 is plenty


class CNNSpec(_SpecBase):
    """``depth`` conv blocks (conv -> [bn] -> act -> [pool], or conv -> act -> bn -> pool), then a dense head.

    ``layer="local"`` makes each block's convolution locally connected (same footprint, a kernel per position)."""

    kind: Literal["cnn"] = "cnn"
    depth: Annotated[int, Field(ge=1, le=MAX_DEPTH)] = 3
    filters: tuple[PositiveInt, ...] = (32, 64, 128)  # one entry per block
    kernel_size: Annotated[int, Field(ge=1, le=15)] = 3
    # "local": each output position has its own kernel (locally connected, as Keras' LocallyConnected2D): the
    # conv's footprint and receptive field without weight sharing
    layer: Literal["conv", "local"] = "conv"
    stride: Annotated[int, Field(ge=1, le=4)] = 1
    padding: Literal["same", "valid"] = "same"  # Keras semantics, also for strides > 1
    pool: Literal["max", "avg", "none"] = "max"
    pool_size: Annotated[int, Field(ge=2, le=4)] = 2
    batch_norm: bool = False
    norm_order: Literal["conv-bn-act", "conv-act-bn"] = "conv-bn-act"

    @classmethod
    def reconcile_overrides(cls, base: dict[str, Any], overrides: dict[str, Any]) -> dict[str, Any]:
        """``depth`` alone keeps the first filters (or extends by doubling the last); ``filters`` alone sets depth."""
        merged = {**base, **overrides}
        if "depth" in overrides and "filters" not in overrides:
            try:
                depth, filters = int(overrides["depth"]), list(base["filters"])
            except (TypeError, ValueError):  # 'abc': left for validation to refuse, naming the field
                return merged
            if not 1 <= depth <= MAX_DEPTH:  # likewise; and depth=10**9 must not build a billion filters first
                return merged
            while len(filters) < depth:
                filters.append(filters[-1] * 2)
            merged["filters"] = tuple(filters[:depth])
        elif "filters" in overrides and "depth" not in overrides:
            if not overrides["filters"]:  # else 'depth: Input should be greater than or equal to 1' blames depth
                raise UsageError("filters needs at least one value (one per block), e.g. filters=16,32,64")
            merged["depth"] = len(overrides["filters"])
        return merged

    @model_validator(mode="after")
    def _check_shapes(self) -> CNNSpec:
        if len(self.filters) != self.depth:
            raise ValueError(f"filters has {len(self.filters)} entries but depth is {self.depth}; give one per block")
        size = self.image_size
        for block in range(1, self.depth + 1):
            size = conv_output_size(size, self.kernel_size, self.stride, self.padding)
            if self.pool != "none":
                size //= self.pool_size
            if size < 1:
                raise ValueError(f"the feature map vanishes after block {block} of {self.depth} "
                                 f"({self.image_size}px input); use fewer blocks, padding=same or pool=none")
        return self


ModelSpec = Annotated[Union[MLPSpec, CNNSpec], Field(discriminator="kind")]
SPEC_TYPES: dict[str, type[_SpecBase]] = {"mlp": MLPSpec, "cnn": CNNSpec}


def conv_output_size(size: int, kernel: int, stride: int, padding: str) -> int:
    """Spatial output size of a convolution with Keras padding semantics."""
    if padding == "same":
        return -(-size // stride)  # ceil(size / stride)
    return (size - kernel) // stride + 1


def same_padding(size: int, kernel: int, stride: int) -> tuple[int, int]:
    """(before, after) zero padding that Keras' padding='same' applies; the extra pixel goes after."""
    out = -(-size // stride)
    total = max((out - 1) * stride + kernel - size, 0)
    return total // 2, total - total // 2
