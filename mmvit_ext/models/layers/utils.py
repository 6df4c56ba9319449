"""Small tensor-layout and schedule helpers shared by every backbone.

Written for mmvit_ext. Token maps are ``(B, N, C)`` with ``N = H * W`` in row-major order; spatial maps are
``(B, C, H, W)``. The two converters below avoid copies where the memory layout allows it: a ``(B, N, C)``
tensor *is* a channels-last ``(B, C, H, W)`` tensor, so going from tokens to a map is always a view.
"""
import collections.abc
import itertools
from typing import Any, Callable, List, Sequence, Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch import Tensor
from torch.utils.checkpoint import checkpoint

__all__ = [
    'nlc_to_nchw', 'nchw_to_nlc', 'to_ntuple', 'to_2tuple', 'drop_path_schedule', 'maybe_checkpoint',
    'channels_last_kernel_', 'pad_to_multiple', 'eager_no_grad'
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
