"""CMT: Convolutional Neural Networks Meet Vision Transformers.

Paper: "CMT: Convolutional Neural Networks Meet Vision Transformers", Jianyuan Guo, Kai Han, Han Wu, Yehui Tang,
Xinghao Chen, Yunhe Wang, Chang Xu, CVPR 2022, arXiv 2107.06263.
Official code: github huawei-noah/Efficient-AI-Backbones, ``cmt_pytorch/cmt.py`` at ``f90e129b`` (also
ggjy/CMT.pytorch), Apache-2.0, classification only. This file was written for mmvit_ext from a specification of
the architecture (``shared/specs/cmt.md``), not from the official code.

What differs from the official implementation (outputs are equal at each checkpoint's training resolution):

* any input size, not only the construction size: the patch embeddings and the key/value reductions pad the
  bottom and right of a map whose sides are not multiples of their stride (ceil-mode downsampling, see
  :class:`CMT`), and each stage's relative-position bias is resized from its training grids to the current ones
  (:class:`~mmvit_ext.models.layers.QueryKeyBias`, bicubic as the paper states; unchanged, hence exact, at the
  training size; cached in inference);
* one backbone for classification and dense tasks (``out_indices``, ``frozen_stages``, ``norm_eval``,
  ``with_cp``, ``norm_cfg`` for every BatchNorm, strict ``init_cfg=Pretrained`` loading with key conversion);
* the classifier head (1x1 conv to 1280, BN, Swish, pooling, dropout, Linear) is mmvit_ext's ``ConvPoolNeck`` plus
  mmpretrain's ``LinearClsHead`` (configs/cmt/), not part of the backbone;
* ``k`` and ``v`` are one ``kv`` projection (the converter concatenates the official weights), attention goes
  through ``F.scaled_dot_product_attention`` with the bias as its additive mask.
"""
from typing import Optional, Sequence, Tuple, Union

import torch
import torch.nn as nn
from mmcv.cnn.bricks import DropPath
from torch import Tensor

from mmvit_ext.registry import MODELS
from mmvit_ext.utils.errors import ConfigError
from ..layers import (ConvFFN, ConvSR, ConvStem, PatchEmbed, QueryKeyBias, ReducedKVAttention, ResidualDWConv,
                      channels_last_kernel_, drop_path_schedule, maybe_checkpoint, nlc_to_nchw, to_2tuple)
from .base import BaseViTBackbone

__all__ = ['CMT', 'CMTBlock', 'CMTStage']


def _ceil_div(size: int, stride: int) -> int:
    return -(-int(size) // stride)


class CMTBlock(nn.Module):
    """CMT block: LPU (``x + dwconv3x3(x)``), then pre-norm LMHSA and pre-norm IRFFN, each with a residual.

    ``x = lpu(x)``; ``x = x + drop_path(attn(norm1(x), bias))``; ``x = x + drop_path(mlp(norm2(x)))``. ``norm1`` and
    ``norm2`` are LayerNorms with eps 1e-6. The LMHSA takes keys and values from a depthwise ``sr_ratio`` conv + BN
    of the ``norm1`` map (none when ``sr_ratio == 1``); the IRFFN is 1x1 conv -> GELU -> BN, a residual depthwise
    3x3 conv -> GELU -> BN, 1x1 conv -> BN.

    Args:
        embed_dims (int): Channels C.
        num_heads (int): Attention heads.
        hidden_dims (int): IRFFN hidden channels.
        sr_ratio (int): Key/value reduction ratio.
        qkv_bias (bool): Bias in ``attn.q`` and ``attn.kv``. Defaults to True.
        attn_drop_rate (float): Dropout on the attention weights. Defaults to 0.
        drop_path_rate (float): Stochastic depth of both residual branches. Defaults to 0.
        norm_cfg (dict): The BatchNorms of the reduction and the IRFFN. Defaults to ``dict(type='BN')``.
        recompute_act (bool): The IRFFN's ``recompute_act``: each GELU/BatchNorm pair stores only its input for
            backward. Defaults to False.
    """

    def __init__(self,
                 embed_dims: int,
                 *,
                 num_heads: int,
                 hidden_dims: int,
                 sr_ratio: int,
                 qkv_bias: bool = True,
                 attn_drop_rate: float = 0.,
                 drop_path_rate: float = 0.,
                 norm_cfg: dict = dict(type='BN'),
                 recompute_act: bool = False) -> None:
        super().__init__()
        self.lpu = ResidualDWConv(embed_dims, kernel_size=3)
        self.norm1 = nn.LayerNorm(embed_dims, eps=1e-6)
        reducer = None
        if sr_ratio > 1:
            reducer = ConvSR(embed_dims, sr_ratio=sr_ratio, depthwise=True, norm_cfg=norm_cfg, ceil_mode=True)
        self.attn = ReducedKVAttention(
            embed_dims, num_heads=num_heads, kv_reducer=reducer, qkv_bias=qkv_bias, attn_drop_rate=attn_drop_rate)
        self.drop_path = DropPath(drop_path_rate) if drop_path_rate > 0. else nn.Identity()
        self.norm2 = nn.LayerNorm(embed_dims, eps=1e-6)
        self.mlp = ConvFFN(
            embed_dims,
            hidden_dims=hidden_dims,
            act_cfg=dict(type='GELU'),
            norm_cfg=norm_cfg,
            dw_residual=True,
            recompute_act=recompute_act)

    def forward(self, x: Tensor, hw_shape: Tuple[int, int], attn_bias: Tensor) -> Tensor:
        """Args:
            x (Tensor): Tokens, (B, N, C).
            hw_shape (tuple[int, int]): (H, W).
            attn_bias (Tensor): The stage's relative-position bias, (heads, N, M).

        Returns:
            Tensor: (B, N, C).
        """
        x = self.lpu(x, hw_shape)
        x = x + self.drop_path(self.attn(self.norm1(x), hw_shape, attn_bias=attn_bias))
        return x + self.drop_path(self.mlp(self.norm2(x), hw_shape))


class CMTStage(nn.Module):
    """``downsample`` (2x2 stride-2 conv + LN eps 1e-5) -> ``blocks``, which share the stage's ``relative_pos``.

    Args:
        in_channels (int): Input channels.
        embed_dims (int): Channels C of the stage.
        depth (int): Number of blocks.
        num_heads (int): Attention heads.
        sr_ratio (int): Key/value reduction ratio.
        query_hw (tuple[int, int]): The stage's token grid at the training resolution (the bias table's grid).
        drop_path_rates (Sequence[float]): One stochastic-depth rate per block.
        bias_resize_mode (str): Interpolation of the bias for other grids. Defaults to 'bicubic'.
        bias_cache_size (int): Resized biases cached for inference. Defaults to 1.
        **block_kwargs: ``hidden_dims``, ``qkv_bias``, ``attn_drop_rate``, ``norm_cfg``, ``recompute_act`` of
            :class:`CMTBlock`.

    Shapes:
        (B, in_channels, H, W) -> (B, C, ceil(H / 2), ceil(W / 2)).
    """

    def __init__(self,
                 in_channels: int,
                 embed_dims: int,
                 *,
                 depth: int,
                 num_heads: int,
                 sr_ratio: int,
                 query_hw: Tuple[int, int],
                 drop_path_rates: Sequence[float],
                 bias_resize_mode: str = 'bicubic',
                 bias_cache_size: int = 1,
                 **block_kwargs) -> None:
        super().__init__()
        assert len(drop_path_rates) == depth, f'{len(drop_path_rates)} drop-path rates for {depth} blocks'
        self.sr_ratio = sr_ratio
        self.downsample = PatchEmbed(
            in_channels,
            embed_dims,
            kernel_size=2,
            stride=2,
            padding=0,
            norm_cfg=dict(type='LN', eps=1e-5),
            pad_to_stride=True)
        channels_last_kernel_(self.downsample.proj)  # reads channels-last maps (see CMT.forward)
        self.relative_pos = QueryKeyBias(
            num_heads=num_heads,
            query_hw=query_hw,
            key_hw=self.key_hw(query_hw),
            resize_mode=bias_resize_mode,
            cache_size=bias_cache_size)
        self.blocks = nn.ModuleList(
            CMTBlock(embed_dims, num_heads=num_heads, sr_ratio=sr_ratio, drop_path_rate=rate, **block_kwargs)
            for rate in drop_path_rates)

    def key_hw(self, query_hw: Tuple[int, int]) -> Tuple[int, int]:
        """Key/value grid of a query grid: ``ceil(H / sr_ratio)`` x ``ceil(W / sr_ratio)``."""
        return _ceil_div(query_hw[0], self.sr_ratio), _ceil_div(query_hw[1], self.sr_ratio)

    def forward(self, x: Tensor, *, with_cp: bool = False) -> Tensor:
        x, hw_shape = self.downsample(x)
        attn_bias = self.relative_pos(hw_shape, self.key_hw(hw_shape))
        for block in self.blocks:
            x = maybe_checkpoint(block, x, hw_shape, attn_bias, enabled=with_cp)
        return nlc_to_nchw(x, hw_shape)  # B, N, C -> B, C, H, W (channels-last view)


@MODELS.register_module()
class CMT(BaseViTBackbone):
    """CMT backbone: conv stem (stride 2), four stages at strides 4/8/16/32, NCHW outputs with ``embed_dims``
    channels, no output norms.

    Input sizes: any H, W of at least the deepest computed output's stride (32 for all four outputs). The stem's
    stride-2 conv has padding 1 and each stage's 2x2 patch embedding and key/value reduction zero-pad the bottom
    and right of a map with a side that is not a multiple of their stride, so output ``i`` is
    ``ceil(H / s_i)`` x ``ceil(W / s_i)`` and no pixel is dropped; sizes that are multiples of 32 are not padded
    anywhere. The relative-position biases are resized to the current grids (bicubic by default,
    ``bias_resize_mode``); at ``pretrain_img_size`` they are used unchanged.

    A classifier as the official one is ``ImageClassifier(backbone=dict(type='mmvit_ext.CMT', out_indices=(3,)),
    neck=dict(type='mmvit_ext.ConvPoolNeck', in_channels=C4, out_channels=1280), head=LinearClsHead)``; see
    configs/cmt/cmt-*_in1k.py.

    Args:
        arch (str | dict): ``'tiny'``, ``'xs'``, ``'small'``, ``'base'`` (or ``'ti'``, ``'t'``, ``'s'``, ``'b'``), or
            a dict with exactly ``embed_dims``, ``depths``, ``num_heads``, ``mlp_hidden_dims`` (4 entries each) and
            ``stem_channels``. Defaults to ``'small'``.
        in_channels (int): Input channels. Defaults to 3.
        pretrain_img_size (int | tuple[int, int], optional): The resolution the relative-position tables are made
            for (a checkpoint's training resolution). Defaults to the arch's ImageNet resolution (tiny 160, xs 192,
            small 224, base 256; 224 for a dict arch). A checkpoint with tables of another square resolution is
            resized to this one on load, with a log line.
        sr_ratios (Sequence[int]): Key/value reduction per stage. Defaults to ``(8, 4, 2, 1)``.
        qkv_bias (bool): Defaults to True.
        attn_drop_rate (float): Dropout on attention weights. Defaults to 0.
        drop_path_rate (float): Stochastic depth of the last block, rising linearly from 0. Official values: 0.1
            (tiny, small), 0.08 (xs), 0.25 (base). Defaults to 0.1.
        norm_cfg (dict): Every BatchNorm (stem, key/value reductions, IRFFNs). Defaults to ``dict(type='BN')``.
        bias_resize_mode (str): ``F.interpolate`` mode of the bias resize. Defaults to 'bicubic'.
        bias_cache_size (int): Resized biases kept per stage for inference (the last input sizes); each is as
            large as one image's attention logits. Defaults to 1.
        out_indices (int | Sequence[int]): Stages to return. Later stages are not computed. Defaults to
            ``(0, 1, 2, 3)``.
        frozen_stages (int): -1 none, 0 the stem, k the stem and the first k stages. Defaults to -1.
        norm_eval (bool): BatchNorms in eval mode while training. Defaults to False.
        with_cp (bool): Activation checkpointing per block. Defaults to False.
        recompute_act (bool): In training, each IRFFN GELU/BatchNorm pair stores only its input for backward and
            recomputes the rest (``ConvFFN(recompute_act=True)``); same values and gradients, less memory, more
            time. Not for SyncBN (a log line says so). Defaults to False.
        init_cfg (dict | list[dict], optional): Entries applied after the official init (``default_init_cfg``:
            Linear trunc-normal std 0.02, convs Kaiming-normal fan-out, norms 1/0, tables standard normal), which
            ``None`` keeps; ``dict(type='Pretrained', checkpoint=...)`` loads official or converted weights strictly
            instead. Defaults to None.

    Examples:
        >>> import torch
        >>> from mmvit_ext.models.backbones import CMT
        >>> model = CMT('tiny').eval()
        >>> [tuple(o.shape) for o in model(torch.rand(1, 3, 160, 160))]
        [(1, 46, 40, 40), (1, 92, 20, 20), (1, 184, 10, 10), (1, 368, 5, 5)]
    """

    # yapf: disable
    arch_zoo = {
        **dict.fromkeys(['t', 'ti', 'tiny'], {'embed_dims': [46, 92, 184, 368], 'depths': [2, 2, 10, 2],
                                              'num_heads': [1, 2, 4, 8], 'mlp_hidden_dims': [165, 331, 662, 1324],
                                              'stem_channels': 16}),
        **dict.fromkeys(['xs'], {'embed_dims': [52, 104, 208, 416], 'depths': [3, 3, 12, 3],
                                 'num_heads': [1, 2, 4, 8], 'mlp_hidden_dims': [196, 392, 784, 1568],
                                 'stem_channels': 16}),
        **dict.fromkeys(['s', 'small'], {'embed_dims': [64, 128, 256, 512], 'depths': [3, 3, 16, 3],
                                         'num_heads': [1, 2, 4, 8], 'mlp_hidden_dims': [256, 512, 1024, 2048],
                                         'stem_channels': 32}),
        **dict.fromkeys(['b', 'base'], {'embed_dims': [76, 152, 304, 608], 'depths': [4, 4, 20, 4],
                                        'num_heads': [1, 2, 4, 8], 'mlp_hidden_dims': [304, 608, 1216, 2432],
                                        'stem_channels': 38}),
    }
    #: ImageNet resolution of each arch (the official checkpoints' table grids), by alias.
    pretrain_img_sizes = {**dict.fromkeys(['t', 'ti', 'tiny'], 160), 'xs': 192,
                          **dict.fromkeys(['s', 'small'], 224), **dict.fromkeys(['b', 'base'], 256)}
    # yapf: enable
    essential_keys = frozenset({'embed_dims', 'depths', 'num_heads', 'mlp_hidden_dims', 'stem_channels'})
    per_stage_keys = frozenset({'embed_dims', 'depths', 'num_heads', 'mlp_hidden_dims'})
    converter = 'cmt'
    default_init_cfg = [
        dict(type='TruncNormal', layer='Linear', std=.02, bias=0.),
        dict(type='Kaiming', layer='Conv2d', mode='fan_out', nonlinearity='relu', distribution='normal', bias=0.),
        dict(type='Constant', layer=['LayerNorm', '_BatchNorm'], val=1., bias=0.)
    ]
    stem_stride = 2

    def __init__(
        self,
        arch: Union[str, dict] = 'small',
        *,
        in_channels: int = 3,
        pretrain_img_size: Optional[Union[int, Tuple[int, int]]] = None,
        sr_ratios: Sequence[int] = (8, 4, 2, 1),
        qkv_bias: bool = True,
        attn_drop_rate: float = 0.,
        drop_path_rate: float = 0.1,
        norm_cfg: dict = dict(type='BN'),
        bias_resize_mode: str = 'bicubic',
        bias_cache_size: int = 1,
        out_indices: Union[int, Sequence[int]] = (0, 1, 2, 3),
        frozen_stages: int = -1,
        norm_eval: bool = False,
        with_cp: bool = False,
        recompute_act: bool = False,
        init_cfg: Optional[Union[dict, list]] = None,
    ) -> None:
        super().__init__(
            arch,
            out_indices=out_indices,
            frozen_stages=frozen_stages,
            norm_eval=norm_eval,
            with_cp=with_cp,
            init_cfg=init_cfg)
        if len(sr_ratios) != self.num_stages or not all(isinstance(r, int) and r >= 1 for r in sr_ratios):
            raise ConfigError(f'sr_ratios needs one int >= 1 per stage ({self.num_stages}), got {sr_ratios!r}')
        if pretrain_img_size is None:
            pretrain_img_size = self.pretrain_img_sizes.get(arch.lower(), 224) if isinstance(arch, str) else 224
        self.pretrain_img_size = to_2tuple(pretrain_img_size)
        if min(self.pretrain_img_size) < 32:
            raise ConfigError(f'pretrain_img_size must be at least 32 a side, got {pretrain_img_size!r}')
        arch = self.arch_settings
        self.feature_channels = tuple(arch['embed_dims'])
        self.feature_strides = tuple(self.stem_stride * 2**(i + 1) for i in range(self.num_stages))

        self.stem = ConvStem(
            in_channels,
            channels=[arch['stem_channels']] * 3,
            strides=(self.stem_stride, 1, 1),
            bias=True,
            norm_cfg=norm_cfg,
            act_cfg=dict(type='GELU'),
            order=('conv', 'act', 'norm'))
        for layer in self.stem:
            channels_last_kernel_(layer.conv)  # see forward
        stage_in = [arch['stem_channels']] + list(arch['embed_dims'][:-1])
        self.stages = nn.ModuleList(
            CMTStage(
                stage_in[i],
                arch['embed_dims'][i],
                depth=arch['depths'][i],
                num_heads=arch['num_heads'][i],
                sr_ratio=sr_ratios[i],
                query_hw=tuple(_ceil_div(s, self.feature_strides[i]) for s in self.pretrain_img_size),
                drop_path_rates=rates,
                bias_resize_mode=bias_resize_mode,
                bias_cache_size=bias_cache_size,
                hidden_dims=arch['mlp_hidden_dims'][i],
                qkv_bias=qkv_bias,
                attn_drop_rate=attn_drop_rate,
                norm_cfg=norm_cfg,
                recompute_act=recompute_act)
            for i, rates in enumerate(drop_path_schedule(drop_path_rate, arch['depths'])))
        self.min_input_size = self.feature_strides[self.out_indices[-1]]
        self._freeze_stages()

    @classmethod
    def validate_arch(cls, arch):
        super().validate_arch(arch)
        for i, (dims, heads) in enumerate(zip(arch['embed_dims'], arch['num_heads'])):
            if dims % heads:
                raise ConfigError(f'{cls.__name__}: arch embed_dims[{i}]={dims} is not divisible by '
                                  f'num_heads[{i}]={heads}')
        if not (isinstance(arch['stem_channels'], int) and arch['stem_channels'] > 0):
            raise ConfigError(f'{cls.__name__}: arch["stem_channels"] must be a positive int, '
                              f'got {arch["stem_channels"]!r}')

    def forward(self, x: Tensor) -> Tuple[Tensor, ...]:
        """Args:
            x (Tensor): Images, (B, in_channels, H, W), H, W >= ``min_input_size``.

        Returns:
            tuple[Tensor]: For each of ``out_indices``, a contiguous (B, C_i, ceil(H / s_i), ceil(W / s_i)) map with
            C_i = ``embed_dims[i]`` and s_i = 4, 8, 16, 32.
        """
        self.check_input_size(x, f'the stride of output {self.out_indices[-1]}, the deepest one computed')
        # The whole network runs on channels-last maps (tokens are their views): oneDNN's convs are faster on them
        # (the stem 1.6x at 8x224x224 on CPU), and every kernel reads the layout its gradient will have (DDP).
        return self.forward_chain(self.stem(x.contiguous(memory_format=torch.channels_last)))
