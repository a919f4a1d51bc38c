"""A conv block runs ReLU -> max pooling as pooling -> ReLU (a quarter of the ReLU's work). That must change no
number: outputs and every gradient are compared bit for bit with the layers applied one by one in the written
order, on inputs full of ties, in fp32 and bf16; hooks still see each layer's own output."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from convlens.config import TrainConfig, model_spec
from convlens.models.network import Network


def in_written_order(model: Network, x: torch.Tensor) -> torch.Tensor:
    """The reference: every layer of every block called in registration order, then the head."""
    for block in model.features.children():
        for layer in block.children():
            x = layer(x)
    return model.head(x)


def tied_batch(n: int = 16, seed: int = 0) -> torch.Tensor:
    """Pixels on a grid of 1/4: with weights on a grid of 1/8, different patches often give equal conv outputs,
    so pooling windows hold ties between different inputs (whose gradients differ)."""
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, 5, (n, 1, 28, 28), generator=g).float() / 4


def quantise_weights(model: nn.Module) -> None:
    """Each weight tensor on a power-of-two grid of about half its spread (biases made nonzero the same way):
    conv outputs are then exact small multiples of one step, and different patches often tie, in fp32 and bf16."""
    g = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for p in model.parameters():
            values = p if p.dim() > 1 else torch.rand(p.shape, generator=g) * 0.2 - 0.1
            step = 2.0 ** torch.round(torch.log2(values.std() / 2))
            p.copy_(torch.round(values / step) * step)


@pytest.mark.parametrize("overrides", [{}, {"kernel_size": 5}, {"batch_norm": True}, {"padding": "valid"}])
@pytest.mark.parametrize("bf16", [False, True])
def test_reordered_block_gives_bit_identical_outputs_and_gradients(overrides, bf16):
    spec = model_spec(TrainConfig(model="cnn-32-64-128", overrides=overrides))
    torch.manual_seed(0)
    model = Network(spec).to(memory_format=torch.channels_last)
    quantise_weights(model)
    model.eval()  # dropout off: both passes see the same network
    x = tied_batch().contiguous(memory_format=torch.channels_last).requires_grad_()
    y = torch.arange(len(x)) % 10

    grads, outputs = [], []
    for forward in (model, lambda inp: in_written_order(model, inp)):
        model.zero_grad(set_to_none=True)
        x.grad = None
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            logits = forward(x)
            loss = F.cross_entropy(logits, y)
        loss.backward()
        outputs.append(logits.detach().clone())
        grads.append([x.grad.clone(), *(p.grad.clone() for p in model.parameters())])

    assert torch.equal(outputs[0], outputs[1])
    for fused, reference in zip(*grads):
        assert reference.abs().sum() > 0  # a gradient that is all zeros would compare equal whatever the order
        assert torch.equal(fused, reference)

    # The data did exercise ties: some block-1 pooling window has its positive maximum twice.
    x = x.detach()
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
        block1 = model.features.block1
        pre = block1.act(block1.bn(block1.conv(x)) if "bn" in dict(block1.named_children()) else block1.conv(x))
    h, w = pre.shape[2] // 2 * 2, pre.shape[3] // 2 * 2
    windows = pre[:, :, :h, :w].unfold(2, 2, 2).unfold(3, 2, 2).reshape(*pre.shape[:2], h // 2, w // 2, 4)
    top = windows.max(-1, keepdim=True).values
    assert ((windows == top).sum(-1) > 1)[top.squeeze(-1) > 0].any()


def test_relu_runs_on_the_pooled_map_without_hooks(monkeypatch):
    seen = []
    original = nn.ReLU.forward
    monkeypatch.setattr(nn.ReLU, "forward", lambda self, x: (seen.append(tuple(x.shape)), original(self, x))[1])
    model = Network(model_spec(TrainConfig(model="cnn-32-64-128")))
    model(torch.zeros(2, 1, 28, 28))
    assert seen[:3] == [(2, 32, 14, 14), (2, 64, 7, 7), (2, 128, 3, 3)]  # 28 -> 14, 14 -> 7, 7 -> 3 (floor)


def test_hooks_see_each_layers_own_output():
    torch.manual_seed(1)
    model = Network(model_spec(TrainConfig(model="cnn-32-64-128"))).eval()
    block = model.features.block1
    captured = {}
    hooks = [getattr(block, name).register_forward_hook(lambda m, i, o, name=name: captured.__setitem__(name, o))
             for name in ("act", "pool")]
    x = torch.rand(3, 1, 28, 28)
    with torch.no_grad():
        logits = model(x)
        conv = F.conv2d(x, block.conv.weight, block.conv.bias, padding=1)
    for h in hooks:
        h.remove()
    assert torch.equal(captured["act"], torch.relu(conv))  # full size: the layers ran in the written order
    assert torch.equal(captured["pool"], F.max_pool2d(torch.relu(conv), 2))
    with torch.no_grad():
        assert torch.equal(logits, model(x))  # and the same logits without the hooks
