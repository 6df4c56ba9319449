"""Feed-forward networks with a depthwise conv inside, shared by the mmvit_ext backbones.

Written for mmvit_ext after the FFNs of P2T (IRB, arXiv 2106.12011), PVTv2/SegFormer (MixFFN, arXiv 2106.13797),
CMT (IRFFN, arXiv 2107.06263) and HRFormer (``MlpDWBN``, arXiv 2110.09408). No code is copied from those
repositories.
"""
import logging
from functools import partial
from typing import List, Optional, Sequence, Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F
from mmcv.cnn import build_activation_layer, build_norm_layer
from mmengine.logging import print_log
from torch import Tensor
from torch.utils.checkpoint import CheckpointPolicy, checkpoint, create_selective_checkpoint_contexts

from mmvit_ext.utils.errors import ConfigError
from .norm_act import batch_norm_gelu, fusable_batch_norm_gelu
from .utils import bn_scale_shift, channels_last_kernel_, eager_no_grad, eval_batch_norm, fold_bn_after, fold_bn_before

__all__ = ['ConvFFN']

_ORDERS = (('conv', 'act', 'norm'), ('conv', 'norm', 'act'))
_CONVS = ('fc1', 'conv', 'fc2')

# CPU inference runs the FFN in micro-batches whose hidden map has at most this many elements (8 MB in fp32): a
# large fresh buffer costs page faults on every call (glibc maps and unmaps it), small ones are reused and stay in
# cache. Measured on P2T-T, 8x224², 1 thread: see docs/models/p2t.md.
INFERENCE_CHUNK_ELEMENTS = 2**21

# Activations with an in-place functional form, used in inference (see the ConvFFN note); GELU goes through
# ``aten.gelu_``. Others (e.g. mmcv's Swish) always run out of place.
_INPLACE_FNS = {nn.ReLU: F.relu, nn.Hardswish: F.hardswish, nn.SiLU: F.silu}

# With ``recompute_act`` the outputs of these ops are kept for backward; the activations (and views) between them
# are recomputed from those outputs instead of being stored as well.
_KEPT_OPS = frozenset({
    torch.ops.aten.addmm.default, torch.ops.aten.mm.default, torch.ops.aten.bmm.default,
    torch.ops.aten.convolution.default
})


def _keep_products(ctx, op, *args, **kwargs) -> CheckpointPolicy:
    return CheckpointPolicy.MUST_SAVE if op in _KEPT_OPS else CheckpointPolicy.PREFER_RECOMPUTE


def _recompute_activations_context():
    return create_selective_checkpoint_contexts(_keep_products)


class ConvFFN(nn.Module):
    """Token FFN: 1x1 conv ``fc1`` -> depthwise 3x3 ``conv`` -> 1x1 conv ``fc2``, each optionally followed by the
    activation (``act1``/``act2``/``act3``) and a 2-D norm (``norm1``/``norm2``/``norm3``) in ``order``.

    ``fc1`` (C -> hidden) -> [act1, norm1] -> ``conv`` [+ its input] -> [act2, norm2] -> ``fc2`` (hidden -> C)
    -> [act3, norm3]. The depthwise residual (``dw_residual``) is added to the conv's output before its act/norm.

    ============  ===========================================================================================
    variant       arguments
    ============  ===========================================================================================
    P2T IRB       ``act_cfg=dict(type='HSwish')``
    MixFFN        ``act_cfg=dict(type='GELU'), fc1_act=False``
    CMT IRFFN     ``act_cfg=dict(type='GELU'), norm_cfg=dict(type='BN'), dw_residual=True``
    HRFormer FFN  ``act_cfg=dict(type='GELU'), norm_cfg=dict(type='BN'), order=('conv', 'norm', 'act'),``
                  ``fc2_act=True``
    ============  ===========================================================================================

    Official FFN keys (below the FFN's prefix) -> ConvFFN keys:

    ===============================  ====================================================================
    official FFN                     official keys -> ConvFFN keys
    ===============================  ====================================================================
    P2T ``IRB``                      ``fc1``, ``conv``, ``fc2`` (the same names)
    PVTv2 / SegFormer ``Mlp``        ``fc1`` -> ``fc1``, ``dwconv.dwconv`` -> ``conv``, ``fc2`` -> ``fc2``; their
                                     Linear weights are 2-D: unsqueeze them to (out, in, 1, 1)
    mmseg / mmdet ``MixFFN``         ``layers.0`` -> ``fc1``, ``layers.1`` -> ``conv``, ``layers.4`` -> ``fc2``
    CMT ``Mlp`` (IRFFN)              ``conv1.0`` -> ``fc1``, ``conv1.2`` -> ``norm1``, ``proj`` -> ``conv``,
                                     ``proj_bn`` -> ``norm2``, ``conv2.0`` -> ``fc2``, ``conv2.1`` -> ``norm3``
    HRFormer ``MlpDWBN``             ``fc1``, ``norm1``, ``dw3x3`` -> ``conv``, ``norm2``, ``fc2``, ``norm3``
    ===============================  ====================================================================

    All moves are prefix renames except the MixFFN Linear kernels; the BN entries carry their buffers
    (``running_mean``, ``running_var``, ``num_batches_tracked``) under the same names.

    NOTE: ``fc1`` and ``fc2`` are ``nn.Conv2d`` 1x1 modules, so official 4-D kernels load 1:1, but they run as
    matrix products on the (B, N, C) tokens. A (B, N, C) tensor is a channels-last (B, C, H, W) map, so the
    depthwise conv and the norms read the tokens in place and no layout copy is made anywhere in the FFN. There is
    one forward path for training, tracing and export. In inference (autograd off, not traced) the
    activations overwrite the conv/norm outputs instead of allocating new hidden-size tensors, eval-mode BatchNorms
    are folded into ``fc1``/``conv``/``fc2`` where they touch them and are in-place affine maps elsewhere
    (:meth:`_forward_folded`), and eval-mode inference runs in equal micro-batches of at most
    ``INFERENCE_CHUNK_ELEMENTS`` hidden elements: fewer fresh pages per call. No private fused kernels: see
    docs/models/p2t.md, "Speed and memory", for what that costs.

    NOTE: ``recompute_act`` (training; opt-in, like ``with_cp``: it saves memory and costs time) stores fewer
    activations for backward and recomputes them, with unchanged values, statistics and gradients:

    * without norms, backward keeps the outputs of the matrix products and convs and recomputes the activations
      from them (selective activation checkpointing): two hidden-size tensors per FFN less, for two elementwise
      passes more;
    * with norms (HRFormer, CMT), each norm/GELU pair with a plain ``nn.BatchNorm2d`` is one autograd node
      (:func:`~mmvit_ext.models.layers.norm_act.batch_norm_gelu`) that stores only the pair's input and recomputes
      the intermediate (a recomputed BatchNorm would update its statistics twice, so the norm is not re-run): one
      tensor of the pair's size less per pair, for one elementwise pass more. SyncBN pairs are stored as usual
      (their statistics are reduced across processes), with a log line when the FFN is built.

    Args:
        embed_dims (int): Input and output channels C.
        hidden_dims (int): Channels of the hidden map.
        act_cfg (dict): The activation, used after each conv named by ``fc1_act`` / the depthwise conv (always) /
            ``fc2_act``. Defaults to ``dict(type='GELU')``.
        fc1_act (bool): Activation after ``fc1``. Defaults to True.
        fc2_act (bool): Activation after ``fc2`` too (HRFormer). Defaults to False.
        dw_residual (bool): Add the depthwise conv's input to its output (CMT). Defaults to False.
        norm_cfg (dict, optional): 2-D norm (e.g. ``dict(type='BN')``) after the convs named in ``norm_after``.
            Defaults to None (no norms).
        norm_after (Sequence[str]): Which of ``'fc1'``, ``'conv'``, ``'fc2'`` get a norm (``norm1``, ``norm2``,
            ``norm3``) when ``norm_cfg`` is given; the others have none (attribute None, no keys).
            Defaults to all three.
        order (tuple[str]): ``('conv', 'act', 'norm')`` (CMT) or ``('conv', 'norm', 'act')`` (HRFormer), as
            mmcv's ``ConvModule``. Defaults to ``('conv', 'act', 'norm')``.
        recompute_act (bool): Store fewer activations for backward and recompute them (see the note).
            Defaults to False.
    """

    def __init__(self,
                 embed_dims: int,
                 *,
                 hidden_dims: int,
                 act_cfg: dict = dict(type='GELU'),
                 fc1_act: bool = True,
                 fc2_act: bool = False,
                 dw_residual: bool = False,
                 norm_cfg: Optional[dict] = None,
                 norm_after: Sequence[str] = _CONVS,
                 order: Tuple[str, str, str] = ('conv', 'act', 'norm'),
                 recompute_act: bool = False) -> None:
        super().__init__()
        order = tuple(order)
        if order not in _ORDERS:
            raise ConfigError(f'order must be one of {_ORDERS}, got {order!r}')
        unknown = set(norm_after) - set(_CONVS)
        if unknown:
            raise ConfigError(f'norm_after takes names from {_CONVS}, got {sorted(unknown)}')
        self.fc1 = nn.Conv2d(embed_dims, hidden_dims, kernel_size=1)
        # channels-last kernel: its gradient (from the channels-last hidden map) has the same strides (DDP)
        self.conv = channels_last_kernel_(
            nn.Conv2d(hidden_dims, hidden_dims, kernel_size=3, padding=1, groups=hidden_dims))
        self.fc2 = nn.Conv2d(hidden_dims, embed_dims, kernel_size=1)
        self.act1 = build_activation_layer(act_cfg) if fc1_act else None
        self.act2 = build_activation_layer(act_cfg)
        self.act3 = build_activation_layer(act_cfg) if fc2_act else None
        channels = dict(fc1=hidden_dims, conv=hidden_dims, fc2=embed_dims)
        for i, name in enumerate(_CONVS, 1):
            norm = None
            if norm_cfg is not None and name in norm_after:
                norm = build_norm_layer(norm_cfg, channels[name])[1]
            setattr(self, f'norm{i}', norm)
        self.dw_residual = dw_residual
        self.norm_first = order[1] == 'norm'
        self.recompute_act = recompute_act
        if recompute_act and norm_cfg is not None and 'Sync' in str(norm_cfg.get('type')):
            print_log(
                f'ConvFFN: recompute_act does not apply to {norm_cfg["type"]} pairs (statistics reduced across '
                'processes); they are stored as usual',
                logger='current',
                level=logging.WARNING)

    @staticmethod
    def _pointwise(conv: nn.Conv2d, x: Tensor) -> Tensor:
        """1x1 conv on channels-last (B, H, W, C) as one matrix product."""
        return F.linear(x, conv.weight.flatten(1), conv.bias)

    @staticmethod
    def _act(act: nn.Module, x: Tensor) -> Tensor:
        """``act(x)``; in inference in place, as ``x`` is always a fresh conv/norm output of this FFN."""
        if not eager_no_grad():
            return act(x)
        if type(act) is nn.GELU:
            return torch.ops.aten.gelu_(x, approximate=act.approximate)
        fn = _INPLACE_FNS.get(type(act))
        return act(x) if fn is None else fn(x, inplace=True)

    def _act_norm(self, x: Tensor, act: nn.Module, norm: nn.Module) -> Tensor:
        """Activation and 2-D norm of (B, H, W, C) in ``order``; either may be None."""
        if self.recompute_act and act is not None and norm is not None and fusable_batch_norm_gelu(norm, act):
            # one autograd node that keeps only x for backward (training-mode BatchNorm2d and GELU)
            return batch_norm_gelu(x.permute(0, 3, 1, 2), norm, act, norm_first=self.norm_first).permute(0, 2, 3, 1)
        if act is not None and not self.norm_first:
            x = self._act(act, x)
        if norm is not None:
            # B, H, W, C -> B, C, H, W (channels-last view) -> B, H, W, C
            x = norm(x.permute(0, 3, 1, 2)).permute(0, 2, 3, 1)
        if act is not None and self.norm_first:
            x = self._act(act, x)
        return x

    def forward(self, x: Tensor, hw_shape: Tuple[int, int]) -> Tensor:
        """Args:
            x (Tensor): Tokens, (B, N, C), N = H * W.
            hw_shape (tuple[int, int]): (H, W).

        Returns:
            Tensor: (B, N, C).
        """
        B, N, C = x.shape
        H, W = hw_shape
        x = x.view(B, H, W, C)
        if self.recompute_act and self.norm1 is self.norm2 is self.norm3 is None and torch.is_grad_enabled():
            x = checkpoint(self._forward, x, use_reentrant=False, context_fn=_recompute_activations_context)
        elif self.training or not eager_no_grad():
            x = self._forward(x)
        else:
            # inference: equal micro-batches whose hidden map stays small (every op is per sample in eval mode)
            if self._foldable():
                forward = partial(self._forward_folded, folded=self._fold())  # the weights folded once per call
            else:
                forward = self._forward
            parts = -(-B * H * W * self.conv.out_channels // INFERENCE_CHUNK_ELEMENTS)
            x = torch.cat([forward(part) for part in x.chunk(parts)]) if parts > 1 else forward(x)
        return x.reshape(B, N, -1)

    def _foldable(self) -> bool:
        return all(norm is None or eval_batch_norm(norm) for norm in (self.norm1, self.norm2, self.norm3))

    def _fold(self) -> Tuple[Tensor, Tensor, Tensor, Tensor, Tensor, Tensor, List[Optional[Tuple[Tensor, Tensor]]]]:
        """Weights of :meth:`_forward_folded`: ``fc1``, the depthwise ``conv`` and ``fc2`` with the eval-mode
        BatchNorms that touch them folded in (right after ``fc1``/``conv``/``fc2``, or right before ``fc2``), and the
        (scale, shift) of each other norm."""
        w1, b1 = self.fc1.weight.flatten(1), self.fc1.bias
        wd, bd = self.conv.weight, self.conv.bias
        w2, b2 = self.fc2.weight.flatten(1), self.fc2.bias
        affines: List[Optional[Tuple[Tensor, Tensor]]] = [None, None, None]
        if self.norm1 is not None:
            if self.norm_first or self.act1 is None:  # fc1 -> norm1
                w1, b1 = fold_bn_after(w1, b1, self.norm1)
            else:
                affines[0] = bn_scale_shift(self.norm1)
        if self.norm2 is not None:
            if not self.norm_first:  # act2 -> norm2 -> fc2
                w2, b2 = fold_bn_before(w2, b2, self.norm2)
            elif not self.dw_residual:  # conv -> norm2
                wd, bd = fold_bn_after(wd, bd, self.norm2)
            else:  # conv + residual -> norm2
                affines[1] = bn_scale_shift(self.norm2)
        if self.norm3 is not None:
            if self.norm_first or self.act3 is None:  # fc2 -> norm3
                w2, b2 = fold_bn_after(w2, b2, self.norm3)
            else:
                affines[2] = bn_scale_shift(self.norm3)
        return w1, b1, wd, bd, w2, b2, affines

    def _forward_folded(self, x: Tensor, folded: tuple) -> Tensor:
        """Inference with eval-mode BatchNorms: (B, H, W, C) -> (B, H, W, C), the same function as
        :meth:`_forward`, with the weights of :meth:`_fold`.

        The BatchNorms folded into ``fc1``/``conv``/``fc2`` cost nothing; the others are in-place per-channel affine
        maps; the residual add and the activations run in place on fresh buffers. CMT's IRFFN thus runs ``norm2``
        and ``norm3`` inside ``fc2``, HRFormer's FFN every norm inside a conv.
        """
        w1, b1, wd, bd, w2, b2, (affine1, affine2, affine3) = folded
        x = self._act_affine(F.linear(x, w1, b1), self.act1, affine1)  # B, H, W, hidden
        # B, H, W, hidden -> B, hidden, H, W (channels-last view, no copy)
        y = self.conv._conv_forward(x.permute(0, 3, 1, 2), wd, bd)
        if self.dw_residual:
            y.add_(x.permute(0, 3, 1, 2))
        # B, hidden, H, W -> B, H, W, hidden (a view: the conv keeps channels-last)
        y = self._act_affine(y.permute(0, 2, 3, 1), self.act2, affine2)
        return self._act_affine(F.linear(y, w2, b2), self.act3, affine3)

    def _act_affine(self, x: Tensor, act: Optional[nn.Module], affine: Optional[Tuple[Tensor, Tensor]]) -> Tensor:
        """Activation and a per-channel (scale, shift) of a fresh (B, H, W, C) tensor, in place, in ``order``."""
        if act is not None and not self.norm_first:
            x = self._act(act, x)
        if affine is not None:
            x = torch.addcmul(affine[1], x, affine[0], out=x)
        if act is not None and self.norm_first:
            x = self._act(act, x)
        return x

    def _forward(self, x: Tensor) -> Tensor:
        """(B, H, W, C) -> (B, H, W, C)."""
        x = self._act_norm(self._pointwise(self.fc1, x), self.act1, self.norm1)  # B, H, W, hidden
        # B, H, W, hidden -> B, hidden, H, W (channels-last view, no copy)
        y = self.conv(x.permute(0, 3, 1, 2))
        if self.dw_residual:
            y = y + x.permute(0, 3, 1, 2)
        # B, hidden, H, W -> B, H, W, hidden (a view: the conv keeps channels-last)
        y = self._act_norm(y.permute(0, 2, 3, 1), self.act2, self.norm2)
        return self._act_norm(self._pointwise(self.fc2, y), self.act3, self.norm3)
