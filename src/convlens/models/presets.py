"""Model presets, named by architecture (as in timm: the layers first, then a tag such as ``-bn``).

Every preset reproduces one or more of the reference write-ups (the assignment's five write-ups,
``../shared/seeds/``), some with an override such as ``--set dropout=0``; ``convlens models list`` shows which.
Write-up 003 gives no exact architecture (its text has placeholders), so nothing claims to reproduce it.
Where a write-up contradicts itself (its layer list against a parameter count it states), the preset follows the
layer list and its note says what does not match (write-up 004).
Parameter totals in the docstrings are Keras ``summary()`` totals, checked by hand in tests/models/test_presets.py.

This module is data only: the registry (registry.py) reads ``PRESETS`` and ``ALIASES``; nothing here imports it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from convlens.models.spec import CNNSpec, MLPSpec


@dataclass(frozen=True)
class Reproduction:
    """A reference write-up this preset reproduces, with the overrides that write-up needs (empty: as is)."""

    write_up: str  # "000" .. "004", the file name's prefix in ../shared/seeds/
    overrides: dict[str, Any] = field(default_factory=dict)
    note: str = ""

    def describe(self, note: bool = True) -> str:
        """'write-up 001 (--set dropout=0.0): its diagram draws no dropout'."""
        changes = " ".join(f"--set {k}={v}" for k, v in self.overrides.items())
        text = f"write-up {self.write_up}" + (f" ({changes})" if changes else "")
        return text + (f": {self.note}" if note and self.note else "")


@dataclass(frozen=True)
class Preset:
    name: str
    spec: MLPSpec | CNNSpec
    description: str  # first line of the constructor's docstring
    reproduces: tuple[Reproduction, ...]


PRESETS: dict[str, Preset] = {}
# Short names for the defaults; a run records the full name, so `cnn` and `cnn-32-64-128` are the same model.
ALIASES = {"cnn": "cnn-32-64-128", "mlp": "mlp-128-64"}


def _preset(name: str, *reproduces: Reproduction) -> Callable[[Callable[[], MLPSpec | CNNSpec]], Callable]:
    def register(fn: Callable[[], MLPSpec | CNNSpec]) -> Callable[[], MLPSpec | CNNSpec]:
        PRESETS[name] = Preset(name, fn(), (fn.__doc__ or "").strip().splitlines()[0], reproduces)
        return fn
    return register


@_preset("mlp-128-64", Reproduction("000", note="its model takes the images already flattened (Input(shape=(784,))), "
                                          "so its summary has no Flatten row"),
         Reproduction("001", {"dropout": 0.0}, "its diagram draws no dropout"),
         Reproduction("004", {"dropout": 0.3}))
def mlp_128_64() -> MLPSpec:
    """784-128-64-10, ReLU, dropout 0.2 after each hidden layer: the default MLP.

    109,386 params."""
    return MLPSpec(dense=(128, 64), dropout=0.2)


@_preset("mlp-256-128", Reproduction("002", note="it trains 10 epochs on a 15% validation split "
                                            "(--epochs 10 --val-fraction 0.15)"))
def mlp_256_128() -> MLPSpec:
    """784-256-128-10, ReLU, no dropout.

    235,146 params; write-up 002 says ~235K."""
    return MLPSpec(dense=(256, 128), dropout=0.0)


@_preset("cnn-32-64-128", Reproduction("000", note="its create_cnn_model(kernel_size=3); its kernel study "
                                              "varies kernel_size"))
def cnn_32_64_128() -> CNNSpec:
    """conv 32-64-128 (3x3 same, ReLU, max-pool 2) -> dense 128 -> dropout 0.3: the default CNN.

    241,546 params."""
    return CNNSpec(depth=3, filters=(32, 64, 128), kernel_size=3, padding="same", pool="max",
                   dense=(128,), dropout=0.3)


@_preset("cnn-16-32", Reproduction("001", note="padding 'same' and stride 1 because its text says they "
                                          "preserve spatial resolution (flatten 7x7x32 = 1,568)"))
def cnn_16_32() -> CNNSpec:
    """conv 16-32 (3x3 same, ReLU, max-pool 2) -> dense 128, no dropout.

    206,922 params."""
    return CNNSpec(depth=2, filters=(16, 32), kernel_size=3, padding="same", pool="max", dense=(128,), dropout=0.0)


@_preset("cnn-32-64", Reproduction("002", note="padding 'same' as its text says (flatten 3,136 = 7x7x64); ReLU "
                                          "assumed, as it names no activation for its CNN; its kernel study varies "
                                          "kernel_size over 3, 5, 7"))
def cnn_32_64() -> CNNSpec:
    """conv 32-64 (3x3 same, ReLU, max-pool 2) -> dense 128, no dropout.

    421,642 params."""
    return CNNSpec(depth=2, filters=(32, 64), kernel_size=3, padding="same", pool="max", dense=(128,), dropout=0.0)


@_preset("cnn-32-64-128-bn", Reproduction("004", note="BatchNorm after the ReLU as its diagram draws it; its text's "
                                                 "~201,000 params and its depth table's ~422,026 (2 conv) and "
                                                 "~897,802 (3 conv) do not match its own layer list (250,058; with "
                                                 "--set depth=1 or 2: 812,298, 429,642)"))
def cnn_32_64_128_bn() -> CNNSpec:
    """conv 32-64-128 (3x3 same, ReLU -> BatchNorm, max-pool 2) -> dense 128-64, dropout 0.3.

    BatchNorm comes after the activation (norm_order='conv-act-bn'). 250,058 params: Keras counts 249,610
    trainable + 448 non-trainable (BatchNorm's moving statistics).
    """
    return CNNSpec(depth=3, filters=(32, 64, 128), kernel_size=3, padding="same", pool="max", batch_norm=True,
                   norm_order="conv-act-bn", dense=(128, 64), dropout=0.3)


@_preset("lcn-32-64-128")
def lcn_32_64_128() -> CNNSpec:
    """The default CNN locally connected: each position its own 3x3 kernel (locality without weight sharing).

    7,643,914 params: a 3x3 kernel and a bias per output position and channel, as Keras' LocallyConnected2D."""
    return cnn_32_64_128().model_copy(update={"layer": "local"})
