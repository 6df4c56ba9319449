"""Small tensor-layout and schedule helpers shared by every backbone.

Written for mmvit_ext. Token maps are ``(B, N, C)`` with ``N = H * W`` in row-major order; spatial maps are
``(B, C, H, W)``. The two converters below avoid copies where the memory layout allows it: a ``(B, N, C)``
tensor *is* a channels-last ``(B, C, H, W)`` tensor, so going from tokens to a map is always a view.
"""
import collections.abc
import itertools
from typing import Any, Callable, List, Optional, Sequence, Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch import Tensor
from torch.nn.modules.batchnorm import _BatchNorm
from torch.utils.checkpoint import checkpoint

__all__ = [
    'nlc_to_nchw', 'nchw_to_nlc', 'to_ntuple', 'to_2tuple', 'drop_path_schedule', 'maybe_checkpoint',
    'channels_last_kernel_', 'pad_to_multiple', 'eager_no_grad', 'eval_batch_norm', 'bn_scale_shift', 'fold_bn_after',
    'fold_bn_before', 'contiguous_output'
]


def nlc_to_nchw(x: Tensor, hw_shape: Tuple[int, int]) -> Tensor:
    """Reshape tokens to a spatial map without copying.

    Args:
        x (Tensor): Tokens of shape (B, N, C), N = H * W in row-major order.
        hw_shape (tuple[int, int]): (H, W).

    Returns:
        Tensor: (B, C, H, W). It is a view with channels-last strides when ``x`` is contiguous; call
        ``.contiguous()`` where a default-layout tensor is required.
    """
    B, N, C = x.shape
    H, W = hw_shape
    assert N == H * W, f'{N} tokens cannot be reshaped to {H}x{W}'
    # B, N, C -> B, H, W, C -> B, C, H, W
    return x.view(B, H, W, C).permute(0, 3, 1, 2)


def nchw_to_nlc(x: Tensor) -> Tensor:
    """Flatten a spatial map to row-major tokens.

    Args:
        x (Tensor): (B, C, H, W).

    Returns:
        Tensor: (B, H * W, C). A view when ``x`` has channels-last strides, otherwise one copy.
    """
    B, C, H, W = x.shape
    # B, C, H, W -> B, H, W, C -> B, N, C
    return x.permute(0, 2, 3, 1).reshape(B, H * W, C)


def to_ntuple(n: int) -> Callable[[Any], tuple]:
    """Return a function that repeats a scalar ``n`` times and passes iterables (except str) through as tuples."""

    def parse(x: Any) -> tuple:
        if isinstance(x, collections.abc.Iterable) and not isinstance(x, str):
            x = tuple(x)
            assert len(x) == n, f'expected {n} values, got {len(x)}: {x}'
            return x
        return tuple(itertools.repeat(x, n))

    return parse


to_2tuple = to_ntuple(2)


def drop_path_schedule(drop_path_rate: float, depths: Sequence[int]) -> List[List[float]]:
    """Stochastic-depth rates rising linearly over all blocks of all stages.

    Block ``k`` (counted over the whole network, from 0) gets ``drop_path_rate * k / (sum(depths) - 1)``, i.e.
    ``torch.linspace(0, drop_path_rate, sum(depths))``; the rate differs from block to block, not per stage.

    Args:
        drop_path_rate (float): Rate of the last block.
        depths (Sequence[int]): Number of blocks per stage.

    Returns:
        list[list[float]]: One list of per-block rates for each stage.

    Examples:
        >>> drop_path_schedule(0.3, [1, 2])
        [[0.0], [0.15000000596046448, 0.30000001192092896]]
    """
    assert 0. <= drop_path_rate < 1., f'drop_path_rate must be in [0, 1), got {drop_path_rate}'
    rates = torch.linspace(0, drop_path_rate, sum(depths), device='cpu').tolist()  # cpu also under a meta device
    bounds = list(itertools.accumulate(depths, initial=0))
    return [rates[start:end] for start, end in zip(bounds[:-1], bounds[1:])]


def maybe_checkpoint(module: Callable[..., Any], *args: Any, enabled: bool, **kwargs: Any) -> Any:
    """Call ``module(*args, **kwargs)``, through activation checkpointing when it can save memory.

    Checkpointing is used only when ``enabled`` is true and autograd is recording; otherwise (inference,
    tracing under ``no_grad``) the call is direct. Outputs are identical either way.

    Args:
        module (Callable): Usually a block.
        *args: Positional arguments of the call.
        enabled (bool): The backbone's ``with_cp``.
        **kwargs: Keyword arguments of the call.
    """
    if enabled and torch.is_grad_enabled():
        return checkpoint(module, *args, use_reentrant=False, **kwargs)
    return module(*args, **kwargs)


def channels_last_kernel_(conv: nn.Conv2d) -> nn.Conv2d:
    """Give ``conv``'s kernel channels-last strides, in place, and return ``conv``. For convs that read
    channels-last maps (the token views of this package).

    Their kernel's gradient comes back channels-last. Where the two layouts differ in memory (a full 3x3 kernel),
    autograd copies the gradient into the parameter's layout on every step. Where they coincide in memory and
    differ only in the stride of a size-1 dimension (a depthwise kernel ``(C, 1, 3, 3)``: ``(9, 1, 3, 1)`` against
    ``(9, 9, 3, 1)``; a 1x1 kernel), autograd keeps the gradient as it is and DistributedDataParallel's exact
    stride check warns "Grad strides do not match bucket view strides". A channels-last kernel avoids both;
    ``Module.to``, ``load_state_dict`` and the in-place initialisers keep its strides.
    """
    weight = conv.weight
    kernel = torch.empty_like(weight, memory_format=torch.channels_last).copy_(weight.detach())
    conv.weight = nn.Parameter(kernel, requires_grad=weight.requires_grad)
    return conv


def pad_to_multiple(x: Tensor, multiple: int) -> Tensor:
    """Zero-pad the bottom and right of a (B, C, H, W) map up to the next multiple of ``multiple`` (both sides).

    Returns ``x`` itself when both sides are multiples already. A conv of kernel and stride ``multiple`` on the
    result gives a ``ceil(H / multiple)`` grid (a ceil-mode downsampling).
    """
    H, W = x.shape[-2:]
    pad_h, pad_w = -int(H) % multiple, -int(W) % multiple
    if pad_h == 0 and pad_w == 0:
        return x
    return F.pad(x, (0, pad_w, 0, pad_h))


def eager_no_grad() -> bool:
    """Autograd off and not traced or scripted: inference-only shortcuts (in-place ops on fresh tensors, caches,
    micro-batches) are safe."""
    return not (torch.is_grad_enabled() or torch.jit.is_tracing() or torch.jit.is_scripting())


def eval_batch_norm(norm: Optional[nn.Module]) -> bool:
    """A BatchNorm (or SyncBatchNorm) that normalises with its running statistics."""
    return isinstance(norm, _BatchNorm) and not norm.training and norm.running_var is not None


def bn_scale_shift(norm: _BatchNorm) -> Tuple[Tensor, Tensor]:
    """Eval-mode BatchNorm as ``x * scale + shift`` per channel."""
    scale = torch.rsqrt(norm.running_var + norm.eps)
    if norm.weight is not None:
        scale = scale * norm.weight
    shift = -norm.running_mean * scale
    if norm.bias is not None:
        shift = shift + norm.bias
    return scale, shift


def fold_bn_after(weight: Tensor, bias: Optional[Tensor], norm: _BatchNorm) -> Tuple[Tensor, Tensor]:
    """``norm(conv(x))`` (or ``norm(x @ W^T + b)``) as one conv / product: output channels of W and b scaled, the
    shift added. ``weight`` is (out, ...) of any rank."""
    scale, shift = bn_scale_shift(norm)
    bias = shift if bias is None else bias * scale + shift
    return weight * scale.view(-1, *([1] * (weight.dim() - 1))), bias


def fold_bn_before(weight: Tensor, bias: Optional[Tensor], norm: _BatchNorm) -> Tuple[Tensor, Tensor]:
    """``norm(x) @ W^T + b`` as one matrix product: columns of W scaled, ``W @ shift`` added to b."""
    scale, shift = bn_scale_shift(norm)
    folded = weight @ shift
    return weight * scale[None, :], folded if bias is None else bias + folded


class _ContiguousOutput(torch.autograd.Function):
    """``x.contiguous()`` whose backward hands the gradient back in ``x``'s layout (see :func:`contiguous_output`)."""

    @staticmethod
    def forward(ctx, x: Tensor) -> Tensor:
        ctx.channels_last = x.dim() == 4 and x.is_contiguous(memory_format=torch.channels_last)
        return x.contiguous()

    @staticmethod
    def backward(ctx, grad: Tensor) -> Tensor:
        if ctx.channels_last:
            return grad.contiguous(memory_format=torch.channels_last)
        return grad


def contiguous_output(x: Tensor) -> Tensor:
    """A default-layout copy of a backbone output (the dense contract) whose gradient flows back channels-last when
    ``x`` is channels-last.

    Plain ``x.contiguous()`` passes the head's default-layout gradient straight into the channels-last network, and
    every BatchNorm / conv backward then mixes layouts: measured on HRFormer-T, 8x224x224, 1 thread, a BatchNorm
    backward on a (8, 256, 56, 56) map took 87 ms against 9 ms with matching layouts. Outside autograd (inference,
    tracing without grad) this is ``x.contiguous()``.
    """
    if torch.is_grad_enabled() and x.requires_grad and not torch.jit.is_tracing():
        return _ContiguousOutput.apply(x)
    return x.contiguous()
