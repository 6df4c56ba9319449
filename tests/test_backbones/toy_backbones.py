"""Two tiny backbones that give the battery in ``test_common.py`` what P2T lacks: BatchNorms (``norm_eval``) and
parallel branches (outputs that are not stages). Built only from the shared layers and ``BaseViTBackbone``, as a
family would be; not registered (the battery builds them directly)."""
from typing import Tuple

import torch.nn as nn
import torch.nn.functional as F
from torch import Tensor

from mmvit_ext.models.backbones.base import BaseViTBackbone
from mmvit_ext.models.layers import ConvFFN, PatchEmbed, WindowMSA, channels_last_kernel_, maybe_checkpoint, nlc_to_nchw


class ToyConvBlock(nn.Module):
    """``x + ffn(x)`` with a BatchNorm-bearing conv FFN (CMT IRFFN / HRFormer style)."""

    def __init__(self, dims: int) -> None:
        super().__init__()
        self.ffn = ConvFFN(dims, hidden_dims=2 * dims, norm_cfg=dict(type='BN'))

    def forward(self, x: Tensor, hw_shape: Tuple[int, int]) -> Tensor:
        return x + self.ffn(x, hw_shape)


class ToyBNChain(BaseViTBackbone):
    """A chain: two stages of ``downsample -> BN conv blocks``, strides 4 and 8."""

    arch_zoo = {'tiny': {'embed_dims': [8, 16], 'depths': [1, 2]}}
    essential_keys = frozenset({'embed_dims', 'depths'})
    per_stage_keys = essential_keys
    num_stages = 2

    def __init__(self,
                 arch='tiny',
                 *,
                 out_indices=(0, 1),
                 frozen_stages=-1,
                 norm_eval=False,
                 with_cp=False,
                 init_cfg=None) -> None:
        super().__init__(
            arch,
            out_indices=out_indices,
            frozen_stages=frozen_stages,
            norm_eval=norm_eval,
            with_cp=with_cp,
            init_cfg=init_cfg)
        dims, depths = self.arch_settings['embed_dims'], self.arch_settings['depths']
        self.feature_channels, self.feature_strides = tuple(dims), (4, 8)
        self.stages = nn.ModuleList()
        for i, (c, d) in enumerate(zip(dims, depths)):
            stage = nn.Module()
            stage.downsample = PatchEmbed(
                3 if i == 0 else dims[i - 1], c, kernel_size=7 if i == 0 else 3, stride=4 if i == 0 else 2)
            stage.blocks = nn.ModuleList(ToyConvBlock(c) for _ in range(d))
            self.stages.append(stage)
        self._freeze_stages()

    def _frozen_modules(self):
        if self.frozen_stages == 0:
            return [self.stages[0].downsample]
        return list(self.stages[:max(self.frozen_stages, 0)])

    def forward(self, x: Tensor) -> Tuple[Tensor, ...]:
        outs = []
        for i, stage in enumerate(self.stages[:self.out_indices[-1] + 1]):
            x, hw = stage.downsample(x)
            for block in stage.blocks:
                x = maybe_checkpoint(block, x, hw, enabled=self.with_cp)
            x = nlc_to_nchw(x, hw).contiguous()
            if i in self.out_indices:
                outs.append(x)
        return tuple(outs)


class ToyWindowBlock(nn.Module):
    """HRFormer-style block: centred-padding window attention, then a BN conv FFN."""

    def __init__(self, dims: int, window: int) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(dims)
        self.attn = WindowMSA(dims, num_heads=2, window_size=window, pad_position='center')
        self.norm2 = nn.LayerNorm(dims)
        self.ffn = ConvFFN(dims, hidden_dims=2 * dims, norm_cfg=dict(type='BN'))

    def forward(self, x: Tensor, hw_shape: Tuple[int, int]) -> Tensor:
        x = x + self.attn(self.norm1(x), hw_shape)
        return x + self.ffn(self.norm2(x), hw_shape)


class ToyBranches(BaseViTBackbone):
    """Two stages, two outputs that are branches: stage 0 runs branch 0 (stride 4); stage 1 adds branch 1
    (stride 8, from branch 0), runs both and fuses them (each branch gets the other resized and projected)."""

    arch_zoo = {'tiny': {'embed_dims': [8, 16], 'windows': [3, 2]}}
    essential_keys = frozenset({'embed_dims', 'windows'})
    per_stage_keys = frozenset()  # per-branch lists, checked in validate_arch
    num_stages = 2
    num_outputs = 2

    @classmethod
    def validate_arch(cls, arch):
        super().validate_arch(arch)
        for key in sorted(cls.essential_keys):
            if len(arch[key]) != cls.num_outputs:
                raise ValueError(f'{cls.__name__}: arch[{key!r}] needs one entry per branch ({cls.num_outputs})')

    def __init__(self,
                 arch='tiny',
                 *,
                 out_indices=(0, 1),
                 frozen_stages=-1,
                 norm_eval=False,
                 with_cp=False,
                 init_cfg=None) -> None:
        super().__init__(
            arch,
            out_indices=out_indices,
            frozen_stages=frozen_stages,
            norm_eval=norm_eval,
            with_cp=with_cp,
            init_cfg=init_cfg)
        (c0, c1), (w0, w1) = self.arch_settings['embed_dims'], self.arch_settings['windows']
        self.feature_channels, self.feature_strides = (c0, c1), (4, 8)
        self.stem = PatchEmbed(3, c0, kernel_size=7, stride=4)
        stage0, stage1 = nn.Module(), nn.Module()
        stage0.branches = nn.ModuleList([ToyWindowBlock(c0, w0)])
        # convs on channels-last maps get channels-last kernels (see channels_last_kernel_)
        stage1.transition = nn.Sequential(
            channels_last_kernel_(nn.Conv2d(c0, c1, 3, stride=2, padding=1)), nn.BatchNorm2d(c1))
        stage1.branches = nn.ModuleList([ToyWindowBlock(c0, w0), ToyWindowBlock(c1, w1)])
        stage1.up = nn.Sequential(channels_last_kernel_(nn.Conv2d(c1, c0, 1)), nn.BatchNorm2d(c0))
        stage1.down = nn.Sequential(
            channels_last_kernel_(nn.Conv2d(c0, c1, 3, stride=2, padding=1)), nn.BatchNorm2d(c1))
        self.stages = nn.ModuleList([stage0, stage1])
        self._freeze_stages()

    def _run(self, block, x: Tensor) -> Tensor:
        """(B, C, H, W) through a token block."""
        B, C, H, W = x.shape
        tokens = maybe_checkpoint(block, x.flatten(2).transpose(1, 2), (H, W), enabled=self.with_cp)
        return nlc_to_nchw(tokens, (H, W))

    def forward(self, x: Tensor) -> Tuple[Tensor, ...]:
        tokens, hw = self.stem(x)
        x0 = self._run(self.stages[0].branches[0], nlc_to_nchw(tokens, hw))
        stage = self.stages[1]
        x1 = stage.transition(x0)
        x0, x1 = self._run(stage.branches[0], x0), self._run(stage.branches[1], x1)
        y0 = x0 + F.interpolate(stage.up(x1), size=x0.shape[2:], mode='bilinear', align_corners=False)
        y1 = x1 + stage.down(x0)
        outs = (y0.contiguous(), y1.contiguous())
        return tuple(outs[i] for i in self.out_indices)
