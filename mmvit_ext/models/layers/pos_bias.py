"""Relative-position biases for attention logits, shared by the mmvit_ext backbones.

Written for mmvit_ext after the relative-position bias of Swin (arXiv 2103.14030; also used by HRFormer,
Shuffle Transformer and the Expedite Swin wrappers) and CMT's learned query-grid x key-grid bias
(arXiv 2107.06263, Sec. 3.2). No code is copied from those repositories.

* :func:`relative_position_index` / :func:`relative_position_bias`: Swin's ``(2 wh - 1)(2 ww - 1)``-row table
  indexed by the in-window offset ``(dy, dx)``, gathered once per forward to an ``(heads, N, N)`` bias; the table
  can be resized for another window size (:func:`resize_rel_pos_table`), as a pure function of the stored table.
* :class:`RelativePositionBias`: the module that owns a table; a checkpoint table of another window size is
  resized on load (with a log line), never in ``forward``.
* :func:`resize_query_key_bias`: CMT's ``(heads, Nq, Nk)`` bias, tied to the training grids, resized for another
  query grid and key grid; :class:`QueryKeyBias` owns such a table and caches its resized copies in inference.
"""
from collections import OrderedDict
from typing import Optional, Sequence, Tuple, Union

import torch
import torch.nn as nn
import torch.nn.functional as F
from mmengine.logging import print_log
from mmengine.model.weight_init import trunc_normal_
from torch import Tensor

from .utils import eager_no_grad, to_2tuple

__all__ = [
    'relative_position_index', 'resize_rel_pos_table', 'relative_position_bias', 'RelativePositionBias',
    'resize_query_key_bias', 'QueryKeyBias'
]

WindowSize = Union[int, Sequence[int]]


def _table_side(window_size: Tuple[int, int]) -> Tuple[int, int]:
    return 2 * window_size[0] - 1, 2 * window_size[1] - 1


def relative_position_index(window_size: WindowSize, device: Optional[torch.device] = None) -> Tensor:
    """Index into a Swin bias table for every (query, key) pair of a window, tokens in row-major order.

    Row ``(dy + wh - 1) * (2 ww - 1) + (dx + ww - 1)`` of the table holds the bias of offset ``(dy, dx)`` =
    query position minus key position.

    Args:
        window_size (int | tuple[int, int]): (wh, ww).
        device (torch.device, optional): Device of the result.

    Returns:
        Tensor: (wh * ww, wh * ww), int64.
    """
    wh, ww = to_2tuple(window_size)
    coords = torch.stack(
        torch.meshgrid(torch.arange(wh, device=device), torch.arange(ww, device=device),
                       indexing='ij')).flatten(1)  # 2, N
    rel = coords[:, :, None] - coords[:, None, :]  # 2, N, N
    return (rel[0] + wh - 1) * (2 * ww - 1) + (rel[1] + ww - 1)


def resize_rel_pos_table(table: Tensor,
                         src_window: WindowSize,
                         dst_window: WindowSize,
                         *,
                         mode: str = 'bilinear') -> Tensor:
    """Resize a ``((2 wh - 1)(2 ww - 1), heads)`` table to another window size by 2-D interpolation.

    Args:
        table (Tensor): (L, heads), rows ordered as in :func:`relative_position_index`.
        src_window (int | tuple[int, int]): Window the table was made for.
        dst_window (int | tuple[int, int]): Window of the result.
        mode (str): ``F.interpolate`` mode (``align_corners=False``). Defaults to 'bilinear' (the Expedite
            clustered windows); mmpretrain resizes checkpoints with 'bicubic'.

    Returns:
        Tensor: (L', heads); ``table`` itself when the sizes agree.
    """
    src, dst = _table_side(to_2tuple(src_window)), _table_side(to_2tuple(dst_window))
    assert table.shape[0] == src[0] * src[1], f'a table of {table.shape[0]} rows is not for window {src_window}'
    if src == dst:
        return table
    # L, heads -> 1, heads, 2wh-1, 2ww-1
    grid = table.t().reshape(1, -1, *src)
    grid = F.interpolate(grid, size=dst, mode=mode, align_corners=False)
    return grid.flatten(2)[0].t()  # 1, heads, L' -> L', heads


def relative_position_bias(table: Tensor,
                           window_size: WindowSize,
                           *,
                           table_window_size: Optional[WindowSize] = None,
                           index: Optional[Tensor] = None,
                           mode: str = 'bilinear') -> Tensor:
    """Gather the (heads, N, N) bias of a window from a table (resized first if made for another window).

    Args:
        table (Tensor): (L, heads).
        window_size (int | tuple[int, int]): Window (wh, ww) of the attention, N = wh * ww.
        table_window_size (int | tuple[int, int], optional): Window the table was made for. Defaults to
            ``window_size``.
        index (Tensor, optional): A cached :func:`relative_position_index` of ``window_size``.
        mode (str): Interpolation mode of a resize. Defaults to 'bilinear'.

    Returns:
        Tensor: (heads, N, N).
    """
    window_size = to_2tuple(window_size)
    if table_window_size is not None:
        table = resize_rel_pos_table(table, table_window_size, window_size, mode=mode)
    if index is None:
        index = relative_position_index(window_size, device=table.device)
    N = window_size[0] * window_size[1]
    # L, heads -> N*N, heads -> heads, N, N
    return table[index.reshape(-1)].view(N, N, -1).permute(2, 0, 1)


class RelativePositionBias(nn.Module):
    """A learned Swin relative-position-bias table for one window size.

    The table is ``relative_position_bias_table`` ((2 wh - 1)(2 ww - 1), heads), initialised trunc-normal with
    std 0.02 as in Swin; the index is a non-persistent buffer (not in checkpoints; converters drop official
    ``relative_position_index`` buffers). A table of another (odd-sided) size in a loaded state dict is resized to
    this window with ``load_resize_mode`` and logged.

    Args:
        window_size (int | tuple[int, int]): (wh, ww).
        num_heads (int): Heads.
        load_resize_mode (str): Interpolation of tables of another window size on load. Defaults to 'bicubic'
            (mmpretrain's choice for Swin checkpoints).

    Shapes:
        ``forward()`` -> (heads, N, N); ``forward(window_size=(h, w))`` -> (heads, h * w, h * w) from the table
        resized bilinearly (a pure function of the parameter, e.g. Expedite's clustered windows).
    """

    def __init__(self, window_size: WindowSize, *, num_heads: int, load_resize_mode: str = 'bicubic') -> None:
        super().__init__()
        self.window_size = to_2tuple(window_size)
        self.num_heads = num_heads
        self.load_resize_mode = load_resize_mode
        side = _table_side(self.window_size)
        self.relative_position_bias_table = nn.Parameter(torch.zeros(side[0] * side[1], num_heads))
        trunc_normal_(self.relative_position_bias_table, std=.02)
        self.register_buffer('relative_position_index', relative_position_index(self.window_size), persistent=False)

    def forward(self, window_size: Optional[WindowSize] = None) -> Tensor:
        if window_size is None or to_2tuple(window_size) == self.window_size:
            return relative_position_bias(
                self.relative_position_bias_table, self.window_size, index=self.relative_position_index)
        return relative_position_bias(
            self.relative_position_bias_table, window_size, table_window_size=self.window_size)

    def _load_from_state_dict(self, state_dict, prefix, local_metadata, strict, missing_keys, unexpected_keys,
                              error_msgs) -> None:
        key = prefix + 'relative_position_bias_table'
        table = state_dict.get(key)
        own = self.relative_position_bias_table
        if table is not None and table.shape != own.shape and table.dim() == 2 and table.shape[1] == own.shape[1]:
            side = round(table.shape[0]**0.5)
            if side * side == table.shape[0] and side % 2 == 1:
                src = ((side + 1) // 2, ) * 2
                state_dict[key] = resize_rel_pos_table(table, src, self.window_size, mode=self.load_resize_mode)
                print_log(
                    f'{key}: resized a window-{src[0]} table {tuple(table.shape)} to window '
                    f'{self.window_size} ({self.load_resize_mode})',
                    logger='current')
        super()._load_from_state_dict(state_dict, prefix, local_metadata, strict, missing_keys, unexpected_keys,
                                      error_msgs)

    def extra_repr(self) -> str:
        return f'window_size={self.window_size}, num_heads={self.num_heads}'


def resize_query_key_bias(bias: Tensor,
                          src_query_hw: Tuple[int, int],
                          src_key_hw: Tuple[int, int],
                          dst_query_hw: Tuple[int, int],
                          dst_key_hw: Tuple[int, int],
                          *,
                          mode: str = 'bicubic') -> Tensor:
    """Resize a learned (heads, Nq, Nk) bias (CMT) from training grids to other query and key grids.

    The query grid is resized in 2-D for every key, then the key grid for every (new) query (the recipe of the
    paper's "bicubic interpolation"); sizes that already match are left alone, so the native size is bit-exact.

    Args:
        bias (Tensor): (heads, hq * wq, hk * wk).
        src_query_hw (tuple[int, int]): (hq, wq) of ``bias``.
        src_key_hw (tuple[int, int]): (hk, wk) of ``bias``.
        dst_query_hw (tuple[int, int]): Query grid of the result.
        dst_key_hw (tuple[int, int]): Key grid of the result.
        mode (str): ``F.interpolate`` mode (``align_corners=False``). Defaults to 'bicubic'.

    Returns:
        Tensor: (heads, hq' * wq', hk' * wk').
    """
    heads, nq, nk = bias.shape
    assert nq == src_query_hw[0] * src_query_hw[1] and nk == src_key_hw[0] * src_key_hw[1], \
        f'bias {tuple(bias.shape)} does not fit query grid {src_query_hw} and key grid {src_key_hw}'
    dst_query_hw, dst_key_hw = tuple(dst_query_hw), tuple(dst_key_hw)
    if tuple(src_query_hw) != dst_query_hw:
        # heads, Nq, Nk -> heads * Nk, 1, hq, wq -> resize -> heads, Nq', Nk
        grid = bias.permute(0, 2, 1).reshape(heads * nk, 1, *src_query_hw)
        grid = F.interpolate(grid, size=dst_query_hw, mode=mode, align_corners=False)
        bias = grid.reshape(heads, nk, -1).permute(0, 2, 1)
    if tuple(src_key_hw) != dst_key_hw:
        nq = bias.shape[1]
        # heads, Nq', Nk -> heads * Nq', 1, hk, wk -> resize -> heads, Nq', Nk'
        grid = bias.reshape(heads * nq, 1, *src_key_hw)
        grid = F.interpolate(grid, size=dst_key_hw, mode=mode, align_corners=False)
        bias = grid.reshape(heads, nq, -1)
    return bias


class QueryKeyBias(nn.Module):
    """A learned additive logit bias of shape (heads, Nq, Nk) for one query grid and one key grid (CMT).

    The parameter ``table`` (not named ``bias``, so that optimizer rules for biases, e.g. MMEngine's
    ``bias_decay_mult``, do not catch it) is tied to the training grids ``query_hw`` x ``key_hw``. :meth:`forward`
    returns it unchanged for those grids (so outputs at the training size are exact) and otherwise resizes it with
    :func:`resize_query_key_bias` (``resize_mode``, bicubic by default as the CMT paper states). In inference
    (autograd off, not traced) the resized bias is cached for the last ``cache_size`` grid pairs and recomputed
    when the parameter changes (its version counter) or moves; in training the resize is part of the graph, so
    the stored table learns.

    A loaded table of other square grids (a checkpoint trained at another resolution) is resized to this module's
    grids on load, with a log line.

    Args:
        num_heads (int): Heads.
        query_hw (tuple[int, int]): (hq, wq) the table is made for.
        key_hw (tuple[int, int]): (hk, wk) the table is made for.
        resize_mode (str): ``F.interpolate`` mode for other grids (and for tables of other grids on load).
            Defaults to 'bicubic'.
        cache_size (int): Resized biases kept for inference, most recent first; 0 disables the cache. A bias
            holds heads * Nq * Nk floats, as much as one image's attention logits: CMT-S at 800x1344 needs
            530 MB for its four stages. Defaults to 1.

    Shapes:
        ``forward(query_hw, key_hw)`` -> (heads, hq' * wq', hk' * wk').
    """

    def __init__(self,
                 *,
                 num_heads: int,
                 query_hw: Tuple[int, int],
                 key_hw: Tuple[int, int],
                 resize_mode: str = 'bicubic',
                 cache_size: int = 1) -> None:
        super().__init__()
        self.query_hw = tuple(int(s) for s in to_2tuple(query_hw))
        self.key_hw = tuple(int(s) for s in to_2tuple(key_hw))
        assert min(self.query_hw + self.key_hw) >= 1, f'empty grids {self.query_hw}, {self.key_hw}'
        self.resize_mode = resize_mode
        self.cache_size = int(cache_size)
        nq, nk = self.query_hw[0] * self.query_hw[1], self.key_hw[0] * self.key_hw[1]
        self.table = nn.Parameter(torch.randn(num_heads, nq, nk))  # CMT initialises it with std 1
        self._cache: 'OrderedDict[tuple, Tensor]' = OrderedDict()

    def forward(self, query_hw: Tuple[int, int], key_hw: Tuple[int, int]) -> Tensor:
        query_hw, key_hw = tuple(query_hw), tuple(key_hw)
        if query_hw == self.query_hw and key_hw == self.key_hw:
            return self.table
        if self.cache_size <= 0 or not eager_no_grad():
            return self._resize(query_hw, key_hw)
        key = (query_hw, key_hw, self.table.device, self.table.dtype, self.table._version, self.table.data_ptr())
        bias = self._cache.pop(key, None)
        if bias is None:
            bias = self._resize(query_hw, key_hw)
        self._cache[key] = bias  # most recent last
        while len(self._cache) > self.cache_size:
            self._cache.popitem(last=False)
        return bias

    def _resize(self, query_hw: Tuple[int, int], key_hw: Tuple[int, int]) -> Tensor:
        return resize_query_key_bias(self.table, self.query_hw, self.key_hw, query_hw, key_hw, mode=self.resize_mode)

    def _load_from_state_dict(self, state_dict, prefix, local_metadata, strict, missing_keys, unexpected_keys,
                              error_msgs) -> None:
        key = prefix + 'table'
        table = state_dict.get(key)
        own = self.table
        if table is not None and table.dim() == 3 and table.shape != own.shape and table.shape[0] == own.shape[0]:
            q_side, k_side = round(table.shape[1]**0.5), round(table.shape[2]**0.5)
            if q_side * q_side == table.shape[1] and k_side * k_side == table.shape[2]:
                src_q, src_k = (q_side, q_side), (k_side, k_side)
                state_dict[key] = resize_query_key_bias(
                    table, src_q, src_k, self.query_hw, self.key_hw, mode=self.resize_mode)
                print_log(
                    f'{key}: resized a {tuple(table.shape)} table (query grid {src_q}, key grid {src_k}) to '
                    f'{tuple(own.shape)} (query grid {self.query_hw}, key grid {self.key_hw}, {self.resize_mode})',
                    logger='current')
        self._cache.clear()
        super()._load_from_state_dict(state_dict, prefix, local_metadata, strict, missing_keys, unexpected_keys,
                                      error_msgs)

    def extra_repr(self) -> str:
        return (f'num_heads={self.table.shape[0]}, query_hw={self.query_hw}, key_hw={self.key_hw}, '
                f'resize_mode={self.resize_mode!r}')
