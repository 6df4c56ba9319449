"""Configs, models and dummy inputs for the analysis tools (FLOPs, benchmark, Expedite report).

* :func:`load_analysis_config`: a config file or ``pkg::`` name (:func:`mmvit_ext.utils.launch.load_config`) with
  its GPU-only settings rewritten for the device (:func:`mmvit_ext.utils.launch.adapt_cfg_for_device`);
* :func:`build_model_from_cfg`: the model or its backbone in the config's ``default_scope``, no weights loaded;
* :func:`prepare_model_and_inputs`: dummy images through the model's data preprocessor, and :class:`TensorForward`,
  which calls a whole OpenMMLab model (``mode='tensor'`` or ``'predict'``) or a backbone with one tensor.
"""
from typing import Any, List, Optional, Sequence, Tuple, Union

import torch
import torch.nn as nn

from mmvit_ext.utils.launch import UserError, adapt_cfg_for_device, load_config, resolve_device

__all__ = [
    'parse_shape', 'load_analysis_config', 'build_model_from_cfg', 'flatten_tensors', 'TensorForward',
    'prepare_model_and_inputs'
]


def parse_shape(shape: Union[int, Sequence[int]]) -> Tuple[int, int]:
    """``224`` or ``[224]`` -> ``(224, 224)``; ``[H, W]`` -> ``(H, W)``.

    Raises:
        UserError: For anything else.
    """
    if isinstance(shape, int):
        shape = [shape]
    shape = [int(s) for s in shape]
    if len(shape) == 1:
        shape = shape * 2
    if len(shape) != 2 or min(shape) <= 0:
        raise UserError(f'--shape must be "H W" or a single size with positive values, got {shape}')
    return shape[0], shape[1]


def load_analysis_config(config: str, cfg_options: Optional[dict] = None, device: Union[str, torch.device] = 'auto'):
    """Load an OpenMMLab config for analysis on ``device``.

    Args:
        config (str): Path of the config file, or a host-repository config such as
            ``'mmdet::pvt/retinanet_pvtv2-b1_fpn_1x_coco.py'`` (see :func:`mmvit_ext.utils.launch.resolve_config_path`).
        cfg_options (dict, optional): Overrides merged with ``Config.merge_from_dict``.
        device (str | torch.device): Where the model will run; GPU-only settings are rewritten for a CPU
            (:func:`mmvit_ext.utils.launch.adapt_cfg_for_device`, silently).

    Returns:
        mmengine.Config: The config.

    Raises:
        UserError: If ``config`` does not exist or is an unusable ``pkg::`` name.
    """
    cfg = load_config(config, cfg_options)
    adapt_cfg_for_device(cfg, device, log=None)
    return cfg


def build_model_from_cfg(cfg, part: str = 'model') -> nn.Module:
    """Build ``cfg.model`` (``part='model'``) or ``cfg.model.backbone`` (``part='backbone'``) on the CPU.

    The config's ``default_scope`` is made current first, so ``type='EncoderDecoder'`` resolves in mmseg and
    ``type='mmvit_ext.P2T'`` in our registry. No weights are loaded (``init_weights`` is not called) and SyncBN
    is reverted to BN.

    Raises:
        UserError: If the config has no ``model`` (or no ``model.backbone`` for ``part='backbone'``).
        ValueError: For an unknown ``part``.
    """
    from mmengine.model import revert_sync_batchnorm
    from mmengine.registry import MODELS, init_default_scope

    if part not in ('model', 'backbone'):
        raise ValueError(f"part must be 'model' or 'backbone', got {part!r}")
    if cfg.get('model') is None:
        raise UserError(f'config {cfg.filename} has no `model` entry')
    init_default_scope(cfg.get('default_scope', 'mmengine'))
    if part == 'backbone':
        backbone = cfg.model.get('backbone') if hasattr(cfg.model, 'get') else None
        if backbone is None:
            raise UserError(f'config {cfg.filename}: `model` ({cfg.model.get("type")}) has no `backbone` entry; '
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
