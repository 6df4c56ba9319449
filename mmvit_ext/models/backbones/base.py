"""``BaseViTBackbone``: the contract every mmvit_ext backbone shares.

Written for mmvit_ext after mmpretrain's ``arch``/``out_indices``/``frozen_stages``/``norm_eval`` conventions and
its ``_version`` + load-hook key migration (github open-mmlab/mmpretrain, Apache-2.0) and timm's strict,
idempotent checkpoint filtering. No code is copied.

Vocabulary: a backbone is built of ``num_stages`` *stages* (what ``frozen_stages`` counts and what per-stage arch
lists have one entry for) and returns some of its ``num_outputs`` selectable *outputs* (what ``out_indices``
indexes). In a chain (P2T, CMT, ResT, CSWin, Shuffle) output ``i`` is the map of stage ``i``; in a multi-branch
network (HRFormer) output ``i`` is branch ``i`` of the last stage, while the stages are the steps that add branches.

A subclass

1. sets the class attributes ``arch_zoo``, ``essential_keys``, ``per_stage_keys``, ``num_stages`` (and
   ``num_outputs`` if it differs), ``converter`` (a family in :mod:`mmvit_ext.converters`, or None) and, when its
   state-dict layout changes, a higher ``_version`` with :meth:`upgrade_state_dict`;
2. may extend :meth:`validate_arch` (e.g. per-branch lists inside per-stage lists);
3. calls ``super().__init__(arch, out_indices=..., ...)``, which resolves and validates ``self.arch_settings`` and
   ``self.out_indices``;
4. builds ``self.stages`` (an ``nn.ModuleList``), sets ``self.feature_channels`` and ``self.feature_strides``
   (one entry per selectable output) and finally calls ``self._freeze_stages()``;
5. overrides ``_frozen_modules()`` if its stem is not ``self.stem``;
6. wraps each block call in ``maybe_checkpoint(block, ..., enabled=self.with_cp)``;
7. in a chain, forwards with :meth:`forward_chain`, after :meth:`check_input_size` if it sets ``min_input_size``.
"""
import copy
from typing import Any, ClassVar, Dict, FrozenSet, List, Optional, Sequence, Tuple, Union

import torch.nn as nn
from mmengine.logging import print_log
from mmengine.model import BaseModule
from mmengine.model.weight_init import initialize
from mmengine.runner import CheckpointLoader
from torch import Tensor
from torch.nn.modules.batchnorm import _BatchNorm

from mmvit_ext.converters import get_converter, is_official_layout
from mmvit_ext.converters._rules import state_dict_location, strip_prefix, unwrap_state_dict
from mmvit_ext.utils.checkpoint import StateDictMismatchError, load_state_dict_strict
from mmvit_ext.utils.errors import ConfigError

__all__ = ['BaseViTBackbone', 'PretrainedLoadError']


class PretrainedLoadError(StateDictMismatchError):
    """A pretrained checkpoint does not fit the backbone: the keys that differ and how to fix it (nothing was
    loaded)."""


class BaseViTBackbone(BaseModule):
    """Base class of the mmvit_ext backbones: arch tables, dense outputs, freezing, checkpointing, loading.

    Args:
        arch (str | dict): A name (or alias) in ``arch_zoo``, or a dict with exactly ``essential_keys``; each
            value under ``per_stage_keys`` is a list of length ``num_stages``.
        out_indices (int | Sequence[int]): Outputs that ``forward`` returns, in order. Negative indices count from
            the end.
        frozen_stages (int): ``-1`` freezes nothing, ``0`` the stem, ``k >= 1`` the stem and the first ``k``
            stages (``requires_grad=False`` and eval mode), as in mmpretrain/mmdet.
        norm_eval (bool): Keep every BatchNorm in eval mode while training. Defaults to False.
        with_cp (bool): Activation checkpointing of every block (same outputs, less memory). Defaults to False.
        init_cfg (dict | list[dict], optional): MMEngine init config, applied after the family's own
            initialisation (:attr:`default_init_cfg`, which ``init_cfg=None`` keeps). ``dict(type='Pretrained',
            checkpoint=..., prefix=...)`` loads strictly through :meth:`load_pretrained` instead.

    Attributes:
        arch_settings (dict): The resolved arch.
        out_indices (tuple[int]): Normalised, sorted, validated.
        out_channels (tuple[int]): Channels of each returned output.
        out_strides (tuple[int]): Stride of each returned output with respect to the input.
        feature_channels (tuple[int]): Channels of every selectable output (set by the subclass).
        feature_strides (tuple[int]): Strides of every selectable output (set by the subclass).
    """

    arch_zoo: ClassVar[Dict[str, Dict[str, Any]]] = {}
    essential_keys: ClassVar[FrozenSet[str]] = frozenset()
    per_stage_keys: ClassVar[FrozenSet[str]] = frozenset()
    num_stages: ClassVar[int] = 4
    num_outputs: ClassVar[Optional[int]] = None  # None: one output per stage
    converter: ClassVar[Optional[str]] = None
    #: The family's official initialisation (MMEngine init configs). :meth:`init_weights` always applies it, so
    #: ``init_cfg=None`` or an ``init_cfg`` that only adds entries (applied after it) keeps it; a ``Pretrained``
    #: entry replaces every weight instead.
    default_init_cfg: ClassVar[Optional[List[dict]]] = None
    # Version of the state-dict layout, stored by ``state_dict()`` in its metadata; see ``upgrade_state_dict``.
    _version: ClassVar[int] = 1

    feature_channels: Tuple[int, ...]
    feature_strides: Tuple[int, ...]
    #: Smallest input side the backbone accepts (set by the subclass; None: any), see :meth:`check_input_size`.
    min_input_size: Optional[int] = None

    def __init__(self,
                 arch: Union[str, dict],
                 *,
                 out_indices: Union[int, Sequence[int]],
                 frozen_stages: int = -1,
                 norm_eval: bool = False,
                 with_cp: bool = False,
                 init_cfg: Union[dict, List[dict], None] = None) -> None:
        super().__init__(init_cfg=init_cfg)
        self.arch_settings = self.resolve_arch(arch)
        self.out_indices = self._normalize_out_indices(out_indices)
        if not (isinstance(frozen_stages, int) and -1 <= frozen_stages <= self.num_stages):
            raise ConfigError(f'frozen_stages must be an int in [-1, {self.num_stages}], got {frozen_stages!r}')
        self.frozen_stages = frozen_stages
        self.norm_eval = norm_eval
        self.with_cp = with_cp

    # ------------------------------------------------------------------ arch and outputs
    @classmethod
    def resolve_arch(cls, arch: Union[str, dict]) -> Dict[str, Any]:
        """Look up or validate an arch; returns a deep copy.

        Raises:
            ConfigError: (a ``ValueError``) Unknown name (the allowed names are listed), wrong keys, or per-stage
                lists whose length is not ``num_stages``.
        """
        if isinstance(arch, str):
            key = arch.lower()
            if key not in cls.arch_zoo:
                raise ConfigError(f'{cls.__name__}: unknown arch {arch!r}; choose one of {sorted(cls.arch_zoo)} '
                                  f'or give a dict with the keys {sorted(cls.essential_keys)}')
            arch = cls.arch_zoo[key]
        elif not isinstance(arch, dict):
            raise ConfigError(f'{cls.__name__}: arch must be a str or a dict, got {type(arch).__name__}')
        elif set(arch) != cls.essential_keys:
            missing, extra = cls.essential_keys - set(arch), set(arch) - cls.essential_keys
            raise ConfigError(f'{cls.__name__}: a custom arch needs exactly the keys {sorted(cls.essential_keys)}; '
                              f'missing {sorted(missing)}, unexpected {sorted(extra)}')
        arch = copy.deepcopy(dict(arch))
        cls.validate_arch(arch)
        return arch

    @classmethod
    def validate_arch(cls, arch: Dict[str, Any]) -> None:
        """Check a resolved arch (zoo entries too); extend it for family rules, calling ``super()`` first.

        The default checks that every value under ``per_stage_keys`` is a list of ``num_stages`` entries.

        Raises:
            ConfigError: (a ``ValueError``) Naming the key, the expected length and the value.
        """
        for key in sorted(cls.per_stage_keys):
            value = arch[key]
            if not isinstance(value, (list, tuple)) or len(value) != cls.num_stages:
                raise ConfigError(f'{cls.__name__}: arch[{key!r}] must be a list with one entry per stage '
                                  f'({cls.num_stages}), got {value!r}')

    @classmethod
    def _num_outputs(cls) -> int:
        return cls.num_stages if cls.num_outputs is None else cls.num_outputs

    def _normalize_out_indices(self, out_indices: Union[int, Sequence[int]]) -> Tuple[int, ...]:
        if isinstance(out_indices, int):
            out_indices = [out_indices]
        if not isinstance(out_indices, (list, tuple)) or not out_indices:
            raise ConfigError(f'out_indices must be an int or a non-empty sequence of ints, got {out_indices!r}')
        n = self._num_outputs()
        allowed = range(-n, n)
        bad = [i for i in out_indices if not isinstance(i, int) or i not in allowed]
        if bad:
            raise ConfigError(f'out_indices {list(out_indices)}: {bad} out of range; allowed are '
                              f'{list(allowed)} ({n} outputs)')
        normalized = sorted(i % n for i in out_indices)
        if len(set(normalized)) != len(normalized):
            raise ConfigError(f'out_indices {list(out_indices)} name the same output twice')
        return tuple(normalized)

    @property
    def out_channels(self) -> Tuple[int, ...]:
        return tuple(self.feature_channels[i] for i in self.out_indices)

    @property
    def out_strides(self) -> Tuple[int, ...]:
        return tuple(self.feature_strides[i] for i in self.out_indices)

    # ------------------------------------------------------------------ forward helpers
    def check_input_size(self, x: Tensor, reason: str) -> None:
        """Raise a :class:`ConfigError` (a ``ValueError``) naming ``min_input_size`` and ``reason`` if a side of the
        (B, C, H, W) input ``x`` is smaller."""
        height, width = int(x.shape[-2]), int(x.shape[-1])
        minimum = self.min_input_size
        if minimum is not None and min(height, width) < minimum:
            raise ConfigError(f'{type(self).__name__} needs inputs of at least {minimum}x{minimum} px, got '
                              f'{height}x{width}: {reason}. Resize or pad the input (e.g. a Resize or Pad transform '
                              'in the pipeline).')

    def forward_chain(self, x: Tensor) -> Tuple[Tensor, ...]:
        """Forward of a chain of stages (``stage(x, with_cp=...)``): the stages up to the last of ``out_indices``
        (later ones are not computed), each selected output made contiguous."""
        outs = []
        for i, stage in enumerate(self.stages[:self.out_indices[-1] + 1]):
            x = stage(x, with_cp=self.with_cp)
            if i in self.out_indices:
                outs.append(x.contiguous())
        return tuple(outs)

    # ------------------------------------------------------------------ state-dict versions
    def upgrade_state_dict(self, state_dict: Dict[str, Any], prefix: str, version: Optional[int]) -> None:
        """Migrate, in place, the keys under ``prefix`` of a state dict saved with an older ``_version``.

        Called before loading whenever the stored version is older than ``_version`` or absent (``None``: a
        plain dict, e.g. a converter's output, which must then already be in the current layout or be migrated
        idempotently). The default does nothing. Resizing tables for another input or window size belongs to
        load hooks of the layer that owns them (e.g. ``RelativePositionBias``).
        """

    def _load_from_state_dict(self, state_dict, prefix, local_metadata, strict, missing_keys, unexpected_keys,
                              error_msgs) -> None:
        version = local_metadata.get('version')
        if version is None or version < self._version:
            self.upgrade_state_dict(state_dict, prefix, version)
        super()._load_from_state_dict(state_dict, prefix, local_metadata, strict, missing_keys, unexpected_keys,
                                      error_msgs)

    # ------------------------------------------------------------------ freezing and train mode
    def _frozen_modules(self) -> List[nn.Module]:
        """Modules frozen by ``frozen_stages``: ``self.stem`` (if ``>= 0``), then ``stages[:frozen_stages]``."""
        if self.frozen_stages < 0:
            return []
        stem = getattr(self, 'stem', None)
        return ([stem] if stem is not None else []) + list(self.stages[:self.frozen_stages])

    def _freeze_stages(self) -> None:
        for module in self._frozen_modules():
            module.eval()
            for param in module.parameters():
                param.requires_grad = False

    def train(self, mode: bool = True) -> 'BaseViTBackbone':
        super().train(mode)
        self._freeze_stages()
        if mode and self.norm_eval:
            for m in self.modules():
                if isinstance(m, _BatchNorm):  # includes SyncBatchNorm
                    m.eval()
        return self

    # ------------------------------------------------------------------ pretrained weights
    def init_weights(self) -> None:
        """Apply :attr:`default_init_cfg`, then ``init_cfg``; a ``Pretrained`` entry loads strictly with
        :meth:`load_pretrained` instead.

        A strict load sets every parameter and buffer, so other entries next to ``Pretrained`` are skipped.
        """
        cfgs = self.init_cfg if isinstance(self.init_cfg, list) else [self.init_cfg]
        pretrained = [c for c in cfgs if isinstance(c, dict) and c.get('type') == 'Pretrained']
        if not pretrained:
            if self.default_init_cfg and not self._is_init:
                initialize(self, copy.deepcopy(self.default_init_cfg))
            super().init_weights()
            return
        if len(pretrained) > 1:
            raise ConfigError(f'init_cfg holds {len(pretrained)} Pretrained entries; give one')
        cfg = dict(pretrained[0])
        cfg.pop('type')
        unsupported = set(cfg) - {'checkpoint', 'prefix', 'map_location'}
        if unsupported:
            raise ConfigError(f'unsupported Pretrained init_cfg keys {sorted(unsupported)}; allowed: checkpoint, '
                              f'prefix, map_location (loading is always strict)')
        self.load_pretrained(cfg['checkpoint'], prefix=cfg.get('prefix'), map_location=cfg.get('map_location', 'cpu'))
        self._is_init = True

    def load_pretrained(self, checkpoint: str, *, prefix: Optional[str] = None, map_location: str = 'cpu') -> None:
        """Load a checkpoint strictly, converting official layouts on the fly.

        Steps: load with MMEngine's ``CheckpointLoader`` (any scheme it knows: path, URL, ...); unwrap
        ``state_dict``/``model`` and strip ``module.``; keep the keys under ``prefix`` (e.g. ``'backbone.'`` of a
        whole detector) if given; run the family converter with ``target='backbone'`` (it converts official
        keys, passes converted keys through, drops classification heads and non-backbone parts); load with
        every key required.

        Args:
            checkpoint (str): Path or URL.
            prefix (str, optional): Keep only keys under this prefix, with it removed. Defaults to None.
            map_location (str): Defaults to 'cpu'.

        Raises:
            PretrainedLoadError: Missing or unexpected keys, or shape mismatches; the message lists them and the
                likely fixes.
        """
        loaded = CheckpointLoader.load_checkpoint(checkpoint, map_location=map_location)
        location = state_dict_location(loaded)
        state_dict = unwrap_state_dict(loaded)
        if prefix:
            state_dict = strip_prefix(state_dict, prefix)
        if self.converter is not None:
            if is_official_layout(self.converter, state_dict):
                print_log(
                    f'{type(self).__name__}: converting the official {self.converter} layout of {checkpoint}',
                    logger='current')
            state_dict = get_converter(self.converter)(state_dict, target='backbone')
        self.load_state_dict_strict(
            state_dict, source=checkpoint if location == 'the bare dict' else f'{checkpoint} ({location})')

    def load_state_dict_strict(self, state_dict: Dict[str, Any], source: str = 'the state dict') -> None:
        """Load every key with equal shapes, or nothing: :func:`mmvit_ext.utils.checkpoint.load_state_dict_strict`
        with this backbone's fixes in the message.

        Raises:
            PretrainedLoadError: The missing, unexpected and shape-mismatched keys, and the likely fixes.
        """
        hint = (f'Check that arch={self.arch_settings} matches the checkpoint; convert official weights with '
                f'`python tools/model_converters/convert_checkpoint.py {self.converter or "<family>"} SRC DST`; '
                f'for a whole detector/segmentor/classifier checkpoint set init_cfg prefix="backbone."')
        try:
            load_state_dict_strict(self, state_dict, source=source, hint=hint)
        except StateDictMismatchError as err:
            raise PretrainedLoadError(str(err), err.missing, err.unexpected, err.mismatched) from None
        print_log(f'{type(self).__name__}: loaded {len(state_dict)} tensors from {source}', logger='current')
