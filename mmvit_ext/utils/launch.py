"""What the tools share: config loading, pre-flight checks with clear errors, the rewrite of GPU-only settings for
CPU runs, CPU distributed runs (gloo), mixed precision without a GPU, ``--compile`` and the strict checkpoint load.

Each helper is small and tested on its own (``tests/test_tools/test_launch.py``); the tools only wire them up. The
error scheme (:class:`UserError`, :func:`user_errors`) lives in :mod:`mmvit_ext.utils.errors` and is re-exported
here.
"""
import copy
import os
import os.path as osp
import shutil
import sys
from typing import TYPE_CHECKING, Callable, Iterator, List, Optional, Tuple, Union

from mmengine.config import Config, ConfigDict, DictAction  # noqa: F401  (DictAction re-exported for the tools)

from .errors import CONVERTER_CLI, DOCS_DATASETS, UserError, user_errors

if TYPE_CHECKING:
    import torch

__all__ = [
    'UserError', 'user_errors', 'resolve_config_path', 'load_config', 'check_dataset_paths', 'check_pretrained_paths',
    'replace_syncbn', 'resolve_device', 'adapt_cfg_for_device', 'setup_amp', 'check_compiler', 'setup_compile',
    'compile_kwargs', 'setup_tta', 'setup_cpu_distributed', 'load_checkpoint_strict', 'check_loops', 'drop_loops'
]


def resolve_config_path(config: str) -> str:
    """The file behind ``config``: a local path, or a host-repository config ``'<pkg>::<dir>/<file>.py'``.

    ``pkg::`` names are those MMEngine accepts in ``_base_`` (``mmdet``, ``mmseg``, ``mmpretrain``, ... and
    ``mmvit_ext``); the file is ``<installed package>/.mim/configs/<dir>/<file>.py``, as for a ``_base_``
    (MMEngine's ``Config.fromfile`` does not accept these names). Unlike ``mmengine.hub.get_config`` this never
    installs a missing package.

    Args:
        config (str): Path or ``pkg::path``.

    Returns:
        str: Path of an existing file.

    Raises:
        UserError: The file does not exist (for ``pkg::`` names: in the installed package, with the folder's
            configs listed), or a malformed ``pkg::`` name, an unknown package or one that is not installed.
    """
    if '::' not in config:
        if not osp.isfile(config):
            hint = ''
            if not config.endswith('.py'):
                hint = ' (configs are .py files)'
            elif osp.isfile(osp.join('configs', config)):
                hint = f'; did you mean configs/{config}?'
            raise UserError(f'config file {config!r} does not exist{hint}. List the configs with: ls configs/*/')
        return config
    import mmengine.utils as mmengine_utils
    from mmengine.config.utils import MODULE2PACKAGE, _get_package_and_cfg_path

    import mmvit_ext  # noqa: F401  (registers ``mmvit_ext::``)

    scope = config.partition('::')[0]
    if scope not in MODULE2PACKAGE:
        raise UserError(f'{config}: unknown package {scope!r} before "::"; known: {", ".join(sorted(MODULE2PACKAGE))}')
    try:
        package, rel_path = _get_package_and_cfg_path(config)
    except ValueError as err:
        raise UserError(f'{config}: expected "<pkg>::<dir>/<file>.py", e.g. '
                        f'"mmdet::pvt/retinanet_pvtv2-b1_fpn_1x_coco.py" ({err})') from None
    if not mmengine_utils.is_installed(package):
        raise UserError(f'{config}: package {package!r} is not installed')
    configs_dir = osp.join(mmengine_utils.get_installed_path(package), '.mim', 'configs')
    path = osp.join(configs_dir, rel_path)
    if not osp.isfile(path):
        folder = osp.join(configs_dir, osp.dirname(rel_path))
        hint = ''
        if osp.isdir(folder):
            names = sorted(f for f in os.listdir(folder) if f.endswith('.py'))
            hint = f'; {scope}::{osp.dirname(rel_path)}/ holds: ' + ', '.join(
                names[:12]) + (', ...' if len(names) > 12 else '')
        raise UserError(f'config file {config!r} does not exist (looked for {path}){hint}')
    return path


def load_config(path: str, cfg_options: Optional[dict] = None, work_dir: Optional[str] = None) -> Config:
    """Parse ``path`` (a file or a ``pkg::`` name, see :func:`resolve_config_path`) after ``import mmvit_ext``
    (so ``mmvit_ext::`` bases resolve) and apply overrides.

    ``work_dir`` precedence: ``work_dir`` argument > config > ``./work_dirs/<config name>``.
    """
    filename = resolve_config_path(path)
    import mmvit_ext  # noqa: F401  (registers mmvit_ext:: bases)
    cfg = Config.fromfile(filename)
    if cfg_options:
        cfg.merge_from_dict(cfg_options)
    if work_dir is not None:
        cfg.work_dir = work_dir
    elif cfg.get('work_dir') is None:
        cfg.work_dir = osp.join('./work_dirs', osp.splitext(osp.basename(filename))[0])
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


# What MMEngine's Runner builds a loop from; it refuses a config that sets some but not all of one loop's entries.
LOOP_KEYS = dict(
    train=('train_dataloader', 'train_cfg', 'optim_wrapper'),
    val=('val_dataloader', 'val_cfg', 'val_evaluator'),
    test=('test_dataloader', 'test_cfg', 'test_evaluator'))


def check_loops(cfg: Config, loops=('train', 'val', 'test')) -> None:
    """Each of ``loops`` is set in full or not at all (else MMEngine's Runner stops with a ValueError traceback).

    Raises:
        UserError: Names the missing entries of a loop and the two ways out.
    """
    for loop in loops:
        keys = LOOP_KEYS[loop]
        missing = [key for key in keys if cfg.get(key) is None]
        if 0 < len(missing) < len(keys):
            raise UserError(f'the config sets {", ".join(k for k in keys if k not in missing)} but not '
                            f'{", ".join(missing)}: MMEngine needs all of {", ".join(keys)} for the {loop} loop, '
                            'or none of them')


def drop_loops(cfg: Config, loops=('train', 'val')) -> None:
    """Set the entries of ``loops`` (and the training schedule with ``'train'``) to None: ``tools/test.py`` runs only
    the test loop, so a test-only config need not carry complete training or validation settings."""
    for loop in loops:
        for key in LOOP_KEYS[loop] + (('param_scheduler', ) if loop == 'train' else ()):
            cfg[key] = None


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


def resolve_device(device: Union[str, 'torch.device', None] = 'auto') -> 'torch.device':
    """``'auto'``/``None`` -> CUDA when available, else CPU; anything else is passed to ``torch.device``.

    Raises:
        UserError: A CUDA device is requested but CUDA is not available, or the name is not a device.
    """
    import torch
    if device is None or str(device) == 'auto':
        return torch.device('cuda' if torch.cuda.is_available() else 'cpu')
    try:
        device = torch.device(device)
    except RuntimeError as err:
        raise UserError(f'--device {device!r}: {err}; use auto, cpu or cuda[:i]') from None
    if device.type == 'cuda' and not torch.cuda.is_available():
        raise UserError(f'device {device} was requested but CUDA is not available; use --device cpu')
    return device


def adapt_cfg_for_device(cfg: Config,
                         device: Union[str, 'torch.device', None] = 'auto',
                         log: Optional[Callable[[str], None]] = print) -> List[str]:
    """Rewrite, in place, the GPU-only settings of a config for a run on ``device``; returns what was changed.

    Host base configs are written for GPUs. For a CPU run (``device`` is ``'cpu'``, or ``'auto'`` without CUDA):

    * ``optim_wrapper.type='AmpOptimWrapper'`` (float16 with a loss scaler; it asserts a GPU when built) becomes
      ``'mmvit_ext.AutocastOptimWrapper'`` with ``dtype='bfloat16'``: still mixed precision, and bfloat16 needs no
      loss scaling. The analysis tools never build the optimizer; for them this only keeps the config buildable.
    * ``SyncBN`` / ``MMSyncBN`` / ``TorchSyncBN`` in ``cfg.model`` become ``BN``: the same computation in one
      process, and DDP accepts SyncBN on GPUs only (see :func:`setup_cpu_distributed`).

    On CUDA nothing changes (a single-process Runner reverts SyncBN itself, and the analysis tools revert SyncBN
    modules after building). Used by every tool that builds a model: train, test, get_flops, benchmark and
    expedite_report.

    Args:
        cfg (Config): The config.
        device (str | torch.device | None): ``'auto'``, ``'cpu'``, ``'cuda[:i]'``. Defaults to ``'auto'``.
        log (Callable, optional): Receives one line per change (``None``: silent). Defaults to ``print``.

    Returns:
        list[str]: One description per change, e.g. ``'SyncBN -> BN in model (2 norm layer(s))'``.
    """
    if resolve_device(device).type != 'cpu':
        return []
    changes = []
    optim_wrapper = cfg.get('optim_wrapper')
    if isinstance(optim_wrapper, dict) and optim_wrapper.get('type') == 'AmpOptimWrapper':
        optim_wrapper['type'] = 'mmvit_ext.AutocastOptimWrapper'
        optim_wrapper.pop('loss_scale', None)
        optim_wrapper.setdefault('dtype', 'bfloat16')
        changes.append('AmpOptimWrapper -> mmvit_ext.AutocastOptimWrapper (bfloat16 autocast, no loss scaling)')
    count = replace_syncbn(cfg.model) if cfg.get('model') is not None else 0
    if count:
        changes.append(f'SyncBN -> BN in model ({count} norm layer(s))')
    if log is not None:
        for change in changes:
            log(f'[mmvit_ext] CPU run: {change}')
    return changes


def setup_cpu_distributed(cfg: Config, launcher: str) -> bool:
    """Make ``--launcher pytorch`` work without CUDA (gloo); a no-op where CUDA is available.

    MMEngine's ``init_dist`` calls ``torch.cuda.set_device`` and its default DDP wrapper passes
    ``device_ids=[LOCAL_RANK]``; both fail on CPU. Runner skips ``init_dist`` when a process group already
    exists, so we create a gloo group here, let DDP run on CPU (``device_ids=None``) and apply
    :func:`adapt_cfg_for_device` for the CPU (SyncBN, which DDP rejects on CPU, becomes BN). Returns whether the
    CPU path was taken.
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
    adapt_cfg_for_device(cfg, 'cpu')
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


def check_compiler(device: Union[str, 'torch.device', None] = 'auto') -> None:
    """Fail early when ``torch.compile`` (TorchInductor) cannot build CPU kernels: it needs a C++ compiler.

    Raises:
        UserError: For a CPU run without the compiler TorchInductor calls (``$CXX``, default ``g++``; ``clang++``
            on macOS).
    """
    if resolve_device(device).type != 'cpu':
        return
    cxx = os.environ.get('CXX') or ('clang++' if sys.platform == 'darwin' else 'g++')
    if shutil.which(cxx) is None:
        raise UserError(f'--compile on CPU needs a C++ compiler for TorchInductor, and {cxx!r} was not found; '
                        'install g++ (or set CXX), or run without --compile')


# Inductor options of ``--compile`` for inference: ``freezing`` treats the weights as constants (folded, and on CPU
# convs/matmuls prepacked for oneDNN), which the test loop allows since it never changes them. Measured on P2T-T,
# 1 thread: compiled with freezing 0.87-0.90x (1x512²) and 0.91x (8x224²) of eager; without it 0.99x
# (docs/models/p2t.md).
INFERENCE_COMPILE_OPTIONS = dict(freezing=True)


def compile_kwargs(inference: bool, cfg_compile=None) -> dict:
    """``torch.compile`` keyword arguments: those of a ``cfg.compile`` dict (``True``/None: none), plus the
    inference options (``INFERENCE_COMPILE_OPTIONS``) under ``options`` when ``inference``; the config's own
    ``options`` win."""
    kwargs = dict(cfg_compile) if isinstance(cfg_compile, dict) else {}
    if inference:
        kwargs['options'] = {**INFERENCE_COMPILE_OPTIONS, **kwargs.get('options', {})}
    return kwargs


def setup_compile(cfg: Config, inference: bool = False) -> None:
    """``--compile``: set MMEngine's ``cfg.compile`` (keeping a dict of ``torch.compile`` options already there).

    MMEngine's Runner then compiles ``model.train_step`` in ``train()``; ``tools/test.py`` compiles ``test_step``
    the same way, with ``inference=True`` adding the inference options (weights frozen as constants). The first
    iterations include the compilation.
    """
    check_compiler('auto')
    cfg.compile = compile_kwargs(inference, cfg.get('compile')) or True


# ``--tta`` on a config without ``tta_model``/``tta_pipeline``: what the host tools (mmdet 3.3, mmpretrain 1.2
# ``tools/test.py``) then use, a horizontal flip of the test pipeline merged by the host's TTA model. mmseg's tool
# has no default (its ``default_runtime`` defines ``tta_model``; the pipeline must come from the config).
_DET_TTA_MODEL = dict(type='DetTTAModel', tta_cfg=dict(nms=dict(type='nms', iou_threshold=0.5), max_per_img=100))
_DET_TTA_PACK = dict(
    type='PackDetInputs',
    meta_keys=('img_id', 'img_path', 'ori_shape', 'img_shape', 'scale_factor', 'flip', 'flip_direction'))
# scope: (tta_model, packing transform of the augmented views; None keeps the test pipeline's own)
_TTA_DEFAULTS = dict(
    mmdet=(_DET_TTA_MODEL, _DET_TTA_PACK), mmpretrain=(dict(type='mmpretrain.AverageClsScoreTTA'), None))


def setup_tta(cfg: Config) -> None:
    """``--tta``: test with the config's ``tta_model`` wrapping its ``model`` and its ``tta_pipeline`` as the test
    pipeline, as the host tools (mmdet, mmseg, mmpretrain ``tools/test.py --tta``) rewrite it.

    Where the config lacks them, mmdet and mmpretrain configs get their host tool's defaults (flip TTA: the test
    pipeline with its last transform replaced by a ``TestTimeAug`` over {flipped, not flipped} and the packing;
    ``DetTTAModel`` with NMS 0.5 / ``AverageClsScoreTTA``). The pipeline is set on the innermost test dataset
    (inside ``RepeatDataset``-style wrappers); mmdet's ``batch_shapes_cfg`` (fixed batch shapes) is switched off, as
    mmdet does, since the augmented views differ in size.

    Raises:
        UserError: An mmseg (or other) config lacks ``tta_model`` or ``tta_pipeline`` (both are named).
    """
    dataset = cfg.test_dataloader.dataset
    while 'dataset' in dataset:
        dataset = dataset['dataset']
    defaults = _TTA_DEFAULTS.get(cfg.get('default_scope'))
    if defaults is not None:
        model, pack = defaults
        if not cfg.get('tta_model'):
            cfg.tta_model = copy.deepcopy(model)
        if not cfg.get('tta_pipeline'):
            pipeline = copy.deepcopy(list(dataset.pipeline))
            flips = [dict(type='RandomFlip', prob=1.), dict(type='RandomFlip', prob=0.)]
            packing = pipeline[-1] if pack is None else copy.deepcopy(pack)
            pipeline[-1] = dict(type='TestTimeAug', transforms=[flips, [packing]])
            cfg.tta_pipeline = pipeline
    missing = [key for key in ('tta_model', 'tta_pipeline') if not cfg.get(key)]
    if missing:
        raise UserError(f'--tta needs {" and ".join(missing)} in the config: tta_model wraps the model (e.g. '
                        "dict(type='SegTTAModel'), mmseg's default_runtime has it) and tta_pipeline is the test "
                        'pipeline with a TestTimeAug transform; see the Semantic FPN configs of configs/p2t')
    cfg.model = ConfigDict(**cfg.tta_model, module=cfg.model)
    if 'batch_shapes_cfg' in dataset:
        dataset.batch_shapes_cfg = None
    dataset.pipeline = cfg.tta_pipeline


def load_checkpoint_strict(model, checkpoint: str, what: str = 'the model', map_location='cpu') -> dict:
    """Load ``checkpoint`` into ``model`` with every key used, through
    :func:`mmvit_ext.utils.checkpoint.load_state_dict_strict`; DDP/TTA wrappers and ``module.`` prefixes are stripped.

    Args:
        model (nn.Module): The model, possibly wrapped (``model.module``: DDP, a TTA model, or both).
        checkpoint (str): Path or URL.
        what (str): What the checkpoint must fit, for the message. Defaults to ``'the model'``.
        map_location: As for ``torch.load``. Defaults to ``'cpu'``.

    Returns:
        dict: The loaded checkpoint (``meta``, ``state_dict``, ...).

    Raises:
        StateDictMismatchError: The keys or shapes differ; nothing was loaded.
        UserError: The file does not hold a state dict.
    """
    from mmengine.runner.checkpoint import _load_checkpoint

    from mmvit_ext.utils.checkpoint import load_state_dict_strict
    ckpt = _load_checkpoint(checkpoint, map_location=map_location)
    state_dict = ckpt.get('state_dict', ckpt) if isinstance(ckpt, dict) else ckpt
    if not isinstance(state_dict, dict):
        raise UserError(f'checkpoint {checkpoint!r} holds a {type(state_dict).__name__}, not a state dict')
    state_dict = {(k[7:] if k.startswith('module.') else k): v for k, v in state_dict.items()}
    while hasattr(model, 'module'):  # DDP and test-time-augmentation wrappers
        model = model.module
    load_state_dict_strict(
        model,
        state_dict,
        source=f'checkpoint {checkpoint!r}',
        hint=(f'It must be a checkpoint of {what}: check that it was trained with this config. Official '
              f'(non-mmvit_ext) checkpoints must be converted first: python {CONVERTER_CLI}'))
    return ckpt
