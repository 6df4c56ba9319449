"""Patch embeddings shared by the mmvit_ext backbones.

Written for mmvit_ext (conv patch embedding as in PVTv2, arXiv 2106.13797, and P2T, arXiv 2106.12011).
"""
from typing import Optional, Tuple

import torch.nn as nn
from mmcv.cnn import build_norm_layer
from torch import Tensor

from .utils import nchw_to_nlc, pad_to_multiple

__all__ = ['PatchEmbed']


class PatchEmbed(nn.Module):
    """Conv patch embedding (overlapping when ``kernel_size > stride``) followed by a token norm.

    The output grid is whatever the conv gives, ``floor((H + 2 * padding - kernel_size) / stride) + 1``
    (``ceil(H / stride)`` for the default padding and an odd kernel), so any input size works. A non-overlapping
    embedding (``kernel_size == stride``, ``padding=0``, CMT) floors; with ``pad_to_stride`` the input is first
    zero-padded at the bottom and right to a multiple of ``stride``, giving ``ceil(H / stride)`` as well.

    Args:
        in_channels (int): Input channels.
        embed_dims (int): Output channels C.
        kernel_size (int): Conv kernel size.
        stride (int): Conv stride.
        padding (int, optional): Conv padding. Defaults to ``kernel_size // 2``.
        norm_cfg (dict, optional): Norm on the tokens, registered as ``norm``.
            Defaults to ``dict(type='LN', eps=1e-5)``.
        pad_to_stride (bool): Zero-pad the input's bottom and right to a multiple of ``stride`` first (inputs
            that are multiples are untouched). Defaults to False.

    Shapes:
        (B, in_channels, H, W) -> tokens (B, h * w, C) and (h, w) as Python ints.
    """

    def __init__(self,
                 in_channels: int,
                 embed_dims: int,
                 *,
                 kernel_size: int,
                 stride: int,
                 padding: Optional[int] = None,
                 norm_cfg: Optional[dict] = dict(type='LN', eps=1e-5),
                 pad_to_stride: bool = False) -> None:
        super().__init__()
        self.stride = stride
        self.pad_to_stride = pad_to_stride
        padding = kernel_size // 2 if padding is None else padding
        self.proj = nn.Conv2d(in_channels, embed_dims, kernel_size=kernel_size, stride=stride, padding=padding)
        self.norm = build_norm_layer(norm_cfg, embed_dims)[1] if norm_cfg is not None else None

    def forward(self, x: Tensor) -> Tuple[Tensor, Tuple[int, int]]:
        if self.pad_to_stride:
            x = pad_to_multiple(x, self.stride)
        x = self.proj(x)
        # NOTE: Python ints (also while tracing) so that shape arithmetic downstream, e.g. P2T's round(H / r),
        # stays Python arithmetic; the traced graph is specialised to the input size.
        hw_shape = (int(x.shape[2]), int(x.shape[3]))
        x = nchw_to_nlc(x)  # B, C, h, w -> B, h*w, C
        if self.norm is not None:
            x = self.norm(x)
        return x, hw_shape
