"""The effective receptive field of a unit whose theoretical window runs past the image edge (8 x 8 digits): the
90% square is centred on the window's visible part, so its side is never wider than the visible field."""

from __future__ import annotations

import numpy as np
import torch

from convlens.models.network import Network
from convlens.models.registry import resolve_spec
from convlens.probes.receptive_field import effective_receptive_fields


def _profile(n: int, depth: int) -> np.ndarray:
    """Per axis, the linear map of ``depth`` blocks of (3-tap 'same' box filter, 2-wide average pooling) on n px."""
    a = np.eye(n)
    for _ in range(depth):
        m = a.shape[0]
        conv = (np.abs(np.subtract.outer(np.arange(m), np.arange(m))) <= 1).astype(float)
        pool = np.zeros((m // 2, m))
        for i in range(m // 2):
            pool[i, 2 * i:2 * i + 2] = 0.5
        a = pool @ conv @ a
    return a


def test_the_90pct_square_of_a_window_clipped_by_the_image_is_centred_on_its_visible_part():
    net = Network(resolve_spec("cnn", {"depth": 2, "filters": [1, 1], "kernel_size": 3, "pool": "avg",
                                       "image_size": 8}))
    for m in net.features.modules():
        if isinstance(m, torch.nn.Conv2d):
            with torch.no_grad():
                m.weight.fill_(1.0)
                m.bias.zero_()
    x = torch.rand(4, 1, 8, 8, generator=torch.Generator().manual_seed(0)) + 0.1  # positive: ReLU passes all
    block2 = effective_receptive_fields(net, x)[1]
    row = _profile(8, 2)[1]  # the unit at index 1 of the 2 x 2 map: its gradient along one axis
    erf = np.outer(row, row)
    np.testing.assert_allclose(block2["erf"], erf, rtol=1e-6)
    (top, bottom), _ = block2["theoretical_window"]
    assert (top, bottom) == (1, 7)  # the window is 1 .. 10: px 8-10 lie outside the image
    c = (top + bottom) / 2  # 4.0: odd sides; the square of side s covers c - (s-1)/2 .. c + (s-1)/2
    sides = [s for s in range(1, 9, 2)
             if erf[int(c - (s - 1) / 2):int(c + (s - 1) / 2) + 1, int(c - (s - 1) / 2):int(c + (s - 1) / 2) + 1].sum()
             >= 0.9 * erf.sum()]
    assert block2["side90"] == sides[0] == 7  # 5 px hold (40.25 / 49)^2 = 67%; centred on 5.5 it said 8 > 7
    assert block2["side90"] <= block2["theoretical_visible"][0]
