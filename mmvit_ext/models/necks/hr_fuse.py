"""``HRFuseScalesDW``: HRFormer's classification head before its last 1x1 conv: the branches widened by depthwise
bottlenecks and merged from high to low resolution by depthwise stride-2 convs.

Written for mmvit_ext after HRFormer's ImageNet head (arXiv 2110.09408; HRNet-V2-C's "incre"/"downsamp" layers).
mmpretrain's ``HRFuseScales`` (HRNet) has the same data flow with full 3x3 convs, so it cannot load HRFormer's
weights. The head's ``final_layer`` (1x1 conv to 2048, BN, ReLU) and the pooling are :class:`ConvPoolNeck`, the
classifier mmpretrain's ``LinearClsHead``; see configs/hrformer/hrformer-*_in1k.py.
"""
from typing import Optional, Sequence, Tuple, Union

import torch.nn as nn
from mmengine.model import BaseModule
from torch import Tensor

from mmvit_ext.registry import MODELS
from ..layers import Bottleneck, ConvNormAct

__all__ = ['HRFuseScalesDW']


@MODELS.register_module()
class HRFuseScalesDW(BaseModule):
    """``y = incre[0](x_0)``; ``y = incre[i](x_i) + downsample[i - 1](y)`` for i = 1..n-1; returns ``(y, )``.

    ``incre[i]`` is a :class:`~mmvit_ext.models.layers.Bottleneck` with a depthwise 3x3 (planes ``planes[i]``,
    outputs ``4 * planes[i]``); ``downsample[i]`` is a depthwise 3x3 stride-2 conv (bias) + BN, then a 1x1 conv
    (bias) + BN + ReLU, from ``4 * planes[i]`` to ``4 * planes[i + 1]`` channels.

    Args:
        in_channels (Sequence[int]): Channels of the branches, highest resolution first.
        planes (Sequence[int]): Bottleneck planes per branch. Defaults to ``(32, 64, 128, 256)`` (outputs 128, 256,
            512, 1024).
        norm_cfg (dict): Defaults to ``dict(type='BN')``.
        init_cfg (dict | list[dict], optional): Defaults to None (PyTorch's init).

    Shapes:
        tuple of (B, in_channels[i], H_i, W_i) -> tuple of one (B, 4 * planes[-1], H_n, W_n).
    """

    def __init__(self,
                 in_channels: Sequence[int],
                 planes: Sequence[int] = (32, 64, 128, 256),
                 *,
                 norm_cfg: dict = dict(type='BN'),
                 init_cfg: Optional[Union[dict, list]] = None) -> None:
        super().__init__(init_cfg=init_cfg)
        assert len(in_channels) == len(planes), f'{len(planes)} planes for {len(in_channels)} branches'
        self.in_channels = tuple(in_channels)
        self.incre = nn.ModuleList(
            Bottleneck(c, p, depthwise=True, norm_cfg=norm_cfg) for c, p in zip(in_channels, planes))
        widths = [4 * p for p in planes]
        self.downsample = nn.ModuleList(  # the official convs keep their biases before the BatchNorms
            nn.Sequential(
                ConvNormAct(c, c, 3, stride=2, padding=1, groups=c, bias=True, norm_cfg=norm_cfg, act_cfg=None),
                ConvNormAct(c, c_next, 1, bias=True, norm_cfg=norm_cfg)) for c, c_next in zip(widths[:-1], widths[1:]))
        self.out_channels = widths[-1]

    def forward(self, inputs: Tuple[Tensor, ...]) -> Tuple[Tensor]:
        assert len(inputs) == len(self.incre), f'{len(inputs)} inputs for {len(self.incre)} branches'
        y = self.incre[0](inputs[0])
        for incre, down, x in zip(self.incre[1:], self.downsample, inputs[1:]):
            y = incre(x) + down(y)
        return (y, )
