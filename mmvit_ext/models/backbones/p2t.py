"""P2T: Pyramid Pooling Transformer.

Paper: "P2T: Pyramid Pooling Transformer for Scene Understanding", Yu-Huan Wu, Yun Liu, Xin Zhan, Ming-Ming Cheng,
IEEE TPAMI 45(11), 2023, arXiv 2106.12011.
Official code: github yuhuan-wu/P2T (``p2t.py`` at ``acd5e64``), released under CC BY-NC-SA 4.0 for non-commercial
use; its checkpoints are treated as non-commercial too. This file was written for mmvit_ext from a specification
of the architecture, not from the official code.

What differs from the official implementation (outputs are equal for any input with both sides >= 65 px):

* one backbone for every task (``out_indices``, ``frozen_stages``, ``norm_eval``, ``with_cp``, strict
  ``init_cfg=Pretrained`` loading with on-the-fly key conversion) instead of three task copies;
* inputs smaller than the smallest valid size (65 px a side for all four stages; the official code crashes with
  an empty pooled map there) raise a ``ValueError`` that names the minimum, instead of a deep shape error;
* H, W always come from the patch-embedding conv, so any input size works for dense tasks (the official det/seg
  copies need multiples of 32);
* pooled sizes are Python ints, so ``torch.jit.trace`` and ONNX export work;
* the depthwise convs of the pyramid pooling are owned once by each stage (``stages.{i}.pool_convs``) and passed
  to its blocks, as in the official model, without duplicating keys.
"""
from typing import Optional, Sequence, Tuple, Union

import torch.nn as nn
from mmcv.cnn.bricks import DropPath
from torch import Tensor

from mmvit_ext.registry import MODELS
from mmvit_ext.utils.errors import ConfigError
from ..layers import (ConvFFN, PatchEmbed, PyramidPoolSR, ReducedKVAttention, channels_last_kernel_, drop_path_schedule,
                      maybe_checkpoint, nlc_to_nchw)
from .base import BaseViTBackbone

__all__ = ['P2T', 'P2TBlock', 'P2TStage']


class P2TBlock(nn.Module):
    """Pre-norm P2T block: P-MHSA (pyramid-pooling attention) then IRB (conv FFN with Hardswish).

    ``x = x + drop_path(attn(norm1(x)))``; ``x = x + drop_path(mlp(norm2(x)))``; ``norm1``/``norm2`` are
    LayerNorms with eps 1e-6, the LayerNorm after pooling (``attn.norm``) has eps 1e-5.

    Args:
        embed_dims (int): Channels C.
        num_heads (int): Attention heads.
        mlp_ratio (float): IRB hidden channels = ``int(C * mlp_ratio)``.
        pool_ratios (Sequence[int]): Pyramid pooling ratios of the stage.
        qkv_bias (bool): Bias in ``attn.q`` and ``attn.kv``. Defaults to True.
        drop_rate (float): Dropout after ``attn.proj``. Defaults to 0 (the official model applies none).
        attn_drop_rate (float): Dropout on the attention weights. Defaults to 0 (the official model applies
            none).
        drop_path_rate (float): Stochastic depth of both branches. Defaults to 0.
        recompute_act (bool): Recompute the IRB activations in backward instead of storing them
            (see :class:`ConvFFN`); opt-in, like ``with_cp``. Defaults to False.
    """

    def __init__(self,
                 embed_dims: int,
                 *,
                 num_heads: int,
                 mlp_ratio: float,
                 pool_ratios: Sequence[int],
                 qkv_bias: bool = True,
                 drop_rate: float = 0.,
                 attn_drop_rate: float = 0.,
                 drop_path_rate: float = 0.,
                 recompute_act: bool = False) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(embed_dims, eps=1e-6)
        self.attn = ReducedKVAttention(
            embed_dims,
            num_heads=num_heads,
            kv_reducer=PyramidPoolSR(pool_ratios),
            kv_norm_cfg=dict(type='LN', eps=1e-5),
            qkv_bias=qkv_bias,
            attn_drop_rate=attn_drop_rate,
            proj_drop_rate=drop_rate)
        self.drop_path = DropPath(drop_path_rate) if drop_path_rate > 0. else nn.Identity()
        self.norm2 = nn.LayerNorm(embed_dims, eps=1e-6)
        self.mlp = ConvFFN(
            embed_dims,
            hidden_dims=int(embed_dims * mlp_ratio),
            act_cfg=dict(type='HSwish'),
            recompute_act=recompute_act)

    def forward(self, x: Tensor, hw_shape: Tuple[int, int], pool_convs: nn.ModuleList) -> Tensor:
        """Args:
            x (Tensor): Tokens, (B, N, C).
            hw_shape (tuple[int, int]): (H, W).
            pool_convs (nn.ModuleList): The stage's depthwise convs, one per pool ratio.

        Returns:
            Tensor: (B, N, C).
        """
        x = x + self.drop_path(self.attn(self.norm1(x), hw_shape, pool_convs=pool_convs))
        return x + self.drop_path(self.mlp(self.norm2(x), hw_shape))


class P2TStage(nn.Module):
    """``downsample`` (overlapping conv patch embedding + LN) -> ``blocks``; ``pool_convs`` shared by the blocks.

    Args:
        in_channels (int): Input channels.
        embed_dims (int): Channels C of the stage.
        depth (int): Number of blocks.
        patch_size (int): Stride of the patch embedding; its kernel is ``2 * patch_size - 1`` (7 for 4, 3 for 2).
        pool_ratios (Sequence[int]): Pyramid pooling ratios.
        drop_path_rates (Sequence[float]): One stochastic-depth rate per block.
        **block_kwargs: ``num_heads``, ``mlp_ratio``, ``qkv_bias``, ``drop_rate``, ``attn_drop_rate``,
            ``recompute_act`` of :class:`P2TBlock`.

    Shapes:
        (B, in_channels, H, W) -> (B, C, ceil(H / patch_size), ceil(W / patch_size)).
    """

    def __init__(self, in_channels: int, embed_dims: int, *, depth: int, patch_size: int, pool_ratios: Sequence[int],
                 drop_path_rates: Sequence[float], **block_kwargs) -> None:
        super().__init__()
        assert len(drop_path_rates) == depth, f'{len(drop_path_rates)} drop-path rates for {depth} blocks'
        self.downsample = PatchEmbed(
            in_channels,
            embed_dims,
            kernel_size=2 * patch_size - 1,
            stride=patch_size,
            norm_cfg=dict(type='LN', eps=1e-5))
        # channels-last kernels: their gradients (from the channels-last pooled maps) have the same strides (DDP)
        self.pool_convs = nn.ModuleList(
            channels_last_kernel_(nn.Conv2d(embed_dims, embed_dims, kernel_size=3, padding=1, groups=embed_dims))
            for _ in pool_ratios)
        self.blocks = nn.ModuleList(
            P2TBlock(embed_dims, pool_ratios=pool_ratios, drop_path_rate=rate, **block_kwargs)
            for rate in drop_path_rates)

    def forward(self, x: Tensor, *, with_cp: bool = False) -> Tensor:
        x, hw_shape = self.downsample(x)
        for block in self.blocks:
            x = maybe_checkpoint(block, x, hw_shape, self.pool_convs, enabled=with_cp)
        return nlc_to_nchw(x, hw_shape)  # B, N, C -> B, C, H, W (channels-last view)


@MODELS.register_module()
class P2T(BaseViTBackbone):
    """P2T backbone: four stages at strides 4/8/16/32, NCHW outputs with ``embed_dims`` channels, no output norms.

    A classifier is ``ImageClassifier(backbone=dict(type='mmvit_ext.P2T', out_indices=(3,)),
    neck=GlobalAveragePooling, head=LinearClsHead)``: the official head is the mean of the stage-4 tokens
    followed by a Linear layer, which this reproduces.

    Args:
        arch (str | dict): ``'tiny'``, ``'small'``, ``'base'``, ``'large'`` (or ``'t'``, ``'s'``, ``'b'``, ``'l'``),
            or a dict with exactly ``embed_dims``, ``depths``, ``num_heads``, ``mlp_ratios`` (4 entries each).
            Defaults to ``'tiny'``.
        in_channels (int): Input channels. Defaults to 3.
        pool_ratios (Sequence[Sequence[int]]): Pyramid pooling ratios per stage. Defaults to the official
            ``((12, 16, 20, 24), (6, 8, 10, 12), (3, 4, 5, 6), (1, 2, 3, 4))``.
        qkv_bias (bool): Defaults to True.
        drop_rate (float): Dropout after the attention projection. Defaults to 0 (official training had none).
        attn_drop_rate (float): Dropout on attention weights. Defaults to 0 (official training had none).
        drop_path_rate (float): Stochastic depth of the last block, rising linearly from 0. Official values:
            0.1 for tiny/small, 0.3 for base/large. Defaults to 0.1.
        recompute_act (bool): In training, recompute the two IRB activations in backward instead of storing
            them: less activation memory for more step time, same gradients; opt-in, like ``with_cp``.
            Defaults to False.
        out_indices (int | Sequence[int]): Stages to return. Later stages are not computed. Defaults to
            ``(0, 1, 2, 3)``.
        frozen_stages (int): -1 none, 0 the first patch embedding, k the first k stages. Defaults to -1.
        norm_eval (bool): BatchNorms in eval mode while training (P2T has none). Defaults to False.
        with_cp (bool): Activation checkpointing per block. Defaults to False.
        init_cfg (dict | list[dict], optional): Entries applied after the official init (``default_init_cfg``:
            Linear trunc-normal std 0.02, LayerNorm 1/0, convs PyTorch default), which ``None`` keeps;
            ``dict(type='Pretrained', checkpoint=...)`` loads official or converted weights strictly instead.
            Defaults to None.

    Examples:
        >>> import torch
        >>> from mmvit_ext.models.backbones import P2T
        >>> model = P2T('tiny').eval()
        >>> [tuple(o.shape) for o in model(torch.rand(1, 3, 224, 224))]
        [(1, 48, 56, 56), (1, 96, 28, 28), (1, 240, 14, 14), (1, 384, 7, 7)]
    """

    # yapf: disable
    arch_zoo = {
        **dict.fromkeys(['t', 'tiny'], {'embed_dims': [48, 96, 240, 384], 'depths': [2, 2, 6, 3],
                                        'num_heads': [1, 2, 5, 8], 'mlp_ratios': [8, 8, 4, 4]}),
        **dict.fromkeys(['s', 'small'], {'embed_dims': [64, 128, 320, 512], 'depths': [2, 2, 9, 3],
                                         'num_heads': [1, 2, 5, 8], 'mlp_ratios': [8, 8, 4, 4]}),
        **dict.fromkeys(['b', 'base'], {'embed_dims': [64, 128, 320, 512], 'depths': [3, 4, 18, 3],
                                        'num_heads': [1, 2, 5, 8], 'mlp_ratios': [8, 8, 4, 4]}),
        **dict.fromkeys(['l', 'large'], {'embed_dims': [64, 128, 320, 640], 'depths': [3, 8, 27, 3],
                                         'num_heads': [1, 2, 5, 8], 'mlp_ratios': [8, 8, 4, 4]}),
    }
    # yapf: enable
    essential_keys = frozenset({'embed_dims', 'depths', 'num_heads', 'mlp_ratios'})
    per_stage_keys = essential_keys
    converter = 'p2t'
    default_init_cfg = [
        dict(type='TruncNormal', layer='Linear', std=.02, bias=0.),
        dict(type='Constant', layer='LayerNorm', val=1., bias=0.)
    ]
    patch_sizes = (4, 2, 2, 2)
    default_pool_ratios = ((12, 16, 20, 24), (6, 8, 10, 12), (3, 4, 5, 6), (1, 2, 3, 4))

    def __init__(
        self,
        arch: Union[str, dict] = 'tiny',
        *,
        in_channels: int = 3,
        pool_ratios: Sequence[Sequence[int]] = default_pool_ratios,
        qkv_bias: bool = True,
        drop_rate: float = 0.,
        attn_drop_rate: float = 0.,
        drop_path_rate: float = 0.1,
        recompute_act: bool = False,
        out_indices: Union[int, Sequence[int]] = (0, 1, 2, 3),
        frozen_stages: int = -1,
        norm_eval: bool = False,
        with_cp: bool = False,
        init_cfg: Optional[Union[dict, list]] = None,
    ) -> None:
        super().__init__(
            arch,
            out_indices=out_indices,
            frozen_stages=frozen_stages,
            norm_eval=norm_eval,
            with_cp=with_cp,
            init_cfg=init_cfg)
        if len(pool_ratios) != self.num_stages:
            raise ConfigError(f'pool_ratios needs one list per stage ({self.num_stages}), got {pool_ratios!r}')
        arch = self.arch_settings
        self.feature_channels = tuple(arch['embed_dims'])
        strides, stride = [], 1
        for patch_size in self.patch_sizes:
            stride *= patch_size
            strides.append(stride)
        self.feature_strides = tuple(strides)

        stage_in = [in_channels] + list(arch['embed_dims'][:-1])
        self.stages = nn.ModuleList(
            P2TStage(
                stage_in[i],
                arch['embed_dims'][i],
                depth=arch['depths'][i],
                patch_size=self.patch_sizes[i],
                pool_ratios=pool_ratios[i],
                drop_path_rates=rates,
                num_heads=arch['num_heads'][i],
                mlp_ratio=arch['mlp_ratios'][i],
                qkv_bias=qkv_bias,
                drop_rate=drop_rate,
                attn_drop_rate=attn_drop_rate,
                recompute_act=recompute_act)
            for i, rates in enumerate(drop_path_schedule(drop_path_rate, arch['depths'])))
        self.min_input_size = self._min_input_size(pool_ratios)
        self._freeze_stages()

    def _min_input_size(self, pool_ratios) -> int:
        """Smallest input side for which every pooled map of the computed stages is non-empty.

        Stage i needs ``round(H_i / r) >= 1`` for its largest ratio r, i.e. ``H_i >= r // 2 + 1`` (Python's round
        sends 0.5 to 0); ``H_i = ceil(H_{i-1} / patch_size)``, inverted here. The official ratios give 65.
        """
        need = 1
        for i in reversed(range(self.out_indices[-1] + 1)):
            need = max(need, max(pool_ratios[i]) // 2 + 1)
            need = (need - 1) * self.patch_sizes[i] + 1  # smallest H_{i-1} with ceil(H_{i-1} / p) >= need
        return need

    def _frozen_modules(self):
        """P2T has no separate stem: ``frozen_stages=0`` freezes the first patch embedding."""
        if self.frozen_stages == 0:
            return [self.stages[0].downsample]
        return list(self.stages[:max(self.frozen_stages, 0)])

    def forward(self, x: Tensor) -> Tuple[Tensor, ...]:
        """Args:
            x (Tensor): Images, (B, in_channels, H, W), any H, W >= 1.

        Returns:
            tuple[Tensor]: For each of ``out_indices``, a contiguous (B, C_i, ceil(H / s_i), ceil(W / s_i)) map with
            C_i = ``embed_dims[i]`` and s_i = 4, 8, 16, 32.
        """
        self.check_input_size(x, 'smaller maps leave an empty pyramid-pooling grid in the last stage')
        return self.forward_chain(x)
