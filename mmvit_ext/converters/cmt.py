"""Official CMT checkpoints (huawei-noah/Efficient-AI-Backbones ``cmt_pytorch/cmt.py`` at ``f90e129b``, also
ggjy/CMT.pytorch) -> mmvit_ext ``CMT`` and its classifier.

Official layout (bare, or wrapped in ``model`` / ``model_ema`` / ``state_dict``; stage letters ``a..d``)::

    stem_conv{k}.*  stem_norm{k}.*  patch_embed_{x}.{proj,norm}.*  relative_pos_{x}
    blocks_{x}.{n}.{proj,norm1,norm2}.*  blocks_{x}.{n}.attn.{q,k,v,proj}.*  blocks_{x}.{n}.attn.sr.{0,1}.*
    blocks_{x}.{n}.mlp.{conv1.0,conv1.2,proj,proj_bn,conv2.0,conv2.1}.*  _fc.*  _bn.*  head.*

mmvit_ext layout (stage ``i`` = 0..3 for ``a..d``)::

    stem.{k-1}.conv.*  stem.{k-1}.bn.*  stages.{i}.downsample.{proj,norm}.*  stages.{i}.relative_pos.table
    stages.{i}.blocks.{n}.{lpu.conv,norm1,norm2}.*  attn.{q,kv,proj}.*  (kv = cat(k, v))  attn.sr.{conv,norm}.*
    mlp.{fc1,norm1,conv,norm2,fc2,norm3}.*  classifier: neck.conv.*  neck.norm.*  head.fc.*

Targets:

* ``'backbone'``: bare backbone keys, what ``CMT.load_state_dict`` and ``init_cfg=Pretrained`` take; the head
  (``_fc``, ``_bn``, ``head``) and the non-backbone parts of det/seg/cls checkpoints are dropped.
* ``'classifier'``: the mmpretrain ``ImageClassifier`` of configs/cmt/cmt-*_in1k.py: ``backbone.*``, ``neck.conv``
  and ``neck.norm`` (:class:`~mmvit_ext.models.necks.ConvPoolNeck`), ``head.fc.*`` (``LinearClsHead``).

Conversion is strict (a key no rule accounts for raises, listing it) and idempotent (converted input passes through).
A training checkpoint holding both ``model`` and ``model_ema`` converts ``model``; pass ``checkpoint['model_ema']`` (or
``convert_checkpoint.py --ema``) for the EMA weights.
"""
import re
from collections import OrderedDict
from typing import Any, Mapping

from torch import Tensor

from ._rules import UnmatchedKeysError, apply_rename_rules, merge_qkv, split_by_prefix, unwrap_state_dict

__all__ = ['convert_cmt', 'is_official_cmt', 'TARGETS']

TARGETS = ('backbone', 'classifier')
_STAGE = {'a': 0, 'b': 1, 'c': 2, 'd': 3}
_WB = r'(?:weight|bias)'
_BN = r'(?:weight|bias|running_mean|running_var|num_batches_tracked)'
# official FFN / attention leaves -> ours (a prefix rename each)
_BLOCK_MOVES = {
    'proj': 'lpu.conv',
    'attn.sr.0': 'attn.sr.conv',
    'attn.sr.1': 'attn.sr.norm',
    'mlp.conv1.0': 'mlp.fc1',
    'mlp.conv1.2': 'mlp.norm1',
    'mlp.proj': 'mlp.conv',
    'mlp.proj_bn': 'mlp.norm2',
    'mlp.conv2.0': 'mlp.fc2',
    'mlp.conv2.1': 'mlp.norm3',
}
_BLOCK_KEPT = ('norm1', 'norm2', 'attn.q', 'attn.kv', 'attn.proj')
_OUR_LEAVES = (r'(?:lpu\.conv|norm1|norm2|attn\.(?:q|kv|proj)|attn\.sr\.conv|mlp\.(?:fc1|conv|fc2))\.' + _WB + '|'
               r'(?:attn\.sr\.norm|mlp\.norm[123])\.' + _BN)


def _block_rule(official: str, ours: str):
    leaf = _BN if official in ('attn.sr.1', 'mlp.conv1.2', 'mlp.proj_bn', 'mlp.conv2.1') else _WB
    pattern = rf'blocks_([abcd])\.(\d+)\.{re.escape(official)}\.({leaf})'
    return pattern, lambda m: f'stages.{_STAGE[m[1]]}.blocks.{m[2]}.{ours}.{m[3]}'


# yapf: disable
BACKBONE_RULES = [
    # official -> ours
    (rf'stem_conv([123])\.({_WB})', lambda m: f'stem.{int(m[1]) - 1}.conv.{m[2]}'),
    (rf'stem_norm([123])\.({_BN})', lambda m: f'stem.{int(m[1]) - 1}.bn.{m[2]}'),
    (rf'patch_embed_([abcd])\.((?:proj|norm)\.{_WB})', lambda m: f'stages.{_STAGE[m[1]]}.downsample.{m[2]}'),
    (r'relative_pos_([abcd])', lambda m: f'stages.{_STAGE[m[1]]}.relative_pos.table'),
    *[_block_rule(official, ours) for official, ours in _BLOCK_MOVES.items()],
    *[_block_rule(kept, kept) for kept in _BLOCK_KEPT],
    # ours -> ours (idempotence)
    (rf'(stem\.[012]\.(?:conv\.{_WB}|bn\.{_BN}))',                  r'\1'),
    (rf'(stages\.\d+\.downsample\.(?:proj|norm)\.{_WB})',           r'\1'),
    (r'(stages\.\d+\.relative_pos\.table)',                          r'\1'),
    (rf'(stages\.\d+\.blocks\.\d+\.(?:{_OUR_LEAVES}))',             r'\1'),
]
HEAD_RULES = [
    (rf'_fc\.({_WB})',  r'neck.conv.\1'),
    (rf'_bn\.({_BN})',  r'neck.norm.\1'),
    (rf'head\.({_WB})', r'head.fc.\1'),
    # ours -> ours
    (rf'(neck\.conv\.{_WB}|neck\.norm\.{_BN}|head\.fc\.{_WB})', r'\1'),
]
# yapf: enable
_HEAD_KEY = re.compile(r'(?:_fc|_bn|head|neck)\.')
_OFFICIAL_KEY = re.compile(r'(?:backbone\.)?(?:stem_conv\d|stem_norm\d|patch_embed_[abcd]\.|relative_pos_[abcd]|'
                           r'blocks_[abcd]\.)')


def is_official_cmt(state_dict: Mapping[str, Any]) -> bool:
    """Whether a (possibly wrapped) checkpoint holds CMT weights in the official layout."""
    return any(_OFFICIAL_KEY.match(k) for k in unwrap_state_dict(state_dict))


def _merge_kv(sd: 'OrderedDict[str, Tensor]') -> 'OrderedDict[str, Tensor]':
    """``attn.k.*`` + ``attn.v.*`` -> ``attn.kv.*`` (keys first, as ``ReducedKVAttention`` splits them)."""
    out = OrderedDict()
    for key, value in sd.items():
        match = re.fullmatch(r'(.*\.attn\.)([kv])\.(weight|bias)', key)
        if match is None:
            out[key] = value
            continue
        prefix, which, leaf = match.groups()
        if which == 'v':
            if f'{prefix}k.{leaf}' not in sd:
                raise UnmatchedKeysError(f'{key} has no matching {prefix}k.{leaf}')
            continue
        if f'{prefix}v.{leaf}' not in sd:
            raise UnmatchedKeysError(f'{key} has no matching {prefix}v.{leaf}')
        out[f'{prefix}kv.{leaf}'] = merge_qkv([value, sd[f'{prefix}v.{leaf}']])
    return out


def convert_cmt(checkpoint: Any, *, target: str) -> 'OrderedDict[str, Tensor]':
    """Convert any loaded CMT checkpoint (official or already converted) to an mmvit_ext state dict.

    Args:
        checkpoint: A loaded checkpoint: bare state dict, or wrapped in ``state_dict`` / ``model`` / ``model_ema``;
            keys may carry ``module.`` (stripped) and ``backbone.`` (det/seg/cls checkpoints).
        target (str): ``'backbone'`` or ``'classifier'``, see the module docstring.

    Returns:
        OrderedDict[str, Tensor]: Flat state dict (tensors shared with the input, except the merged ``kv``).

    Raises:
        ValueError: Unknown ``target``, or ``'classifier'`` asked of a checkpoint without the classifier head.
        UnmatchedKeysError: Keys that are neither official nor mmvit_ext CMT keys.
    """
    if target not in TARGETS:
        raise ValueError(f'target must be one of {TARGETS}, got {target!r}')
    sd = unwrap_state_dict(checkpoint)
    if any(k.startswith('backbone.') for k in sd):
        backbone, others = split_by_prefix(sd, 'backbone.')
        head = OrderedDict((k, v) for k, v in others.items() if k.startswith(('neck.conv.', 'neck.norm.', 'head.fc.')))
        others = OrderedDict((k, v) for k, v in others.items() if k not in head)
    else:
        head = OrderedDict((k, v) for k, v in sd.items() if _HEAD_KEY.match(k))
        backbone = OrderedDict((k, v) for k, v in sd.items() if k not in head)
        others = OrderedDict()
    if not backbone:
        raise UnmatchedKeysError('no CMT backbone keys found')
    backbone = apply_rename_rules(_merge_kv(backbone), BACKBONE_RULES)
    if target == 'backbone':
        return backbone
    if others:
        raise UnmatchedKeysError(f'target="classifier" expects a classification checkpoint, but these keys are '
                                 f'neither CMT nor its head: {sorted(others)[:20]}; use target="backbone"')
    head = apply_rename_rules(head, HEAD_RULES)
    needed = {f'neck.conv.{k}' for k in ('weight', 'bias')} | {f'head.fc.{k}' for k in ('weight', 'bias')}
    if not needed <= set(head):
        raise ValueError(f'target="classifier" needs the official _fc, _bn and head (or neck.* and head.fc.*); '
                         f'missing {sorted(needed - set(head))}; use target="backbone"')
    out = OrderedDict((f'backbone.{k}', v) for k, v in backbone.items())
    out.update(head)
    return out
