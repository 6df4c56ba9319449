"""Parameters and multiply-accumulates (MACs) of a model or its backbone: MMEngine's ``FlopAnalyzer`` plus the
operator handles it lacks.

The counter is MMEngine's :class:`~mmengine.analysis.FlopAnalyzer` (a port of fvcore's JIT counter), used as it
is: its handles, its per-module table and its parameter count. This module adds only handles for what it does not
count, or counts wrongly, in vision transformers:

* ``aten::scaled_dot_product_attention``: MMEngine has no handle for it and *silently* skips it (it only logs
  "Unsupported operator"), so every model that uses the fused attention kernel would lose its attention cost.
  It is counted here as ``B·heads·(Nq·Nk·d + Nq·Nk·dv)``, exactly what ``q @ k^T`` and ``attn @ v`` cost.
* ``aten::baddbmm``: the attention-with-mask path of ``nn.MultiheadAttention`` (``need_weights=True``) and
  relative-position-bias attention; counted like ``aten::bmm``.
* ``aten::matmul``: MMEngine's handle takes the batch dimensions from the first operand only and so undercounts
  ``(N, C) @ (B, C, M)``-style broadcasting; this one broadcasts both operands (MMEngine's ``aten::mm`` handle,
  always 2-D, is kept).
* ``aten::cdist``: pairwise distances (token clustering); counted as ``B·P·R·M``, the cost of the
  ``|a|^2 + |b|^2 - 2ab`` matmul it is equivalent to.

The ops FlopAnalyzer reports as unsupported are split into element-wise ones, not counted by convention, and the
rest (``FlopsResult.uncounted_unknown``), which may matter.

Unit: every number is a count of multiply-accumulates, which papers (and MMEngine) call "FLOPs". Element-wise
ops (add, mul, activations such as GELU/Hardswish, softmax) are not counted, by the same convention. Norm layers
are counted as MMEngine does (LayerNorm/GroupNorm 5 per element, BatchNorm 1-2 per element at inference); pass
``ignore_ops=('aten::layer_norm', 'aten::batch_norm')`` to leave them out.

Whole models (``part='model'``) are counted as the host repositories' ``get_flops.py`` do: dummy images go
through the model's ``data_preprocessor`` and then ``model(inputs, data_samples, mode='tensor')``
(backbone + neck + head(s), no post-processing); backbones (``part='backbone'``) are fed a ``(1, 3, H, W)``
tensor directly (:mod:`mmvit_ext.analysis.inputs`). Configs are local files or host-repository configs named as
in ``_base_``, e.g. ``'mmdet::pvt/retinanet_pvtv2-b1_fpn_1x_coco.py'``; their GPU-only settings are rewritten for
the device (:func:`mmvit_ext.utils.launch.adapt_cfg_for_device`), so host configs build on a CPU.

Example:
    >>> from mmvit_ext.analysis.flops import get_flops
    >>> res = get_flops('configs/p2t/xxx.py', shape=(224, 224), part='backbone')
    >>> print(res.summary())
"""
import math
from dataclasses import dataclass, field
from typing import Any, Dict, Iterable, List, Optional, Sequence, Tuple, Union

import torch
import torch.nn as nn

from .inputs import build_model_from_cfg, load_analysis_config, prepare_model_and_inputs

__all__ = [
    'MACS_UNIT', 'EXTRA_FLOP_HANDLES', 'FlopsResult', 'count_flops', 'get_flops', 'format_count', 'sdpa_flop_jit',
    'baddbmm_flop_jit', 'matmul_flop_jit', 'cdist_flop_jit'
]

#: How the MAC count is labelled in every printout.
MACS_UNIT = 'GMACs (multiply-accumulates; papers call these FLOPs)'

# Ops that cost MACs-free element-wise work (or none); by the fvcore/paper convention they are not counted.
# They are reported as "not counted (by convention)" rather than as missing handles.
_CONVENTION_UNCOUNTED = frozenset({
    'aten::add',
    'aten::add_',
    'aten::sub',
    'aten::sub_',
    'aten::rsub',
    'aten::mul',
    'aten::mul_',
    'aten::div',
    'aten::div_',
    'aten::neg',
    'aten::abs',
    'aten::pow',
    'aten::sqrt',
    'aten::rsqrt',
    'aten::exp',
    'aten::log',
    'aten::reciprocal',
    'aten::square',
    'aten::gelu',
    'aten::gelu_',
    'aten::hardswish',
    'aten::hardswish_',
    'aten::hardsigmoid',
    'aten::hardsigmoid_',
    'aten::silu',
    'aten::silu_',
    'aten::sigmoid',
    'aten::sigmoid_',
    'aten::tanh',
    'aten::tanh_',
    'aten::leaky_relu',
    'aten::leaky_relu_',
    'aten::elu',
    'aten::elu_',
    'aten::hardtanh',
    'aten::hardtanh_',
    'aten::relu6',
    'aten::softplus',
    'aten::mish',
    'aten::softmax',
    'aten::log_softmax',
    'aten::_softmax',
    'aten::mean',
    'aten::sum',
    'aten::amax',
    'aten::amin',
    'aten::min',
    'aten::argmax',
    'aten::argmin',
    'aten::clamp_min',
    'aten::clamp_max',
    'aten::where',
    'aten::masked_fill_',
    'aten::lt',
    'aten::le',
    'aten::ne',
    'aten::logical_and',
    'aten::logical_or',
    'aten::logical_not',
    'aten::sort',
    'aten::topk',
    'aten::repeat',
    'aten::repeat_interleave',
    'aten::expand_as',
    'aten::view_as',
    'aten::pad',
    'aten::reflection_pad2d',
    'aten::replicate_pad2d',
    'aten::upsample_bicubic2d',  # CMT's bias resize: once per input size, not per image
    'aten::pixel_shuffle',
    'aten::pixel_unshuffle',
    'aten::im2col',
    'aten::col2im',
    'aten::unfold',
    'aten::scatter',
    'aten::scatter_',
    'aten::scatter_add',
    'aten::scatter_add_',
    'aten::index_select',
    'aten::index_add',
    'aten::index_add_',
    'aten::one_hot',
    'aten::dropout_',
    'aten::feature_dropout',
    'aten::alpha_dropout',
    'aten::linspace',
    'aten::meshgrid',
    'aten::rand',
    'aten::randn',
    'aten::rand_like',
    'aten::randn_like',
    'aten::bernoulli_',
    'aten::floor_divide_',
    'aten::div_floor',
    'aten::ceil',
    'aten::round',
    'aten::sign',
    'aten::linalg_vector_norm',
    'aten::norm',
    'aten::frobenius_norm',
    'aten::var',
    'aten::std',
    'aten::var_mean',
    'aten::cumsum',
    'aten::erf',
    'aten::sin',
    'aten::cos',
    'aten::atan2',
    'aten::exp_',
    'aten::fill_',
    'aten::zero_',
    'aten::clone',
    'aten::lift_fresh',
    'aten::numpy_T',
    'aten::movedim',
    'aten::flip',
    'aten::tile',
    'aten::new_ones',
    'aten::ones_like',
    'aten::unflatten',
    'aten::empty_like',
    'aten::max_pool2d',
    'aten::max_pool1d',
    'aten::adaptive_max_pool2d',
    'aten::all',
    'aten::any',
    'aten::isnan',
    'aten::isinf',
    'aten::abs_',
    'aten::masked_select',
    'aten::sigmoid_focal_loss',
    'aten::log_sigmoid',
    'aten::logsumexp',
    'aten::l1_loss',
    'aten::mse_loss',
    'aten::cross_entropy_loss',
    'aten::log2',
    'aten::log10',
    'aten::exp2',
    'aten::expm1',
    'aten::log1p',
    'aten::floor_',
    'aten::ceil_',
    'aten::nan_to_num',
    'aten::maximum',
    'aten::minimum',
    'aten::bitwise_and',
    'aten::bitwise_or',
    'prim::PythonOp.NMSop',
    'torchvision::nms',
})


# ---------------------------------------------------------------------------------------------------------------
# Operator handles. Signature of MMEngine/fvcore handles: (inputs, outputs) -> count, where both are lists of
# ``torch._C.Value`` from the traced graph.
# ---------------------------------------------------------------------------------------------------------------
def _shape(value) -> Optional[List[int]]:
    """Shape of a traced JIT value, or ``None`` when it is not a complete tensor (e.g. an optional mask)."""
    try:
        if value.isCompleteTensor():
            return list(value.type().sizes())
    except RuntimeError:  # not a tensor type
        pass
    return None


def sdpa_flop_jit(inputs: List[Any], outputs: List[Any]) -> int:
    """MACs of ``aten::scaled_dot_product_attention(q, k, v, attn_mask, ...)``.

    ``q``: (..., Nq, d), ``k``: (..., Nk, d), ``v``: (..., Nk, dv). The cost is that of ``q @ k^T``
    (``Nq·Nk·d``) plus ``attn @ v`` (``Nq·Nk·dv``) for every leading (batch × heads) index of ``q``; the
    softmax, scale and additive mask are element-wise and not counted. Grouped-query attention (fewer key/value
    heads than query heads) is counted per query head, as the kernel broadcasts keys and values.
    """
    q, k, v = (_shape(x) for x in inputs[:3])
    if q is None or k is None or v is None:
        raise ValueError('scaled_dot_product_attention traced without complete input shapes')
    batch = math.prod(q[:-2])
    n_q, d = q[-2], q[-1]
    n_k, d_v = k[-2], v[-1]
    return batch * n_q * n_k * (d + d_v)


def baddbmm_flop_jit(inputs: List[Any], outputs: List[Any]) -> int:
    """MACs of ``aten::baddbmm(input, batch1, batch2, ...)``: (b, n, k) @ (b, k, m) -> b·n·k·m."""
    b1, b2 = _shape(inputs[1]), _shape(inputs[2])
    if b1 is None or b2 is None or len(b1) != 3 or len(b2) != 3:
        raise ValueError(f'baddbmm expects two 3-d operands, got shapes {b1} and {b2}')
    return b1[0] * b1[1] * b1[2] * b2[2]


def matmul_flop_jit(inputs: List[Any], outputs: List[Any]) -> int:
    """MACs of ``aten::matmul`` / ``aten::mm`` with numpy broadcasting of the batch dimensions.

    (..., n, k) @ (..., k, m) -> prod(broadcast(batch)) · n · k · m. 1-d operands follow ``torch.matmul``
    (a vector is a (1, k) row on the left and a (k, 1) column on the right).
    """
    a, b = _shape(inputs[0]), _shape(inputs[1])
    if a is None or b is None:
        raise ValueError('matmul traced without complete input shapes')
    if len(a) == 1:
        a = [1] + a
    if len(b) == 1:
        b = b + [1]
    if a[-1] != b[-2]:
        raise ValueError(f'matmul shapes do not match: {a} @ {b}')
    batch = torch.broadcast_shapes(torch.Size(a[:-2]), torch.Size(b[:-2]))
    return math.prod(batch) * a[-2] * a[-1] * b[-1]


def cdist_flop_jit(inputs: List[Any], outputs: List[Any]) -> int:
    """MACs of ``aten::cdist(x1, x2, p)``: (B, P, M) × (B, R, M) -> B·P·R·M, the cost of the equivalent matmul."""
    x1, x2 = _shape(inputs[0]), _shape(inputs[1])
    if x1 is None or x2 is None:
        raise ValueError('cdist traced without complete input shapes')
    batch = torch.broadcast_shapes(torch.Size(x1[:-2]), torch.Size(x2[:-2]))
    return math.prod(batch) * x1[-2] * x2[-2] * x1[-1]


def _zero_flop_jit(inputs: List[Any], outputs: List[Any]) -> int:
    """Handle of an op that is deliberately not counted (``ignore_ops``)."""
    return 0


#: Handles added to MMEngine's defaults (see the module docstring).
EXTRA_FLOP_HANDLES = {
    'aten::scaled_dot_product_attention': sdpa_flop_jit,
    'aten::baddbmm': baddbmm_flop_jit,
    'aten::matmul': matmul_flop_jit,
    'aten::cdist': cdist_flop_jit,
}


# ---------------------------------------------------------------------------------------------------------------
# Results
# ---------------------------------------------------------------------------------------------------------------
def format_count(value: Optional[float], unit: str = 'G', digits: int = 3) -> str:
    """Format a count in a fixed unit, e.g. ``format_count(1.2345e9) == '1.234'`` (``unit`` in K/M/G/T)."""
    if value is None:
        return 'n/a'
    scale = {'': 1, 'K': 1e3, 'M': 1e6, 'G': 1e9, 'T': 1e12}[unit]
    return f'{value / scale:.{digits}f}'


@dataclass
class FlopsResult:
    """Result of :func:`count_flops` / :func:`get_flops`.

    Attributes:
        macs (int): Multiply-accumulates of one forward pass on ``input_shape`` (papers' "FLOPs").
        params (int): Number of parameters of the analysed module.
        input_shape (tuple): Shape of the tensor that was traced, e.g. ``(1, 3, 224, 224)``; for whole models
            it is the shape after the data preprocessor (which may pad).
        by_operator (dict): MACs per operator, e.g. ``{'conv': ..., 'linear': ..., 'scaled_dot_product_attention':
            ...}``.
        uncounted_by_convention (dict): Element-wise ops seen in the trace and not counted on purpose
            (op -> number of calls).
        uncounted_unknown (dict): Ops seen in the trace that have no handle and are not known to be
            element-wise (op -> number of calls). Check them when the total looks too small.
        part (str): ``'model'`` or ``'backbone'``.
        model_type (str): Class name of the analysed module.
        config (str, optional): Config path (or ``pkg::path``) as given, when built from a config.
        table (str, optional): Per-module table (only when requested).
    """
    macs: int
    params: int
    input_shape: Tuple[int, ...]
    by_operator: Dict[str, int] = field(default_factory=dict)
    uncounted_by_convention: Dict[str, int] = field(default_factory=dict)
    uncounted_unknown: Dict[str, int] = field(default_factory=dict)
    part: str = 'model'
    model_type: str = ''
    config: Optional[str] = None
    table: Optional[str] = None

    @property
    def gmacs(self) -> float:
        """MACs in units of 1e9."""
        return self.macs / 1e9

    def summary(self) -> str:
        """Human-readable report naming the unit and the input shape."""
        line = '=' * 78
        rows = [line]
        if self.config:
            rows.append(f'Config:       {self.config}')
        rows.append(f'Part:         {self.part} ({self.model_type})')
        layout = ' (N, C, H, W)' if len(self.input_shape) == 4 else ''
        rows.append(f'Input shape:  {tuple(self.input_shape)}{layout}')
        rows.append(f'Params:       {format_count(self.params, "M")} M ({self.params:,})')
        rows.append(f'FLOPs:        {format_count(self.macs, "G")} {MACS_UNIT}')
        rows.append(f'              = {self.macs:,} MACs = {format_count(2 * self.macs, "G")} G real FLOPs '
                    '(2 per MAC)')
        if self.by_operator:
            rows.append('Counted per operator (GMACs):')
            for op, n in sorted(self.by_operator.items(), key=lambda kv: -kv[1]):
                share = 100.0 * n / self.macs if self.macs else 0.0
                rows.append(f'  {op:<34s} {format_count(n, "G", 4):>12s}  {share:5.1f}%')
        if self.uncounted_by_convention:
            ops = ', '.join(f'{k.replace("aten::", "")} ({v})' for k, v in sorted(self.uncounted_by_convention.items()))
            rows.append(f'Not counted (element-wise, by convention; op (calls)): {ops}')
        if self.uncounted_unknown:
            ops = ', '.join(f'{k} ({v})' for k, v in sorted(self.uncounted_unknown.items()))
            rows.append(f'WARNING: no FLOP handle (not counted; check whether they matter): {ops}')
        rows.append(line)
        if self.table:
            rows.append(self.table)
        return '\n'.join(rows)


# ---------------------------------------------------------------------------------------------------------------
# Counting
# ---------------------------------------------------------------------------------------------------------------
def count_flops(model: nn.Module,
                inputs: Union[torch.Tensor, Tuple[torch.Tensor, ...]],
                *,
                ignore_ops: Iterable[str] = (),
                extra_handles: Optional[Dict[str, Any]] = None,
                table_depth: int = 0) -> FlopsResult:
    """Count parameters and MACs of ``model(*inputs)`` by JIT tracing, with :data:`EXTRA_FLOP_HANDLES`.

    The model is traced as it is (its train/eval mode is left alone) under ``torch.no_grad()``.

    Args:
        model (nn.Module): Module whose ``forward`` takes ``inputs`` and returns tensors (or nested tuples/lists
            of tensors).
        inputs (Tensor | tuple[Tensor]): Positional inputs of the forward.
        ignore_ops (Iterable[str]): Operators to leave out, e.g. ``('aten::layer_norm', 'aten::batch_norm')``.
        extra_handles (dict, optional): More ``{'aten::op': handle}`` entries (override ours).
        table_depth (int): If > 0, also render MMEngine's per-module table down to this depth.

    Returns:
        FlopsResult: The counts. ``input_shape`` is the shape of the first input.
    """
    from mmengine.analysis import FlopAnalyzer, parameter_count

    if isinstance(inputs, torch.Tensor):
        inputs = (inputs, )
    inputs = tuple(inputs)
    handles = dict(EXTRA_FLOP_HANDLES)
    handles.update(extra_handles or {})
    analyzer = FlopAnalyzer(model, inputs)
    analyzer.set_op_handle(**handles)
    for op in ignore_ops:
        # NOTE: ``set_op_handle(op, None)`` only ignores ops that have no handle, so counted ops get a zero one.
        analyzer.set_op_handle(op, _zero_flop_jit)
    analyzer.unsupported_ops_warnings(False).uncalled_modules_warnings(False)
    with torch.no_grad():
        total = int(analyzer.total())
    by_op = {k: int(v) for k, v in analyzer.by_operator().items() if v}
    by_convention, unknown = {}, {}
    for op, n in analyzer.unsupported_ops().items():
        (by_convention if op in _CONVENTION_UNCOUNTED else unknown)[op] = int(n)
    table = None
    if table_depth > 0:
        from mmengine.analysis.print_helper import complexity_stats_table
        table = complexity_stats_table(flops=analyzer, max_depth=table_depth, show_param_shapes=False)
    first = inputs[0]
    return FlopsResult(
        macs=total,
        params=int(parameter_count(model)['']),
        input_shape=tuple(first.shape) if isinstance(first, torch.Tensor) else (),
        by_operator=by_op,
        uncounted_by_convention=by_convention,
        uncounted_unknown=unknown,
        model_type=type(model).__name__,
        table=table)


def get_flops(config: str,
              shape: Union[int, Sequence[int]] = (224, 224),
              *,
              part: str = 'model',
              cfg_options: Optional[dict] = None,
              device: Optional[Union[str, torch.device]] = 'auto',
              ignore_ops: Iterable[str] = (),
              table_depth: int = 0,
              seed: int = 0) -> FlopsResult:
    """Params and MACs of the model (or backbone) of an OpenMMLab config, for one image of ``shape``.

    Args:
        config (str): Config path (mmdet, mmseg, mmpretrain or any config whose ``model`` is registered), or a
            host-repository config ``'mmseg::swin/...py'`` (see :func:`mmvit_ext.utils.launch.resolve_config_path`).
        shape (int | Sequence[int]): Input ``H, W``.
        part (str): ``'model'`` (data preprocessor + ``mode='tensor'`` forward) or ``'backbone'``.
        cfg_options (dict, optional): Config overrides.
        device (str | torch.device): ``'auto'`` = CUDA when available (the count does not depend on it).
        ignore_ops (Iterable[str]): Operators to leave out (see :func:`count_flops`).
        table_depth (int): If > 0, include the per-module table down to this depth.
        seed (int): Seed of the random initialisation and the dummy image. Counts of data-dependent parts
            (e.g. the RoI heads of two-stage detectors, which see the RPN's proposals) follow from them.

    Returns:
        FlopsResult: The counts, with ``config`` and ``part`` set.
    """
    cfg = load_analysis_config(config, cfg_options, device)
    torch.manual_seed(seed)
    model = build_model_from_cfg(cfg, part)
    model.eval()
    wrapped, inputs = prepare_model_and_inputs(
        model, shape, batch_size=1, device=device, scope=cfg.get('default_scope'), seed=seed)
    result = count_flops(wrapped, inputs, ignore_ops=ignore_ops, table_depth=table_depth)
    result.config = config
    result.part = part
    result.model_type = type(model).__name__
    return result
