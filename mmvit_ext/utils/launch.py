"""What ``tools/train.py`` and ``tools/test.py`` share: config loading, pre-flight checks with clear errors,
CPU distributed runs (gloo) and mixed precision without a GPU.

Each helper is small and tested on its own (``tests/test_tools/test_launch.py``); the tools only wire them up.
"""
import os
import os.path as osp
import sys
from contextlib import contextmanager
from typing import Iterator, List, Optional, Tuple

from mmengine.config import Config, DictAction  # noqa: F401  (DictAction re-exported for the tools)

__all__ = [
    'UserError', 'load_config', 'check_dataset_paths', 'check_pretrained_paths', 'replace_syncbn', 'setup_amp',
    'setup_cpu_distributed', 'user_errors', 'load_checkpoint_strict'
]

DOCS_DATASETS = 'docs/dataset_prepare.md'
CONVERTER_CLI = 'tools/model_converters/convert_checkpoint.py FAMILY SRC DST'


class UserError(Exception):
    """A mistake in a command line, a config or a file that a person can fix; the tools print it without a
    traceback."""


def load_config(path: str, cfg_options: Optional[dict] = None, work_dir: Optional[str] = None) -> Config:
    """Parse ``path`` (after ``import mmvit_ext``, so ``mmvit_ext::`` bases resolve) and apply overrides.

    ``work_dir`` precedence: ``work_dir`` argument > config > ``./work_dirs/<config name>``.
    """
    if not osp.isfile(path):
        hint = ''
        if not path.endswith('.py'):
            hint = ' (configs are .py files)'
        elif osp.isfile(osp.join('configs', path)):
            hint = f'; did you mean configs/{path}?'
        raise UserError(f'config file {path!r} does not exist{hint}. List the configs with: ls configs/*/')
    import mmvit_ext  # noqa: F401  (registers mmvit_ext:: bases)
    cfg = Config.fromfile(path)
    if cfg_options:
        cfg.merge_from_dict(cfg_options)
    if work_dir is not None:
        cfg.work_dir = work_dir
    elif cfg.get('work_dir') is None:
        cfg.work_dir = osp.join('./work_dirs', osp.splitext(osp.basename(path))[0])
    return cfg


def _iter_datasets(dataset_cfg, key: str) -> Iterator[Tuple[str, dict]]:
    """Yield ``(config key, dataset cfg)`` for a dataset and the ones it wraps (RepeatDataset, ConcatDataset…)."""
    if not isinstance(dataset_cfg, dict):
        return
    if 'dataset' in dataset_cfg:
        yield from _iter_datasets(dataset_cfg['dataset'], f'{key}.dataset')
    elif 'datasets' in dataset_cfg:
        for i, sub in enumerate(dataset_cfg['datasets']):
            yield from _iter_datasets(sub, f'{key}.datasets.{i}')
    else:
        yield key, dataset_cfg


def check_dataset_paths(cfg: Config, loaders=('train_dataloader', 'val_dataloader', 'test_dataloader')) -> None:
    """Fail early, with the fix, when a dataset's ``data_root`` / ``ann_file`` / image folder is missing.

    Without this the error surfaces as a traceback from deep inside a dataset class after the model is built.
    """
    problems: List[Tuple[str, str]] = []  # (dataset key, what is wrong)
    for loader in loaders:
        loader_cfg = cfg.get(loader)
        if not loader_cfg or 'dataset' not in loader_cfg:
            continue
        for key, ds in _iter_datasets(loader_cfg['dataset'], f'{loader}.dataset'):
            root = ds.get('data_root') or ''
            if root and not osp.isdir(root):
                problems.append((key, f'{key}.data_root = {root!r} is not a directory'))
                continue
            ann = ds.get('ann_file') or ''
            if ann:
                ann_path = ann if osp.isabs(ann) else osp.join(root, ann)
                if not osp.exists(ann_path):
                    problems.append((key, f'{key}.ann_file: {ann_path!r} does not exist'))
            prefix = ds.get('data_prefix') or {}
            for name, sub in (prefix.items() if isinstance(prefix, dict) else []):
                if isinstance(sub, str) and sub:
                    sub_path = sub if osp.isabs(sub) else osp.join(root, sub)
                    if not osp.isdir(sub_path):
                        problems.append((key, f'{key}.data_prefix.{name}: {sub_path!r} is not a directory'))
    if problems:
        first_key = problems[0][0]
        raise UserError(
            'dataset not found:\n  ' + '\n  '.join(text for _, text in problems) +
            f'\nPrepare it as described in {DOCS_DATASETS} (python tools/misc/make_demo_data.py data/demo makes the '
            f'demo data), or point the config at it, e.g. --cfg-options {first_key}.data_root=/path/to/dataset/')


def _iter_pretrained(obj, key: str) -> Iterator[Tuple[str, str]]:
    if isinstance(obj, dict):
        if obj.get('type') == 'Pretrained' and isinstance(obj.get('checkpoint'), str):
            yield f'{key}.checkpoint', obj['checkpoint']
        for name, value in obj.items():
            yield from _iter_pretrained(value, f'{key}.{name}')
    elif isinstance(obj, (list, tuple)):
        for i, value in enumerate(obj):
            yield from _iter_pretrained(value, f'{key}.{i}')


def check_pretrained_paths(cfg: Config) -> None:
    """Fail early when ``init_cfg=dict(type='Pretrained', checkpoint=<local path>)`` or ``load_from`` is missing."""
    problems = [(key, path) for key, path in _iter_pretrained(cfg.get('model'), 'model')
                if '://' not in path and not osp.isfile(path)]
    load_from = cfg.get('load_from')
    if load_from and '://' not in load_from and not osp.isfile(load_from) and not cfg.get('resume'):
        problems.append(('load_from', load_from))
    if problems:
        key, path = problems[0]
        init_key = key.rsplit('.', 1)[0] if key != 'load_from' else key
        raise UserError(
            'pretrained weights not found:\n  ' + '\n  '.join(f'{k} = {p!r}' for k, p in problems) +
            '\nDownload them to that path (each family page in docs/models/ says from where; official checkpoints '
            f'load as released), point to them with --cfg-options {key}=/path/to/weights.pth, or train from '
            f'scratch with --cfg-options {init_key}=None')


def replace_syncbn(obj) -> int:
    """Replace ``SyncBN`` norm types by ``BN`` in place; returns how many were replaced."""
    count = 0
    if isinstance(obj, dict):
        if obj.get('type') in ('SyncBN', 'MMSyncBN', 'TorchSyncBN'):
            obj['type'] = 'BN'
            count += 1
        for value in obj.values():
            count += replace_syncbn(value)
    elif isinstance(obj, (list, tuple)):
        for value in obj:
            count += replace_syncbn(value)
    return count


def setup_cpu_distributed(cfg: Config, launcher: str) -> bool:
    """Make ``--launcher pytorch`` work without CUDA (gloo); a no-op where CUDA is available.

    MMEngine's ``init_dist`` calls ``torch.cuda.set_device`` and its default DDP wrapper passes
    ``device_ids=[LOCAL_RANK]``; both fail on CPU. Runner skips ``init_dist`` when a process group already
    exists, so we create a gloo group here, let DDP run on CPU (``device_ids=None``) and replace SyncBN, which
    DDP rejects on CPU, by BN. Returns whether the CPU path was taken.
    """
    import torch
    import torch.distributed as dist
    if launcher == 'none' or torch.cuda.is_available():
        return False
    if launcher != 'pytorch':
        raise UserError(f'--launcher {launcher} needs GPUs; on CPU use --launcher pytorch (tools/dist_train.sh)')
    for var in ('OMP_NUM_THREADS', 'MKL_NUM_THREADS'):  # MMEngine would force 1 thread otherwise
        os.environ.setdefault(var, str(max(1, (os.cpu_count() or 1) // int(os.environ.get('WORLD_SIZE', 1)))))
    if not dist.is_initialized():
        dist.init_process_group(backend='gloo')
    cfg.setdefault('env_cfg', {})
    cfg.env_cfg.setdefault('dist_cfg', {})
    cfg.env_cfg.dist_cfg['backend'] = 'gloo'
    wrapper = dict(cfg.get('model_wrapper_cfg') or {})
    wrapper.setdefault('type', 'MMDistributedDataParallel')
    wrapper.setdefault('broadcast_buffers', False)
    wrapper.setdefault('find_unused_parameters', cfg.get('find_unused_parameters', False))
    wrapper['device_ids'] = None
    cfg.model_wrapper_cfg = wrapper
    if replace_syncbn(cfg.model):
        print('[mmvit_ext] CPU distributed run: SyncBN replaced by BN (DDP supports SyncBN on GPUs only).')
    return True


def setup_amp(cfg: Config) -> str:
    """Turn on mixed precision: float16 ``AmpOptimWrapper`` on CUDA, bfloat16 autocast on CPU.

    Returns the wrapper type that was set.
    """
    import torch
    optim_wrapper = cfg.optim_wrapper
    current = optim_wrapper.get('type', 'OptimWrapper')
    if current in ('AmpOptimWrapper', 'mmvit_ext.AutocastOptimWrapper'):
        return current
    if current != 'OptimWrapper':
        raise UserError(f'--amp: optim_wrapper.type is {current!r}; --amp only replaces the plain OptimWrapper')
    if torch.cuda.is_available():
        optim_wrapper.type = 'AmpOptimWrapper'
        optim_wrapper.setdefault('loss_scale', 'dynamic')
    else:
        optim_wrapper.type = 'mmvit_ext.AutocastOptimWrapper'
        optim_wrapper.setdefault('dtype', 'bfloat16')
        print('[mmvit_ext] --amp without CUDA: bfloat16 autocast on CPU (no loss scaling needed).')
    return optim_wrapper.type


def ensure_cpu_compatible(cfg: Config) -> None:
    """Replace a config's GPU-only ``AmpOptimWrapper`` (inherited from some host bases) when no GPU is present."""
    import torch
    if torch.cuda.is_available():
        return
    optim_wrapper = cfg.get('optim_wrapper') or {}
    if optim_wrapper.get('type') == 'AmpOptimWrapper':
        optim_wrapper.type = 'mmvit_ext.AutocastOptimWrapper'
        optim_wrapper.pop('loss_scale', None)
        optim_wrapper.setdefault('dtype', 'bfloat16')
        print('[mmvit_ext] no CUDA: the config\'s AmpOptimWrapper is run as bfloat16 autocast on CPU.')


def _mismatch_message(checkpoint: str, missing: List[str], unexpected: List[str], what: str) -> str:

    def sample(keys):
        return ', '.join(keys[:5]) + (', ...' if len(keys) > 5 else '')

    lines = [f'checkpoint {checkpoint!r} does not fit {what}:']
    if missing:
        lines.append(f'  {len(missing)} missing keys: {sample(missing)}')
    if unexpected:
        lines.append(f'  {len(unexpected)} unexpected keys: {sample(unexpected)}')
    lines.append('Check that the checkpoint was trained with this config. Official (non-mmvit_ext) checkpoints must '
                 f'be converted first: python {CONVERTER_CLI}')
    return '\n'.join(lines)


def load_checkpoint_strict(model, checkpoint: str, what: str = 'the model', map_location='cpu') -> dict:
    """Load ``checkpoint`` into ``model`` with every key used; raise :class:`UserError` listing the mismatch."""
    from mmengine.runner.checkpoint import _load_checkpoint
    ckpt = _load_checkpoint(checkpoint, map_location=map_location)
    state_dict = ckpt.get('state_dict', ckpt) if isinstance(ckpt, dict) else ckpt
    if not isinstance(state_dict, dict):
        raise UserError(f'checkpoint {checkpoint!r} holds a {type(state_dict).__name__}, not a state dict')
    state_dict = {(k[7:] if k.startswith('module.') else k): v for k, v in state_dict.items()}
    target = getattr(model, 'module', model)
    own = target.state_dict()
    missing = [k for k in own if k not in state_dict]
    unexpected = [k for k in state_dict if k not in own]
    if missing or unexpected:
        raise UserError(_mismatch_message(checkpoint, missing, unexpected, what))
    bad_shapes = [
        f'{k}: checkpoint {tuple(state_dict[k].shape)} vs model {tuple(v.shape)}' for k, v in own.items()
        if hasattr(state_dict[k], 'shape') and tuple(state_dict[k].shape) != tuple(v.shape)
    ]
    if bad_shapes:
        raise UserError(f'checkpoint {checkpoint!r} does not fit {what}: shape mismatch in ' +
                        '; '.join(bad_shapes[:5]))
    target.load_state_dict(state_dict, strict=True)
    return ckpt


def _registry_hint(message: str) -> str:
    from mmvit_ext.registry import MODELS
    ours = ', '.join(sorted(MODELS.module_dict)) or '(none)'
    return (f'{message}\nCheck the spelling of the type. Modules of this package are written with their scope, '
            f"e.g. type='mmvit_ext.P2T' (registered: {ours}); modules of mmdet/mmseg/mmpretrain need the config's "
            'default_scope or an explicit prefix such as mmdet.RetinaNet.')


@contextmanager
def user_errors(debug: bool = False):
    """Print a person-fixable error as one message (exit status 2) instead of a traceback.

    Covered: :class:`UserError`, unknown registry types, missing files, refused or unfitting checkpoints
    (including a backbone's strict ``init_cfg=Pretrained`` load).
    ``debug=True`` (``--debug``) re-raises with the full traceback.
    """
    from mmvit_ext.models.backbones.base import PretrainedLoadError
    from mmvit_ext.utils.checkpoint import UnsafeCheckpointError
    try:
        yield
    except (UserError, UnsafeCheckpointError, PretrainedLoadError) as err:
        if debug:
            raise
        _die(str(err))
    except KeyError as err:
        text = err.args[0] if err.args else ''
        if debug or not (isinstance(text, str) and 'registry' in text):
            raise
        _die(_registry_hint(text.split(' Please check')[0]))
    except FileNotFoundError as err:
        if debug:
            raise
        _die(f'{err}\nCheck the path in the command line or config (data_root, ann_file, load_from, '
             f'init_cfg.checkpoint); datasets are described in {DOCS_DATASETS}.')
    except RuntimeError as err:
        text = str(err)
        if debug or not ('state_dict' in text and ('Missing key' in text or 'Unexpected key' in text)):
            raise
        _die(f'{text}\nOfficial (non-mmvit_ext) checkpoints must be converted first: python {CONVERTER_CLI}')


def _die(message: str) -> None:
    print(f'error: {message}\n(run with --debug for the full traceback)', file=sys.stderr)
    raise SystemExit(2)
