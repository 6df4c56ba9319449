#!/usr/bin/env python
"""Train a model from an mmdet / mmseg / mmpretrain / mmvit_ext config.

    python tools/train.py CONFIG [--work-dir DIR] [--resume [CKPT]] [--amp] [--compile] [--cfg-options k=v ...]
    bash tools/dist_train.sh CONFIG NUM_PROCS [args...]      # torchrun; gloo on CPU, nccl on GPUs
"""
import argparse
import os
import sys
import warnings

warnings.filterwarnings('ignore', message='pkg_resources is deprecated', category=UserWarning)
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # run from a clone, too

from mmvit_ext.utils.launch import (DictAction, UserError, adapt_cfg_for_device, check_dataset_paths, check_loops,
                                    check_pretrained_paths, drop_loops, load_config, setup_amp, setup_compile,
                                    setup_cpu_distributed, user_errors)


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description='Train a model (mmvit_ext)')
    parser.add_argument('config', help='train config file path')
    parser.add_argument('--work-dir', help='the dir to save logs and models')
    parser.add_argument(
        '--resume',
        nargs='?',
        type=str,
        const='auto',
        help='resume from the given checkpoint, or (no value) from the latest checkpoint in the work dir')
    parser.add_argument(
        '--amp',
        action='store_true',
        help='mixed precision: float16 with loss scaling on CUDA, bfloat16 autocast on CPU')
    parser.add_argument(
        '--compile',
        action='store_true',
        help="torch.compile the model (MMEngine's cfg.compile); the first iterations compile")
    parser.add_argument('--auto-scale-lr', action='store_true', help='scale the lr by the actual batch size')
    parser.add_argument('--no-validate', action='store_true', help='skip validation during training')
    parser.add_argument(
        '--cfg-options',
        nargs='+',
        action=DictAction,
        help='override settings of the config, e.g. train_cfg.max_iters=100 '
        'train_dataloader.dataset.data_root=/path/to/data/')
    parser.add_argument('--launcher', choices=['none', 'pytorch', 'slurm', 'mpi'], default='none', help='job launcher')
    parser.add_argument('--debug', action='store_true', help='show full tracebacks instead of short error messages')
    # torch.distributed.launch passes --local-rank (torch >= 2.0) or --local_rank (older)
    parser.add_argument('--local_rank', '--local-rank', type=int, default=0)
    args = parser.parse_args(argv)
    os.environ.setdefault('LOCAL_RANK', str(args.local_rank))
    return args


def main(argv=None):
    args = parse_args(argv)
    with user_errors(args.debug):
        cfg = load_config(args.config, args.cfg_options, args.work_dir)
        cfg.launcher = args.launcher
        if args.amp:
            setup_amp(cfg)
        if args.compile:
            setup_compile(cfg)
        adapt_cfg_for_device(cfg, 'auto')
        if args.resume == 'auto':
            cfg.resume, cfg.load_from = True, None
        elif args.resume is not None:
            cfg.resume, cfg.load_from = True, args.resume
        if args.no_validate:
            drop_loops(cfg, ('val', ))
        if args.auto_scale_lr:
            if 'auto_scale_lr' not in cfg or 'base_batch_size' not in cfg.auto_scale_lr:
                raise UserError('--auto-scale-lr needs auto_scale_lr.base_batch_size in the config')
            cfg.auto_scale_lr.enable = True
        check_loops(cfg, ('train', ) if args.no_validate else ('train', 'val'))
        check_dataset_paths(cfg, ('train_dataloader', ) if args.no_validate else ('train_dataloader', 'val_dataloader'))
        if not cfg.get('resume'):
            check_pretrained_paths(cfg)
        setup_cpu_distributed(cfg, args.launcher)

        from mmengine.registry import RUNNERS
        from mmengine.runner import Runner
        runner = Runner.from_cfg(cfg) if 'runner_type' not in cfg else RUNNERS.build(cfg)
        runner.train()


if __name__ == '__main__':
    main()
