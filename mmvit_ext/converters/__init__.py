"""Checkpoint converters: official layouts -> mmvit_ext layouts.

Each family has a pure, idempotent, strict function ``convert(checkpoint, *, target)`` where ``checkpoint`` is any
loaded checkpoint object (bare, ``state_dict``- or ``model``-wrapped; ``module.``/``backbone.`` prefixes handled) and
``target`` is ``'backbone'`` (bare backbone keys) or ``'classifier'`` (mmpretrain ``backbone.*`` + ``head.fc.*``).
It returns a flat state dict::

    from mmvit_ext.converters import get_converter
    out_sd = get_converter('p2t')(state_dict, target='classifier')

``is_official_layout(family, state_dict)`` tells whether a checkpoint still needs converting; backbones use it in
``init_cfg=dict(type='Pretrained', ...)`` loading.
"""
from typing import Any, Callable, Dict, Mapping

from ._rules import UnmatchedKeysError, apply_rename_rules, state_dict_location, unwrap_state_dict
from .cmt import convert_cmt, is_official_cmt
from .hrformer import convert_hrformer, is_official_hrformer
from .p2t import convert_p2t, is_official_p2t

__all__ = [
    'CONVERTERS', 'get_converter', 'is_official_layout', 'apply_rename_rules', 'unwrap_state_dict',
    'state_dict_location', 'UnmatchedKeysError'
]

CONVERTERS: Dict[str, Callable[..., Dict]] = {'cmt': convert_cmt, 'hrformer': convert_hrformer, 'p2t': convert_p2t}
OFFICIAL_LAYOUT: Dict[str, Callable[[Mapping], bool]] = {
    'cmt': is_official_cmt,
    'hrformer': is_official_hrformer,
    'p2t': is_official_p2t
}


def _check_family(family: str) -> None:
    if family not in CONVERTERS:
        raise KeyError(f'no checkpoint converter for {family!r}; available families: {sorted(CONVERTERS)}')


def get_converter(family: str) -> Callable[..., Dict]:
    """The converter ``convert(checkpoint, *, target)`` of a model family, e.g. ``'p2t'``."""
    _check_family(family)
    return CONVERTERS[family]


def is_official_layout(family: str, state_dict: Any) -> bool:
    """Whether a (possibly wrapped) checkpoint of ``family`` is in the official, unconverted layout."""
    _check_family(family)
    return OFFICIAL_LAYOUT[family](state_dict)
