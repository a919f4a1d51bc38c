"""Every preset builds and runs; parameter counts equal Keras counts worked out by hand from each reference
write-up; names are architectures, aliases are the defaults, old names are refused."""

from __future__ import annotations

import os

import pytest
import torch
from torch import nn

from convlens import create_model, list_models
from convlens.config import TrainConfig
from convlens.errors import UsageError
from convlens.models.presets import PRESETS
from convlens.models.registry import resolve_spec
from convlens.models.spec import CNNSpec, MLPSpec
from convlens.models.summary import count_params, summarize


def conv(k, c_in, c_out):  # Keras Conv2D: k*k*c_in weights per filter + 1 bias
    return k * k * c_in * c_out + c_out


def dense(n_in, n_out):  # Keras Dense: weights + biases
    return n_in * n_out + n_out


# (trainable, non_trainable) per preset, from each write-up's layer list.
HAND_COUNTS = {
    # 784-128-64-10: 100,480 + 8,256 + 650 = 109,386
    "mlp-128-64": (dense(784, 128) + dense(128, 64) + dense(64, 10), 0),
    # 784-256-128-10: 200,960 + 32,896 + 1,290 = 235,146
    "mlp-256-128": (dense(784, 256) + dense(256, 128) + dense(128, 10), 0),
    # conv 32-64-128 (3x3) -> 3x3x128 = 1,152 -> 128 -> 10: 320 + 18,496 + 73,856 + 147,584 + 1,290 = 241,546
    "cnn-32-64-128": (conv(3, 1, 32) + conv(3, 32, 64) + conv(3, 64, 128) + dense(3 * 3 * 128, 128) + dense(128, 10), 0),
    # conv 16-32 -> 7x7x32 = 1,568 -> 128 -> 10: 160 + 4,640 + 200,832 + 1,290 = 206,922
    "cnn-16-32": (conv(3, 1, 16) + conv(3, 16, 32) + dense(7 * 7 * 32, 128) + dense(128, 10), 0),
    # conv 32-64 -> 7x7x64 = 3,136 -> 128 -> 10: 320 + 18,496 + 401,536 + 1,290 = 421,642
    "cnn-32-64": (conv(3, 1, 32) + conv(3, 32, 64) + dense(7 * 7 * 64, 128) + dense(128, 10), 0),
    # cnn-32-64-128's convs + BN (gamma, beta trainable; moving mean, variance not) -> 128 -> 64 -> 10
    "cnn-32-64-128-bn": (conv(3, 1, 32) + conv(3, 32, 64) + conv(3, 64, 128) + 2 * (32 + 64 + 128)
                         + dense(1152, 128) + dense(128, 64) + dense(64, 10), 2 * (32 + 64 + 128)),  # 249,610 + 448
    # cnn-32-64-128, each conv locally connected: a kernel and bias per output position (28x28, 14x14, 7x7)
    # 784 * 320 + 196 * 18,496 + 49 * 73,856 + 147,584 + 1,290 = 250,880 + 3,625,216 + 3,618,944 + 148,874 = 7,643,914
    "lcn-32-64-128": (28 * 28 * conv(3, 1, 32) + 14 * 14 * conv(3, 32, 64) + 7 * 7 * conv(3, 64, 128)
                      + dense(3 * 3 * 128, 128) + dense(128, 10), 0),
}
# What each reference write-up built, written out independently of the presets (../shared/seeds/).
WRITE_UPS = {
    "000": [MLPSpec(dense=(128, 64), dropout=0.2), CNNSpec(filters=(32, 64, 128), dense=(128,), dropout=0.3)],
    "001": [MLPSpec(dense=(128, 64), dropout=0.0), CNNSpec(depth=2, filters=(16, 32), dense=(128,))],
    "002": [MLPSpec(dense=(256, 128)), CNNSpec(depth=2, filters=(32, 64), dense=(128,))],
    "004": [MLPSpec(dense=(128, 64), dropout=0.3),
            CNNSpec(filters=(32, 64, 128), batch_norm=True, norm_order="conv-act-bn", dense=(128, 64), dropout=0.3)],
}


def test_every_preset_has_a_hand_count_and_lists_it():
    rows = list_models()
    assert [r["name"] for r in rows] == list(HAND_COUNTS)
    for r in rows:
        trainable, non_trainable = HAND_COUNTS[r["name"]]
        assert r["params"] == {"trainable": trainable, "non_trainable": non_trainable,
                               "total": trainable + non_trainable}
        assert r["description"]  # every preset documents itself and its provenance: a write-up, or what it varies
        assert r["reproduces"] or "locally connected" in r["description"]


@pytest.mark.parametrize("name", sorted(HAND_COUNTS))
def test_preset_builds_runs_and_matches_keras_counts(name):
    torch.manual_seed(0)
    model = create_model(name).eval()
    logits = model(torch.rand(4, 1, 28, 28))
    assert logits.shape == (4, 10) and torch.isfinite(logits).all()
    assert count_params(model) == HAND_COUNTS[name]
    summary = summarize(model, name)
    trainable, non_trainable = HAND_COUNTS[name]
    assert summary.params == {"trainable": trainable, "non_trainable": non_trainable,
                              "total": trainable + non_trainable}
    assert sum(r.params_trainable + r.params_non_trainable for r in summary.layers) == trainable + non_trainable


def test_each_write_up_is_reproduced_by_a_preset_with_its_stated_overrides():
    reproduced: dict[str, list] = {}
    for name, preset in PRESETS.items():
        for r in preset.reproduces:
            reproduced.setdefault(r.write_up, []).append(resolve_spec(name, r.overrides))
    assert set(reproduced) == set(WRITE_UPS)  # 003 gives no exact architecture
    for write_up, specs in WRITE_UPS.items():
        assert sorted(map(repr, reproduced[write_up])) == sorted(map(repr, specs)), write_up


def test_aliases_name_the_defaults_and_runs_record_the_full_name():
    assert create_model("cnn").spec == CNNSpec(filters=(32, 64, 128), dense=(128,), dropout=0.3)
    assert create_model("mlp").spec == MLPSpec(dense=(128, 64), dropout=0.2)
    assert TrainConfig(model="cnn").model == "cnn-32-64-128" and TrainConfig(model="mlp").model == "mlp-128-64"


@pytest.mark.parametrize("old", ["seed000-cnn", "seed000-mlp", "seed001-cnn", "seed004-cnn", "seed004-mlp"])
def test_old_write_up_names_are_refused_in_one_line_listing_the_valid_names(old):
    with pytest.raises(UsageError) as info:
        create_model(old)
    assert str(info.value) == (f"unknown model '{old}'; valid models: cnn, mlp, mlp-128-64, mlp-256-128, "
                               "cnn-32-64-128, cnn-16-32, cnn-32-64, cnn-32-64-128-bn, lcn-32-64-128")


def test_hand_counts_match_the_totals_the_write_ups_and_reference_state():
    assert sum(HAND_COUNTS["mlp-128-64"]) == 109_386  # write-ups 000 and 004, REFERENCE.md
    assert sum(HAND_COUNTS["cnn-32-64-128"]) == 241_546
    assert count_params(create_model("cnn-32-64-128", kernel_size=5))[0] == 405_898  # REFERENCE.md, 5x5


def test_receptive_field_and_jump_of_the_default_cnn_by_hand():
    # conv3: rf 1+2=3, j1 | pool2: 3+1=4, j2 | conv3: 4+2*2=8 | pool: 8+1*2=10, j4 | conv3: 10+2*4=18 | pool: 18+4=22, j8
    rows = [r for r in summarize(create_model("cnn-32-64-128"), "x").layers if r.receptive_field is not None]
    assert [r.receptive_field for r in rows] == [3, 4, 8, 10, 18, 22]
    assert [r.jump for r in rows] == [1, 2, 2, 4, 4, 8]
    # 5x5: 5 | 6 | 6+4*2=14 | 16 | 16+4*4=32 | 36
    rows = [r for r in summarize(create_model("cnn-32-64-128", kernel_size=5), "x").layers if r.receptive_field]
    assert [r.receptive_field for r in rows] == [5, 6, 14, 16, 32, 36]


def test_macs_per_layer_equal_the_direct_formula():
    layers = {r.name: r for r in summarize(create_model("cnn-32-64-128"), "x").layers}
    assert layers["features.block1.conv"].macs == 28 * 28 * 32 * (3 * 3 * 1)
    assert layers["features.block2.conv"].macs == 14 * 14 * 64 * (3 * 3 * 32)
    assert layers["head.dense1"].macs == 1152 * 128
    assert layers["features.block1.pool"].macs == 0
    assert layers["features.block3.pool"].output_shape == [3, 3, 128]


def test_train_flops_match_reference():
    # REFERENCE.md: 45.1 / 123.8 / 241.8 MFLOP per image (forward + backward) for 3x3 / 5x5 / 7x7.
    for k, mflop in ((3, 45.1), (5, 123.8), (7, 241.8)):
        assert summarize(create_model("cnn-32-64-128", kernel_size=k), "x").train_flops / 1e6 == pytest.approx(mflop, abs=0.05)


def test_depth_and_filters_overrides_reshape_each_other():
    assert resolve_spec("cnn-32-64-128", {"depth": "2"}).filters == (32, 64)
    assert resolve_spec("cnn-32-64-128", {"depth": 4}).filters == (32, 64, 128, 256)
    spec = resolve_spec("cnn-32-64-128", {"filters": "16,32"})
    assert (spec.depth, spec.filters) == (2, (16, 32))
    assert resolve_spec("cnn-32-64-128", {"dense": ""}).dense == ()  # no hidden dense layer
    with pytest.raises(UsageError, match="filters has 3 entries but depth is 2"):
        resolve_spec("cnn-32-64-128", {"depth": 2, "filters": "8,8,8"})


def test_keras_same_padding_for_even_kernels_and_strides():
    model = create_model("cnn-32-64-128", kernel_size=4)
    assert isinstance(model.features.block1.pad, nn.ZeroPad2d)  # Keras pads (1, 2) for k=4
    assert model.features.block1(torch.zeros(1, 1, 28, 28)).shape == (1, 32, 14, 14)
    strided = create_model("cnn-32-64-128", stride=2, pool="none")
    assert strided(torch.zeros(2, 1, 28, 28)).shape == (2, 10)
    rows = summarize(strided, "x").layers
    assert [r.output_shape[0] for r in rows if r.layer.startswith("Conv2D")] == [14, 7, 4]  # ceil(n / 2)


def test_valid_padding_and_pool_variants_change_shapes_as_expected():
    rows = summarize(create_model("cnn-16-32", padding="valid", pool="avg"), "x").layers
    convs = [r.output_shape for r in rows if r.layer.startswith("Conv2D")]
    assert convs == [[26, 26, 16], [11, 11, 32]]  # 28-2=26 -> pool 13 -> 13-2=11
    assert any(r.layer.startswith("AveragePooling2D") for r in rows)


@pytest.mark.parametrize("name, overrides, message", [
    ("nope", {}, "unknown model 'nope'; valid models: cnn, mlp, "),
    ("cnn-32-64-128", {"colour": 1}, "unknown override 'colour'.*valid keys: .*kernel_size"),
    ("mlp-128-64", {"kernel_size": 3}, "unknown override 'kernel_size' for mlp-128-64"),
    ("cnn-32-64-128", {"kernel_size": "big"}, "kernel_size: Input should be a valid integer"),
    ("cnn-32-64-128", {"pool": "median"}, "pool: Input should be 'max', 'avg' or 'none'"),
    ("cnn-32-64-128", {"padding": "valid", "depth": 4}, "feature map vanishes after block 4"),
    ("cnn-32-64-128", {"dropout": 1.5}, "dropout: Input should be less than 1"),
])
def test_bad_names_and_overrides_raise_one_line_usage_errors(name, overrides, message):
    with pytest.raises(UsageError, match=message) as info:
        create_model(name, **overrides)
    assert "\n" not in str(info.value)


def test_batchnorm_uses_keras_settings_and_order():
    block = create_model("cnn-32-64-128-bn").features.block1
    assert list(block._modules) == ["conv", "act", "bn", "pool"]  # Conv2D(relu) -> BatchNormalization -> pool
    assert block.bn.eps == pytest.approx(1e-3) and block.bn.momentum == pytest.approx(0.01)
    assert list(create_model("cnn-32-64-128", batch_norm=True).features.block1._modules) == ["conv", "bn", "act", "pool"]


def test_summarize_leaves_a_trained_batchnorm_model_untouched():
    model = create_model("cnn-32-64-128-bn")
    with torch.no_grad():  # running statistics as after training, far from a fresh layer's 0 and 1
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.running_mean.uniform_(-1, 1)
                m.running_var.uniform_(0.5, 2)
    model.eval()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    summary = summarize(model, "x")
    assert summary.train_flops > 2 * summary.macs * 2  # the backward pass was counted
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())  # incl. num_batches_tracked
    assert not model.training and all(p.grad is None for p in model.parameters())


def test_a_model_too_large_to_train_here_is_refused_before_anything_is_allocated(tmp_path):
    from convlens.models.network import Network, check_size, parameter_count, usable_memory
    spec = resolve_spec("mlp-128-64", {})
    by_hand = (784 * 128 + 128) + (128 * 64 + 64) + (64 * 10 + 10)  # 109,386
    assert parameter_count(spec) == by_hand == sum(p.numel() for p in Network(spec).parameters())
    bn = resolve_spec("cnn", {"batch_norm": True})  # buffers (BatchNorm's moving statistics) are memory too
    built = Network(bn)
    assert parameter_count(bn) == sum(t.numel() for t in (*built.parameters(), *built.buffers()))
    check_size(spec, training=True, memory=by_hand * 4 * 4)  # weights, gradients, two Adam moments: exactly fits
    with pytest.raises(UsageError, match="the model has 109,386 parameters: training it needs"):
        check_size(spec, training=True, memory=by_hand * 4 * 4 - 1)
    check_size(spec, training=False, memory=by_hand * 4)  # to build it (or load it to predict): the weights only
    with pytest.raises(UsageError, match="its weights alone take"):
        check_size(spec, training=False, memory=by_hand * 4 - 1)
    physical = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    for text, expected in (("max\n", physical), ("1000\n", 1000), (str(physical * 2), physical)):
        (tmp_path / "memory.max").write_text(text)  # a container's limit (cgroup v2): 'max' means none
        assert usable_memory((str(tmp_path / "memory.max"),)) == expected
    assert usable_memory((str(tmp_path / "absent"),)) == physical
    huge = resolve_spec("cnn", {"dense": [10**11]})
    with pytest.raises(UsageError, match="GiB of memory here"):
        Network(huge)  # the constructor refuses before it allocates 460 TB


def test_one_filter_count_is_one_block_from_python_yaml_and_the_command_line_alike():
    """--set filters=16 has always meant one block of 16; from Python or a YAML spec the same 16 (an int) raised
    TypeError: object of type 'int' has no len()."""
    from convlens.cli.options import overrides
    from convlens.models.registry import resolve_spec
    from_cli = resolve_spec("cnn", overrides(["filters=16"]))
    assert from_cli.filters == (16,) and from_cli.depth == 1
    assert resolve_spec("cnn", {"filters": 16}) == resolve_spec("cnn", {"filters": [16]}) == from_cli
    assert resolve_spec("cnn", {"filters": "16,32"}).depth == 2


def test_counting_on_the_meta_device_does_not_build_again_where_torch_hides_the_device_context(monkeypatch):
    """torch 2.5 (SageMaker's PyTorch images) answers get_default_device() with cpu inside `with
    torch.device("meta")`; building a Network there counted its parameters by building one, which counted again:
    RecursionError for every model, before any training job or endpoint could start. Simulated here."""
    from convlens.models.network import Network, parameter_count
    monkeypatch.setattr(torch, "get_default_device", lambda: torch.device("cpu"))
    spec = resolve_spec("mlp-128-64", {})
    assert parameter_count(spec) == (784 * 128 + 128) + (128 * 64 + 64) + (64 * 10 + 10)
    assert sum(p.numel() for p in Network(spec).parameters()) == 109_386
