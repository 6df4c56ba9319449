"""Convolutional pieces of the hybrid backbones: a conv-norm-act brick for channels-last maps, a conv stem, a
residual depthwise conv on tokens, ResT's pixel attention and the ResNet bottleneck.

Written for mmvit_ext after the conv stems of CMT (arXiv 2107.06263, Sec. 3.1) and ResT (arXiv 2105.13677), the
residual depthwise conv of CMT's Local Perception Unit (also CPVT's PEG, arXiv 2102.10882), ResT's pixel attention
(PA) and the bottleneck of ResNet (arXiv 1512.03385) that HRNet and HRFormer (arXiv 2110.09408) use as their first
stage. No code is copied.
"""
from typing import Optional, Sequence, Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F
from mmcv.cnn import build_activation_layer, build_norm_layer
from torch import Tensor

from .utils import channels_last_kernel_, eager_no_grad, eval_batch_norm, fold_bn_after, nchw_to_nlc, nlc_to_nchw

# Activations with an in-place functional form, used on fresh outputs.
_INPLACE_ACTS = {nn.ReLU: F.relu, nn.ReLU6: F.relu6, nn.SiLU: F.silu, nn.Hardswish: F.hardswish}


class ConvNormAct(nn.Module):
    """conv -> norm -> activation (or conv -> activation -> norm) on channels-last maps, with mmcv ``ConvModule``'s
    keys (``conv``, ``bn`` for a BatchNorm, else the norm's mmcv name) and orders.

    Two things ``ConvModule`` does not do, both measured on CPU (8x256x56x56, 1 thread):

    * a 1x1, stride-1, ungrouped conv runs as one matrix product on the channels-last view: oneDNN falls back to
      its slow path for channels-last 1x1 convs (13.5 ms instead of 5.1 ms) and returns a contiguous map, after
      which every later op mixes layouts (an eval BatchNorm on the contiguous map: 49 ms instead of 2.4 ms);
    * in inference (autograd off, not traced) an eval-mode BatchNorm right after the conv is folded into the conv's
      weights, and the activation runs in place.

    Kernels other than pointwise ones have channels-last strides (see :func:`channels_last_kernel_`). Outputs equal
    ``ConvModule``'s.

    Args:
        in_channels (int): Input channels.
        out_channels (int): Output channels.
        kernel_size (int): Square kernel side.
        stride (int): Defaults to 1.
        padding (int): Defaults to 0.
        groups (int): Defaults to 1.
        bias (bool): Conv bias. Defaults to False.
        norm_cfg (dict, optional): Defaults to ``dict(type='BN')``; None for no norm.
        act_cfg (dict, optional): Defaults to ``dict(type='ReLU')``; None for no activation.
        order (tuple[str]): ``('conv', 'norm', 'act')`` or ``('conv', 'act', 'norm')`` (CMT's stem). Defaults to
            the former.

    Shapes:
        (B, in_channels, H, W) -> (B, out_channels, H', W'), channels-last for a channels-last input.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int,
        *,
        stride: int = 1,
        padding: int = 0,
        groups: int = 1,
        bias: bool = False,
        norm_cfg: Optional[dict] = dict(type='BN'),
        act_cfg: Optional[dict] = dict(type='ReLU'),
        order: Tuple[str, str, str] = ('conv', 'norm', 'act')
    ) -> None:
        super().__init__()
        if tuple(order) not in (('conv', 'norm', 'act'), ('conv', 'act', 'norm')):
            raise ValueError(f"order must be ('conv', 'norm', 'act') or ('conv', 'act', 'norm'), got {order!r}")
        self.order = tuple(order)
        self.act_first = self.order == ('conv', 'act', 'norm')
        self.pointwise = kernel_size == 1 and stride == 1 and groups == 1 and padding == 0
        self.conv = nn.Conv2d(
            in_channels, out_channels, kernel_size, stride=stride, padding=padding, groups=groups, bias=bias)
        if not self.pointwise:  # a pointwise kernel runs as a (out, in) matrix, whose gradient has default strides
            channels_last_kernel_(self.conv)
        self.norm_name = None
        if norm_cfg is not None:
            self.norm_name, norm = build_norm_layer(norm_cfg, out_channels)
            self.add_module(self.norm_name, norm)
        self.activate = build_activation_layer(act_cfg) if act_cfg is not None else None

    @property
    def norm(self) -> Optional[nn.Module]:
        return getattr(self, self.norm_name) if self.norm_name is not None else None

    def _conv(self, x: Tensor, weight: Tensor, bias: Optional[Tensor]) -> Tensor:
        if self.pointwise and x.is_contiguous(memory_format=torch.channels_last):
            # B, C, H, W (channels-last) -> B, H, W, C (a view) -> matrix product -> B, C', H, W (channels-last)
            return F.linear(x.permute(0, 2, 3, 1), weight.flatten(1), bias).permute(0, 3, 1, 2)
        conv = self.conv
        return F.conv2d(x, weight, bias, conv.stride, conv.padding, conv.dilation, conv.groups)

    def forward(self, x: Tensor) -> Tensor:
        norm = self.norm
        inference = eager_no_grad()
        weight, bias = self.conv.weight, self.conv.bias
        if inference and not self.act_first and eval_batch_norm(norm):
            weight, bias = fold_bn_after(weight, bias, norm)
            norm = None
        x = self._conv(x, weight, bias)
        if self.act_first:
            x = self._activate(x, inference)
        if norm is not None:
            x = norm(x)
        if not self.act_first:
            x = self._activate(x, inference)
        return x

    def _activate(self, x: Tensor, inference: bool) -> Tensor:
        """The activation of a fresh conv/norm output: in place in inference, and for ReLU also in training (its
        backward reads its output; BatchNorm's and the conv's read their inputs)."""
        if self.activate is None:
            return x
        inplace = _INPLACE_ACTS.get(type(self.activate))
        if inplace is not None and (inference or type(self.activate) is nn.ReLU):
            return inplace(x, inplace=True)
        return self.activate(x)


class ConvStem(nn.Sequential):
    """A stack of ``kernel_size`` convs (padding ``kernel_size // 2``), each with a norm and an activation in
    ``order`` (:class:`ConvNormAct`): layer ``k`` is ``stem.{k}.conv`` plus ``stem.{k}.bn`` (the norm's mmcv name).

    ======  =========================================================================================
    model   arguments
    ======  =========================================================================================
    CMT     ``channels=(S, S, S), strides=(2, 1, 1), bias=True, act_cfg=GELU, order=('conv', 'act', 'norm')``
    ResT    ``channels=(C/2, C/2, C), strides=(2, 1, 2), bias=False, act_cfg=ReLU, last_norm_act=False``
    ResTv2  ``channels=(C/2, C), strides=(2, 2), bias=False, act_cfg=ReLU``, then a 1x1 conv with bias
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
        last_norm_act (bool): Norm and activation after the last conv too; False leaves it a plain conv (no
            ``bn`` keys; ResT v1's ``conv3``). Defaults to True.

    Shapes:
        (B, in_channels, H, W) -> (B, channels[-1], H', W') with each stride s mapping H to ``ceil(H / s)``.
    """

    def __init__(self,
                 in_channels: int,
                 *,
                 channels: Sequence[int],
                 strides: Sequence[int],
                 kernel_size: int = 3,
                 bias: bool = False,
                 norm_cfg: dict = dict(type='BN'),
                 act_cfg: dict = dict(type='ReLU'),
                 order: Tuple[str, str, str] = ('conv', 'norm', 'act'),
                 last_norm_act: bool = True) -> None:
        assert len(channels) == len(strides) > 0, f'{len(channels)} channels for {len(strides)} strides'
        layers, cin = [], in_channels
        for i, (cout, stride) in enumerate(zip(channels, strides)):
            plain = not last_norm_act and i == len(channels) - 1
            layers.append(
                ConvNormAct(
                    cin,
                    cout,
                    kernel_size,
                    stride=stride,
                    padding=kernel_size // 2,
                    bias=bias,
                    norm_cfg=None if plain else norm_cfg,
                    act_cfg=None if plain else act_cfg,
                    order=tuple(order)))
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


class PixelAttention(nn.Module):
    """``x * sigmoid(dwconv(x))`` on a (B, C, H, W) map: ResT's pixel attention (``PA``), its position encoding
    after every patch embedding. A ``kernel_size`` depthwise conv with bias and ``kernel_size // 2`` padding; keys
    ``pa_conv.weight``, ``pa_conv.bias``.

    Args:
        embed_dims (int): Channels C.
        kernel_size (int): Defaults to 3.

    Shapes:
        (B, C, H, W) -> (B, C, H, W), the input's memory format.
    """

    def __init__(self, embed_dims: int, *, kernel_size: int = 3) -> None:
        super().__init__()
        self.pa_conv = channels_last_kernel_(
            nn.Conv2d(embed_dims, embed_dims, kernel_size, padding=kernel_size // 2, groups=embed_dims))

    def forward(self, x: Tensor) -> Tensor:
        gate = self.pa_conv(x)
        if eager_no_grad():  # the conv output is fresh and read by nothing else
            return gate.sigmoid_().mul_(x)
        return x * gate.sigmoid()


class Bottleneck(nn.Module):
    """ResNet bottleneck: ``relu(conv3(conv2(conv1(x))) + downsample(x))``, :class:`ConvNormAct` layers.

    ``conv1`` 1x1 (in -> planes), ``conv2`` 3x3 with ``stride`` (planes -> planes; depthwise with ``depthwise``,
    HRFormer's classifier head), each with norm + ReLU; ``conv3``
    1x1 (planes -> planes * expansion) with norm only; ``downsample`` (1x1 conv + norm, no activation) when the
    stride or the channels change, else None. Convs have no bias. Keys ``{conv1,conv2,conv3,downsample}.conv`` and
    ``.bn``.

    Args:
        in_channels (int): Input channels.
        planes (int): Channels inside the block.
        expansion (int): Output channels are ``planes * expansion``. Defaults to 4.
        stride (int): Stride of ``conv2`` and ``downsample``. Defaults to 1.
        depthwise (bool): ``conv2`` depthwise (groups = planes). Defaults to False.
        norm_cfg (dict): Defaults to ``dict(type='BN')``.

    Shapes:
        (B, in_channels, H, W) -> (B, planes * expansion, ceil(H / stride), ceil(W / stride)).
    """

    def __init__(self,
                 in_channels: int,
                 planes: int,
                 *,
                 expansion: int = 4,
                 stride: int = 1,
                 depthwise: bool = False,
                 norm_cfg: dict = dict(type='BN')) -> None:
        super().__init__()
        out_channels = planes * expansion
        self.out_channels = out_channels
        self.conv1 = ConvNormAct(in_channels, planes, 1, norm_cfg=norm_cfg)
        self.conv2 = ConvNormAct(
            planes, planes, 3, stride=stride, padding=1, groups=planes if depthwise else 1, norm_cfg=norm_cfg)
        self.conv3 = ConvNormAct(planes, out_channels, 1, norm_cfg=norm_cfg, act_cfg=None)
        self.downsample: Optional[ConvNormAct] = None
        if stride != 1 or in_channels != out_channels:
            self.downsample = ConvNormAct(in_channels, out_channels, 1, stride=stride, norm_cfg=norm_cfg, act_cfg=None)

    def forward(self, x: Tensor) -> Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        # conv3's output is fresh and only read here: it takes the residual and the ReLU in place
        return self.conv3(self.conv2(self.conv1(x))).add_(identity).relu_()
