"""The locally connected layer: a convolution when all its per-position kernels are the conv's (outputs and
gradients), independent kernels otherwise; its receptive field is the conv's; bf16 autocast keeps weights fp32."""

from __future__ import annotations

import pytest
import torch

from convlens import create_model
from convlens.models.layers import LocallyConnected2d
from convlens.models.network import Network
from convlens.models.registry import resolve_spec
from convlens.models.summary import summarize


def _pair(**fields):
    """The CNN and its locally connected twin with every position's kernel set to the CNN's."""
    torch.manual_seed(0)
    conv_net = Network(resolve_spec("cnn", fields)).eval()
    local_net = Network(resolve_spec("cnn", {**fields, "layer": "local"})).eval()
    local_net.head.load_state_dict(conv_net.head.state_dict())
    for conv_block, local_block in zip(conv_net.features, local_net.features):
        local_block.conv.load_conv(conv_block.conv)
    return conv_net, local_net


@pytest.mark.parametrize("fields", [{}, {"kernel_size": 5, "pool": "none", "depth": 2},
                                    {"kernel_size": 4, "stride": 2, "pool": "avg", "depth": 2},  # asymmetric pad
                                    {"padding": "valid", "depth": 2, "batch_norm": True}])
def test_equal_kernels_compute_the_convolution_forward_and_backward(fields):
    conv_net, local_net = _pair(**fields)
    x = torch.rand(6, 1, 28, 28)
    x_conv, x_local = x.clone().requires_grad_(), x.clone().requires_grad_()
    out_conv, out_local = conv_net(x_conv), local_net(x_local)
    torch.testing.assert_close(out_local, out_conv, atol=1e-5, rtol=1e-4)
    target = torch.randn_like(out_conv)
    (out_conv * target).sum().backward()
    (out_local * target).sum().backward()
    torch.testing.assert_close(x_local.grad, x_conv.grad, atol=1e-5, rtol=1e-4)
    for conv_block, local_block in zip(conv_net.features, local_net.features):
        conv, local = conv_block.conv, local_block.conv
        # a shared kernel's gradient is the sum of what each position would have learned on its own
        per_position = local.weight.grad.sum(0).reshape(conv.kernel_size[0], conv.kernel_size[1],
                                                        conv.in_channels, conv.out_channels)
        torch.testing.assert_close(per_position.permute(3, 2, 0, 1), conv.weight.grad, atol=1e-4, rtol=1e-4)
        torch.testing.assert_close(local.bias.grad.sum((1, 2)), conv.bias.grad, atol=1e-4, rtol=1e-4)


def test_each_position_has_its_own_kernel():
    layer = LocallyConnected2d(2, 3, 3, 1, 1, in_size=5)
    x = torch.rand(4, 2, 5, 5)
    before = layer(x).detach()
    with torch.no_grad():
        layer.weight[7] += 1.0  # position 7 = row 1, column 2 of the 5x5 output
    changed = (layer(x).detach() - before).abs().amax(dim=(0, 1)) > 0
    expected = torch.zeros(5, 5, dtype=torch.bool)
    expected[1, 2] = True
    assert torch.equal(changed, expected)


def test_receptive_field_and_macs_are_the_convolutions():
    conv_rows = summarize(create_model("cnn"), "cnn").layers
    local_rows = summarize(create_model("lcn-32-64-128"), "lcn").layers
    assert [(r.receptive_field, r.jump, r.output_shape, r.macs) for r in local_rows] == \
           [(r.receptive_field, r.jump, r.output_shape, r.macs) for r in conv_rows]
    assert local_rows[0].layer == "LocallyConnected2D 3x3 32 same relu"
    # block2: 14 x 14 positions, each a 3x3x32 kernel for 64 channels plus 64 biases
    assert local_rows[2].params_trainable == 14 * 14 * (3 * 3 * 32 * 64 + 64) == 3_625_216


def test_bf16_autocast_computes_in_bf16_and_keeps_fp32_weights_and_gradients():
    conv_net, local_net = _pair()
    x = torch.rand(8, 1, 28, 28)
    with torch.autocast("cpu", torch.bfloat16):
        out = local_net.features.block1.conv(x)
        reference = conv_net.features.block1.conv(x)
    assert out.dtype == torch.bfloat16
    torch.testing.assert_close(out.float(), reference.float(), atol=3e-2, rtol=2e-2)
    with torch.autocast("cpu", torch.bfloat16):
        loss = local_net(x).float().logsumexp(1).sum()
    loss.backward()
    assert all(p.dtype == torch.float32 and p.grad.dtype == torch.float32 for p in local_net.parameters())


def test_a_locally_connected_run_trains_exports_to_onnx_and_serves_the_same_logits(fashion, tmp_path):
    import numpy as np

    from convlens.config import TrainConfig, resolve_recipe
    from convlens.runs import run_training
    from convlens.serving.export import export_run
    from convlens.serving.predictor import Predictor
    cfg = TrainConfig(model="cnn", overrides={"layer": "local", "filters": [8, 16]},
                      recipe=resolve_recipe("fast", {"epochs": 1}), train_subset=1_000, test_subset=200)
    result = run_training(cfg, tmp_path / "run", dataset=fashion)
    assert result.metrics["test_accuracy"] > 0.3  # it learns: 10 classes, chance is 0.1
    export_run(tmp_path / "run", tmp_path / "model", onnx=True)
    x = (fashion.test_images[:200].astype(np.float32) / 255).reshape(-1, 1, 28, 28)
    onnx, eager = Predictor(tmp_path / "model"), Predictor(tmp_path / "model", backend="torch")
    assert onnx.backend == "onnxruntime"
    assert np.abs(onnx.logits(x) - eager.logits(x)).max() < 1e-4
    assert (eager.predict(x).argmax(1) == fashion.test_labels[:200]).mean() == result.metrics["test_accuracy"]


def test_runs_recorded_before_the_layer_field_existed_are_seeds_of_the_same_configuration():
    from convlens.config import RECIPES
    from convlens.experiments.spec import run_identity
    spec = resolve_spec("cnn").model_dump(mode="json")
    before = {k: v for k, v in spec.items() if k != "layer"}  # config.json written by an earlier convlens

    def config(s):
        return {"model": {"spec": s}, "recipe": RECIPES["fast"].model_dump(mode="json"), "data": {},
                "provenance": {"device": {"type": "cpu"}}}
    assert run_identity(config(before)) == run_identity(config(spec))
    assert run_identity(config({**spec, "layer": "local"})) != run_identity(config(spec))
