"""Official HRFormer checkpoints -> mmvit_ext ``HRFormer`` and its classifier.

Sources, detected per key (a checkpoint may be any of them; converted keys pass through):

* **official** (github HRNet/HRFormer ``cls/`` ImageNet ``hrformer_{tiny,small,base}.pth``, bare or under
  ``model``; the openseg ``seg/`` and mmpose-0.13 ``pose/`` forks, under ``state_dict`` with ``backbone.`` and
  ``module.``): separate ``attn.attn.{q,k,v}_proj``, ``out_proj``, ``mlp.*``;
* **mmpose 1.x** (``HRFormer`` in mmpose; its ImageNet ``hrformer_{small,base}-*.pth`` and pose checkpoints,
  ``backbone.``): ``attn.attn.qkv``, ``attn.attn.proj``, ``ffn.*``.

Layouts (``s`` the stage 2..4, ``m`` the module, ``b`` the branch, ``k`` the block)::

    official / mmpose 1.x                                mmvit_ext
    conv{1,2}.weight  bn{1,2}.*                          stem.{0,1}.conv.weight  stem.{0,1}.bn.*
    layer1.{k}.conv{n}.weight  layer1.{k}.bn{n}.*        stages.0.{k}.conv{n}.conv.weight  .conv{n}.bn.*
    layer1.0.downsample.{0,1}                            stages.0.0.downsample.{conv,bn}
    transition{t}.{b}.{0,1}  |  transition{t}.{b}.0.{0,1}  stages.{t}.transition.{b}.{conv,bn}
    stage{s}.{m}.branches.{b}.{k}.                       stages.{s-1}.layers.{m}.branches.{b}.{k}.
        norm1, norm2                                         norm1, norm2
        attn.attn.{q,k,v}_proj | attn.attn.qkv               attn.qkv (q | k | v)
        attn.attn.out_proj | attn.attn.proj                  attn.proj
        attn.attn.relative_position_bias_table               attn.rel_pos.relative_position_bias_table
        attn.attn.relative_position_index                    (dropped: regenerated)
        mlp.* | ffn.*: fc1, norm1, dw3x3, norm2, fc2, norm3  ffn.fc1, ffn.norm1, ffn.conv, ffn.norm2, ffn.fc2, ffn.norm3
    stage{s}.{m}.fuse_layers.{i}.{j}.{0,1}  (j > i)      ....fuse_layers.{i}.{j}.{conv,bn}
    stage{s}.{m}.fuse_layers.{i}.{j}.{t}.{0,1,2,3} (j<i) ....fuse_layers.{i}.{j}.{t}.{0.conv,0.bn,1.conv,1.bn}
    incre_modules.{b}.0.{conv1,bn1,...,downsample.{0,1}} neck.0.incre.{b}.{conv1.conv,conv1.bn,...,downsample.bn}
    downsamp_modules.{i}.{0,1,2,3}                       neck.0.downsample.{i}.{0.conv,0.bn,1.conv,1.bn}
    final_layer.{0,1}  classifier                        neck.1.{conv,norm}  head.fc

Targets:

* ``'backbone'``: bare backbone keys (what ``HRFormer.load_state_dict`` and ``init_cfg=Pretrained`` take); the
  classification head and the non-backbone parts of seg/pose/det checkpoints are dropped;
* ``'classifier'``: the mmpretrain ``ImageClassifier`` of configs/hrformer/hrformer-*_in1k.py (``backbone.*``,
  ``neck.0`` = :class:`~mmvit_ext.models.necks.HRFuseScalesDW`, ``neck.1`` =
  :class:`~mmvit_ext.models.necks.ConvPoolNeck`, ``head.fc`` = ``LinearClsHead``).

Conversion is strict (a key that is neither official, mmpose 1.x nor mmvit_ext raises, listing it) and idempotent.
"""
import re
from collections import OrderedDict
from typing import Any, Mapping

from torch import Tensor

from ._rules import UnmatchedKeysError, apply_rename_rules, merge_qkv, split_by_prefix, unwrap_state_dict

__all__ = ['convert_hrformer', 'is_official_hrformer', 'TARGETS']

TARGETS = ('backbone', 'classifier')
_WB = r'(?:weight|bias)'
_BN = r'(?:weight|bias|running_mean|running_var|num_batches_tracked)'
_BLOCK = r'stage([234])\.(\d+)\.branches\.(\d+)\.(\d+)\.'
_FFN = {'fc1': 'fc1', 'norm1': 'norm1', 'dw3x3': 'conv', 'norm2': 'norm2', 'fc2': 'fc2', 'norm3': 'norm3'}
_DW_STEP = {'0': '0.conv', '1': '0.bn', '2': '1.conv', '3': '1.bn'}


def _block(m: re.Match) -> str:
    return f'stages.{int(m[1]) - 1}.layers.{m[2]}.branches.{m[3]}.{m[4]}.'


def _fuse(m: re.Match) -> str:
    return f'stages.{int(m[1]) - 1}.layers.{m[2]}.fuse_layers.{m[3]}.{m[4]}.'


# yapf: disable
BACKBONE_RULES = [
    # official and mmpose 1.x -> ours
    (r'conv([12])\.weight', lambda m: f'stem.{int(m[1]) - 1}.conv.weight'),
    (rf'bn([12])\.({_BN})', lambda m: f'stem.{int(m[1]) - 1}.bn.{m[2]}'),
    (r'layer1\.(\d+)\.conv([123])\.weight', lambda m: f'stages.0.{m[1]}.conv{m[2]}.conv.weight'),
    (rf'layer1\.(\d+)\.bn([123])\.({_BN})', lambda m: f'stages.0.{m[1]}.conv{m[2]}.bn.{m[3]}'),
    (r'layer1\.(\d+)\.downsample\.0\.weight',          r'stages.0.\1.downsample.conv.weight'),
    (rf'layer1\.(\d+)\.downsample\.1\.({_BN})',         r'stages.0.\1.downsample.bn.\2'),
    (r'transition([123])\.(\d+)\.(?:0\.)?0\.weight',   r'stages.\1.transition.\2.conv.weight'),
    (rf'transition([123])\.(\d+)\.(?:0\.)?1\.({_BN})',  r'stages.\1.transition.\2.bn.\3'),
    (rf'{_BLOCK}(norm[12]\.{_WB})', lambda m: _block(m) + m[5]),
    (rf'{_BLOCK}attn\.attn\.(qkv|proj)\.({_WB})', lambda m: _block(m) + f'attn.{m[5]}.{m[6]}'),
    (rf'{_BLOCK}attn\.attn\.out_proj\.({_WB})', lambda m: _block(m) + f'attn.proj.{m[5]}'),
    (rf'{_BLOCK}attn\.attn\.relative_position_bias_table',
     lambda m: _block(m) + 'attn.rel_pos.relative_position_bias_table'),
    (rf'{_BLOCK}(?:mlp|ffn)\.(fc[12]|dw3x3)\.({_WB})', lambda m: _block(m) + f'ffn.{_FFN[m[5]]}.{m[6]}'),
    (rf'{_BLOCK}(?:mlp|ffn)\.(norm[123])\.({_BN})', lambda m: _block(m) + f'ffn.{m[5]}.{m[6]}'),
    (r'stage([234])\.(\d+)\.fuse_layers\.(\d+)\.(\d+)\.0\.weight', lambda m: _fuse(m) + 'conv.weight'),
    (rf'stage([234])\.(\d+)\.fuse_layers\.(\d+)\.(\d+)\.1\.({_BN})', lambda m: _fuse(m) + f'bn.{m[5]}'),
    (rf'stage([234])\.(\d+)\.fuse_layers\.(\d+)\.(\d+)\.(\d+)\.([0123])\.({_BN})',
     lambda m: _fuse(m) + f'{m[5]}.{_DW_STEP[m[6]]}.{m[7]}'),
    # ours -> ours (idempotence)
    (rf'(stem\.[01]\.(?:conv\.weight|bn\.{_BN}))',                                           r'\1'),
    (rf'(stages\.0\.\d+\.(?:conv[123]|downsample)\.(?:conv\.weight|bn\.{_BN}))',             r'\1'),
    (rf'(stages\.[123]\.transition\.\d+\.(?:conv\.weight|bn\.{_BN}))',                        r'\1'),
    (r'(stages\.[123]\.layers\.\d+\.branches\.\d+\.\d+\.(?:(?:norm[12]|attn\.qkv|attn\.proj|'
     rf'ffn\.(?:fc[12]|conv))\.{_WB}|ffn\.norm[123]\.{_BN}|attn\.rel_pos\.relative_position_bias_table))', r'\1'),
    (rf'(stages\.[123]\.layers\.\d+\.fuse_layers\.\d+\.\d+\.(?:\d+\.[01]\.)?(?:conv\.weight|bn\.{_BN}))', r'\1'),
]
HEAD_RULES = [
    (r'incre_modules\.(\d+)\.0\.conv([123])\.weight',    r'neck.0.incre.\1.conv\2.conv.weight'),
    (rf'incre_modules\.(\d+)\.0\.bn([123])\.({_BN})',     r'neck.0.incre.\1.conv\2.bn.\3'),
    (r'incre_modules\.(\d+)\.0\.downsample\.0\.weight',  r'neck.0.incre.\1.downsample.conv.weight'),
    (rf'incre_modules\.(\d+)\.0\.downsample\.1\.({_BN})', r'neck.0.incre.\1.downsample.bn.\2'),
    (rf'downsamp_modules\.(\d+)\.([0123])\.({_BN})',
     lambda m: f'neck.0.downsample.{m[1]}.{_DW_STEP[m[2]]}.{m[3]}'),
    (rf'final_layer\.0\.({_WB})',                         r'neck.1.conv.\1'),
    (rf'final_layer\.1\.({_BN})',                         r'neck.1.norm.\1'),
    (rf'classifier\.({_WB})',                             r'head.fc.\1'),
    # ours -> ours
    (rf'(neck\.0\.(?:incre\.\d+\.(?:conv[123]|downsample)|downsample\.\d+\.[01])\.(?:conv\.{_WB}|bn\.{_BN}))', r'\1'),
    (rf'(neck\.1\.(?:conv\.{_WB}|norm\.{_BN})|head\.fc\.{_WB})',                                              r'\1'),
]
# yapf: enable
_HEAD_KEY = re.compile(r'(?:incre_modules|downsamp_modules|final_layer|classifier|neck|head)\.')
_INDEX_KEY = re.compile(r'.*\.attn\.attn\.relative_position_index')
_OFFICIAL_KEY = re.compile(r'(?:backbone\.)?(?:conv[12]\.|bn[12]\.|layer1\.|transition[123]\.|stage[234]\.)')


def is_official_hrformer(state_dict: Mapping[str, Any]) -> bool:
    """Whether a (possibly wrapped) checkpoint holds HRFormer weights in an official (or mmpose) layout."""
    return any(_OFFICIAL_KEY.match(k) for k in unwrap_state_dict(state_dict))


def _merge_qkv(sd: 'OrderedDict[str, Tensor]') -> 'OrderedDict[str, Tensor]':
    """``attn.attn.{q,k,v}_proj.*`` -> ``attn.attn.qkv.*`` (q | k | v, the split of ``WindowMSA``); drops the
    regenerated ``relative_position_index`` buffers."""
    out = OrderedDict()
    for key, value in sd.items():
        if _INDEX_KEY.fullmatch(key):
            continue
        match = re.fullmatch(r'(.*\.attn\.attn\.)([qkv])_proj\.(weight|bias)', key)
        if match is None:
            out[key] = value
            continue
        prefix, which, leaf = match.groups()
        parts = [f'{prefix}{p}_proj.{leaf}' for p in 'qkv']
        missing = [p for p in parts if p not in sd]
        if missing:
            raise UnmatchedKeysError(f'{key} has no matching {", ".join(missing)}')
        if which == 'q':
            out[f'{prefix}qkv.{leaf}'] = merge_qkv([sd[p] for p in parts])
    return out


def convert_hrformer(checkpoint: Any, *, target: str) -> 'OrderedDict[str, Tensor]':
    """Convert any loaded HRFormer checkpoint (official, openseg, mmpose 0.x/1.x or converted) to mmvit_ext keys.

    Args:
        checkpoint: A loaded checkpoint: bare, or wrapped in ``state_dict`` / ``model`` / ``model_ema``; keys may
            carry ``module.`` (stripped) and ``backbone.`` (seg/pose/det/cls checkpoints).
        target (str): ``'backbone'`` or ``'classifier'``, see the module docstring.

    Returns:
        OrderedDict[str, Tensor]: Flat state dict (tensors shared with the input, except the merged ``qkv``).

    Raises:
        ValueError: Unknown ``target``, or ``'classifier'`` asked of a checkpoint without the classification head.
        UnmatchedKeysError: Keys that no layout accounts for.
    """
    if target not in TARGETS:
        raise ValueError(f'target must be one of {TARGETS}, got {target!r}')
    sd = unwrap_state_dict(checkpoint)
    head = OrderedDict()
    if any(k.startswith('backbone.') for k in sd):
        sd, others = split_by_prefix(sd, 'backbone.')
        head = OrderedDict((k, v) for k, v in others.items() if k.startswith(('neck.', 'head.fc.')))
        others = OrderedDict((k, v) for k, v in others.items() if k not in head)
    else:
        others = OrderedDict()
    # the official classification head may also sit under ``backbone.`` (openseg's keep_imagenet_head)
    head.update((k, v) for k, v in sd.items() if _HEAD_KEY.match(k))
    backbone = OrderedDict((k, v) for k, v in sd.items() if k not in head)
    if not backbone:
        raise UnmatchedKeysError('no HRFormer backbone keys found')
    backbone = apply_rename_rules(_merge_qkv(backbone), BACKBONE_RULES)
    if target == 'backbone':
        return backbone
    if others:
        raise UnmatchedKeysError(f'target="classifier" expects a classification checkpoint, but these keys are '
                                 f'neither HRFormer nor its head: {sorted(others)[:20]}; use target="backbone"')
    head = apply_rename_rules(head, HEAD_RULES)
    needed = {'neck.1.conv.weight', 'head.fc.weight', 'head.fc.bias'}
    if not needed <= set(head):
        raise ValueError(f'target="classifier" needs the official incre_modules, downsamp_modules, final_layer and '
                         f'classifier (or neck.* and head.fc.*); missing {sorted(needed - set(head))}; use '
                         f'target="backbone"')
    out = OrderedDict((f'backbone.{k}', v) for k, v in backbone.items())
    out.update(head)
    return out
