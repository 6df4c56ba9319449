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
  ``HistoryBuffer`` (how it pickles ``_statistics_methods``) and refuses anything else.

A file with any other pickled global (e.g. a ``__reduce__`` that calls ``os.system``) is refused with
:class:`UnsafeCheckpointError` before its payload can run.
"""
import os.path as osp
from typing import Any, List, Sequence

import torch
from torch.serialization import safe_globals

__all__ = ['UnsafeCheckpointError', 'safe_torch_load', 'install_safe_checkpoint_loader', 'allowed_globals']


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


def allowed_globals() -> List[Any]:
    """The globals an MMEngine checkpoint may contain, in ``torch.serialization.safe_globals`` form."""
    import numpy as np
    from mmengine.logging.history_buffer import HistoryBuffer

    allowed: List[Any] = [HistoryBuffer, np.ndarray, np.dtype, (_history_buffer_getattr, 'builtins.getattr')]
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
        extra_globals: further harmless classes to allow, e.g. ``argparse.Namespace`` for the ``args`` entry of
            DeiT-style training checkpoints (the converter CLI allows it).

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
    """Register the safe loaders for local paths and ``http(s)://`` in MMEngine's ``CheckpointLoader``."""
    from mmengine.runner.checkpoint import CheckpointLoader
    CheckpointLoader.register_scheme(prefixes='', loader=_load_from_local, force=True)
    CheckpointLoader.register_scheme(prefixes=('http://', 'https://'), loader=_load_from_http, force=True)
