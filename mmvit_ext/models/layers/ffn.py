"""Feed-forward networks with a depthwise conv inside, shared by the mmvit_ext backbones.

Written for mmvit_ext after the FFNs of P2T (IRB, arXiv 2106.12011), PVTv2/SegFormer (MixFFN, arXiv 2106.13797)
and CMT (IRFFN, arXiv 2107.06263). No code is copied from those repositories.
"""
from typing import Optional, Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F
from mmcv.cnn import build_activation_layer, build_norm_layer
from torch import Tensor
from torch.utils.checkpoint import CheckpointPolicy, checkpoint, create_selective_checkpoint_contexts

__all__ = ['ConvFFN']

# oneDNN kernels that fuse bias and activation into the GEMM / conv (the kernels TorchInductor emits on CPU). They
# have no autograd formula, so they serve CPU inference only; everything else takes the plain path.
_ONEDNN = (
    torch.backends.mkldnn.is_available() and hasattr(torch.ops.mkldnn, '_linear_pointwise')
    and hasattr(torch.ops.mkldnn, '_convolution_pointwise'))

# The fused path runs in micro-batches whose hidden map has at most this many elements (8 MB in fp32): large fresh
# buffers cost page faults on every call (glibc maps and unmaps them), small ones are reused; ~2x faster on CPU.
_ONEDNN_CHUNK_ELEMENTS = 2**21


def _onednn_activation(act: nn.Module) -> Optional[Tuple[str, str]]:
    """(post-op, algorithm) of an activation module in oneDNN's pointwise ops, or None if it has none."""
    if type(act) is nn.Hardswish:
        return 'hardswish', ''
    if type(act) is nn.ReLU:
        return 'relu', ''
    if type(act) is nn.SiLU:
        return 'swish', ''
    if type(act) is nn.GELU:
        return 'gelu', act.approximate
    return None


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


def _onednn_inference(x: Tensor) -> bool:
    """Whether the fused oneDNN path may run: fp32 CPU inference, not traced, scripted or exported."""
    return (x.device.type == 'cpu' and x.dtype == torch.float32 and not torch.is_grad_enabled()
            and torch.backends.mkldnn.enabled and not torch.jit.is_tracing() and not torch.jit.is_scripting())


class ConvFFN(nn.Module):
    """Token FFN ``fc1 (1x1) -> [act] -> [norm1] -> conv (dw 3x3) [+ identity] -> act -> [norm2] -> fc2 (1x1)
    -> [norm3]``.

    ===========  ===================================================================
    variant      arguments
    ===========  ===================================================================
    P2T IRB      ``act_cfg=dict(type='HSwish')`` (defaults otherwise)
    MixFFN       ``act_cfg=dict(type='GELU'), fc1_act=False``
    CMT IRFFN    ``act_cfg=dict(type='GELU'), dw_residual=True, norm_cfg=dict(type='BN')``
    ===========  ===================================================================

    ``fc1`` and ``fc2`` are ``nn.Conv2d`` 1x1 modules, so official 4-D kernels load 1:1, but they run as
    matrix products on the (B, N, C) tokens.

    NOTE: A (B, N, C) tensor is a channels-last (B, C, H, W) map, so the depthwise conv reads the tokens
    in place and no layout copy is made anywhere in the FFN. In fp32 CPU inference (autograd off, not traced)
    and without norms or the depthwise residual, bias and activation are fused into the GEMMs and the depthwise
    conv with oneDNN (``torch.ops.mkldnn._linear_pointwise`` / ``_convolution_pointwise``), which saves two
    passes over the largest tensor of the network, and large batches run in micro-batches; the results equal the
    plain path to float rounding.

    NOTE: With ``recompute_act`` (training), backward keeps the outputs of ``fc1`` and ``conv`` and recomputes the
    two activations from them (selective activation checkpointing) instead of also storing the activations'
    outputs: two hidden-size tensors per FFN less, for two elementwise passes more. Gradients are unchanged.

    Args:
        embed_dims (int): Input and output channels C.
        hidden_dims (int): Channels of the hidden map.
        act_cfg (dict): Activation after the depthwise conv (and after ``fc1`` when ``fc1_act``).
            Defaults to ``dict(type='GELU')``.
        fc1_act (bool): Activation after ``fc1`` as well. Defaults to True.
        dw_residual (bool): Add the hidden map to the depthwise conv's output. Defaults to False.
        norm_cfg (dict, optional): 2-D norm after ``fc1``/act (``norm1``), after the depthwise act (``norm2``)
            and after ``fc2`` (``norm3``). Defaults to None (no norms).
        recompute_act (bool, optional): Recompute the activations in backward rather than store them (see the
            note). Only without norms (a recomputed BatchNorm would update its statistics twice).
            Defaults to None: True without norms, False with them.
    """

    def __init__(self,
                 embed_dims: int,
                 *,
                 hidden_dims: int,
                 act_cfg: dict = dict(type='GELU'),
                 fc1_act: bool = True,
                 dw_residual: bool = False,
                 norm_cfg: Optional[dict] = None,
                 recompute_act: Optional[bool] = None) -> None:
        super().__init__()
        if recompute_act is None:
            recompute_act = norm_cfg is None
        assert not (recompute_act and norm_cfg is not None), 'recompute_act needs norm_cfg=None'
        self.fc1 = nn.Conv2d(embed_dims, hidden_dims, kernel_size=1)
        self.act1 = build_activation_layer(act_cfg) if fc1_act else None
        self.conv = nn.Conv2d(hidden_dims, hidden_dims, kernel_size=3, padding=1, groups=hidden_dims)
        self.act2 = build_activation_layer(act_cfg)
        self.fc2 = nn.Conv2d(hidden_dims, embed_dims, kernel_size=1)
        self.dw_residual = dw_residual
        if norm_cfg is not None:
            self.norm1 = build_norm_layer(norm_cfg, hidden_dims)[1]
            self.norm2 = build_norm_layer(norm_cfg, hidden_dims)[1]
            self.norm3 = build_norm_layer(norm_cfg, embed_dims)[1]
        else:
            self.norm1 = self.norm2 = self.norm3 = None
        self.recompute_act = recompute_act
        act = _onednn_activation(self.act2)
        self._onednn_act = act if _ONEDNN and norm_cfg is None and not dw_residual else None

    @staticmethod
    def _pointwise(conv: nn.Conv2d, x: Tensor) -> Tensor:
        """1x1 conv on channels-last (B, H, W, C) as one matrix product."""
        return F.linear(x, conv.weight.flatten(1), conv.bias)

    @staticmethod
    def _norm(norm: nn.Module, x: Tensor) -> Tensor:
        """2-D norm on (B, H, W, C)."""
        # B, H, W, C -> B, C, H, W (channels-last view) -> B, H, W, C
        return norm(x.permute(0, 3, 1, 2)).permute(0, 2, 3, 1)

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
        if torch.jit.is_tracing() or torch.jit.is_scripting():
            x = self._forward_plain(x)
        elif self._onednn_act is not None and _onednn_inference(x):
            x = self._forward_onednn(x)
        elif self.recompute_act and torch.is_grad_enabled():
            x = checkpoint(self._forward_plain, x, use_reentrant=False, context_fn=_recompute_activations_context)
        else:
            x = self._forward_plain(x)
        return x.reshape(B, N, -1)

    def _forward_plain(self, x: Tensor) -> Tensor:
        """(B, H, W, C) -> (B, H, W, C)."""
        x = self._pointwise(self.fc1, x)  # B, H, W, hidden
        if self.act1 is not None:
            x = self.act1(x)
        if self.norm1 is not None:
            x = self._norm(self.norm1, x)
        # B, H, W, hidden -> B, hidden, H, W (channels-last view, no copy)
        y = self.conv(x.permute(0, 3, 1, 2))
        if self.dw_residual:
            y = y + x.permute(0, 3, 1, 2)
        y = self.act2(y)
        if self.norm2 is not None:
            y = self.norm2(y)
        # B, hidden, H, W -> B, H, W, hidden (a view when the conv kept channels-last)
        x = self._pointwise(self.fc2, y.permute(0, 2, 3, 1))
        if self.norm3 is not None:
            x = self._norm(self.norm3, x)
        return x

    def _forward_onednn(self, x: Tensor) -> Tensor:
        """Fused CPU inference path on (B, H, W, C) -> (B, H, W, C), in micro-batches over B."""
        B, H, W, _ = x.shape
        chunk = max(1, _ONEDNN_CHUNK_ELEMENTS // (H * W * self.conv.out_channels))
        if chunk < B:
            return torch.cat([self._forward_onednn(part) for part in x.split(chunk)])
        act, algorithm = self._onednn_act
        fc1_act, fc1_algorithm = (act, algorithm) if self.act1 is not None else ('none', '')
        x = torch.ops.mkldnn._linear_pointwise(x, self.fc1.weight.flatten(1), self.fc1.bias, fc1_act, [], fc1_algorithm)
        conv = self.conv
        # B, H, W, hidden -> B, hidden, H, W (channels-last view); the output stays channels-last
        y = torch.ops.mkldnn._convolution_pointwise(
            x.permute(0, 3, 1, 2), conv.weight, conv.bias, list(conv.padding), list(conv.stride), list(conv.dilation),
            conv.groups, act, [], algorithm)
        return torch.ops.mkldnn._linear_pointwise(
            y.permute(0, 2, 3, 1), self.fc2.weight.flatten(1), self.fc2.bias, 'none', [], '')
