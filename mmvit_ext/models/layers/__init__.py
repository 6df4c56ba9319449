"""Layers shared by the mmvit_ext backbones; each primitive exists once, here."""
from .attention import (AvgPoolSR, ConvSR, PyramidPoolSR, ReducedKVAttention, adaptive_avg_pool2d, fused_attn_enabled,
                        pyramid_pool_sizes, sdpa, use_fused_attn)
from .conv import Bottleneck, ConvNormAct, ConvStem, PixelAttention, ResidualDWConv
from .embed import PatchEmbed
from .ffn import ConvFFN
from .norm_act import LayerNorm2d
from .pos_bias import (QueryKeyBias, RelativePositionBias, relative_position_bias, relative_position_index,
                       resize_query_key_bias, resize_rel_pos_table)
from .token_ops import TokenClustering, TokenReconstruction
from .utils import (channels_last_kernel_, contiguous_output, drop_path_schedule, maybe_checkpoint, nchw_to_nlc,
                    nlc_to_nchw, pad_to_multiple, to_2tuple, to_ntuple)
from .window import (PAD_MASK_MODES, WindowMSA, crop_padding, pad_to_window, padding_key_mask, shift_window_mask,
                     window_attention, window_pads, window_partition, window_reverse)

__all__ = [
    'sdpa', 'use_fused_attn', 'fused_attn_enabled', 'ReducedKVAttention', 'ConvSR', 'AvgPoolSR', 'PyramidPoolSR',
    'pyramid_pool_sizes', 'adaptive_avg_pool2d', 'PatchEmbed', 'ConvFFN', 'TokenClustering', 'TokenReconstruction',
    'nlc_to_nchw', 'nchw_to_nlc', 'to_ntuple', 'to_2tuple', 'drop_path_schedule', 'maybe_checkpoint',
    'channels_last_kernel_', 'contiguous_output', 'pad_to_multiple', 'Bottleneck', 'ConvNormAct', 'ConvStem',
    'ResidualDWConv', 'PixelAttention', 'LayerNorm2d', 'QueryKeyBias', 'RelativePositionBias', 'relative_position_bias',
    'relative_position_index', 'resize_rel_pos_table', 'resize_query_key_bias', 'WindowMSA', 'window_attention',
    'window_partition', 'window_reverse', 'window_pads', 'pad_to_window', 'crop_padding', 'padding_key_mask',
    'shift_window_mask', 'PAD_MASK_MODES'
]
