"""Parameters and multiply-accumulates (MACs) of a model or its backbone, built from an OpenMMLab config.

The counter is MMEngine's :class:`~mmengine.analysis.FlopAnalyzer` (a port of fvcore's JIT counter) with extra
operator handles:

* ``aten::scaled_dot_product_attention``: MMEngine has no handle for it and *silently* skips it (it only logs
  "Unsupported operator"), so every model that uses the fused attention kernel would lose its attention cost.
  It is counted here as ``B·heads·(Nq·Nk·d + Nq·Nk·dv)``, exactly what ``q @ k^T`` and ``attn @ v`` cost.
* ``aten::baddbmm``: the attention-with-mask path of ``nn.MultiheadAttention`` (``need_weights=True``) and
  relative-position-bias attention; counted like ``aten::bmm``.
* ``aten::matmul``: MMEngine's handle takes the batch dimensions from the first operand only and so undercounts
  ``(N, C) @ (B, C, M)``-style broadcasting; this one broadcasts both operands.
* ``aten::cdist``: pairwise distances (token clustering); counted as ``B·P·R·M``, the cost of the
  ``|a|^2 + |b|^2 - 2ab`` matmul it is equivalent to.

Unit: every number is a count of multiply-accumulates, which papers (and MMEngine) call "FLOPs". Element-wise
ops (add, mul, activations such as GELU/Hardswish, softmax) are not counted, by the same convention. Norm layers
are counted as MMEngine does (LayerNorm/GroupNorm 5 per element, BatchNorm 1-2 per element at inference); pass
``ignore_ops=('aten::layer_norm', 'aten::batch_norm')`` to leave them out.

Whole models (``part='model'``) are counted as the host repositories' ``get_flops.py`` do: dummy images go
through the model's ``data_preprocessor`` and then ``model(inputs, data_samples, mode='tensor')``
(backbone + neck + head(s), no post-processing); backbones (``part='backbone'``) are fed a
``(1, 3, H, W)`` tensor directly.

Configs are local files or host-repository configs named as in ``_base_``, e.g.
``'mmdet::pvt/retinanet_pvtv2-b1_fpn_1x_coco.py'`` or ``'mmseg::swin/<file>.py'`` (:func:`resolve_config_path`).
GPU-only pieces that do not change the network (SyncBN, ``AmpOptimWrapper``) are replaced on loading
(:func:`make_analysis_friendly`), so host configs build on a CPU.

Example:
    >>> from mmvit_ext.utils.flops import get_flops
    >>> res = get_flops('configs/p2t/xxx.py', shape=(224, 224), part='backbone')
    >>> print(res.summary())
"""
import math
import os
import os.path as osp
from dataclasses import dataclass, field
from typing import Any, Dict, Iterable, List, Optional, Sequence, Tuple, Union

import torch
import torch.nn as nn

__all__ = [
    'MACS_UNIT', 'EXTRA_FLOP_HANDLES', 'FlopsResult', 'TensorForward', 'count_flops', 'get_flops', 'load_config',
    'resolve_config_path', 'make_analysis_friendly', 'build_model_from_cfg', 'prepare_model_and_inputs',
    'resolve_device', 'format_count', 'parse_shape', 'sdpa_flop_jit', 'baddbmm_flop_jit', 'matmul_flop_jit',
    'cdist_flop_jit'
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
    'aten::mm': matmul_flop_jit,
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


# ---------------------------------------------------------------------------------------------------------------
# Configs, models and dummy inputs (shared with ``mmvit_ext.utils.benchmark``)
# ---------------------------------------------------------------------------------------------------------------
def parse_shape(shape: Union[int, Sequence[int]]) -> Tuple[int, int]:
    """``224`` or ``[224]`` -> ``(224, 224)``; ``[H, W]`` -> ``(H, W)``. Raises ``ValueError`` otherwise."""
    if isinstance(shape, int):
        shape = [shape]
    shape = [int(s) for s in shape]
    if len(shape) == 1:
        shape = shape * 2
    if len(shape) != 2 or min(shape) <= 0:
        raise ValueError(f'--shape must be "H W" or a single size with positive values, got {shape}')
    return shape[0], shape[1]


def resolve_device(device: Optional[Union[str, torch.device]] = 'auto') -> torch.device:
    """``'auto'``/``None`` -> CUDA when available, else CPU; anything else is passed to ``torch.device``."""
    if device is None or str(device) == 'auto':
        return torch.device('cuda' if torch.cuda.is_available() else 'cpu')
    device = torch.device(device)
    if device.type == 'cuda' and not torch.cuda.is_available():
        raise RuntimeError(f'device {device} was requested but CUDA is not available')
    return device


def resolve_config_path(config: str) -> str:
    """The file behind ``config``: a local path, or a host-repository config ``'<pkg>::<dir>/<file>.py'``.

    ``pkg::`` names are those MMEngine accepts in ``_base_`` (``mmdet``, ``mmseg``, ``mmpretrain``, ... and
    ``mmvit_ext`` once imported); the file is ``<installed package>/.mim/configs/<dir>/<file>.py``, as for a
    ``_base_``. Unlike ``mmengine.hub.get_config`` this never installs a missing package.

    Args:
        config (str): Path or ``pkg::path``.

    Returns:
        str: Path of an existing file.

    Raises:
        FileNotFoundError: If the file does not exist (for ``pkg::`` names: in the installed package).
        ValueError: For a malformed ``pkg::`` name, an unknown package or one that is not installed.
    """
    if '::' not in config:
        if not osp.isfile(config):
            raise FileNotFoundError(f'Config file not found: {config}')
        return config
    import mmengine.utils as mmengine_utils
    from mmengine.config.utils import MODULE2PACKAGE, _get_package_and_cfg_path

    import mmvit_ext  # noqa: F401  (registers ``mmvit_ext::``)

    scope = config.partition('::')[0]
    if scope not in MODULE2PACKAGE:
        raise ValueError(f'{config}: unknown package {scope!r} before "::"; known: {", ".join(sorted(MODULE2PACKAGE))}')
    try:
        package, rel_path = _get_package_and_cfg_path(config)
    except ValueError as err:
        raise ValueError(f'{config}: expected "<pkg>::<dir>/<file>.py", e.g. '
                         f'"mmdet::pvt/retinanet_pvtv2-b1_fpn_1x_coco.py" ({err})') from None
    if not mmengine_utils.is_installed(package):
        raise ValueError(f'{config}: package {package!r} is not installed')
    configs_dir = osp.join(mmengine_utils.get_installed_path(package), '.mim', 'configs')
    path = osp.join(configs_dir, rel_path)
    if not osp.isfile(path):
        folder = osp.join(configs_dir, osp.dirname(rel_path))
        hint = ''
        if osp.isdir(folder):
            names = sorted(f for f in os.listdir(folder) if f.endswith('.py'))
            hint = f'; {scope}::{osp.dirname(rel_path)}/ holds: ' + ', '.join(
                names[:12]) + (', ...' if len(names) > 12 else '')
        raise FileNotFoundError(f'Config file not found: {config} (looked for {path}){hint}')
    return path


def make_analysis_friendly(cfg) -> List[str]:
    """Remove GPU/distributed-only pieces that do not change the analysed network; returns what was changed.

    * SyncBN (``SyncBN``/``MMSyncBN``) in ``cfg.model`` becomes ``BN``: identical at inference and in a
      single-process forward/backward, and it builds and runs without a process group or GPU
      (:func:`build_model_from_cfg` also reverts any SyncBN module built anyway).
    * ``optim_wrapper.type='AmpOptimWrapper'`` (which asserts a GPU when built) becomes ``OptimWrapper``.
      The tools never build an optimizer and time the network in float32; this only keeps a reused config safe.
    """
    from mmvit_ext.utils.launch import replace_syncbn
    changes = []
    if cfg.get('model') is not None and replace_syncbn(cfg.model):
        changes.append('SyncBN -> BN in model')
    optim_wrapper = cfg.get('optim_wrapper')
    if isinstance(optim_wrapper, dict) and optim_wrapper.get('type') == 'AmpOptimWrapper':
        optim_wrapper['type'] = 'OptimWrapper'
        for key in ('loss_scale', 'dtype', 'use_fsdp'):
            optim_wrapper.pop(key, None)
        changes.append('AmpOptimWrapper -> OptimWrapper')
    return changes


def load_config(config: str, cfg_options: Optional[dict] = None):
    """Load an OpenMMLab config for analysis, after ``import mmvit_ext`` (which enables ``mmvit_ext::`` bases).

    Args:
        config (str): Path of the config file, or a host-repository config such as
            ``'mmdet::pvt/retinanet_pvtv2-b1_fpn_1x_coco.py'`` (see :func:`resolve_config_path`).
        cfg_options (dict, optional): Overrides merged with ``Config.merge_from_dict``.

    Returns:
        mmengine.Config: The config, with GPU-only pieces made CPU-friendly (:func:`make_analysis_friendly`).

    Raises:
        FileNotFoundError: If ``config`` does not exist.
        ValueError: For an unusable ``pkg::`` name.
    """
    from mmvit_ext.utils.launch import load_config as load_tool_config  # imports mmvit_ext (mmvit_ext:: bases)
    cfg = load_tool_config(resolve_config_path(config), cfg_options)
    make_analysis_friendly(cfg)
    return cfg


def build_model_from_cfg(cfg, part: str = 'model') -> nn.Module:
    """Build ``cfg.model`` (``part='model'``) or ``cfg.model.backbone`` (``part='backbone'``) on the CPU.

    The config's ``default_scope`` is made current first, so ``type='EncoderDecoder'`` resolves in mmseg and
    ``type='mmvit_ext.P2T'`` in our registry. No weights are loaded (``init_weights`` is not called) and SyncBN
    is reverted to BN.

    Raises:
        KeyError: If the config has no ``model`` (or no ``model.backbone`` for ``part='backbone'``).
        ValueError: For an unknown ``part``.
    """
    from mmengine.model import revert_sync_batchnorm
    from mmengine.registry import MODELS, init_default_scope

    if part not in ('model', 'backbone'):
        raise ValueError(f"part must be 'model' or 'backbone', got {part!r}")
    if cfg.get('model') is None:
        raise KeyError(f'config {cfg.filename} has no `model` entry')
    init_default_scope(cfg.get('default_scope', 'mmengine'))
    if part == 'backbone':
        backbone = cfg.model.get('backbone') if hasattr(cfg.model, 'get') else None
        if backbone is None:
            raise KeyError(f'config {cfg.filename}: `model` ({cfg.model.get("type")}) has no `backbone` entry; '
                           'use --part model')
        model = MODELS.build(backbone)
    else:
        model = MODELS.build(cfg.model)
    return revert_sync_batchnorm(model)


def flatten_tensors(obj: Any) -> List[torch.Tensor]:
    """All tensors in a nested tuple/list/dict (in order), for JIT-traceable outputs."""
    if isinstance(obj, torch.Tensor):
        return [obj]
    if isinstance(obj, (list, tuple)):
        return [t for o in obj for t in flatten_tensors(o)]
    if isinstance(obj, dict):
        return [t for o in obj.values() for t in flatten_tensors(o)]
    return []


def _is_mm_model(model: nn.Module) -> bool:
    """True for MMEngine ``BaseModel`` subclasses (``forward(inputs, data_samples, mode)`` + data preprocessor)."""
    from mmengine.model import BaseModel
    return isinstance(model, BaseModel)


class TensorForward(nn.Module):
    """Adapter: ``forward(images) -> tuple of tensors`` for a backbone or a whole OpenMMLab model.

    For an MMEngine ``BaseModel`` (detector, segmentor, classifier) it calls
    ``model(images, data_samples, mode=mode)``, with ``images`` already through the data preprocessor and the
    dummy ``data_samples`` held here (their metainfo is what two-stage detectors need). Any other module
    (a backbone) is called as ``model(images)``.

    Args:
        model (nn.Module): The wrapped module (``self.model``).
        data_samples (list, optional): Data samples passed to a ``BaseModel``.
        mode (str): ``'tensor'`` (network only, returns flattened tensors; traceable) or ``'predict'``
            (with post-processing; returns the model's output untouched; not traceable).
    """

    def __init__(self, model: nn.Module, data_samples: Optional[list] = None, mode: str = 'tensor'):
        super().__init__()
        if mode not in ('tensor', 'predict'):
            raise ValueError(f"mode must be 'tensor' or 'predict', got {mode!r}")
        self.model = model
        self.data_samples = data_samples
        self.mode = mode
        self.is_mm_model = _is_mm_model(model)
        if mode == 'predict' and not self.is_mm_model:
            raise ValueError(f"mode='predict' needs an MMEngine BaseModel, got {type(model).__name__}")

    def forward(self, images: torch.Tensor):
        """Run the wrapped module; returns a tuple of tensors in ``'tensor'`` mode."""
        if self.is_mm_model:
            out = self.model(images, self.data_samples, mode=self.mode)
        else:
            out = self.model(images)
        if self.mode == 'predict':
            return out
        tensors = flatten_tensors(out)
        if not tensors:
            raise RuntimeError(f'{type(self.model).__name__} returned no tensors ({type(out).__name__})')
        return tuple(tensors)


_DATA_SAMPLE_CLASSES = {
    'mmdet': ('mmdet.structures', 'DetDataSample'),
    'mmseg': ('mmseg.structures', 'SegDataSample'),
    'mmpretrain': ('mmpretrain.structures', 'DataSample'),
}


def _make_data_samples(scope: str, n: int, hw: Tuple[int, int]) -> list:
    """``n`` empty data samples of the scope's class with the metainfo detectors/segmentors read at test time."""
    import importlib

    from mmengine.structures import BaseDataElement

    cls = BaseDataElement
    if scope in _DATA_SAMPLE_CLASSES:
        module, name = _DATA_SAMPLE_CLASSES[scope]
        try:
            cls = getattr(importlib.import_module(module), name)
        except ImportError:
            pass
    h, w = hw
    meta = dict(
        img_shape=(h, w),
        ori_shape=(h, w),
        pad_shape=(h, w),
        batch_input_shape=(h, w),
        scale_factor=(1.0, 1.0),
        flip=False,
        flip_direction=None,
        img_path=None)
    return [cls(metainfo=dict(meta)) for _ in range(n)]


def prepare_model_and_inputs(model: nn.Module,
                             shape: Union[int, Sequence[int]],
                             *,
                             batch_size: int = 1,
                             in_channels: int = 3,
                             device: Optional[Union[str, torch.device]] = 'auto',
                             scope: Optional[str] = None,
                             mode: str = 'tensor',
                             seed: int = 0) -> Tuple[TensorForward, torch.Tensor]:
    """Move ``model`` to ``device``, wrap it in :class:`TensorForward` and make dummy inputs.

    For a ``BaseModel``, ``batch_size`` random images of ``(in_channels, H, W)`` with values in [0, 255] go
    through ``model.data_preprocessor(..., training=False)`` (normalisation, padding to its ``size_divisor``,
    ``batch_input_shape`` metainfo), as in the host repositories' ``get_flops.py``. Otherwise the input is a
    ``(batch_size, in_channels, H, W)`` standard-normal tensor.

    Args:
        model (nn.Module): Built model or backbone.
        shape (int | Sequence[int]): ``H, W`` (or one size for a square).
        batch_size (int): Images per batch.
        in_channels (int): Image channels.
        device (str | torch.device): ``'auto'`` = CUDA when available.
        scope (str, optional): ``default_scope`` of the config; picks the data-sample class.
        mode (str): See :class:`TensorForward`.
        seed (int): Seed of the dummy images.

    Returns:
        tuple[TensorForward, Tensor]: The wrapped model (on ``device``) and its input tensor.
    """
    h, w = parse_shape(shape)
    device = resolve_device(device)
    model = model.to(device)
    gen = torch.Generator().manual_seed(seed)
    if _is_mm_model(model):
        images = [torch.rand(in_channels, h, w, generator=gen) * 255 for _ in range(batch_size)]
        samples = _make_data_samples(scope or '', batch_size, (h, w))
        data = model.data_preprocessor(dict(inputs=images, data_samples=samples), False)
        inputs, samples = data['inputs'], data.get('data_samples', samples)
        if samples is None:
            samples = _make_data_samples(scope or '', batch_size, tuple(inputs.shape[-2:]))
        return TensorForward(model, samples, mode=mode), inputs
    inputs = torch.randn(batch_size, in_channels, h, w, generator=gen).to(device)
    return TensorForward(model, None, mode=mode), inputs


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
            host-repository config ``'mmseg::swin/...py'`` (see :func:`resolve_config_path`).
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
    cfg = load_config(config, cfg_options)
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
