"""Safe checkpoint loading for MMEngine 0.10.7 on torch >= 2.6.

torch >= 2.6 loads with ``weights_only=True`` by default, and MMEngine calls ``torch.load`` without that argument,
so a checkpoint that MMEngine itself saved (``meta`` with numpy scalars, the message hub with ``HistoryBuffer``)
fails in ``load_checkpoint``, ``Runner.resume``, ``load_from`` and ``init_cfg=dict(type='Pretrained')``.

:func:`install_safe_checkpoint_loader` (called on ``import mmvit_ext``) re-registers MMEngine's local and
HTTP(S) loaders so that they keep ``weights_only=True`` and allow-list exactly the globals MMEngine checkpoints
contain:

* ``mmengine.logging.history_buffer.HistoryBuffer``;
* numpy arrays and scalars (``_reconstruct``, ``ndarray``, ``dtype`` and its per-type classes, ``scalar``);
* ``builtins.getattr``, replaced by :func:`_history_buffer_getattr`, which only returns the statistic methods of
  ``HistoryBuffer`` (how it pickles ``_statistics_methods``) and refuses anything else;
* the training-config objects that official checkpoints pickle next to their weights (ResT, CMT, HRFormer
  ImageNet checkpoints): ``argparse.Namespace`` (attributes only, no code) and yacs' ``CfgNode``, which is read
  as inert data, an ``OrderedDict`` of its keys (nested nodes likewise), by :class:`_InertCfgNode` without
  importing yacs.

A file with any other pickled global (e.g. a ``__reduce__`` that calls ``os.system``) is refused with
:class:`UnsafeCheckpointError` before its payload can run.

:func:`load_state_dict_strict` is the one strict state-dict load of the package (tools, backbones): it compares
keys and shapes first and raises :class:`StateDictMismatchError` listing every difference, so a checkpoint that
does not fit never leaves a half-loaded model behind.

This module imports only torch and MMEngine (and numpy, MMEngine's dependency, while unpickling).
"""
import argparse
import os.path as osp
from collections import OrderedDict
from typing import Any, Dict, List, Mapping, Sequence, Tuple

import torch
import torch.nn as nn
from torch.serialization import safe_globals

__all__ = [
    'UnsafeCheckpointError', 'safe_torch_load', 'install_safe_checkpoint_loader', 'allowed_globals',
    'StateDictMismatchError', 'load_state_dict_strict'
]


class UnsafeCheckpointError(RuntimeError):
    """A checkpoint holds pickled objects outside the allow-list and was not loaded."""


def _history_buffer_getattr(obj: Any, name: str) -> Any:
    """Stand-in for ``builtins.getattr`` during unpickling.

    ``HistoryBuffer`` pickles its statistic methods as ``getattr(HistoryBuffer, 'mean')``; nothing else in an
    MMEngine checkpoint needs ``getattr``, so any other use is refused.
    """
    from mmengine.logging.history_buffer import HistoryBuffer
    if obj is HistoryBuffer and not name.startswith('_') and callable(getattr(HistoryBuffer, name, None)):
        return getattr(HistoryBuffer, name)
    raise UnsafeCheckpointError(f'refusing getattr({obj!r}, {name!r}) while unpickling a checkpoint')


class _InertCfgNode:
    """Stand-in for ``yacs.config.CfgNode`` during unpickling: yields an ``OrderedDict`` of the node's keys.

    A pickled ``CfgNode`` (a dict subclass) is rebuilt as ``NEWOBJ`` (this class's ``__new__``, which returns a
    fresh ``OrderedDict``), ``SETITEMS`` (its keys) and ``BUILD`` (yacs' bookkeeping flags, which land in the
    ``OrderedDict``'s ``__dict__``). No yacs code runs, and yacs need not be installed. Called any other way, it
    still only returns an empty ``OrderedDict``.
    """

    def __new__(cls, *args, **kwargs) -> 'OrderedDict[str, Any]':
        return OrderedDict()


def allowed_globals() -> List[Any]:
    """The globals an MMEngine checkpoint may contain, in ``torch.serialization.safe_globals`` form."""
    import numpy as np
    from mmengine.logging.history_buffer import HistoryBuffer

    allowed: List[Any] = [
        HistoryBuffer, np.ndarray, np.dtype, (_history_buffer_getattr, 'builtins.getattr'), argparse.Namespace,
        (_InertCfgNode, 'yacs.config.CfgNode')
    ]
    # numpy 2 pickles as numpy._core.*, numpy 1 as numpy.core.*: allow whichever names this numpy writes/reads.
    multiarray = np._core.multiarray if hasattr(np, '_core') else np.core.multiarray
    for module in ('numpy._core.multiarray', 'numpy.core.multiarray'):
        allowed += [(multiarray._reconstruct, f'{module}._reconstruct'), (multiarray.scalar, f'{module}.scalar')]
    dtypes = getattr(np, 'dtypes', None)
    if dtypes is not None:  # numpy >= 1.25 pickles dtypes through their classes, e.g. numpy.dtypes.Float64DType
        allowed += [getattr(dtypes, name) for name in dir(dtypes) if name.endswith('DType')]
    return allowed


def safe_torch_load(f, map_location=None, extra_globals: Sequence[Any] = ()) -> Any:
    """``torch.load`` with ``weights_only=True`` and the MMEngine allow-list.

    Args:
        f: path or file object.
        map_location: as for :func:`torch.load`.
        extra_globals: further harmless classes to allow (``argparse.Namespace`` and yacs' ``CfgNode`` already
            are, see the module note).

    Raises:
        UnsafeCheckpointError: the file holds a pickled global outside the allow-list; nothing of it was executed.
    """
    try:
        with safe_globals(allowed_globals() + list(extra_globals)):
            return torch.load(f, map_location=map_location, weights_only=True)
    except UnsafeCheckpointError:
        raise
    except Exception as err:  # torch raises pickle.UnpicklingError (wrapped) for disallowed globals
        if 'Weights only load failed' not in str(err) and 'Unsupported global' not in str(err):
            raise
        name = f if isinstance(f, str) else getattr(f, 'name', '<buffer>')
        raise UnsafeCheckpointError(
            f'Refused to load checkpoint {name!r}: it contains pickled Python objects outside the allow-list of '
            'MMEngine checkpoints, and loading them could run arbitrary code. If you trust the file, load it '
            'yourself with torch.load(..., weights_only=False) and re-save only its state_dict (tensors), or '
            f'convert it with tools/model_converters/convert_checkpoint.py. Details: {err}') from None


def _load_from_local(filename, map_location=None):
    filename = osp.expanduser(filename)
    if not osp.isfile(filename):
        raise FileNotFoundError(f'checkpoint {filename} does not exist; check the path (load_from, resume or '
                                'init_cfg.checkpoint)')
    return safe_torch_load(filename, map_location=map_location)


def _load_from_http(filename, map_location=None, model_dir=None, progress=False):
    from mmengine.dist import get_dist_info

    def fetch():
        path = osp.join(model_dir or osp.join(torch.hub.get_dir(), 'checkpoints'), osp.basename(filename))
        if not osp.isfile(path):
            import os
            os.makedirs(osp.dirname(path), exist_ok=True)
            torch.hub.download_url_to_file(filename, path, progress=progress)
        return path

    rank, world_size = get_dist_info()
    path = fetch() if rank == 0 else None
    if world_size > 1:
        torch.distributed.barrier()
        path = fetch()
    return safe_torch_load(path, map_location=map_location)


def install_safe_checkpoint_loader() -> None:
    """Register the safe loaders for local paths and ``http(s)://`` in MMEngine's ``CheckpointLoader``.

    Raises:
        IncompatibleVersionError: MMEngine is not of the series the loaders were written for (see
            :mod:`mmvit_ext.utils.compat`).
    """
    from mmvit_ext.utils.compat import SUPPORTED, check_version
    check_version('mmengine', SUPPORTED['mmengine'],
                  'the local and http(s) loaders of mmengine.runner.checkpoint.CheckpointLoader')
    from mmengine.runner.checkpoint import CheckpointLoader
    CheckpointLoader.register_scheme(prefixes='', loader=_load_from_local, force=True)
    CheckpointLoader.register_scheme(prefixes=('http://', 'https://'), loader=_load_from_http, force=True)


# ---------------------------------------------------------------------------------------------------------------
# Strict state-dict loading
# ---------------------------------------------------------------------------------------------------------------
class StateDictMismatchError(RuntimeError):
    """A state dict does not fit a module; nothing was loaded.

    Attributes:
        missing (list[str]): Keys the module has and the state dict lacks.
        unexpected (list[str]): Keys the state dict has and the module lacks.
        mismatched (list[tuple[str, tuple, tuple]]): ``(key, shape in the state dict, shape in the module)``.
    """

    def __init__(self,
                 message: str,
                 missing: Sequence[str] = (),
                 unexpected: Sequence[str] = (),
                 mismatched: Sequence[Tuple[str, tuple, tuple]] = ()):
        super().__init__(message)
        self.missing, self.unexpected, self.mismatched = list(missing), list(unexpected), list(mismatched)


def _expected_local(module: nn.Module) -> Dict[str, Any]:
    """The entries ``module`` itself (not its children) loads: parameters, persistent buffers, extra state."""
    local: Dict[str, Any] = {name: t for name, t in module._parameters.items() if t is not None}
    local.update((name, t) for name, t in module._buffers.items()
                 if t is not None and name not in module._non_persistent_buffers_set)
    if type(module).get_extra_state is not nn.Module.get_extra_state:
        local['_extra_state'] = None
    return local


def _compare(module: nn.Module, state_dict: Mapping[str, Any]) -> Tuple[List[str], List[str], List[tuple]]:
    """Missing, unexpected and shape-mismatched keys of loading ``state_dict`` into ``module``.

    The comparison sees the keys as every submodule sees them at load time: key migrations and resizing done in
    ``_load_from_state_dict`` overrides or load pre-hooks (a backbone's ``_version`` upgrade, a relative-position
    table resized for another window) run first, through a dry run of ``module.load_state_dict``. In that dry run a
    pre-hook registered last on every submodule records the comparison and removes the submodule's own entries, so
    nothing is copied into the module.
    """
    missing: List[str] = []
    unexpected: List[str] = []
    mismatched: List[tuple] = []

    def check(mod, local_dict, prefix, *args):
        local = _expected_local(mod)
        for name, own in local.items():
            key = prefix + name
            if key not in local_dict:
                missing.append(key)
                continue
            value = local_dict.pop(key)
            if isinstance(own, nn.parameter.UninitializedParameter) or not isinstance(own, torch.Tensor):
                continue
            shape = tuple(getattr(value, 'shape', ()))
            if shape != tuple(own.shape) and not (own.dim() == 0 and shape == (1, )):  # torch accepts (1,) for ()
                mismatched.append((key, shape, tuple(own.shape)))
        for key in list(local_dict):
            head = key[len(prefix):].split('.', 1)[0]
            if key.startswith(prefix) and head not in mod._modules and head not in local:
                unexpected.append(key)

    handles = [m.register_load_state_dict_pre_hook(check) for m in module.modules()]
    try:
        module.load_state_dict(state_dict, strict=False)
    finally:
        for handle in handles:
            handle.remove()
    return missing, unexpected, mismatched


def _first(items: Sequence[str], n: int = 5) -> str:
    return ', '.join(items[:n]) + (', ...' if len(items) > n else '')


def load_state_dict_strict(module: nn.Module, state_dict: Mapping[str, Any], *, source: str, hint: str) -> None:
    """Load ``state_dict`` into ``module`` with every key used and every shape equal, or load nothing.

    Keys and shapes are compared first (after the module's own load-time key migrations, see :func:`_compare`);
    only a state dict that fits is loaded, with ``strict=True``.

    Args:
        module (nn.Module): The module (not a DDP wrapper; pass ``model.module``).
        state_dict (Mapping[str, Any]): The tensors, keyed as ``module.state_dict()``.
        source (str): What is loaded, for the message, e.g. ``"checkpoint 'work_dirs/x/epoch_1.pth'"``.
        hint (str): How to fix a mismatch, appended to the message.

    Raises:
        StateDictMismatchError: With the counts and the first keys of the missing, unexpected and
            shape-mismatched entries, then ``hint``.
    """
    missing, unexpected, mismatched = _compare(module, state_dict)
    if missing or unexpected or mismatched:
        lines = [f'{source} does not fit {type(module).__name__}:']
        if missing:
            lines.append(f'  {len(missing)} missing keys: {_first(missing)}')
        if unexpected:
            lines.append(f'  {len(unexpected)} unexpected keys: {_first(unexpected)}')
        if mismatched:
            shapes = [f'{k} (checkpoint {tuple(a)} vs model {tuple(b)})' for k, a, b in mismatched]
            lines.append(f'  {len(mismatched)} shape mismatches: {_first(shapes, 3)}')
        lines.append(hint)
        raise StateDictMismatchError('\n'.join(lines), missing, unexpected, mismatched)
    module.load_state_dict(state_dict, strict=True)
