"""The equivariance probe's floor: the cosine of two different images' unshifted maps (and dense activations),
against a forward pass written in numpy/scipy. Post-ReLU maps are non-negative, so unrelated images score well
above 0; the report states the floor beside the shifted figures."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy.signal import correlate2d

from convlens.models.network import Network
from convlens.models.registry import resolve_spec
from convlens.probes.equivariance import equivariance, equivariance_over_seeds


def _cos(a: np.ndarray, b: np.ndarray) -> float:
    a, b = a.ravel(), b.ravel()
    return float(a @ b / np.linalg.norm(a) / np.linalg.norm(b))


def test_the_floor_is_the_cosine_of_two_images_maps_and_dense_activations_computed_in_numpy():
    torch.manual_seed(0)
    net = Network(resolve_spec("cnn", {"depth": 1, "filters": [2], "pool": "none", "image_size": 8,
                                       "dense": [5], "dropout": 0.0})).eval()
    with torch.no_grad():
        net.features.block1.conv.bias.zero_()  # the empty canvas then maps to 0: nothing to take out of the maps
    x = torch.rand(2, 1, 8, 8, generator=torch.Generator().manual_seed(1))
    result = equivariance(net, x, max_shift=1)
    w = net.features.block1.conv.weight.detach().double().numpy()  # (2, 1, 3, 3)
    imgs = x.double().numpy()[:, 0]
    # 'full' correlation: every output position the image reaches, as on the probe's zero canvas
    full = [np.maximum(np.stack([correlate2d(img, w[c, 0], mode="full") for c in range(2)]), 0) for img in imgs]
    assert result["unrelated"][0] == pytest.approx(_cos(full[0], full[1]), abs=1e-6)  # n=2: both pairs are one
    # dense1 on the 8 x 8 image ('same' padding), the empty image's activations taken out
    same = [np.maximum(np.stack([correlate2d(img, w[c, 0], mode="same") for c in range(2)]), 0) for img in imgs]
    dw = net.head.dense1.weight.detach().double().numpy()
    db = net.head.dense1.bias.detach().double().numpy()
    act = [np.maximum(dw @ m.ravel() + db, 0) - np.maximum(db, 0) for m in same]
    assert result["stages"][-1] == "dense1"
    assert result["unrelated"][-1] == pytest.approx(_cos(act[0], act[1]), abs=1e-6)

    seeds = equivariance_over_seeds({0: result, 1: {**result, "unrelated": [u + 0.1 for u in result["unrelated"]]}})
    assert [u["mean"] for u in seeds["unrelated"]] == pytest.approx([u + 0.05 for u in result["unrelated"]])
    one = equivariance(net, x[:1], max_shift=1)  # one image has no other to be compared with
    assert one["unrelated"] == [None, None]
