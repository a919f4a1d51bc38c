"""The seeds' architectures, layer by layer, named by seed (``../shared/seeds/``).

Seed 003 gives no exact architecture (its text has placeholders), so it has no preset. Parameter counts in the
docstrings are Keras ``summary()`` totals, checked by hand in tests/models/test_presets.py.
"""

from convlens.models.registry import register_model
from convlens.models.spec import CNNSpec, MLPSpec


@register_model
def seed000_mlp() -> MLPSpec:
    """Seed 000 baseline: 784-128-64-10, ReLU, dropout 0.2 after each hidden layer (109,386 params).

    Straight from its ``create_baseline_model`` code.
    """
    return MLPSpec(dense=(128, 64), dropout=0.2)


@register_model
def seed000_cnn() -> CNNSpec:
    """Seed 000 CNN: conv 32-64-128 (3x3 same, ReLU, max-pool 2) -> dense 128 -> dropout 0.3 (241,546 params).

    Straight from its ``create_cnn_model(kernel_size=3)`` code; the kernel study varies ``kernel_size``.
    """
    return CNNSpec(depth=3, filters=(32, 64, 128), kernel_size=3, padding="same", pool="max",
                   dense=(128,), dropout=0.3)


@register_model
def seed001_mlp() -> MLPSpec:
    """Seed 001 baseline: 784-128-64-10, ReLU, no dropout (109,386 params).

    Its diagram lists no dropout, so there is none.
    """
    return MLPSpec(dense=(128, 64), dropout=0.0)


@register_model
def seed001_cnn() -> CNNSpec:
    """Seed 001 CNN: conv 16-32 (3x3, ReLU, max-pool 2) -> dense 128, no dropout (206,922 params).

    Its text says padding and stride "preserve spatial resolution", so padding is 'same' and stride 1
    (flatten = 7x7x32 = 1,568). No dropout is drawn.
    """
    return CNNSpec(depth=2, filters=(16, 32), kernel_size=3, padding="same", pool="max", dense=(128,), dropout=0.0)


@register_model
def seed002_mlp() -> MLPSpec:
    """Seed 002 baseline: 784-256-128-10, ReLU, no dropout (235,146 params; its text says ~235K).

    Its text trains it for 10 epochs with a 15% validation split (use --epochs 10 --val-fraction 0.15).
    """
    return MLPSpec(dense=(256, 128), dropout=0.0)


@register_model
def seed002_cnn() -> CNNSpec:
    """Seed 002 CNN: conv 32-64 (3x3 same, ReLU, max-pool 2) -> dense 128, no dropout (421,642 params).

    'same' padding follows from its diagram's flatten size 3,136 = 7x7x64; ReLU from its design notes.
    Its kernel study varies ``kernel_size`` over 3, 5, 7.
    """
    return CNNSpec(depth=2, filters=(32, 64), kernel_size=3, padding="same", pool="max", dense=(128,), dropout=0.0)


@register_model
def seed004_mlp() -> MLPSpec:
    """Seed 004 baseline: 784-128-64-10, ReLU, dropout 0.3 after each hidden layer (109,386 params).

    Matches the total its text states.
    """
    return MLPSpec(dense=(128, 64), dropout=0.3)


@register_model
def seed004_cnn() -> CNNSpec:
    """Seed 004 CNN: conv 32-64-128 (3x3 same, ReLU, BatchNorm, max-pool 2) -> dense 128-64, dropout 0.3 (250,058).

    Follows its diagram: Conv2D(ReLU) -> BatchNormalization -> MaxPooling, so BN comes after the activation
    (norm_order='conv-act-bn'). Its text's "~201,000 parameters" does not match its own layer list, which
    Keras counts as 250,058 (249,610 trainable + 448 non-trainable BatchNorm moving statistics). Its depth study varies
    ``depth`` over 1, 2, 3.
    """
    return CNNSpec(depth=3, filters=(32, 64, 128), kernel_size=3, padding="same", pool="max", batch_norm=True,
                   norm_order="conv-act-bn", dense=(128, 64), dropout=0.3)
