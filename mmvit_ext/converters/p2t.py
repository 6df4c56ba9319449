"""Official P2T checkpoints (github yuhuan-wu/P2T, ``p2t.py`` at ``acd5e64``) -> mmvit_ext ``P2T``.

Official layout (classification, bare or ``model``/``state_dict``-wrapped; det/seg with ``backbone.``)::

    patch_embed{s}.{proj,norm}.*      d_convs{s}.{r}.*      block{s}.{j}.{norm1,norm2}.*
    block{s}.{j}.attn.{q,kv}.0.*      block{s}.{j}.attn.{proj,norm}.*      block{s}.{j}.mlp.{fc1,conv,fc2}.*
    head.*

mmvit_ext layout (``i = s - 1``; leaf names kept; the MLP keeps its 4-D 1x1 kernels)::

    stages.{i}.downsample.{proj,norm}.*      stages.{i}.pool_convs.{r}.*      stages.{i}.blocks.{j}.<leaf>
    attn.q.0.* -> attn.q.*      attn.kv.0.* -> attn.kv.*

Targets:

* ``'backbone'``: bare ``stages.*`` keys, what ``P2T.load_state_dict`` and ``init_cfg=Pretrained`` take. A head is
  dropped; so are the non-backbone parts of det/seg/cls checkpoints (``neck.*``, ``decode_head.*``...) and the
  unused, randomly initialised ``backbone.head.*`` of the official Semantic-FPN checkpoints.
* ``'classifier'``: the mmpretrain ``ImageClassifier`` layout, ``backbone.stages.*`` + ``head.fc.{weight,bias}``.

Conversion is strict: a key in the backbone namespace that no rule accounts for raises
:class:`~mmvit_ext.converters._rules.UnmatchedKeysError` listing it (e.g. the incompatible pre-TPAMI "v1" weights,
``attn.q.weight`` without ``.0``). It is idempotent: converted input passes through unchanged.

Usage::

    from mmvit_ext.converters import get_converter
    out_sd = get_converter('p2t')(torch.load('p2t_tiny.pth'), target='classifier')
"""
import re
from collections import OrderedDict
from typing import Any, Mapping

from torch import Tensor

from ._rules import UnmatchedKeysError, apply_rename_rules, split_by_prefix, unwrap_state_dict

__all__ = ['convert_p2t', 'is_official_p2t', 'TARGETS']

TARGETS = ('backbone', 'classifier')

_WB = r'(?:weight|bias)'
_BLOCK_LEAF = rf'((?:norm1|norm2|attn\.proj|attn\.norm|mlp\.fc1|mlp\.conv|mlp\.fc2)\.{_WB})'
_STAGE = r'([1-9]\d*)'  # official stages count from 1


def _in_stage(template: str):
    """Replacement: ``stages.{s - 1}.`` + ``template`` filled with the match groups after the stage."""
    return lambda m: f'stages.{int(m[1]) - 1}.' + template.format(*m.groups()[1:])


# yapf: disable
BACKBONE_RULES = [
    # official -> ours
    (rf'patch_embed{_STAGE}\.((?:proj|norm)\.{_WB})',   _in_stage('downsample.{}')),
    (rf'd_convs{_STAGE}\.(\d+)\.({_WB})',                _in_stage('pool_convs.{}.{}')),
    (rf'block{_STAGE}\.(\d+)\.attn\.(q|kv)\.0\.({_WB})', _in_stage('blocks.{}.attn.{}.{}')),
    (rf'block{_STAGE}\.(\d+)\.{_BLOCK_LEAF}',            _in_stage('blocks.{}.{}')),
    # ours -> ours (idempotence)
    (rf'(stages\.\d+\.downsample\.(?:proj|norm)\.{_WB})',   r'\1'),
    (rf'(stages\.\d+\.pool_convs\.\d+\.{_WB})',            r'\1'),
    (rf'(stages\.\d+\.blocks\.\d+\.attn\.(?:q|kv)\.{_WB})', r'\1'),
    (rf'(stages\.\d+\.blocks\.\d+\.){_BLOCK_LEAF}',        r'\1\2'),
]
# yapf: enable

_OFFICIAL_KEY = re.compile(rf'(?:backbone\.)?(?:patch_embed{_STAGE}\.|d_convs{_STAGE}\.|block{_STAGE}\.)')
_HEAD_KEYS = ('weight', 'bias')


def is_official_p2t(state_dict: Mapping[str, Any]) -> bool:
    """Whether a (possibly wrapped) checkpoint holds P2T weights in the official layout."""
    return any(_OFFICIAL_KEY.match(k) for k in unwrap_state_dict(state_dict))


def convert_p2t(checkpoint: Any, *, target: str) -> 'OrderedDict[str, Tensor]':
    """Convert any loaded P2T checkpoint (official or already converted) to an mmvit_ext state dict.

    Args:
        checkpoint: A loaded checkpoint: bare state dict, or wrapped in ``state_dict``/``model``; keys may carry
            ``module.`` (stripped) and ``backbone.`` (det/seg/cls checkpoints).
        target (str): ``'backbone'`` or ``'classifier'``, see the module docstring.

    Returns:
        OrderedDict[str, Tensor]: Flat state dict (tensors shared with the input).

    Raises:
        ValueError: Unknown ``target``, or ``'classifier'`` asked of a checkpoint without a classification head.
        UnmatchedKeysError: Keys that are neither official nor mmvit_ext P2T keys.
    """
    if target not in TARGETS:
        raise ValueError(f'target must be one of {TARGETS}, got {target!r}')
    sd = unwrap_state_dict(checkpoint)

    if any(k.startswith('backbone.') for k in sd):
        # A whole det/seg/cls model: P2T lives under backbone.; the official seg backbone kept a random head.
        backbone, others = split_by_prefix(sd, 'backbone.')
        backbone = OrderedDict((k, v) for k, v in backbone.items() if not k.startswith('head.'))
        head, others = split_by_prefix(others, 'head.fc.')
    else:
        head, backbone = split_by_prefix(sd, 'head.')
        others = OrderedDict()
    if not backbone:
        raise UnmatchedKeysError('no P2T backbone keys found')
    if set(head) - set(_HEAD_KEYS):
        raise UnmatchedKeysError(f'unexpected classification-head keys {sorted(set(head) - set(_HEAD_KEYS))}')
    backbone = apply_rename_rules(backbone, BACKBONE_RULES)

    if target == 'backbone':
        return backbone
    if others:
        raise UnmatchedKeysError(f'target="classifier" expects a classification checkpoint, but these keys are '
                                 f'neither P2T nor its head: {sorted(others)[:20]}; use target="backbone"')
    if set(head) != set(_HEAD_KEYS):
        raise ValueError('target="classifier" needs head.weight and head.bias (official) or head.fc.weight and '
                         'head.fc.bias (mmpretrain); this checkpoint has no classification head, use '
                         'target="backbone"')
    out = OrderedDict((f'backbone.{k}', v) for k, v in backbone.items())
    out.update((f'head.fc.{k}', head[k]) for k in _HEAD_KEYS)
    return out
