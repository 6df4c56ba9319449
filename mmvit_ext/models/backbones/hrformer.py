"""HRFormer: High-Resolution Transformer for Dense Prediction.

Paper: "HRFormer: High-Resolution Transformer for Dense Prediction", Yuhui Yuan, Rao Fu, Lang Huang, Weihong Lin,
Chao Zhang, Xilin Chen, Jingdong Wang, NeurIPS 2021, arXiv 2110.09408.
Official code: github HRNet/HRFormer at ``1245b88b`` (``cls/`` ImageNet, ``seg/`` openseg, ``pose/`` mmpose 0.13;
MIT / Apache-2.0) and mmpose 1.x's ``HRFormer`` port (Apache-2.0). This file was written for mmvit_ext from a
specification of the architecture (``shared/specs/hrformer.md``), not from the official code.

HRNet's multi-resolution network with its basic blocks replaced by local-window transformer blocks: a stride-4
conv stem and two bottlenecks (stage 0), then three stages that each add a branch at half the resolution (strides
4/8/16/32) and repeat *modules*: every branch runs its transformer blocks, then every output branch sums all
branches resized to it (multi-scale fusion).

What differs from the official copies (outputs are equal to each copy's with its ``profile``):

* one backbone for the four copies: ``profile='cls'`` (ImageNet and openseg checkpoints), ``'pose013'`` (the pose
  fork, relative-position bias off, bilinear fusion) and ``'mmpose1x'`` (bilinear fusion), each switch also
  settable on its own (``with_rpe``, ``upsample_mode``, ``align_corners``, ``mask_padding``);
* any input size of at least 32 px a side: the stride-2 convs round up (ceil), every upsampled fusion term is
  resized to its target branch (mmpose 1.x sums without, so it needs multiples of 32), and the classification
  copy's missing ``F`` import (a crash on maps that are not multiples of the window) does not exist here;
* ``norm_cfg`` for every BatchNorm (the openseg copy hard-codes SyncBN), ``out_indices``, ``frozen_stages``,
  ``norm_eval``, ``with_cp``, strict ``init_cfg=Pretrained`` loading with key conversion of all official layouts;
* the last module builds and computes only the fused outputs that ``out_indices`` asks for (the pose copy's
  single-output module is ``out_indices=(0, )``), so no parameter is unused (DDP);
* the attention is the shared :class:`~mmvit_ext.models.layers.WindowMSA` (one ``qkv`` projection, one
  ``F.scaled_dot_product_attention`` call); the FFN is the shared :class:`~mmvit_ext.models.layers.ConvFFN`. The
  whole network runs on channels-last maps, so the token views of the transformer blocks cost no copy.
"""
from typing import Dict, List, Optional, Sequence, Tuple, Union

import torch
import torch.nn as nn
import torch.nn.functional as F
from mmcv.cnn.bricks import DropPath
from mmengine.logging import print_log
from torch import Tensor

from mmvit_ext.registry import MODELS
from mmvit_ext.utils.errors import ConfigError
from ..layers import (PAD_MASK_MODES, Bottleneck, ConvFFN, ConvNormAct, ConvStem, WindowMSA, contiguous_output,
                      drop_path_schedule, maybe_checkpoint, nchw_to_nlc, nlc_to_nchw)
from .base import BaseViTBackbone

__all__ = ['HRFormer', 'HRFormerBlock', 'HRFormerModule', 'HRFormerStage', 'PROFILES']

#: The official copies as switch presets (``HRFormer(profile=...)``); explicit arguments override them.
PROFILES: Dict[str, Dict[str, object]] = {
    # cls/ (ImageNet) and seg/ (openseg): bias on, nearest upsampling, then a bilinear resize (align_corners=True)
    'cls': dict(with_rpe=True, upsample_mode='nearest', align_corners=True, mask_padding=False),
    # pose/ (mmpose 0.13 fork): the bias addition is commented out; bilinear upsampling and resize
    'pose013': dict(with_rpe=False, upsample_mode='bilinear', align_corners=False, mask_padding=False),
    # mmpose 1.x HRFormer (its configs: with_rpe=True, with_pad_mask=False -> mask_padding='both_axes' if True)
    'mmpose1x': dict(with_rpe=True, upsample_mode='bilinear', align_corners=False, mask_padding=False),
}
UPSAMPLE_MODES = ('nearest', 'bilinear')


class HRFormerBlock(nn.Module):
    """HRFormer transformer block on a (B, C, H, W) map: ``x + attn(norm1(x))``, then ``x + ffn(norm2(x))``.

    ``attn`` is window attention over centred zero-padded 7x7 windows (padding after ``norm1``, padded tokens
    unmasked by default) with a relative-position bias per block; ``ffn`` is 1x1 conv -> BN -> GELU -> depthwise
    3x3 -> BN -> GELU -> 1x1 conv -> BN -> GELU. ``norm1``/``norm2`` are LayerNorms with eps 1e-6.

    Args:
        embed_dims (int): Channels C.
        num_heads (int): Attention heads.
        window_size (int): Window side. Defaults to 7.
        mlp_ratio (float): FFN hidden channels / C. Defaults to 4.
        drop_path_rate (float): Stochastic depth of both residual branches. Defaults to 0.
        with_rpe (bool): Learn and add the relative-position bias. Defaults to True.
        mask_padding (bool | str): Padded tokens out of the keys (see ``PAD_MASK_MODES``). Defaults to False.
        norm_cfg (dict): The FFN's BatchNorms. Defaults to ``dict(type='BN')``.
        recompute_act (bool): The FFN's ``recompute_act``: each BatchNorm/GELU pair stores only its input for
            backward. Defaults to False.

    Shapes:
        (B, C, H, W) -> (B, C, H, W) with channels-last strides, any H, W.
    """

    def __init__(self,
                 embed_dims: int,
                 *,
                 num_heads: int,
                 window_size: int = 7,
                 mlp_ratio: float = 4.,
                 drop_path_rate: float = 0.,
                 with_rpe: bool = True,
                 mask_padding: Union[bool, str] = False,
                 norm_cfg: dict = dict(type='BN'),
                 recompute_act: bool = False) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(embed_dims, eps=1e-6)
        self.attn = WindowMSA(
            embed_dims,
            num_heads=num_heads,
            window_size=window_size,
            rel_pos_bias=with_rpe,
            pad_position='center',
            mask_padding=mask_padding)
        self.norm2 = nn.LayerNorm(embed_dims, eps=1e-6)
        self.ffn = ConvFFN(
            embed_dims,
            hidden_dims=int(embed_dims * mlp_ratio),
            act_cfg=dict(type='GELU'),
            fc2_act=True,
            norm_cfg=norm_cfg,
            order=('conv', 'norm', 'act'),
            recompute_act=recompute_act)
        self.drop_path = DropPath(drop_path_rate) if drop_path_rate > 0. else nn.Identity()

    def forward(self, x: Tensor) -> Tensor:
        hw_shape = x.shape[2:]
        tokens = nchw_to_nlc(x)  # B, C, H, W (channels-last) -> B, N, C (a view)
        tokens = tokens + self.drop_path(self.attn(self.norm1(tokens), hw_shape))
        tokens = tokens + self.drop_path(self.ffn(self.norm2(tokens), hw_shape))
        return nlc_to_nchw(tokens, hw_shape)  # B, N, C -> B, C, H, W (channels-last view)


class HRFormerModule(nn.Module):
    """One HRNet module of transformer branches: ``branches`` (blocks per branch), then ``fuse_layers``.

    Output branch ``i`` is ``relu(sum_j f_ij(x_j))`` summed over ascending ``j`` with ``f_ii`` the identity:

    * ``j > i`` (``fuse_layers.{i}.{j}``, a 1x1 conv + BN): upsampled by ``2 ** (j - i)`` (``upsample_mode``),
      then resized bilinearly to branch ``i``'s exact size if it differs (odd input sizes);
    * ``j < i`` (``fuse_layers.{i}.{j}.{step}``): ``i - j`` steps of depthwise 3x3 stride-2 conv + BN, 1x1 conv +
      BN, with a ReLU after every step but the last.

    Args:
        channels (Sequence[int]): Width of each branch.
        num_heads (Sequence[int]): Heads per branch.
        num_blocks (int): Blocks per branch.
        drop_path_rates (Sequence[float]): One rate per block, shared by all branches.
        fuse_outputs (Sequence[int]): Output branches to build and compute (all but in the last module).
        mlp_ratios (Sequence[float]): FFN ratio per branch.
        window_size (int): Defaults to 7.
        with_rpe (bool): Defaults to True.
        mask_padding (bool | str): Defaults to False.
        upsample_mode (str): 'nearest' or 'bilinear'. Defaults to 'nearest'.
        align_corners (bool): Of the bilinear upsampling and of the resize. Defaults to True.
        norm_cfg (dict): Defaults to ``dict(type='BN')``.
        recompute_act (bool): Of every block's FFN. Defaults to False.

    Shapes:
        list of (B, C_b, H_b, W_b) -> list with one map per branch, None where not in ``fuse_outputs``.
    """

    def __init__(self,
                 channels: Sequence[int],
                 *,
                 num_heads: Sequence[int],
                 num_blocks: int,
                 drop_path_rates: Sequence[float],
                 fuse_outputs: Sequence[int],
                 mlp_ratios: Sequence[float],
                 window_size: int = 7,
                 with_rpe: bool = True,
                 mask_padding: Union[bool, str] = False,
                 upsample_mode: str = 'nearest',
                 align_corners: bool = True,
                 norm_cfg: dict = dict(type='BN'),
                 recompute_act: bool = False) -> None:
        super().__init__()
        assert len(drop_path_rates) == num_blocks, f'{len(drop_path_rates)} drop-path rates for {num_blocks} blocks'
        self.upsample_mode = upsample_mode
        self.align_corners = align_corners
        self.branches = nn.ModuleList(
            nn.Sequential(*(HRFormerBlock(
                dims,
                num_heads=heads,
                window_size=window_size,
                mlp_ratio=ratio,
                drop_path_rate=rate,
                with_rpe=with_rpe,
                mask_padding=mask_padding,
                norm_cfg=norm_cfg,
                recompute_act=recompute_act) for rate in drop_path_rates))
            for dims, heads, ratio in zip(channels, num_heads, mlp_ratios))
        n = len(channels)
        # a ModuleDict keyed by the output branch keeps the keys fuse_layers.{i}.{j} when only some are built
        self.fuse_layers = nn.ModuleDict()
        if n > 1:
            for i in fuse_outputs:
                self.fuse_layers[str(i)] = nn.ModuleList(self._fuse_layer(channels, j, i, norm_cfg) for j in range(n))

    @staticmethod
    def _fuse_layer(channels: Sequence[int], j: int, i: int, norm_cfg: dict) -> nn.Module:
        """f_ij: branch j -> the width of branch i (resolution handled in ``forward`` for j > i)."""
        if j == i:
            return nn.Identity()
        if j > i:
            return ConvNormAct(channels[j], channels[i], 1, norm_cfg=norm_cfg, act_cfg=None)
        steps = []
        for step in range(i - j):
            last = step == i - j - 1
            steps.append(
                nn.Sequential(
                    ConvNormAct(
                        channels[j],
                        channels[j],
                        3,
                        stride=2,
                        padding=1,
                        groups=channels[j],
                        norm_cfg=norm_cfg,
                        act_cfg=None),
                    ConvNormAct(
                        channels[j],
                        channels[i] if last else channels[j],
                        1,
                        norm_cfg=norm_cfg,
                        act_cfg=None if last else dict(type='ReLU'))))
        return nn.Sequential(*steps)

    def _upsample(self, x: Tensor, scale: int, size: Tuple[int, int]) -> Tensor:
        align = self.align_corners if self.upsample_mode == 'bilinear' else None
        x = F.interpolate(x, scale_factor=scale, mode=self.upsample_mode, align_corners=align)
        if tuple(x.shape[2:]) != tuple(size):  # odd input sizes: 2 * ceil(L / 2) != L
            x = F.interpolate(x, size=size, mode='bilinear', align_corners=self.align_corners)
        return x

    def _nearest_exact(self, x: Tensor, scale: int, size: Tuple[int, int]) -> bool:
        """Whether the upsampled term is ``x`` repeated ``scale`` times along H and W (nearest, no resize)."""
        return (self.upsample_mode == 'nearest' and not torch.is_grad_enabled() and x.shape[2] * scale == size[0]
                and x.shape[3] * scale == size[1])

    def forward(self, xs: List[Tensor], *, with_cp: bool = False) -> List[Optional[Tensor]]:
        xs = [self._run_branch(branch, x, with_cp) for branch, x in zip(self.branches, xs)]
        if len(xs) == 1:
            return xs
        outs: List[Optional[Tensor]] = [None] * len(xs)
        for key, layers in self.fuse_layers.items():
            i = int(key)
            size = tuple(xs[i].shape[2:])
            y, fresh = None, False
            for j, (layer, x) in enumerate(zip(layers, xs)):
                term = layer(x)  # the branch map itself for j == i
                if j > i and y is not None and self._nearest_exact(term, 2**(j - i), size):
                    y, fresh = _add_upsampled(y, term, 2**(j - i), inplace=fresh), True
                    continue
                if j > i:
                    term = self._upsample(term, 2**(j - i), size)
                if y is None:
                    y = term
                elif fresh:  # a sum made here, read by nothing else: accumulate in place
                    y = y.add_(term)
                else:
                    y, fresh = y + term, True
            outs[i] = y.relu_()
        return outs

    @staticmethod
    def _run_branch(branch: nn.Sequential, x: Tensor, with_cp: bool) -> Tensor:
        for block in branch:
            x = maybe_checkpoint(block, x, enabled=with_cp)
        return x


def _add_upsampled(y: Tensor, x: Tensor, scale: int, *, inplace: bool) -> Tensor:
    """``y + nearest_upsample(x, scale)`` as one broadcast sum, without the upsampled map.

    Nearest upsampling by an integer factor repeats every pixel ``scale x scale`` times, so viewing the channels-last
    (B, C, H, W) ``y`` as (B, h, s, w, s, C) and adding ``x`` as (B, h, 1, w, 1, C) is the same sum, element for
    element. ``inplace`` (inference only, ``y`` a fresh sum) accumulates into ``y``.
    """
    B, C, H, W = y.shape
    h, w = x.shape[2:]
    # B, C, h, w -> B, h, 1, w, 1, C (a view of a channels-last map, a copy otherwise)
    x = x.permute(0, 2, 3, 1).reshape(B, h, 1, w, 1, C)
    if not y.is_contiguous(memory_format=torch.channels_last):
        y = y.contiguous(memory_format=torch.channels_last)
        inplace = False
    y_view = y.permute(0, 2, 3, 1).view(B, h, scale, w, scale, C)  # B, C, H, W -> B, h, s, w, s, C (a view)
    if inplace and not torch.is_grad_enabled():
        y_view.add_(x)
        return y
    # B, h, s, w, s, C -> B, H, W, C -> B, C, H, W (channels-last views)
    return (y_view + x).view(B, H, W, C).permute(0, 3, 1, 2)


class HRFormerStage(nn.Module):
    """A transformer stage: ``transition`` (one entry per branch), then ``layers`` (HRFormer modules).

    Transition of branch b: the identity when it exists with the same width, a 3x3 conv + BN + ReLU when its width
    changes, and a 3x3 stride-2 conv + BN + ReLU of the previous stage's last branch for the new branch.

    Args:
        in_channels (Sequence[int]): Branch widths of the previous stage.
        channels (Sequence[int]): Branch widths of this stage (one more).
        num_modules (int): HRFormer modules.
        num_blocks (int): Blocks per branch of each module.
        drop_path_rates (Sequence[float]): ``num_modules * num_blocks`` rates.
        fuse_outputs (Sequence[int]): Output branches of the last module.
        norm_cfg (dict): Defaults to ``dict(type='BN')``.
        **module_kwargs: ``num_heads``, ``mlp_ratios``, ``window_size``, ``with_rpe``, ``mask_padding``,
            ``upsample_mode``, ``align_corners``, ``recompute_act`` of :class:`HRFormerModule`.
    """

    def __init__(self,
                 in_channels: Sequence[int],
                 channels: Sequence[int],
                 *,
                 num_modules: int,
                 num_blocks: int,
                 drop_path_rates: Sequence[float],
                 fuse_outputs: Sequence[int],
                 norm_cfg: dict = dict(type='BN'),
                 **module_kwargs) -> None:
        super().__init__()
        assert len(channels) == len(in_channels) + 1, f'{in_channels} -> {channels}: a stage adds one branch'
        self.transition = nn.ModuleList()
        for b, dims in enumerate(channels):
            if b < len(in_channels) and in_channels[b] == dims:
                self.transition.append(nn.Identity())
            else:
                new = b == len(in_channels)
                self.transition.append(
                    ConvNormAct(
                        in_channels[-1] if new else in_channels[b],
                        dims,
                        3,
                        stride=2 if new else 1,
                        padding=1,
                        norm_cfg=norm_cfg))
        everything = tuple(range(len(channels)))
        self.layers = nn.ModuleList(
            HRFormerModule(
                channels,
                num_blocks=num_blocks,
                drop_path_rates=drop_path_rates[m * num_blocks:(m + 1) * num_blocks],
                fuse_outputs=fuse_outputs if m == num_modules - 1 else everything,
                norm_cfg=norm_cfg,
                **module_kwargs) for m in range(num_modules))

    def forward(self, xs: List[Tensor], *, with_cp: bool = False) -> List[Optional[Tensor]]:
        n_in = len(xs)
        xs = [t(xs[b] if b < n_in else xs[-1]) for b, t in enumerate(self.transition)]
        for layer in self.layers:
            xs = layer(xs, with_cp=with_cp)
        return xs


@MODELS.register_module()
class HRFormer(BaseViTBackbone):
    """HRFormer backbone: HRNet stem and bottleneck stage, then three transformer stages adding branches; the four
    branches of the last stage (strides 4/8/16/32, widths ``channels``) are the NCHW outputs.

    Stages (what ``frozen_stages`` counts): 0 is the two bottlenecks after the stem, 1..3 are the transformer stages
    with their transitions. Outputs (what ``out_indices`` selects) are the branches of stage 3; the last module
    builds only the fused outputs asked for, e.g. ``out_indices=(0, )`` is the single-output pose backbone (S:
    7,746,218 parameters instead of 7,891,050). Loading weights of a multi-output backbone into
    it drops the fusion weights of outputs not built, with a log line.

    Input sizes: any H, W of at least 32. The stride-2 convs (padding 1) map L to ``ceil(L / 2)``, so branch ``b``
    is ``ceil(H / 2 ** (b + 2))`` wide; every upsampled fusion term is resized to the size of its target branch
    when they differ; each block centre-pads its map to multiples of the window.

    Args:
        arch (str | dict): ``'tiny'``, ``'small'``, ``'base'`` (``'t'``, ``'s'``, ``'b'``), or a dict with exactly
            ``channels`` (4 branch widths), ``num_heads`` (4), ``num_modules`` (4, stage 0 first, which must be
            1), ``num_blocks`` (4: bottlenecks of stage 0, then blocks per branch of each module), ``mlp_ratios``
            (4, per branch) and ``window_size``. Defaults to ``'small'``.
        in_channels (int): Input channels. Defaults to 3.
        profile (str): Switch presets reproducing an official copy, see ``PROFILES``: ``'cls'`` (ImageNet and
            openseg checkpoints), ``'pose013'``, ``'mmpose1x'``. Defaults to 'cls'.
        with_rpe (bool, optional): Relative-position bias in every block. Defaults to the profile's.
        upsample_mode (str, optional): 'nearest' or 'bilinear' upsampling in the fusion. Defaults to the profile's.
        align_corners (bool, optional): Of the bilinear upsampling and the fusion resize. Defaults to the profile's.
        mask_padding (bool | str, optional): Padded tokens out of the keys: False (official), True, or
            'both_axes' (mmpose 1.x ``with_pad_mask=True``). Defaults to the profile's (False).
        drop_path_rate (float): Stochastic depth, rising linearly over the blocks of stages 1..3; all branches of a
            module share a rate. Official: 0 (cls T/S), 0.2 (cls B, seg), 0.1-0.3 (pose). Defaults to 0.
        norm_cfg (dict): Every BatchNorm. Defaults to ``dict(type='BN')``.
        out_indices (int | Sequence[int]): Branches to return. Defaults to ``(0, 1, 2, 3)``.
        frozen_stages (int): -1 none, 0 the stem, k the stem and stages 0..k-1. Defaults to -1.
        norm_eval (bool): BatchNorms in eval mode while training. Defaults to False.
        with_cp (bool): Activation checkpointing per transformer block. Defaults to False.
        recompute_act (bool): In training, each FFN BatchNorm/GELU pair stores only its input for backward and
            recomputes the rest (``ConvFFN(recompute_act=True)``): at 224² batch 8 about 20 % less training memory
            than the official code's for about 10 % more step time; same values and gradients. Not for SyncBN (a log
            line says so).
            Defaults to False.
        init_cfg (dict | list[dict], optional): Entries applied after the official init (``default_init_cfg``:
            convs Kaiming-normal fan-out, norms 1/0, bias tables trunc-normal std 0.02, Linear layers PyTorch's
            default), which ``None`` keeps; ``dict(type='Pretrained', checkpoint=...)`` loads official (ImageNet,
            openseg, mmpose 0.x/1.x) or converted weights strictly instead. Defaults to None.

    Examples:
        >>> import torch
        >>> from mmvit_ext.models.backbones import HRFormer
        >>> model = HRFormer('tiny').eval()
        >>> [tuple(o.shape) for o in model(torch.rand(1, 3, 256, 192))]
        [(1, 18, 64, 48), (1, 36, 32, 24), (1, 72, 16, 12), (1, 144, 8, 6)]
    """

    # yapf: disable
    arch_zoo = {
        **dict.fromkeys(['t', 'tiny'], {'channels': [18, 36, 72, 144], 'num_heads': [1, 2, 4, 8],
                                        'num_modules': [1, 1, 3, 2], 'num_blocks': [2, 2, 2, 2],
                                        'mlp_ratios': [4, 4, 4, 4], 'window_size': 7}),
        **dict.fromkeys(['s', 'small'], {'channels': [32, 64, 128, 256], 'num_heads': [1, 2, 4, 8],
                                         'num_modules': [1, 1, 4, 2], 'num_blocks': [2, 2, 2, 2],
                                         'mlp_ratios': [4, 4, 4, 4], 'window_size': 7}),
        **dict.fromkeys(['b', 'base'], {'channels': [78, 156, 312, 624], 'num_heads': [2, 4, 8, 16],
                                        'num_modules': [1, 1, 4, 2], 'num_blocks': [2, 2, 2, 2],
                                        'mlp_ratios': [4, 4, 4, 4], 'window_size': 7}),
    }
    # yapf: enable
    essential_keys = frozenset({'channels', 'num_heads', 'num_modules', 'num_blocks', 'mlp_ratios', 'window_size'})
    per_stage_keys = frozenset({'num_modules', 'num_blocks'})  # channels, num_heads, mlp_ratios: per branch
    num_outputs = 4
    converter = 'hrformer'
    default_init_cfg = [
        dict(type='Kaiming', layer='Conv2d', mode='fan_out', nonlinearity='relu', distribution='normal', bias=0.),
        dict(type='Constant', layer=['LayerNorm', '_BatchNorm'], val=1., bias=0.)
    ]
    stem_channels = 64
    bottleneck_planes = 64
    min_input_size = 32

    def __init__(
        self,
        arch: Union[str, dict] = 'small',
        *,
        in_channels: int = 3,
        profile: str = 'cls',
        with_rpe: Optional[bool] = None,
        upsample_mode: Optional[str] = None,
        align_corners: Optional[bool] = None,
        mask_padding: Optional[Union[bool, str]] = None,
        drop_path_rate: float = 0.,
        norm_cfg: dict = dict(type='BN'),
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
        if profile not in PROFILES:
            raise ConfigError(f'HRFormer: unknown profile {profile!r}; choose one of {sorted(PROFILES)}')
        switches = dict(PROFILES[profile])
        given = dict(
            with_rpe=with_rpe, upsample_mode=upsample_mode, align_corners=align_corners, mask_padding=mask_padding)
        switches.update({k: v for k, v in given.items() if v is not None})
        if switches['upsample_mode'] not in UPSAMPLE_MODES:
            raise ConfigError(f'HRFormer: upsample_mode {switches["upsample_mode"]!r}: choose one of '
                              f'{UPSAMPLE_MODES}')
        if switches['mask_padding'] not in PAD_MASK_MODES:
            raise ConfigError(f'HRFormer: mask_padding {switches["mask_padding"]!r}: choose one of {PAD_MASK_MODES}')
        self.profile = profile
        self.switches = switches
        arch = self.arch_settings
        channels = tuple(arch['channels'])
        self.feature_channels = channels
        self.feature_strides = tuple(4 * 2**b for b in range(self.num_outputs))

        self.stem = ConvStem(
            in_channels,
            channels=(self.stem_channels, ) * 2,
            strides=(2, 2),
            bias=False,
            norm_cfg=norm_cfg,
            act_cfg=dict(type='ReLU'))
        stage0, width = [], self.stem_channels
        for _ in range(arch['num_blocks'][0]):
            stage0.append(Bottleneck(width, self.bottleneck_planes, norm_cfg=norm_cfg))
            width = stage0[-1].out_channels
        stages: List[nn.Module] = [nn.Sequential(*stage0)]
        depths = [arch['num_modules'][s] * arch['num_blocks'][s] for s in range(1, self.num_stages)]
        rates = drop_path_schedule(drop_path_rate, depths)  # per stage 1..3
        in_widths = (width, )
        for s in range(1, self.num_stages):
            widths = channels[:s + 1]
            stages.append(
                HRFormerStage(
                    in_widths,
                    widths,
                    num_modules=arch['num_modules'][s],
                    num_blocks=arch['num_blocks'][s],
                    drop_path_rates=rates[s - 1],
                    fuse_outputs=self.out_indices if s == self.num_stages - 1 else tuple(range(s + 1)),
                    norm_cfg=norm_cfg,
                    num_heads=arch['num_heads'][:s + 1],
                    window_size=arch['window_size'],
                    mlp_ratios=arch['mlp_ratios'][:s + 1],
                    recompute_act=recompute_act,
                    **switches))
            in_widths = widths
        self.stages = nn.ModuleList(stages)
        self._freeze_stages()

    @classmethod
    def validate_arch(cls, arch):
        super().validate_arch(arch)
        for key in ('channels', 'num_heads', 'mlp_ratios'):
            value = arch[key]
            if not isinstance(value, (list, tuple)) or len(value) != cls.num_outputs:
                raise ConfigError(f'{cls.__name__}: arch[{key!r}] must be a list with one entry per branch '
                                  f'({cls.num_outputs}), got {value!r}')
        for b, (dims, heads) in enumerate(zip(arch['channels'], arch['num_heads'])):
            if dims % heads:
                raise ConfigError(
                    f'{cls.__name__}: arch channels[{b}]={dims} is not divisible by num_heads[{b}]={heads}')
        if arch['num_modules'][0] != 1:
            raise ConfigError(f'{cls.__name__}: stage 0 is one bottleneck layer, so arch num_modules[0] must be 1, '
                              f'got {arch["num_modules"][0]!r}')
        bad = [v for v in list(arch['num_modules']) + list(arch['num_blocks']) if not (isinstance(v, int) and v >= 1)]
        if bad:
            raise ConfigError(f'{cls.__name__}: arch num_modules and num_blocks must be ints >= 1, got {bad}')
        if not (isinstance(arch['window_size'], int) and arch['window_size'] >= 1):
            raise ConfigError(f'{cls.__name__}: arch window_size must be an int >= 1, got {arch["window_size"]!r}')

    def forward(self, x: Tensor) -> Tuple[Tensor, ...]:
        """Args:
            x (Tensor): Images, (B, in_channels, H, W), H, W >= 32.

        Returns:
            tuple[Tensor]: For each of ``out_indices``, a contiguous (B, C_b, ceil(H / s_b), ceil(W / s_b)) map with
            C_b = ``channels[b]`` and s_b = 4, 8, 16, 32.
        """
        self.check_input_size(x, 'the stride of the deepest branch')
        x = self.stages[0](self.stem(x.contiguous(memory_format=torch.channels_last)))
        xs = [x]
        for stage in self.stages[1:]:
            xs = stage(xs, with_cp=self.with_cp)
        return tuple(contiguous_output(xs[b]) for b in self.out_indices)

    def _load_from_state_dict(self, state_dict, prefix, local_metadata, strict, missing_keys, unexpected_keys,
                              error_msgs) -> None:
        self._drop_unbuilt(state_dict, prefix)
        super()._load_from_state_dict(state_dict, prefix, local_metadata, strict, missing_keys, unexpected_keys,
                                      error_msgs)

    def _drop_unbuilt(self, state_dict, prefix: str) -> None:
        """Drop, with a log line, what this configuration intentionally does not build: fusion weights of outputs
        not in ``out_indices`` and bias tables with ``with_rpe=False`` (the pose fork keeps unused tables)."""
        last = f'{prefix}stages.{self.num_stages - 1}.layers.{len(self.stages[-1].layers) - 1}.fuse_layers.'
        built = {f'{last}{i}.' for i in self.stages[-1].layers[-1].fuse_layers}
        dropped = [
            k for k in state_dict if (k.startswith(last) and not any(k.startswith(b) for b in built)) or (
                not self.switches['with_rpe'] and k.startswith(prefix) and k.endswith('relative_position_bias_table'))
        ]
        for key in dropped:
            del state_dict[key]
        if dropped:
            print_log(
                f'HRFormer: dropped {len(dropped)} tensors this configuration does not build (fusion of branches '
                f'not in out_indices={self.out_indices}, or bias tables with with_rpe=False)',
                logger='current')
