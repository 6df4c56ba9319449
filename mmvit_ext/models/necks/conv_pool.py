"""``ConvPoolNeck``: 1x1 conv -> norm -> activation -> global average pooling -> dropout.

Written for mmvit_ext: the pre-logits of CMT's classifier (arXiv 2107.06263; also EfficientNet's and MobileNetV3's
last conv), which mmpretrain's necks do not provide in this order (its ``LinearNeck`` pools first, which differs
once the activation is non-linear).
"""
from typing import Optional, Tuple, Union

import torch.nn as nn
from mmcv.cnn import build_activation_layer, build_norm_layer
from mmengine.model import BaseModule
from torch import Tensor

from mmvit_ext.registry import MODELS

__all__ = ['ConvPoolNeck']


@MODELS.register_module()
class ConvPoolNeck(BaseModule):
    """Pre-logits of a conv classifier head for mmpretrain's ``ImageClassifier``: ``conv`` (1x1, bias) -> ``norm``
    -> act -> global average pooling -> dropout, on each (B, C, H, W) input.

    Official CMT keys map as ``_fc`` -> ``neck.conv``, ``_bn`` -> ``neck.norm``; its ``head`` is mmpretrain's
    ``LinearClsHead`` (``head.fc``).

    Args:
        in_channels (int): Input channels.
        out_channels (int): Channels after the conv. Defaults to 1280.
        norm_cfg (dict, optional): Defaults to ``dict(type='BN')``.
        act_cfg (dict, optional): Defaults to ``dict(type='SiLU')`` (Swish).
        dropout (float): Dropout on the pooled features (active in training only). Defaults to 0.
        init_cfg (dict | list[dict], optional): Defaults to None (PyTorch's init).

    Shapes:
        tuple of (B, in_channels, H, W) -> tuple of (B, out_channels).
    """

    def __init__(self,
                 in_channels: int,
                 out_channels: int = 1280,
                 *,
                 norm_cfg: Optional[dict] = dict(type='BN'),
                 act_cfg: Optional[dict] = dict(type='SiLU'),
                 dropout: float = 0.,
                 init_cfg: Optional[Union[dict, list]] = None) -> None:
        super().__init__(init_cfg=init_cfg)
        self.in_channels, self.out_channels = in_channels, out_channels
        self.conv = nn.Conv2d(in_channels, out_channels, kernel_size=1)
        self.norm = build_norm_layer(norm_cfg, out_channels)[1] if norm_cfg is not None else None
        self.act = build_activation_layer(act_cfg) if act_cfg is not None else None
        self.drop = nn.Dropout(dropout)

    def _forward(self, x: Tensor) -> Tensor:
        x = self.conv(x)
        if self.norm is not None:
            x = self.norm(x)
        if self.act is not None:
            x = self.act(x)
        return self.drop(x.mean((2, 3)))

    def forward(self, inputs: Union[Tensor, Tuple[Tensor, ...]]) -> Union[Tensor, Tuple[Tensor, ...]]:
        if isinstance(inputs, Tensor):
            return self._forward(inputs)
        return tuple(self._forward(x) for x in inputs)
