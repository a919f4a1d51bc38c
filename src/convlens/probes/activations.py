"""What a trained CNN computes: its first-layer kernels and the feature maps of one image after each block."""

from __future__ import annotations

import numpy as np
import torch

from convlens.models.network import Network


def first_layer_filters(model: Network) -> np.ndarray:
    """(out_channels, k, k) weights of the first convolution; with several input channels (RGB), their sum: the
    kernel's response to a gray pattern."""
    conv = next(m for m in model.features.modules() if isinstance(m, torch.nn.Conv2d))
    return conv.weight.detach().float().cpu().sum(dim=1).numpy()


@torch.no_grad()
def feature_maps(model: Network, image: torch.Tensor) -> list[tuple[str, np.ndarray]]:
    """image: (1, C, H, W). [(block name, (channels, h, w) activations after that block)], in order."""
    model.eval()
    maps, x = [], image
    for name, block in model.features.named_children():
        x = block(x)
        maps.append((name, x[0].float().cpu().numpy()))
    return maps
