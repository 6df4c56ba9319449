"""Building blocks of the checkpoint converters: unwrap, rename by rules, split by prefix, merge/split qkv.

Everything here is a pure function on flat ``{key: tensor}`` mappings; nothing is loaded or saved.
"""
import re
from collections import OrderedDict
from typing import Any, Callable, Iterable, List, Mapping, Sequence, Tuple, Union

import torch
from torch import Tensor

__all__ = [
    'unwrap_state_dict', 'state_dict_location', 'strip_prefix', 'split_by_prefix', 'apply_rename_rules', 'merge_qkv',
    'split_qkv', 'UnmatchedKeysError'
]

Rules = Sequence[Tuple[str, Union[str, Callable[[re.Match], str]]]]

# Containers seen in the wild, in order of preference: mmengine ({meta, state_dict, ...}), DeiT-style
# training checkpoints ({model, optimizer, ..., model_ema}); an EMA-only file ({model_ema, ...}).
WRAPPER_KEYS = ('state_dict', 'model', 'model_ema')


class UnmatchedKeysError(KeyError):
    """Keys that no conversion rule accounts for."""

    def __str__(self) -> str:  # KeyError quotes its message; keep it readable
        return str(self.args[0])


def _preview(keys: Iterable[str], limit: int = 20) -> str:
    keys = sorted(keys)
    more = f' ... and {len(keys) - limit} more' if len(keys) > limit else ''
    return ', '.join(keys[:limit]) + more


def unwrap_state_dict(checkpoint: Any) -> 'OrderedDict[str, Tensor]':
    """Return the flat state dict inside a loaded checkpoint, with a leading ``module.`` stripped.

    Accepts a bare state dict, ``{'state_dict': sd, ...}`` (mmengine), ``{'model': sd, ...}`` (DeiT-style
    training checkpoints, also when they hold ``model_ema``) or ``{'model_ema': sd, ...}``;
    :func:`state_dict_location` says which one was taken.

    Args:
        checkpoint: What ``torch.load`` / ``CheckpointLoader.load_checkpoint`` returned.

    Returns:
        OrderedDict[str, Tensor]: A new mapping (the tensors are shared, not copied).

    Raises:
        ValueError: If no flat mapping of tensors is found.
    """
    sd = checkpoint
    for inner in _wrapper_path(checkpoint):
        sd = sd[inner]
    if not isinstance(sd, Mapping):
        raise ValueError(f'expected a state dict (a mapping of tensors), got {type(sd).__name__}')
    return OrderedDict((k[len('module.'):] if k.startswith('module.') else k, v) for k, v in sd.items())


def _wrapper_path(checkpoint: Any) -> List[str]:
    path, sd = [], checkpoint
    while isinstance(sd, Mapping) and not _is_flat(sd):
        inner = next((k for k in WRAPPER_KEYS if k in sd), None)
        if inner is None:
            raise ValueError(f'cannot find a state dict in a checkpoint with keys [{_preview(sd)}]; expected '
                             f'tensors or one of the wrappers {list(WRAPPER_KEYS)}')
        path.append(inner)
        sd = sd[inner]
    return path


def state_dict_location(checkpoint: Any) -> str:
    """Where :func:`unwrap_state_dict` finds the weights, e.g. ``"checkpoint['model']"`` or ``'the bare dict'``."""
    path = _wrapper_path(checkpoint)
    return 'checkpoint' + ''.join(f'[{k!r}]' for k in path) if path else 'the bare dict'


def _is_flat(sd: Mapping) -> bool:
    return len(sd) > 0 and all(isinstance(v, Tensor) for v in sd.values())


def strip_prefix(state_dict: Mapping[str, Tensor], prefix: str) -> 'OrderedDict[str, Tensor]':
    """Keys under ``prefix`` (a trailing ``.`` is implied), with the prefix removed.

    Raises:
        KeyError: If no key has the prefix.
    """
    prefix = prefix if prefix.endswith('.') else prefix + '.'
    out = OrderedDict((k[len(prefix):], v) for k, v in state_dict.items() if k.startswith(prefix))
    if not out:
        raise KeyError(f'no key starts with {prefix!r}; keys look like [{_preview(state_dict, 5)}]')
    return out


def split_by_prefix(state_dict: Mapping[str, Tensor],
                    prefix: str) -> Tuple['OrderedDict[str, Tensor]', 'OrderedDict[str, Tensor]']:
    """Split into (keys under ``prefix`` with it removed, all other keys unchanged)."""
    inside, outside = OrderedDict(), OrderedDict()
    for k, v in state_dict.items():
        if k.startswith(prefix):
            inside[k[len(prefix):]] = v
        else:
            outside[k] = v
    return inside, outside


def apply_rename_rules(state_dict: Mapping[str, Tensor], rules: Rules) -> 'OrderedDict[str, Tensor]':
    """Rename every key with the first rule whose regex matches the *whole* key.

    Args:
        state_dict (Mapping[str, Tensor]): Flat state dict.
        rules (Sequence[tuple[str, str | Callable]]): ``(regex, replacement)`` pairs. The regex must match the
            whole key (``re.fullmatch``); the replacement is a ``Match.expand`` template or a function of the
            match. Include identity rules for keys already in the target layout, so that a converter is
            idempotent.

    Returns:
        OrderedDict[str, Tensor]: Renamed mapping, in the input order.

    Raises:
        UnmatchedKeysError: Listing every key that no rule matches.
        KeyError: If two keys are renamed to the same key.
    """
    compiled = [(re.compile(pattern), repl) for pattern, repl in rules]
    out, unmatched = OrderedDict(), []
    for key, value in state_dict.items():
        for pattern, repl in compiled:
            match = pattern.fullmatch(key)
            if match is not None:
                new_key = repl(match) if callable(repl) else match.expand(repl)
                if new_key in out:
                    raise KeyError(f'two keys convert to {new_key!r} (the second is {key!r})')
                out[new_key] = value
                break
        else:
            unmatched.append(key)
    if unmatched:
        raise UnmatchedKeysError(f'{len(unmatched)} keys match no conversion rule: [{_preview(unmatched)}]')
    return out


def merge_qkv(tensors: List[Tensor]) -> Tensor:
    """Concatenate separate projections (e.g. ``k`` and ``v`` weights or biases) along the output dim."""
    return torch.cat(tensors, dim=0)


def split_qkv(tensor: Tensor, num: int) -> List[Tensor]:
    """Split a merged projection into ``num`` equal parts along the output dim (inverse of :func:`merge_qkv`)."""
    assert tensor.shape[0] % num == 0, f'cannot split {tuple(tensor.shape)} into {num} along dim 0'
    return list(tensor.chunk(num, dim=0))
