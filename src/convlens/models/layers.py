"""A locally connected layer: a convolution's footprint without its weight sharing (each output position owns its
kernel), so that an experiment can separate what locality buys from what sharing weights buys.

Keras' ``LocallyConnected2D`` semantics: a bias per output position and channel. Patches are taken with
``Tensor.unfold`` (a strided view, copied once into ``(positions, batch, patch)``), and every position's patch is
multiplied by its own kernel in one batched matmul. Why not ``F.unfold`` + einsum: on CPU, im2col/col2im loop over
the batch and ``bmm`` on permuted operands falls back to a per-matrix loop; this layout is 1.4-1.6x faster per
layer (bench/locally_connected.py).
"""

from __future__ import annotations

import math

import torch
from torch import nn


class _PositionwiseMatmul(torch.autograd.Function):
    """``bmm(patches, weight)`` with contiguous operands in both passes (so CPU BLAS sees whole batches), and
    autocast's dtype applied by hand: a custom Function's backward runs outside autocast."""

    @staticmethod
    def forward(ctx, patches: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:  # (L, B, K) @ (L, K, O)
        device = patches.device.type
        dtype = torch.get_autocast_dtype(device) if torch.is_autocast_enabled(device) else patches.dtype
        p, w = patches.to(dtype), weight.to(dtype)
        ctx.save_for_backward(p, w)
        ctx.dtypes = (patches.dtype, weight.dtype)
        with torch.autocast(device, enabled=False):
            return torch.bmm(p, w)  # (L, B, O)

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> tuple[torch.Tensor | None, torch.Tensor | None]:
        p, w = ctx.saved_tensors
        grad = grad.to(p.dtype).contiguous()
        grad_patches = torch.bmm(grad, w.transpose(1, 2)).to(ctx.dtypes[0]) if ctx.needs_input_grad[0] else None
        grad_weight = torch.bmm(p.transpose(1, 2), grad).to(ctx.dtypes[1]) if ctx.needs_input_grad[1] else None
        return grad_patches, grad_weight


class LocallyConnected2d(nn.Module):
    """Like ``nn.Conv2d(in_channels, out_channels, kernel_size, stride, padding)`` on ``in_size`` x ``in_size``
    inputs, but with a separate kernel and bias at every output position.

    ``weight``: (positions, kernel_size * kernel_size * in_channels, out_channels), a patch's entries ordered
    (row, column, channel); ``bias``: (out_channels, out_size, out_size).
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, stride: int, padding: int,
                 in_size: int):
        super().__init__()
        self.in_channels, self.out_channels = in_channels, out_channels
        self.kernel_size, self.stride, self.padding = kernel_size, stride, padding
        self.out_size = (in_size + 2 * padding - kernel_size) // stride + 1
        positions, patch = self.out_size ** 2, kernel_size * kernel_size * in_channels
        self.weight = nn.Parameter(torch.empty(positions, patch, out_channels))
        self.bias = nn.Parameter(torch.empty(out_channels, self.out_size, self.out_size))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Glorot-uniform with the convolution's fans, at every position: the kernels start as the conv's would.
        (Keras counts the positions into the fans, which shrinks the initial weights by sqrt(positions).)"""
        k2 = self.kernel_size ** 2
        bound = math.sqrt(6 / (k2 * self.in_channels + k2 * self.out_channels))
        nn.init.uniform_(self.weight, -bound, bound)
        nn.init.zeros_(self.bias)

    def load_conv(self, conv: nn.Conv2d) -> None:
        """Every position gets ``conv``'s kernel and bias: the layer then computes exactly what ``conv`` does."""
        with torch.no_grad():
            kernel = conv.weight.permute(2, 3, 1, 0).reshape(-1, self.out_channels)  # (k*k*C_in, C_out), row-major
            self.weight.copy_(kernel.expand_as(self.weight))
            self.bias.copy_(conv.bias.view(-1, 1, 1).expand_as(self.bias))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        batch, k, s, size = x.shape[0], self.kernel_size, self.stride, self.out_size
        if self.padding:
            x = nn.functional.pad(x, (self.padding,) * 4)
        # (B, C, H', W', k, k) view -> (H' W', B, k k C): one copy, in the weight's (row, column, channel) order
        patches = x.unfold(2, k, s).unfold(3, k, s).permute(2, 3, 0, 4, 5, 1).reshape(size * size, batch, -1)
        if torch.is_grad_enabled():
            out = _PositionwiseMatmul.apply(patches, self.weight)  # (L, B, O)
        else:  # inference: no graph to keep, plain bmm (autocast applies as usual)
            out = torch.bmm(patches, self.weight)
        return out.permute(1, 2, 0).reshape(batch, self.out_channels, size, size) + self.bias.to(out.dtype)

    def extra_repr(self) -> str:
        return (f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, stride={self.stride}, "
                f"padding={self.padding}, out_size={self.out_size}")
