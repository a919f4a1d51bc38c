"""Each reference write-up's architectures, layer by layer, against the preset convlens says reproduces it.

The expected rows are worked out by hand from each write-up (../shared/seeds/), not with convlens' counting:
Keras' Conv2D has k*k*c_in*c_out weights + c_out biases, Dense n_in*n_out + n_out, BatchNormalization 4 per
channel (gamma and beta trainable, moving mean and variance not); shapes are Keras' (H, W, C): 'same' padding at
stride 1 keeps H and W, 2x2 max pooling floors them by 2. A row is (layer as convlens prints it, output shape,
trainable params, non-trainable params), in the order the write-up builds its layers.
"""

from __future__ import annotations

import pytest

from convlens import create_model
from convlens.models.presets import PRESETS
from convlens.models.summary import summarize


def conv(k, c_in, c_out):
    return k * k * c_in * c_out + c_out


def dense(n_in, n_out):
    return n_in * n_out + n_out


def bn(c):  # (trainable gamma + beta, non-trainable moving mean + variance)
    return 2 * c, 2 * c


# Write-up 000: create_baseline_model(), create_cnn_model(kernel_size=3); 004: its two diagrams; 001, 002: their
# diagrams and text. Every write-up's output layer is Dense(10) (softmax or none): convlens' is logits.
MLP_128_64 = [  # 784 -> 128 -> 64 -> 10
    ("Flatten", [784], 0, 0),  # 28 * 28 * 1; write-up 000 flattens before its model (Input(shape=(784,)))
    ("Dense 128 relu", [128], dense(784, 128), 0),  # 100,352 + 128 = 100,480
    ("Dense 64 relu", [64], dense(128, 64), 0),  # 8,192 + 64 = 8,256
    ("Dense 10", [10], dense(64, 10), 0),  # 640 + 10 = 650
]


def with_dropout(rows, rate):
    """Dropout(rate) after each hidden Dense, as write-ups 000 (0.2) and 004 (0.3) place it."""
    out = []
    for row in rows:
        out.append(row)
        if row[0].startswith("Dense") and row[0] != "Dense 10":
            out.append((f"Dropout {rate:g}", row[1], 0, 0))
    return out


CONV_32_64_128 = [  # 3x3 'same' + ReLU, 2x2 max pool after each: 28 -> 14 -> 7 -> 3
    ("Conv2D 3x3 32 same relu", [28, 28, 32], conv(3, 1, 32), 0),  # 9 * 1 * 32 + 32 = 320
    ("MaxPooling2D 2x2", [14, 14, 32], 0, 0),
    ("Conv2D 3x3 64 same relu", [14, 14, 64], conv(3, 32, 64), 0),  # 9 * 32 * 64 + 64 = 18,496
    ("MaxPooling2D 2x2", [7, 7, 64], 0, 0),
    ("Conv2D 3x3 128 same relu", [7, 7, 128], conv(3, 64, 128), 0),  # 9 * 64 * 128 + 128 = 73,856
    ("MaxPooling2D 2x2", [3, 3, 128], 0, 0),  # floor(7 / 2) = 3
    ("Flatten", [1152], 0, 0),  # 3 * 3 * 128
]

EXPECTED = {
    # (write-up, what): (preset, its overrides as convlens states them, rows, total as the write-up states it)
    ("000", "baseline"): ("mlp-128-64", {}, with_dropout(MLP_128_64, 0.2), None),
    ("000", "cnn 3x3"): ("cnn-32-64-128", {}, CONV_32_64_128 + [
        ("Dense 128 relu", [128], dense(1152, 128), 0),  # 147,456 + 128 = 147,584
        ("Dropout 0.3", [128], 0, 0),
        ("Dense 10", [10], dense(128, 10), 0),  # 1,290
    ], None),
    ("001", "baseline"): ("mlp-128-64", {"dropout": 0.0}, MLP_128_64, None),
    ("001", "cnn"): ("cnn-16-32", {}, [  # 'same', stride 1: "padding and stride preserve spatial resolution"
        ("Conv2D 3x3 16 same relu", [28, 28, 16], conv(3, 1, 16), 0),  # 9 * 16 + 16 = 160
        ("MaxPooling2D 2x2", [14, 14, 16], 0, 0),
        ("Conv2D 3x3 32 same relu", [14, 14, 32], conv(3, 16, 32), 0),  # 9 * 16 * 32 + 32 = 4,640
        ("MaxPooling2D 2x2", [7, 7, 32], 0, 0),
        ("Flatten", [1568], 0, 0),  # 7 * 7 * 32
        ("Dense 128 relu", [128], dense(1568, 128), 0),  # 200,704 + 128 = 200,832
        ("Dense 10", [10], dense(128, 10), 0),
    ], None),
    ("002", "baseline"): ("mlp-256-128", {}, [
        ("Flatten", [784], 0, 0),
        ("Dense 256 relu", [256], dense(784, 256), 0),  # 200,704 + 256 = 200,960
        ("Dense 128 relu", [128], dense(256, 128), 0),  # 32,768 + 128 = 32,896
        ("Dense 10", [10], dense(128, 10), 0),  # 1,290
    ], None),  # 235,146: "~235K parameters"
    ("002", "cnn"): ("cnn-32-64", {}, CONV_32_64_128[:4] + [
        ("Flatten", [3136], 0, 0),  # 7 * 7 * 64: its diagram's "Flatten (3136)"
        ("Dense 128 relu", [128], dense(3136, 128), 0),  # 401,408 + 128 = 401,536
        ("Dense 10", [10], dense(128, 10), 0),
    ], None),
    ("004", "baseline"): ("mlp-128-64", {"dropout": 0.3}, with_dropout(MLP_128_64, 0.3), 109_386),
    ("004", "cnn"): ("cnn-32-64-128-bn", {}, [  # Conv2D(.., ReLU, same) -> BatchNormalization -> MaxPooling2D
        ("Conv2D 3x3 32 same relu", [28, 28, 32], conv(3, 1, 32), 0),
        ("BatchNormalization", [28, 28, 32], *bn(32)),  # 64 + 64
        ("MaxPooling2D 2x2", [14, 14, 32], 0, 0),  # "→ 14×14×32"
        ("Conv2D 3x3 64 same relu", [14, 14, 64], conv(3, 32, 64), 0),
        ("BatchNormalization", [14, 14, 64], *bn(64)),  # 128 + 128
        ("MaxPooling2D 2x2", [7, 7, 64], 0, 0),  # "→ 7×7×64"
        ("Conv2D 3x3 128 same relu", [7, 7, 128], conv(3, 64, 128), 0),
        ("BatchNormalization", [7, 7, 128], *bn(128)),  # 256 + 256
        ("MaxPooling2D 2x2", [3, 3, 128], 0, 0),  # "→ 3×3×128"
        ("Flatten", [1152], 0, 0),  # "1,152-dimensional vector"
        ("Dense 128 relu", [128], dense(1152, 128), 0),
        ("Dropout 0.3", [128], 0, 0),
        ("Dense 64 relu", [64], dense(128, 64), 0),
        ("Dropout 0.3", [64], 0, 0),
        ("Dense 10", [10], dense(64, 10), 0),
    ], None),  # its text says "~201,000": see test_write_up_004_contradicts_itself_and_the_preset_says_so
}


@pytest.mark.parametrize("key", sorted(EXPECTED), ids=["-".join(k).replace(" ", "") for k in sorted(EXPECTED)])
def test_each_write_up_architecture_row_by_row(key):
    name, overrides, rows, stated_total = EXPECTED[key]
    summary = summarize(create_model(name, **overrides), name)
    got = [(r.layer, r.output_shape, r.params_trainable, r.params_non_trainable) for r in summary.layers]
    assert got == rows  # the layers, their order, output shapes and counts; no row the write-up lacks
    trainable, frozen = sum(r[2] for r in rows), sum(r[3] for r in rows)
    assert summary.params == {"trainable": trainable, "non_trainable": frozen, "total": trainable + frozen}
    if stated_total is not None:
        assert trainable + frozen == stated_total


def test_the_totals_by_hand():
    totals = {key: sum(r[2] + r[3] for r in rows) for key, (_, _, rows, _) in EXPECTED.items()}
    assert totals[("000", "baseline")] == totals[("001", "baseline")] == 100_480 + 8_256 + 650 == 109_386
    assert totals[("000", "cnn 3x3")] == 320 + 18_496 + 73_856 + 147_584 + 1_290 == 241_546
    assert totals[("001", "cnn")] == 160 + 4_640 + 200_832 + 1_290 == 206_922
    assert totals[("002", "baseline")] == 200_960 + 32_896 + 1_290 == 235_146
    assert totals[("002", "cnn")] == 320 + 18_496 + 401_536 + 1_290 == 421_642
    assert totals[("004", "cnn")] == 92_672 + 896 + 147_584 + 8_256 + 650 == 250_058  # 249,610 + 448


def test_the_mlp_summary_has_no_row_keras_would_not_print():
    """The MLP's empty `features` container was printed as a layer ('features  Sequential  (None, 28, 28, 1)  0'),
    a row none of the write-ups' summaries has; the report's template filtered it out by hand."""
    for name in ("mlp-128-64", "mlp-256-128"):
        layers = summarize(create_model(name), name).layers
        assert [r.name for r in layers][0] == "head.flatten"
        assert all(r.layer != "Sequential" for r in layers)


@pytest.mark.parametrize("write_up, name, k, by_hand", [
    # 000: create_cnn_model(kernel_size=5); REFERENCE.md measured 405,898 in Keras
    ("000", "cnn-32-64-128", 5, conv(5, 1, 32) + conv(5, 32, 64) + conv(5, 64, 128) + 147_584 + 1_290),
    # 001: 3x3 vs 5x5, all else fixed: 416 + 12,832 + 200,832 + 1,290
    ("001", "cnn-16-32", 5, conv(5, 1, 16) + conv(5, 16, 32) + dense(1568, 128) + dense(128, 10)),
    # 002: 3x3, 5x5, 7x7 ('same' keeps the flatten at 3,136): 832 + 51,264 + ... and 1,600 + 100,416 + ...
    ("002", "cnn-32-64", 5, conv(5, 1, 32) + conv(5, 32, 64) + dense(3136, 128) + dense(128, 10)),
    ("002", "cnn-32-64", 7, conv(7, 1, 32) + conv(7, 32, 64) + dense(3136, 128) + dense(128, 10)),
])
def test_kernel_studies_vary_only_the_kernel(write_up, name, k, by_hand):
    assert {("000", 5): 405_898, ("001", 5): 215_370, ("002", 5): 454_922, ("002", 7): 504_842}[write_up, k] == by_hand
    summary = summarize(create_model(name, kernel_size=k), name)
    assert summary.params["total"] == by_hand
    base = summarize(create_model(name), name)
    assert [r.output_shape for r in summary.layers] == [r.output_shape for r in base.layers]


def test_write_up_004_contradicts_itself_and_the_preset_says_so():
    """004's layer list (conv 32-64-128 + BN, pool after each, dense 128-64) gives 250,058 parameters; its text
    says ~201,000 and its depth table ~200,000 / ~422,026 / ~897,802 for 1 / 2 / 3 conv layers (and "3 layers have
    ~4.4x more parameters than 1 layer"). By its layer list the count falls with depth, as the flatten shrinks:"""
    depth1 = conv(3, 1, 32) + 64 + 64 + dense(14 * 14 * 32, 128) + dense(128, 64) + dense(64, 10)  # 812,298
    depth2 = (conv(3, 1, 32) + conv(3, 32, 64) + 2 * (64 + 128) + dense(7 * 7 * 64, 128) + dense(128, 64)
              + dense(64, 10))  # 429,642
    assert (depth1, depth2) == (812_298, 429_642)
    for depth, by_hand in ((1, depth1), (2, depth2), (3, 250_058)):
        assert summarize(create_model("cnn-32-64-128-bn", depth=depth), "x").params["total"] == by_hand
    assert not {200_000, 201_000, 422_026, 897_802} & {depth1, depth2, 250_058}
    [note] = [r.note for r in PRESETS["cnn-32-64-128-bn"].reproduces]
    for number in ("~201,000", "~422,026", "~897,802", "250,058", "812,298", "429,642"):
        assert number in note


def test_which_presets_reproduce_which_write_up():
    """What `models list`, `models show` and the report's write_ups lists say: the baseline (mlp-128-64) is 3 of
    the 5 write-ups' (dropout aside), the default CNN exactly 1's (000); 003 draws no exact architecture."""
    claimed = {}
    for name, preset in PRESETS.items():
        for r in preset.reproduces:
            claimed.setdefault(r.write_up, []).append((name, r.overrides))
    expected = {}
    for (write_up, _), (name, overrides, _, _) in EXPECTED.items():
        expected.setdefault(write_up, []).append((name, overrides))
    assert {k: sorted(v, key=str) for k, v in claimed.items()} == {k: sorted(v, key=str) for k, v in expected.items()}
    assert [r.write_up for r in PRESETS["mlp-128-64"].reproduces] == ["000", "001", "004"]
    assert [r.write_up for r in PRESETS["cnn-32-64-128"].reproduces] == ["000"]

