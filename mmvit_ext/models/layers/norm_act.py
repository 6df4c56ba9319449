"""Norm pieces: a channels-first LayerNorm for maps, and training-mode BatchNorm and GELU as one autograd node that
stores only the BatchNorm's (or GELU's) input.

Written for mmvit_ext.

:class:`LayerNorm2d` normalises a (B, C, H, W) map over C at every pixel (ResT v2's dense output norms); on a
channels-last map it reads and writes the (B, H, W, C) view without a copy.

Autograd keeps three tensors around a ``conv -> BN -> GELU`` pair (HRFormer's FFN) or a
``conv -> GELU -> BN`` pair (CMT's IRFFN): the conv output (BN or GELU input), the intermediate (GELU or BN input)
and the output (read by the next conv). :func:`batch_norm_gelu` keeps the first and the output only and recomputes
the intermediate in backward, one elementwise pass: one tensor of the pair's size less per pair for the whole step.
Forward values, running statistics and gradients are those of ``gelu(bn(x))`` / ``bn(gelu(x))`` up to float
rounding: the same kernels, but GELU's vectorised loop rounds the last bit by memory layout, and the recomputed
``bn(x)`` is one affine map.

Used where it applies exactly: a plain ``nn.BatchNorm2d`` (not SyncBN, whose statistics are reduced across GPUs)
in training mode with batch statistics, and ``nn.GELU``; everything else takes the modules as they are.
"""
from typing import Optional

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch import Tensor

__all__ = ['LayerNorm2d', 'batch_norm_gelu', 'fusable_batch_norm_gelu']


class LayerNorm2d(nn.LayerNorm):
    """LayerNorm over the channels of a (B, C, H, W) map, at every pixel; keys ``weight``, ``bias``.

    Args:
        num_channels (int): C.
        eps (float): Defaults to 1e-6 (ResT v2).

    Shapes:
        (B, C, H, W) -> (B, C, H, W) in the input's memory format (channels-last stays channels-last).
    """

    def __init__(self, num_channels: int, *, eps: float = 1e-6) -> None:
        super().__init__(num_channels, eps=eps)

    def forward(self, x: Tensor) -> Tensor:
        # B, C, H, W -> B, H, W, C (a view of a channels-last map) -> norm -> B, C, H, W
        return F.layer_norm(x.permute(0, 2, 3, 1), self.normalized_shape, self.weight, self.bias,
                            self.eps).permute(0, 3, 1, 2)


def fusable_batch_norm_gelu(norm: Optional[nn.Module], act: Optional[nn.Module]) -> bool:
    """Whether :func:`batch_norm_gelu` computes ``norm`` and ``act`` exactly: a training-mode plain BatchNorm2d
    (affine, with running statistics, as mmcv builds ``BN``) and a GELU, with autograd recording."""
    return (type(norm) is nn.BatchNorm2d and type(act) is nn.GELU and norm.training and norm.affine
            and norm.track_running_stats and torch.is_grad_enabled() and not torch.jit.is_tracing()
            and not torch.jit.is_scripting())


class _BatchNormGELU(torch.autograd.Function):
    """The kernels of ``nn.BatchNorm2d`` in training (``_batch_norm_with_update`` and its backward) and of GELU."""

    @staticmethod
    def forward(ctx, x: Tensor, weight: Tensor, bias: Tensor, running_mean: Tensor, running_var: Tensor,
                momentum: float, eps: float, norm_first: bool, approximate: str) -> Tensor:
        ctx.eps, ctx.norm_first, ctx.approximate = eps, norm_first, approximate
        bn = torch.ops.aten._batch_norm_with_update
        if norm_first:  # y = gelu(bn(x)): bn's output is recomputed in backward
            z, mean, invstd, reserve = bn(x, weight, bias, running_mean, running_var, momentum, eps)
            y = torch.ops.aten.gelu_(z, approximate=approximate)
        else:  # y = bn(gelu(x)): gelu's output is recomputed in backward
            y, mean, invstd, reserve = bn(
                F.gelu(x, approximate=approximate), weight, bias, running_mean, running_var, momentum, eps)
        ctx.save_for_backward(x, weight, bias, mean, invstd, reserve)
        return y

    @staticmethod
    def backward(ctx, grad: Tensor):
        x, weight, bias, mean, invstd, reserve = ctx.saved_tensors
        mask = list(ctx.needs_input_grad[:3])
        if ctx.norm_first:
            scale = invstd * weight
            shape = (1, -1) + (1, ) * (x.dim() - 2)
            z = torch.addcmul((bias - mean * scale).view(shape), x, scale.view(shape))  # bn(x), recomputed
            grad_z = torch.ops.aten.gelu_backward(grad, z, approximate=ctx.approximate)
            del z
            grad_x, grad_w, grad_b = torch.ops.aten.batch_norm_backward(grad_z, x, weight, None, None, mean, invstd,
                                                                        True, ctx.eps, mask, reserve)
        else:
            a = F.gelu(x, approximate=ctx.approximate)  # gelu(x), recomputed
            grad_a, grad_w, grad_b = torch.ops.aten.batch_norm_backward(grad, a, weight, None, None, mean, invstd, True,
                                                                        ctx.eps, mask, reserve)
            del a
            grad_x = torch.ops.aten.gelu_backward(grad_a, x, approximate=ctx.approximate) if mask[0] else None
        return grad_x, grad_w, grad_b, None, None, None, None, None, None


def batch_norm_gelu(x: Tensor, norm: nn.BatchNorm2d, act: nn.GELU, *, norm_first: bool = True) -> Tensor:
    """``act(norm(x))`` (``norm_first``) or ``norm(act(x))`` storing only ``x`` for backward (see the module note).

    Updates ``norm``'s running statistics and ``num_batches_tracked`` as ``nn.BatchNorm2d.forward`` does. Check
    :func:`fusable_batch_norm_gelu` first.

    Args:
        x (Tensor): (B, C, H, W), any memory format.
        norm (nn.BatchNorm2d): In training mode.
        act (nn.GELU): Its ``approximate`` is used.
        norm_first (bool): ``gelu(bn(x))`` (True) or ``bn(gelu(x))``. Defaults to True.
    """
    momentum = norm.momentum
    norm.num_batches_tracked.add_(1)
    if momentum is None:  # cumulative moving average
        momentum = 1. / float(norm.num_batches_tracked)
    return _BatchNormGELU.apply(x, norm.weight, norm.bias, norm.running_mean, norm.running_var, momentum, norm.eps,
                                norm_first, act.approximate)
