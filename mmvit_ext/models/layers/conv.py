"""Convolutional pieces of the hybrid backbones: a conv stem and a residual depthwise conv on tokens.

Written for mmvit_ext after the conv stems of CMT (arXiv 2107.06263, Sec. 3.1) and ResT (arXiv 2105.13677) and
the residual depthwise conv of CMT's Local Perception Unit (also CPVT's PEG, arXiv 2102.10882). No code is copied.
"""
import warnings
from typing import Sequence, Tuple

import torch.nn as nn
from mmcv.cnn import ConvModule
from torch import Tensor

from .utils import channels_last_kernel_, nchw_to_nlc, nlc_to_nchw

__all__ = ['ConvStem', 'ResidualDWConv']


class ConvStem(nn.Sequential):
    """A stack of ``kernel_size`` convs (padding ``kernel_size // 2``), each with a norm and an activation in
    ``order`` (mmcv ``ConvModule``): layer ``k`` is ``stem.{k}.conv`` plus ``stem.{k}.bn`` (the norm's mmcv name).

    ======  =========================================================================================
    model   arguments
    ======  =========================================================================================
    CMT     ``channels=(S, S, S), strides=(2, 1, 1), bias=True, act_cfg=GELU, order=('conv', 'act', 'norm')``
    ResT    ``channels=(C/2, C/2, C), strides=(2, 1, 2), bias=False, act_cfg=ReLU`` (``conv, norm, act``)
    ======  =========================================================================================

    Args:
        in_channels (int): Input channels.
        channels (Sequence[int]): Output channels of each conv.
        strides (Sequence[int]): Stride of each conv.
        kernel_size (int): Defaults to 3.
        bias (bool): Conv biases. Defaults to False.
        norm_cfg (dict): Defaults to ``dict(type='BN')``.
        act_cfg (dict): Defaults to ``dict(type='ReLU')``.
        order (tuple[str]): Defaults to ``('conv', 'norm', 'act')``.

    Shapes:
        (B, in_channels, H, W) -> (B, channels[-1], H', W') with each stride s mapping H to ``ceil(H / s)``.
    """

    def __init__(
        self,
        in_channels: int,
        *,
        channels: Sequence[int],
        strides: Sequence[int],
        kernel_size: int = 3,
        bias: bool = False,
        norm_cfg: dict = dict(type='BN'),
        act_cfg: dict = dict(type='ReLU'),
        order: Tuple[str, str, str] = ('conv', 'norm', 'act')
    ) -> None:
        assert len(channels) == len(strides) > 0, f'{len(channels)} channels for {len(strides)} strides'
        layers, cin = [], in_channels
        for cout, stride in zip(channels, strides):
            with warnings.catch_warnings():
                # mmcv warns of a conv bias before a norm; with the activation in between (CMT) it is not redundant
                if order.index('act') < order.index('norm'):
                    warnings.filterwarnings('ignore', message='Unnecessary conv bias')
                layer = ConvModule(
                    cin,
                    cout,
                    kernel_size,
                    stride=stride,
                    padding=kernel_size // 2,
                    bias=bias,
                    norm_cfg=norm_cfg,
                    act_cfg=act_cfg,
                    order=tuple(order))
            layers.append(layer)
            cin = cout
        super().__init__(*layers)
        self.out_channels = cin


class ResidualDWConv(nn.Module):
    """``x + dwconv(x)`` on tokens: a ``kernel_size`` depthwise conv (with bias) of the (H, W) map, added to it.

    CMT's Local Perception Unit (3x3); CPVT's position encoding generator has the same form. The map is a
    channels-last view of the tokens, so no layout copy is made.

    Args:
        embed_dims (int): Channels C.
        kernel_size (int): Defaults to 3.

    Shapes:
        tokens (B, N, C) and hw_shape (H, W) -> (B, N, C).
    """

    def __init__(self, embed_dims: int, *, kernel_size: int = 3) -> None:
        super().__init__()
        # channels-last kernel: the conv reads channels-last token views, its gradient has the same strides (DDP)
        self.conv = channels_last_kernel_(
            nn.Conv2d(embed_dims, embed_dims, kernel_size, padding=kernel_size // 2, groups=embed_dims))

    def forward(self, x: Tensor, hw_shape: Tuple[int, int]) -> Tensor:
        x = nlc_to_nchw(x, hw_shape)  # B, N, C -> B, C, H, W (channels-last view)
        # the conv's output is fresh and not needed by backward: it takes the residual in place
        return nchw_to_nlc(self.conv(x).add_(x))
