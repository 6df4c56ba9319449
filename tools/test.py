#!/usr/bin/env python
"""Evaluate a checkpoint with an mmdet / mmseg / mmpretrain / mmvit_ext config.

    python tools/test.py CONFIG CHECKPOINT [--work-dir DIR] [--out results.pkl] [--show-dir DIR] [--tta] [--compile]
    bash tools/dist_test.sh CONFIG CHECKPOINT NUM_PROCS [args...]

The checkpoint must fit the model exactly: a mismatch stops with the missing/unexpected keys instead of
silently evaluating a partly random model.
"""
import argparse
import os
import os.path as osp
import sys
import warnings

warnings.filterwarnings('ignore', message='pkg_resources is deprecated', category=UserWarning)
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from mmvit_ext.utils.launch import (DictAction, UserError, adapt_cfg_for_device, check_dataset_paths, check_loops,
                                    drop_loops, load_checkpoint_strict, load_config, setup_compile,
                                    setup_cpu_distributed, setup_tta, user_errors)


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description='Test (and evaluate) a model (mmvit_ext)')
    parser.add_argument('config', help='test config file path')
    parser.add_argument('checkpoint', help='checkpoint file')
    parser.add_argument('--work-dir', help='the directory to save the evaluation metrics')
    parser.add_argument('--out', help='dump the raw predictions to this pickle file (mmengine DumpResults)')
    parser.add_argument('--show-dir', help='save painted predictions under WORK_DIR/TIMESTAMP/SHOW_DIR')
    parser.add_argument(
        '--tta',
        action='store_true',
        help="test-time augmentation: the config's tta_model around its model, tta_pipeline as test pipeline")
    parser.add_argument('--wait-time', type=float, default=0, help='interval of --show in seconds')
    parser.add_argument(
        '--compile',
        action='store_true',
        help="torch.compile the model's test_step (MMEngine's cfg.compile); the first batches compile")
    parser.add_argument(
        '--cfg-options',
        nargs='+',
        action=DictAction,
        help='override settings of the config, e.g. test_dataloader.dataset.data_root=/path/to/data/')
    parser.add_argument('--launcher', choices=['none', 'pytorch', 'slurm', 'mpi'], default='none', help='job launcher')
    parser.add_argument('--debug', action='store_true', help='show full tracebacks instead of short error messages')
    parser.add_argument('--local_rank', '--local-rank', type=int, default=0)
    args = parser.parse_args(argv)
    os.environ.setdefault('LOCAL_RANK', str(args.local_rank))
    return args


VISUALIZATION_HOOKS = dict(mmdet='DetVisualizationHook', mmseg='SegVisualizationHook', mmpretrain='VisualizationHook')


def _enable_visualization(cfg, show_dir, wait_time):
    hooks = cfg.setdefault('default_hooks', {})
    name = next((k for k in ('visualization', 'visualizer') if k in hooks), None)
    if name is None:  # configs without one get their host library's hook
        if cfg.get('default_scope') not in VISUALIZATION_HOOKS:
            raise UserError('--show-dir: the config has no visualization hook in default_hooks and no '
                            f'default_scope among {sorted(VISUALIZATION_HOOKS)}')
        name = 'visualization'
        hooks[name] = dict(type=VISUALIZATION_HOOKS[cfg.default_scope])
    hook, scope = hooks[name], cfg.get('default_scope')
    if scope == 'mmpretrain':  # VisualizationHook(enable, out_dir); out_dir is resolved once the Runner exists
        # every sample, as mmpretrain's tool does (its --interval defaults to 1; the hook's own default is 5000)
        hook.update(enable=True, show=False, out_dir=show_dir, interval=1)
    elif scope == 'mmseg':  # SegVisualizationHook draws every `interval`-th batch through the visualizer's backends
        hook.update(draw=True, show=False, wait_time=wait_time, interval=1)
    else:  # mmdet: DetVisualizationHook(test_out_dir) under WORK_DIR/TIMESTAMP
        hook.update(draw=True, show=False, wait_time=wait_time, test_out_dir=show_dir)


def _resolve_show_dir(runner, show_dir):
    """Painted images go to ``WORK_DIR/TIMESTAMP/SHOW_DIR`` (an absolute ``SHOW_DIR`` as is) for every host, as
    mmdet's hook does by itself; mmpretrain's hook and mmseg's visualizer would take a relative path from the cwd."""
    target = osp.join(runner.log_dir, show_dir)
    scope = runner.cfg.get('default_scope')
    if scope == 'mmpretrain':
        for hook in runner.hooks:
            if type(hook).__name__ == 'VisualizationHook':
                hook.out_dir = target
    elif scope == 'mmseg':
        from mmengine.visualization import LocalVisBackend

        # the visualizer's local backend saves under its image folder, initialised when the Runner dumped the config
        for backend in getattr(runner.visualizer, '_vis_backends', {}).values():
            if isinstance(backend, LocalVisBackend):
                backend._img_save_dir = target


def main(argv=None):
    args = parse_args(argv)
    with user_errors(args.debug):
        cfg = load_config(args.config, args.cfg_options, args.work_dir)
        cfg.launcher = args.launcher
        if not osp.isfile(args.checkpoint):
            raise UserError(f'checkpoint {args.checkpoint!r} does not exist')
        if args.tta:
            setup_tta(cfg)
        if args.show_dir:
            _enable_visualization(cfg, args.show_dir, args.wait_time)
        if args.compile:
            setup_compile(cfg, inference=True)
        adapt_cfg_for_device(cfg, 'auto')
        drop_loops(cfg)  # only the test loop runs
        check_loops(cfg, ('test', ))
        check_dataset_paths(cfg, ('test_dataloader', ))
        setup_cpu_distributed(cfg, args.launcher)
        cfg.load_from = None

        from mmengine.registry import RUNNERS
        from mmengine.runner import Runner
        runner = Runner.from_cfg(cfg) if 'runner_type' not in cfg else RUNNERS.build(cfg)
        if args.show_dir:
            _resolve_show_dir(runner, args.show_dir)
        load_checkpoint_strict(runner.model, args.checkpoint, what=f'the model of {args.config}')
        runner._has_loaded = True  # Runner.test() would otherwise re-load load_from non-strictly
        if cfg.get('compile'):
            # MMEngine 0.10 compiles only train_step (in Runner.train); test_step the same way, with its helper
            runner._maybe_compile('test_step')
        if args.out:
            from mmengine.evaluator import DumpResults
            if not args.out.endswith(('.pkl', '.pickle')):
                raise UserError('--out must be a .pkl or .pickle file')
            runner.test_evaluator.metrics.append(DumpResults(out_file_path=args.out))
        metrics = runner.test()
        if runner.rank == 0:
            print('Test results: ' + ', '.join(f'{k}: {_fmt(v)}' for k, v in metrics.items()))
        return metrics


def _fmt(value):
    try:
        return f'{float(value):.4f}'
    except (TypeError, ValueError):
        return str(value)


if __name__ == '__main__':
    main()
