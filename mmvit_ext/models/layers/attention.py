"""Attention shared by every mmvit_ext backbone.

Written for mmvit_ext. Design follows the habits of timm (one fused/eager switch, ``timm/layers/config.py``) and
the spatial-reduction attention of PVT (arXiv 2102.12122), PVTv2 (arXiv 2106.13797), P2T (arXiv 2106.12011) and
CMT (arXiv 2107.06263). No code is copied from those repositories.

* :func:`sdpa` is the only place where attention weights are computed. It calls
  ``F.scaled_dot_product_attention`` unless the eager path is selected with :func:`use_fused_attn` (for ONNX
  export of older opsets and FLOP counters that skip the fused op), or an additive bias is given on CPU: PyTorch's
  CPU kernel with a float mask is 1.4-3x slower than the explicit product for the shapes of CMT and of window
  attention (torch 2.12, measured in docs/models/cmt.md), so those run explicitly, in inference in place and in
  slices of query rows. ``scale`` multiplies the logits, as in torch.
* :class:`ReducedKVAttention` takes queries from every token and keys/values from a shorter sequence built by a
  *reducer* module: :class:`ConvSR` (PVT, CMT), :class:`AvgPoolSR` (PVTv2-li) or :class:`PyramidPoolSR` (P2T).
"""
import contextlib
import math
from typing import Iterator, List, Optional, Sequence, Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F
from mmcv.cnn import build_activation_layer, build_norm_layer
from torch import Tensor

from mmvit_ext.utils.errors import ConfigError
from .utils import channels_last_kernel_, eager_no_grad, nchw_to_nlc, nlc_to_nchw, pad_to_multiple

__all__ = [
    'sdpa', 'use_fused_attn', 'fused_attn_enabled', 'ReducedKVAttention', 'ConvSR', 'AvgPoolSR', 'PyramidPoolSR',
    'pyramid_pool_sizes', 'adaptive_avg_pool2d'
]

_FUSED_ATTN = True


def fused_attn_enabled() -> bool:
    """Whether :func:`sdpa` currently uses ``F.scaled_dot_product_attention``."""
    return _FUSED_ATTN


@contextlib.contextmanager
def use_fused_attn(enabled: bool) -> Iterator[None]:
    """Select the fused (``True``) or eager (``False``) attention path inside a ``with`` block.

    Examples:
        >>> with use_fused_attn(False):
        ...     outs = model(x)  # every sdpa() call runs q @ k^T, softmax, @ v explicitly
    """
    global _FUSED_ATTN
    previous, _FUSED_ATTN = _FUSED_ATTN, bool(enabled)
    try:
        yield
    finally:
        _FUSED_ATTN = previous


def sdpa(q: Tensor,
         k: Tensor,
         v: Tensor,
         *,
         attn_bias: Optional[Tensor] = None,
         scale: Optional[float] = None,
         dropout_p: float = 0.,
         head_mixing: Optional[Tuple[nn.Module, nn.Module]] = None) -> Tensor:
    """Scaled dot-product attention, ``softmax(q @ k^T * scale + attn_bias) @ v``.

    With ``head_mixing = (conv, norm)`` (ResT v1's head interaction) the weights are
    ``norm(softmax(conv(q @ k^T * scale + attn_bias)))``: ``conv`` mixes the heads of the (B, heads, N, M) logits
    (a 1x1 ``nn.Conv2d`` over the head axis) and ``norm`` (an ``nn.InstanceNorm2d``) normalises each head's map;
    always the explicit path, as no fused kernel computes it.

    Args:
        q (Tensor): Queries, (B, heads, N, head_dims).
        k (Tensor): Keys, (B, heads, M, head_dims).
        v (Tensor): Values, (B, heads, M, head_dims_v).
        attn_bias (Tensor, optional): Additive float bias on the logits, broadcastable to (B, heads, N, M),
            e.g. CMT's relative-position bias of shape (heads, N, M). Defaults to None.
        scale (float, optional): Multiplier of the logits (as in torch, *not* a divisor).
            Defaults to ``head_dims ** -0.5``.
        dropout_p (float): Dropout on the attention weights. Pass 0 in eval mode. Defaults to 0.
        head_mixing (tuple[nn.Module, nn.Module], optional): ``(conv, norm)`` around the softmax, see above.
            Defaults to None.

    Returns:
        Tensor: (B, heads, N, head_dims_v).
    """
    if head_mixing is None and _FUSED_ATTN and not (attn_bias is not None and q.device.type == 'cpu'):
        return F.scaled_dot_product_attention(q, k, v, attn_mask=attn_bias, dropout_p=dropout_p, scale=scale)
    scale = q.shape[-1]**-0.5 if scale is None else scale
    if head_mixing is None and dropout_p == 0. and eager_no_grad():
        return _explicit_attention_inference(q, k, v, attn_bias, scale)
    # the product is a fresh tensor that backward does not need: scale it and add the bias in place
    attn = (q @ k.transpose(-2, -1)).mul_(scale)  # B, heads, N, M
    if attn_bias is not None:
        attn = attn.add_(attn_bias)
    if head_mixing is not None:
        conv, norm = head_mixing
        attn = norm(conv(attn).softmax(dim=-1))
    else:
        attn = attn.softmax(dim=-1)
    if dropout_p > 0.:
        attn = F.dropout(attn, p=dropout_p)
    return attn @ v


#: Logit elements per chunk of queries in explicit inference attention: the logits of a large map (CMT stage 1 at
#: 800x1344 has 67200 x 1050 per head and image) are computed a slice of query rows at a time (softmax is per row,
#: so the result is the same), which bounds the extra memory to 16 MB and keeps the slice in cache.
ATTN_CHUNK_ELEMENTS = 2**22


def _explicit_attention_inference(q: Tensor, k: Tensor, v: Tensor, attn_bias: Optional[Tensor], scale: float) -> Tensor:
    """``softmax(q @ k^T * scale + attn_bias) @ v`` without autograd: in place, in slices of query rows."""
    N, M = q.shape[-2], k.shape[-2]
    rows = max(1, ATTN_CHUNK_ELEMENTS // max(1, q[..., :1, :1].numel() * M))
    k_t = k.transpose(-2, -1)
    bias_rows = attn_bias is not None and attn_bias.dim() >= 2 and attn_bias.shape[-2] != 1
    outs = []
    for start in range(0, N, rows):
        attn = q[..., start:start + rows, :] @ k_t  # B, heads, n, M (a fresh tensor)
        attn.mul_(scale)
        if attn_bias is not None:
            attn.add_(attn_bias[..., start:start + rows, :] if bias_rows else attn_bias)
        outs.append(attn.softmax(dim=-1) @ v)
    return outs[0] if len(outs) == 1 else torch.cat(outs, dim=-2)


class ReducedKVAttention(nn.Module):
    """Multi-head attention with full-resolution queries and keys/values from a reduced token sequence.

    ``kv_reducer`` turns the (B, C, H, W) map of the input tokens into M tokens; ``norm`` and ``act`` (optional)
    follow; then one ``kv`` projection gives keys (output channels [0:C]) and values ([C:2C]), heads contiguous
    inside each half. With ``kv_reducer=None`` the keys/values come from the input itself (plain MHSA).

    =========================  ==============================================  ============================
    model                      kv_reducer                                      kv_norm_cfg / kv_act_cfg
    =========================  ==============================================  ============================
    PVT / PVTv2 / Twins-GSA    ``ConvSR(sr_ratio=r)``                          LN / None
    PVTv2-li                   ``AvgPoolSR(pool_size=7)``                      LN / GELU
    CMT (LMHSA)                ``ConvSR(r, depthwise=True, BN, ceil_mode)``    None / None, plus attn_bias
    P2T (P-MHSA)               ``PyramidPoolSR(pool_ratios)``                  LN eps 1e-5 / None
    ResT v1 (EMSA)             ``ConvSR(r, kernel_size=r + 1, padding=r // 2,  LN / None, plus
                               depthwise=True)``                               ``head_mixing=True``
    ResT v2 (EMSAv2)           the same ``ConvSR``                             LN eps 1e-6 / None, plus
                                                                               ``upsample_ratio=r``
    =========================  ==============================================  ============================

    Args:
        embed_dims (int): Channels C of the input and output tokens.
        num_heads (int): Number of heads; must divide ``embed_dims``.
        kv_reducer (nn.Module, optional): Maps (B, C, H, W) to (B, M, C); extra keyword arguments of
            :meth:`forward` are passed to it. Registered as ``sr``. Defaults to None (no reduction).
        kv_norm_cfg (dict, optional): Norm on the reduced tokens, registered as ``norm``. Defaults to None.
        kv_act_cfg (dict, optional): Activation after ``norm``. Defaults to None.
        qkv_bias (bool): Bias in ``q`` and ``kv``. Defaults to True.
        qk_scale (float, optional): Logit multiplier. Defaults to ``head_dims ** -0.5``.
        attn_drop_rate (float): Dropout on the attention weights. Defaults to 0.
        proj_drop_rate (float): Dropout after ``proj``. Defaults to 0.
        head_mixing (bool): ResT v1's head interaction when ``num_heads > 1``: ``transform_conv`` (1x1 conv over
            the heads of the logits, with bias) before the softmax and ``transform_norm`` (``InstanceNorm2d``,
            affine off, no running statistics) after it, see :func:`sdpa`. Defaults to False.
        upsample_ratio (int, optional): ResT v2's upsample branch: the values of the reduced tokens as a
            (B, C, ceil(H / r), ceil(W / r)) map (channel ``head * head_dims + j``) -> ``up.0`` (depthwise 3x3 to
            ``r * r * C`` channels) -> ``up.1`` (PixelShuffle(r)) -> cropped to (H, W) -> ``up_norm`` (token norm),
            added to the attention output before ``proj``. ``r`` is the reduction ratio (1: no reduction, a plain
            depthwise 3x3 of the values); the reducer must give the ``ceil`` grid. Defaults to None (no branch).
        upsample_norm_cfg (dict): ``up_norm``. Defaults to ``dict(type='LN', eps=1e-6)`` (ResT v2).
    """

    def __init__(self,
                 embed_dims: int,
                 *,
                 num_heads: int,
                 kv_reducer: Optional[nn.Module] = None,
                 kv_norm_cfg: Optional[dict] = None,
                 kv_act_cfg: Optional[dict] = None,
                 qkv_bias: bool = True,
                 qk_scale: Optional[float] = None,
                 attn_drop_rate: float = 0.,
                 proj_drop_rate: float = 0.,
                 head_mixing: bool = False,
                 upsample_ratio: Optional[int] = None,
                 upsample_norm_cfg: dict = dict(type='LN', eps=1e-6)) -> None:
        super().__init__()
        assert embed_dims % num_heads == 0, f'embed_dims {embed_dims} is not divisible by num_heads {num_heads}'
        self.embed_dims = embed_dims
        self.num_heads = num_heads
        self.scale = qk_scale if qk_scale is not None else (embed_dims // num_heads)**-0.5
        self.attn_drop_rate = attn_drop_rate

        self.q = nn.Linear(embed_dims, embed_dims, bias=qkv_bias)
        self.sr = kv_reducer
        self.norm = build_norm_layer(kv_norm_cfg, embed_dims)[1] if kv_norm_cfg is not None else None
        self.act = build_activation_layer(kv_act_cfg) if kv_act_cfg is not None else None
        self.kv = nn.Linear(embed_dims, 2 * embed_dims, bias=qkv_bias)
        self.proj = nn.Linear(embed_dims, embed_dims)
        self.proj_drop = nn.Dropout(proj_drop_rate)
        self.head_mixing = head_mixing and num_heads > 1
        if self.head_mixing:  # one head: plain softmax attention (ResT v1 stage 1)
            self.transform_conv = nn.Conv2d(num_heads, num_heads, kernel_size=1)
            self.transform_norm = nn.InstanceNorm2d(num_heads)
        self.upsample_ratio = upsample_ratio
        if upsample_ratio is not None:
            if not (isinstance(upsample_ratio, int) and upsample_ratio >= 1):
                raise ConfigError(f'upsample_ratio must be an int >= 1 (the reduction ratio), got {upsample_ratio!r}')
            self.up = nn.Sequential(
                channels_last_kernel_(
                    nn.Conv2d(embed_dims, upsample_ratio**2 * embed_dims, 3, padding=1, groups=embed_dims)),
                nn.PixelShuffle(upsample_ratio))
            self.up_norm = build_norm_layer(upsample_norm_cfg, embed_dims)[1]

    def forward(self,
                x: Tensor,
                hw_shape: Tuple[int, int],
                *,
                attn_bias: Optional[Tensor] = None,
                **reducer_kwargs) -> Tensor:
        """Attend from every token to the reduced tokens.

        Args:
            x (Tensor): Tokens, (B, N, C), N = H * W.
            hw_shape (tuple[int, int]): (H, W) as Python ints.
            attn_bias (Tensor, optional): Additive logit bias broadcastable to (B, heads, N, M).
            **reducer_kwargs: Passed to ``kv_reducer`` (P2T: ``pool_convs``).

        Returns:
            Tensor: (B, N, C).
        """
        B, N, C = x.shape
        head_dims = C // self.num_heads
        # B, N, C -> B, heads, N, head_dims
        q = self.q(x).view(B, N, self.num_heads, head_dims).transpose(1, 2)

        if self.sr is not None:
            kv_tokens = self.sr(nlc_to_nchw(x, hw_shape), **reducer_kwargs)  # B, M, C
        else:
            assert not reducer_kwargs, f'no kv_reducer to take {sorted(reducer_kwargs)}'
            kv_tokens = x
        if self.norm is not None:
            kv_tokens = self.norm(kv_tokens)
        if self.act is not None:
            kv_tokens = self.act(kv_tokens)
        M = kv_tokens.shape[1]
        # B, M, 2C -> 2, B, heads, M, head_dims (k = channels [0:C], v = [C:2C])
        k, v = self.kv(kv_tokens).view(B, M, 2, self.num_heads, head_dims).permute(2, 0, 3, 1, 4).unbind(0)

        dropout_p = self.attn_drop_rate if self.training else 0.
        mixing = (self.transform_conv, self.transform_norm) if self.head_mixing else None
        x = sdpa(q, k, v, attn_bias=attn_bias, scale=self.scale, dropout_p=dropout_p, head_mixing=mixing)
        # B, heads, N, head_dims -> B, N, C
        x = x.transpose(1, 2).reshape(B, N, C)
        if self.upsample_ratio is not None:
            x = x + self._upsample_values(v, hw_shape)
        return self.proj_drop(self.proj(x))

    def _upsample_values(self, v: Tensor, hw_shape: Tuple[int, int]) -> Tensor:
        """ResT v2's upsample branch: (B, heads, M, head_dims) values -> (B, N, C) tokens."""
        B, heads, M, head_dims = v.shape
        H, W = hw_shape
        r = self.upsample_ratio
        grid = (-(-H // r), -(-W // r))
        if M != grid[0] * grid[1]:
            raise ConfigError(f'upsample_ratio={r} needs the reduced grid ceil(H / r) x ceil(W / r) = '
                              f'{grid[0]}x{grid[1]}, got {M} key tokens for a {H}x{W} map: use a reducer with that '
                              'grid, e.g. ConvSR(kernel_size=r + 1, padding=r // 2)')
        # B, heads, M, head_dims -> B, M, C -> B, C, h, w (channel head * head_dims + j; a channels-last view)
        v_map = nlc_to_nchw(v.transpose(1, 2).reshape(B, M, heads * head_dims), grid)
        up = self.up(v_map)[:, :, :H, :W]  # B, C, h * r, w * r -> B, C, H, W (crop of the ceil grid)
        return self.up_norm(nchw_to_nlc(up))


class ConvSR(nn.Module):
    """Spatial reduction by a conv with stride ``sr_ratio``: ``sr_ratio`` x ``sr_ratio`` kernels (PVT, CMT) or
    overlapping ``sr_ratio + 1`` kernels with ``sr_ratio // 2`` zero padding (ResT's EMSA).

    Args:
        embed_dims (int): Channels C.
        sr_ratio (int): The stride.
        kernel_size (int, optional): Defaults to ``sr_ratio``. ResT: ``sr_ratio + 1``.
        padding (int): Zero padding on every side. Defaults to 0. ResT: ``sr_ratio // 2``, which gives the grid
            ``ceil(H / sr_ratio)`` at every size.
        depthwise (bool): Depthwise conv (CMT, ResT) instead of a full conv (PVT). Defaults to False.
        norm_cfg (dict, optional): A 2-D norm on the reduced map, e.g. ``dict(type='BN')`` (CMT), registered as
            ``norm``. Token norms (PVT's LayerNorm) belong to ``ReducedKVAttention(kv_norm_cfg=...)``.
            Defaults to None.
        ceil_mode (bool): Zero-pad the bottom and right of a map whose sides are not multiples of ``sr_ratio``
            so that the reduced grid is ``ceil(H / sr_ratio)`` and no row or column is dropped; maps whose sides
            are multiples are not touched. Only with ``kernel_size == sr_ratio`` and no padding. Defaults to False
            (floor, as PVT).

    Shapes:
        (B, C, H, W) -> (B, h * w, C) with h = ``floor((H + 2 * padding - kernel_size) / sr_ratio) + 1`` (for the
        default kernel: ``floor(H / sr_ratio)``, ``ceil`` with ``ceil_mode``), w likewise.
    """

    def __init__(self,
                 embed_dims: int,
                 *,
                 sr_ratio: int,
                 kernel_size: Optional[int] = None,
                 padding: int = 0,
                 depthwise: bool = False,
                 norm_cfg: Optional[dict] = None,
                 ceil_mode: bool = False) -> None:
        super().__init__()
        assert sr_ratio >= 1, f'sr_ratio must be >= 1, got {sr_ratio}'
        kernel_size = sr_ratio if kernel_size is None else kernel_size
        if ceil_mode and (kernel_size != sr_ratio or padding):
            raise ConfigError(f'ConvSR: ceil_mode pads to multiples of the stride for kernel_size == sr_ratio '
                              f'without padding; got kernel_size={kernel_size}, padding={padding} (ResT: use '
                              f'kernel_size=sr_ratio + 1, padding=sr_ratio // 2, which is ceil by itself)')
        groups = embed_dims if depthwise else 1
        self.sr_ratio = sr_ratio
        self.ceil_mode = ceil_mode
        # channels-last kernel: the conv reads channels-last token views, its gradient has the same strides (DDP)
        self.conv = channels_last_kernel_(
            nn.Conv2d(embed_dims, embed_dims, kernel_size=kernel_size, stride=sr_ratio, padding=padding, groups=groups))
        self.norm = build_norm_layer(norm_cfg, embed_dims)[1] if norm_cfg is not None else None

    def forward(self, x: Tensor) -> Tensor:
        if self.ceil_mode:
            x = pad_to_multiple(x, self.sr_ratio)
        x = self.conv(x)
        if self.norm is not None:
            x = self.norm(x)
        return nchw_to_nlc(x)


class AvgPoolSR(nn.Module):
    """Spatial reduction to a fixed grid: adaptive average pool, then a 1x1 conv (PVTv2-li).

    Args:
        embed_dims (int): Channels C.
        pool_size (int): Side of the pooled grid. Defaults to 7.

    Shapes:
        (B, C, H, W) -> (B, pool_size ** 2, C).
    """

    def __init__(self, embed_dims: int, *, pool_size: int = 7) -> None:
        super().__init__()
        self.pool_size = pool_size
        self.conv = nn.Conv2d(embed_dims, embed_dims, kernel_size=1)

    def forward(self, x: Tensor) -> Tensor:
        return nchw_to_nlc(self.conv(adaptive_avg_pool2d(x, (self.pool_size, self.pool_size))))


def pyramid_pool_sizes(hw_shape: Tuple[int, int], pool_ratios: Sequence[int]) -> List[Tuple[int, int]]:
    """Pooled grid per ratio: ``max(1, round(H / r))`` by ``max(1, round(W / r))``.

    ``round`` is Python's, on Python floats, i.e. round-half-to-even (12.5 -> 12, 3.5 -> 4, 0.5 -> 0), which is
    what the official P2T code does. The clamp to 1 only changes sizes where the official code crashes
    (a 0-size map, inputs below 65 px a side).

    Args:
        hw_shape (tuple[int, int]): (H, W), Python ints.
        pool_ratios (Sequence[int]): Reduction ratios.

    Returns:
        list[tuple[int, int]]: (h, w) per ratio.
    """
    H, W = (int(s) for s in hw_shape)
    return [(max(1, round(H / r)), max(1, round(W / r))) for r in pool_ratios]


def _pool_matrix(in_size: int, out_size: int, like: Tensor) -> Tensor:
    """(out_size, in_size) averaging matrix with PyTorch's adaptive-pool bins [floor(i*n/m), ceil((i+1)*n/m))."""
    rows = []
    for i in range(out_size):
        start, end = (i * in_size) // out_size, math.ceil((i + 1) * in_size / out_size)
        rows.append([1. / (end - start) if start <= j < end else 0. for j in range(in_size)])
    return torch.tensor(rows, dtype=like.dtype, device=like.device)


def adaptive_avg_pool2d(x: Tensor, output_size: Tuple[int, int]) -> Tensor:
    """``F.adaptive_avg_pool2d`` that also exports to ONNX for sizes that do not divide the input.

    The legacy ONNX exporter only handles adaptive pooling whose output divides the input. While exporting,
    the same bins are computed as two constant averaging matrices (``A_h @ x @ A_w^T``); otherwise the
    PyTorch kernel runs.

    Args:
        x (Tensor): (B, C, H, W).
        output_size (tuple[int, int]): (h, w), Python ints.

    Returns:
        Tensor: (B, C, h, w).
    """
    if not torch.onnx.is_in_onnx_export():
        return F.adaptive_avg_pool2d(x, output_size)
    H, W = x.shape[-2:]
    h, w = output_size
    return _pool_matrix(int(H), h, x) @ x @ _pool_matrix(int(W), w, x).t()


class PyramidPoolSR(nn.Module):
    """Pyramid pooling reducer of P2T's P-MHSA (arXiv 2106.12011, Sec. 3.2).

    For each ratio ``r`` in order: adaptive average pool to :func:`pyramid_pool_sizes`, add a depthwise 3x3
    conv of the pooled map (out of place), flatten; then concatenate all levels along the tokens. The LayerNorm
    that follows belongs to :class:`ReducedKVAttention` (``kv_norm_cfg``), so the official key ``attn.norm``
    is kept.

    The depthwise convs are shared by all blocks of a P2T stage, so they are owned by the stage and passed to
    :meth:`forward` at call time; this module has no parameters.

    Args:
        pool_ratios (Sequence[int]): Reduction ratios, e.g. ``(12, 16, 20, 24)`` for P2T stage 1.

    Shapes:
        (B, C, H, W) -> (B, M, C) with M = sum of h * w over the ratios.
    """

    def __init__(self, pool_ratios: Sequence[int]) -> None:
        super().__init__()
        assert len(pool_ratios) > 0 and all(r >= 1 for r in pool_ratios), f'bad pool_ratios {pool_ratios}'
        self.pool_ratios = tuple(pool_ratios)

    def forward(self, x: Tensor, *, pool_convs: Sequence[nn.Module]) -> Tensor:
        """Pool, refine and concatenate.

        Args:
            x (Tensor): (B, C, H, W).
            pool_convs (Sequence[nn.Module]): One (B, C, h, w) -> (B, C, h, w) module per ratio, usually
                ``Conv2d(C, C, 3, padding=1, groups=C)``.

        Returns:
            Tensor: (B, M, C).
        """
        assert len(pool_convs) == len(self.pool_ratios), \
            f'{len(pool_convs)} pool_convs for {len(self.pool_ratios)} pool ratios'
        pools = []
        for size, conv in zip(pyramid_pool_sizes(x.shape[-2:], self.pool_ratios), pool_convs):
            pool = adaptive_avg_pool2d(x, size)
            pools.append(nchw_to_nlc(pool + conv(pool)))  # B, h*w, C
        return torch.cat(pools, dim=1)

    def extra_repr(self) -> str:
        return f'pool_ratios={self.pool_ratios}'
