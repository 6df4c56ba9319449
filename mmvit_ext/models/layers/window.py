"""Window partitioning and window attention shared by the mmvit_ext backbones.

Written for mmvit_ext after the window attention of Swin (arXiv 2103.14030, shifted windows), HRFormer
(arXiv 2110.09408, centred padding), CSWin (arXiv 2107.00652, stripes = rectangular windows) and Shuffle
Transformer (arXiv 2106.03650, spatially shuffled windows). No code is copied from those repositories.

All maps are channels-last ``(B, H, W, C)`` (a ``(B, N, C)`` token tensor viewed as a map), windows are
``(B * nW, wh * ww, C)`` with the windows in row-major order over the map and the tokens in row-major order
inside each window.

* :func:`window_partition` / :func:`window_reverse`: exact inverses; ``shuffle=True`` gathers the tokens spaced
  ``H / wh`` rows and ``W / ww`` columns apart into one window (Shuffle Transformer: row ``i * (H / wh) + a`` is
  row ``i`` of window row ``a``).
* :func:`window_pads` / :func:`pad_to_window` / :func:`crop_padding`: zero padding to window multiples, at the
  bottom-right (Swin) or centred with ``pad // 2`` before (HRFormer, CSWin).
* :func:`padding_key_mask` and :func:`shift_window_mask`: additive masks for padded keys and for Swin's shifted
  windows.
* :func:`window_attention`: the whole windowed multi-head self-attention given the ``qkv``/``proj`` layers, one
  :func:`~mmvit_ext.models.layers.attention.sdpa` call with bias and masks summed into one additive term.
  :class:`WindowMSA` owns those layers and a :class:`RelativePositionBias`.
"""
from typing import Callable, Optional, Sequence, Tuple, Union

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch import Tensor

from mmvit_ext.utils.errors import ConfigError
from .attention import sdpa
from .pos_bias import RelativePositionBias
from .utils import to_2tuple

__all__ = [
    'window_partition', 'window_reverse', 'window_pads', 'pad_to_window', 'crop_padding', 'padding_key_mask',
    'shift_window_mask', 'window_attention', 'WindowMSA', 'PAD_POSITIONS', 'PAD_MASK_MODES'
]

WindowSize = Union[int, Sequence[int]]
Pads = Tuple[int, int, int, int]  # top, bottom, left, right
PAD_POSITIONS = ('bottom_right', 'center')
#: ``mask_padding`` values: never, whenever a map is padded, or only when both axes are padded (mmpose 1.x HRFormer's
#: ``with_pad_mask`` condition).
PAD_MASK_MODES = (False, True, 'both_axes')

#: Logit offset between Swin's shifted-window regions (the value of the released code).
SHIFT_MASK_VALUE = -100.


def window_partition(x: Tensor, window_size: WindowSize, *, shuffle: bool = False) -> Tensor:
    """Split a map into non-overlapping windows.

    Args:
        x (Tensor): (B, H, W, C) with H and W multiples of (wh, ww).
        window_size (int | tuple[int, int]): (wh, ww); a stripe is a window whose side is H or W.
        shuffle (bool): Shuffled windows (tokens ``H / wh`` rows and ``W / ww`` columns apart). Defaults to False.

    Returns:
        Tensor: (B * nW, wh * ww, C), nW = (H / wh) * (W / ww).
    """
    B, H, W, C = x.shape
    wh, ww = to_2tuple(window_size)
    assert H % wh == 0 and W % ww == 0, f'map {H}x{W} is not a multiple of window {wh}x{ww}; pad it first'
    if shuffle:
        # B, wh, H/wh, ww, W/ww, C -> B, H/wh, W/ww, wh, ww, C
        x = x.view(B, wh, H // wh, ww, W // ww, C).permute(0, 2, 4, 1, 3, 5)
    else:
        # B, H/wh, wh, W/ww, ww, C -> B, H/wh, W/ww, wh, ww, C
        x = x.view(B, H // wh, wh, W // ww, ww, C).permute(0, 1, 3, 2, 4, 5)
    return x.reshape(-1, wh * ww, C)


def window_reverse(windows: Tensor,
                   window_size: WindowSize,
                   hw_shape: Tuple[int, int],
                   *,
                   shuffle: bool = False) -> Tensor:
    """Inverse of :func:`window_partition`: (B * nW, wh * ww, C) -> (B, H, W, C)."""
    H, W = hw_shape
    wh, ww = to_2tuple(window_size)
    C = windows.shape[-1]
    x = windows.view(-1, H // wh, W // ww, wh, ww, C)
    if shuffle:
        x = x.permute(0, 3, 1, 4, 2, 5)  # B, wh, H/wh, ww, W/ww, C
    else:
        x = x.permute(0, 1, 3, 2, 4, 5)  # B, H/wh, wh, W/ww, ww, C
    return x.reshape(-1, H, W, C)


def window_pads(hw_shape: Tuple[int, int], window_size: WindowSize, *, position: str = 'bottom_right') -> Pads:
    """Zero padding (top, bottom, left, right) that makes (H, W) multiples of the window.

    ``pad = (w - L % w) % w`` per axis; ``'bottom_right'`` puts it all after (Swin), ``'center'`` puts
    ``pad // 2`` before and the rest after (HRFormer, CSWin).
    """
    if position not in PAD_POSITIONS:
        raise ConfigError(f'pad position {position!r}: choose one of {PAD_POSITIONS}')
    H, W = hw_shape
    wh, ww = to_2tuple(window_size)
    pad_h, pad_w = (wh - H % wh) % wh, (ww - W % ww) % ww
    if position == 'center':
        return pad_h // 2, pad_h - pad_h // 2, pad_w // 2, pad_w - pad_w // 2
    return 0, pad_h, 0, pad_w


def pad_to_window(x: Tensor, window_size: WindowSize, *, position: str = 'bottom_right') -> Tuple[Tensor, Pads]:
    """Zero-pad a (B, H, W, C) map to window multiples; returns the map and its :func:`window_pads`."""
    pads = window_pads(x.shape[1:3], window_size, position=position)
    if any(pads):
        top, bottom, left, right = pads
        x = F.pad(x, (0, 0, left, right, top, bottom))
    return x, pads


def crop_padding(x: Tensor, pads: Pads) -> Tensor:
    """Remove :func:`pad_to_window` padding from a (B, Hp, Wp, C) map."""
    top, bottom, left, right = pads
    if not any(pads):
        return x
    return x[:, top:x.shape[1] - bottom, left:x.shape[2] - right]


def padding_key_mask(hw_shape: Tuple[int, int],
                     window_size: WindowSize,
                     pads: Pads,
                     *,
                     shift_size: WindowSize = 0,
                     shuffle: bool = False,
                     device: Optional[torch.device] = None,
                     dtype: torch.dtype = torch.float32) -> Optional[Tensor]:
    """Additive mask (nW, 1, N) that keeps the padded tokens out of the keys; None without padding.

    Every window keeps at least one real token (padding is smaller than a window), so no softmax row is empty.

    Args:
        hw_shape (tuple[int, int]): (H, W) before padding.
        window_size (int | tuple[int, int]): (wh, ww).
        pads (tuple): (top, bottom, left, right) of :func:`window_pads`.
        shift_size (int | tuple[int, int]): The cyclic shift applied to the padded map before partitioning.
    """
    if not any(pads):
        return None
    top, bottom, left, right = pads
    valid = torch.ones(1, *hw_shape, 1, device=device, dtype=dtype)
    valid = F.pad(valid, (0, 0, left, right, top, bottom))
    shift = to_2tuple(shift_size)
    if any(shift):
        valid = torch.roll(valid, shifts=(-shift[0], -shift[1]), dims=(1, 2))
    valid = window_partition(valid, window_size, shuffle=shuffle).squeeze(-1)  # nW, N
    return torch.zeros_like(valid).masked_fill(valid == 0, float('-inf')).unsqueeze(1)


def shift_window_mask(padded_hw: Tuple[int, int],
                      window_size: WindowSize,
                      shift_size: WindowSize,
                      *,
                      device: Optional[torch.device] = None,
                      dtype: torch.dtype = torch.float32) -> Tensor:
    """Swin's shifted-window mask (nW, N, N): 0 within a region, -100 across regions.

    The regions are the bands ``[0, -w), [-w, -s), [-s, end)`` of each axis of the padded map, i.e. the tokens
    that a cyclic roll by ``-s`` brought together from different places.
    """
    wh, ww = to_2tuple(window_size)
    sh, sw = to_2tuple(shift_size)
    region = torch.zeros(1, *padded_hw, 1, device=device, dtype=dtype)
    h_bands = (slice(0, -wh), slice(-wh, -sh), slice(-sh, None)) if sh > 0 else (slice(None), )
    w_bands = (slice(0, -ww), slice(-ww, -sw), slice(-sw, None)) if sw > 0 else (slice(None), )
    for i, (h, w) in enumerate((h, w) for h in h_bands for w in w_bands):
        region[:, h, w] = i
    region = window_partition(region, (wh, ww)).squeeze(-1)  # nW, N
    diff = region.unsqueeze(1) - region.unsqueeze(2)
    return torch.zeros_like(diff).masked_fill(diff != 0, SHIFT_MASK_VALUE)


def window_attention(x: Tensor,
                     hw_shape: Tuple[int, int],
                     *,
                     qkv: Callable[[Tensor], Tensor],
                     proj: Callable[[Tensor], Tensor],
                     num_heads: int,
                     window_size: WindowSize,
                     scale: Optional[float] = None,
                     rel_pos_bias: Optional[Tensor] = None,
                     shift_size: WindowSize = 0,
                     mask_shift_size: Optional[WindowSize] = None,
                     pad_position: str = 'bottom_right',
                     mask_padding: Union[bool, str] = False,
                     shuffle: bool = False,
                     attn_drop: float = 0.) -> Tensor:
    """Multi-head self-attention inside the windows of a token map.

    Steps: view as (B, H, W, C); zero-pad to window multiples; roll by ``-shift`` (shifted windows); ``qkv``;
    partition; one :func:`sdpa` with ``rel_pos_bias + shift mask + padding mask`` as its additive term; reverse the
    partition, roll back, crop; ``proj``. ``qkv`` and ``proj`` are per token, so running them on the map rather
    than on the windows is the same function, with one layout copy on each side of the product.

    Args:
        x (Tensor): Tokens (B, H * W, C).
        hw_shape (tuple[int, int]): (H, W).
        qkv (Callable): (..., C) -> (..., 3C), q | k | v, heads contiguous inside each third.
        proj (Callable): (..., C) -> (..., C).
        num_heads (int): Heads.
        window_size (int | tuple[int, int]): (wh, ww).
        scale (float, optional): Logit multiplier. Defaults to ``head_dims ** -0.5``.
        rel_pos_bias (Tensor, optional): (heads, N, N) bias of the in-window positions.
        shift_size (int | tuple[int, int]): Cyclic shift of Swin's shifted windows. Defaults to 0.
        mask_shift_size (int | tuple[int, int], optional): Shift the shift mask is built for; defaults to
            ``shift_size`` (the released Expedite Swin code builds it with the host's shift).
        pad_position (str): 'bottom_right' or 'center'. Defaults to 'bottom_right'.
        mask_padding (bool | str): Keep padded tokens out of the keys: False (Swin, HRFormer), True (whenever the
            map is padded) or ``'both_axes'`` (only when both H and W are padded, as mmpose 1.x's HRFormer).
            Defaults to False.
        shuffle (bool): Shuffled windows. Defaults to False.
        attn_drop (float): Dropout on the attention weights (pass 0 in eval mode). Defaults to 0.

    Returns:
        Tensor: (B, H * W, C).
    """
    B, L, C = x.shape
    H, W = hw_shape
    wh, ww = to_2tuple(window_size)
    shift = to_2tuple(shift_size)
    assert not (shuffle and any(shift)), 'shuffled windows are not shifted'
    x, pads = pad_to_window(x.view(B, H, W, C), (wh, ww), position=pad_position)
    Hp, Wp = padded_hw = x.shape[1:3]
    if any(shift):
        x = torch.roll(x, shifts=(-shift[0], -shift[1]), dims=(1, 2))
    nH, nWw = Hp // wh, Wp // ww
    nW, N = nH * nWw, wh * ww
    head_dims = C // num_heads
    # qkv is per token, so it runs on the padded map and the window partition is the one copy that lays q, k, v out
    # for the products: B, Hp, Wp, 3C -> 3, B, nW, heads, N, head_dims
    qkv_map = qkv(x)
    if shuffle:  # B, wh, nH, ww, nWw, 3, heads, head_dims
        qkv_map = qkv_map.view(B, wh, nH, ww, nWw, 3, num_heads, head_dims).permute(5, 0, 2, 4, 6, 1, 3, 7)
    else:  # B, nH, wh, nWw, ww, 3, heads, head_dims
        qkv_map = qkv_map.view(B, nH, wh, nWw, ww, 3, num_heads, head_dims).permute(5, 0, 1, 3, 6, 2, 4, 7)
    q, k, v = qkv_map.reshape(3, B, nW, num_heads, N, head_dims).unbind(0)

    masks = []
    if any(shift):
        mask_shift = shift if mask_shift_size is None else to_2tuple(mask_shift_size)
        masks.append(shift_window_mask(padded_hw, (wh, ww), mask_shift, device=x.device, dtype=q.dtype))
    if mask_padding == 'both_axes':
        mask_padding = (pads[0] + pads[1]) > 0 and (pads[2] + pads[3]) > 0
    if mask_padding:
        key_mask = padding_key_mask((H, W), (wh, ww),
                                    pads,
                                    shift_size=shift,
                                    shuffle=shuffle,
                                    device=x.device,
                                    dtype=q.dtype)
        if key_mask is not None:
            masks.append(key_mask)
    attn_bias = None
    if masks:  # nW, 1 | heads, N, N
        attn_bias = masks[0] if len(masks) == 1 else masks[0] + masks[1]
        attn_bias = attn_bias.unsqueeze(1)
        if rel_pos_bias is not None:
            attn_bias = attn_bias + rel_pos_bias.to(q.dtype)
    elif rel_pos_bias is not None:
        attn_bias = rel_pos_bias.to(q.dtype)  # heads, N, N
    if attn_bias is None or attn_bias.dim() == 3:  # no per-window term: one batch of B*nW windows
        q, k, v = q.flatten(0, 1), k.flatten(0, 1), v.flatten(0, 1)
    out = sdpa(q, k, v, attn_bias=attn_bias, scale=scale, dropout_p=attn_drop)  # B[*nW], [nW,] heads, N, head_dims
    # the reverse partition is the one copy back to the map, and proj (per token) runs on the cropped tokens
    out = out.view(B, nH, nWw, num_heads, wh, ww, head_dims)
    if shuffle:  # -> B, wh, nH, ww, nWw, heads, head_dims
        out = out.permute(0, 4, 1, 5, 2, 3, 6)
    else:  # -> B, nH, wh, nWw, ww, heads, head_dims
        out = out.permute(0, 1, 4, 2, 5, 3, 6)
    out = out.reshape(B, Hp, Wp, C)
    if any(shift):
        out = torch.roll(out, shifts=shift, dims=(1, 2))
    return proj(crop_padding(out, pads).reshape(B, H * W, C))


class WindowMSA(nn.Module):
    """Window multi-head self-attention with a learned relative-position bias (Swin's ``W-MSA``/``SW-MSA``).

    Keys: ``qkv`` (Linear C -> 3C), ``proj`` (Linear C -> C), ``rel_pos.relative_position_bias_table``.

    Args:
        embed_dims (int): Channels C.
        num_heads (int): Heads; must divide C.
        window_size (int | tuple[int, int]): (wh, ww).
        qkv_bias (bool): Defaults to True.
        qk_scale (float, optional): Logit multiplier. Defaults to ``head_dims ** -0.5``.
        attn_drop_rate (float): Defaults to 0.
        proj_drop_rate (float): Defaults to 0.
        rel_pos_bias (bool): Learn a :class:`RelativePositionBias`. Defaults to True.
        pad_position (str): 'bottom_right' (Swin) or 'center' (HRFormer). Defaults to 'bottom_right'.
        mask_padding (bool | str): Keep padded tokens out of the keys: one of ``PAD_MASK_MODES`` (False, True,
            ``'both_axes'``), see :func:`window_attention`. Defaults to False.
        shuffle (bool): Shuffled windows (Shuffle Transformer). Defaults to False.

    Shapes:
        ``forward(x (B, H * W, C), hw_shape, shift_size=0)`` -> (B, H * W, C), any H, W.
    """

    def __init__(self,
                 embed_dims: int,
                 *,
                 num_heads: int,
                 window_size: WindowSize,
                 qkv_bias: bool = True,
                 qk_scale: Optional[float] = None,
                 attn_drop_rate: float = 0.,
                 proj_drop_rate: float = 0.,
                 rel_pos_bias: bool = True,
                 pad_position: str = 'bottom_right',
                 mask_padding: Union[bool, str] = False,
                 shuffle: bool = False) -> None:
        super().__init__()
        assert embed_dims % num_heads == 0, f'embed_dims {embed_dims} is not divisible by num_heads {num_heads}'
        if pad_position not in PAD_POSITIONS:
            raise ConfigError(f'pad_position {pad_position!r}: choose one of {PAD_POSITIONS}')
        if not (isinstance(mask_padding, bool) or mask_padding == 'both_axes'):
            raise ConfigError(f'mask_padding {mask_padding!r}: choose one of {PAD_MASK_MODES}')
        self.embed_dims = embed_dims
        self.num_heads = num_heads
        self.window_size = to_2tuple(window_size)
        self.scale = qk_scale if qk_scale is not None else (embed_dims // num_heads)**-0.5
        self.attn_drop_rate = attn_drop_rate
        self.pad_position = pad_position
        self.mask_padding = mask_padding
        self.shuffle = shuffle
        self.qkv = nn.Linear(embed_dims, 3 * embed_dims, bias=qkv_bias)
        self.rel_pos = RelativePositionBias(self.window_size, num_heads=num_heads) if rel_pos_bias else None
        self.proj = nn.Linear(embed_dims, embed_dims)
        self.proj_drop = nn.Dropout(proj_drop_rate)

    def forward(self, x: Tensor, hw_shape: Tuple[int, int], *, shift_size: WindowSize = 0) -> Tensor:
        out = window_attention(
            x,
            hw_shape,
            qkv=self.qkv,
            proj=self.proj,
            num_heads=self.num_heads,
            window_size=self.window_size,
            scale=self.scale,
            rel_pos_bias=self.rel_pos() if self.rel_pos is not None else None,
            shift_size=shift_size,
            pad_position=self.pad_position,
            mask_padding=self.mask_padding,
            shuffle=self.shuffle,
            attn_drop=self.attn_drop_rate if self.training else 0.)
        return self.proj_drop(out)

    def extra_repr(self) -> str:
        return (f'window_size={self.window_size}, num_heads={self.num_heads}, pad_position={self.pad_position!r}, '
                f'mask_padding={self.mask_padding}, shuffle={self.shuffle}')
