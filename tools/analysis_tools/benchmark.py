#!/usr/bin/env python
"""Benchmark one or more configs: params, FLOPs, latency, images/s and peak memory, on CPU or CUDA.

    python tools/analysis_tools/benchmark.py CONFIG [CONFIG ...] --shape H W [--batch B]
        [--part model|backbone] [--mode infer|train] [--forward tensor|predict] [--repeat N] [--warmup K]
        [--threads T] [--device auto|cpu|cuda] [--compile] [--no-flops] [--no-memory] [--json OUT]
        [--cfg-options k=v ...] [--debug]

With several configs the timed runs are interleaved (A B A B ...) in one process and ratios against the first
config are printed, so comparisons survive a noisy machine. A CONFIG is a file or a host-repository config named as
in ``_base_`` (``mmdet::pvt/retinanet_pvtv2-b1_fpn_1x_coco.py``); its GPU-only settings (SyncBN,
``AmpOptimWrapper``) are rewritten for a CPU run as in the other tools. Peak memory is measured per config in a
child process. ``--mode infer`` times ``model.eval()`` + ``torch.no_grad()`` forward; ``--mode train`` times
forward + backward of a surrogate loss (no optimizer step). ``--compile`` times the ``torch.compile``'d model;
the warm-up rounds (at least one) include the compilation. See ``mmvit_ext/analysis/benchmark.py`` and
``docs/tools/benchmark.md``.
"""
import argparse
import os.path as osp
import sys
import warnings

sys.path.insert(0, osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__)))))
# MMEngine 0.10.7 imports pkg_resources (needed for ``mmdet::`` bases); its deprecation notice is only noise here.
warnings.filterwarnings('ignore', message='pkg_resources is deprecated', category=UserWarning)


def parse_args(argv=None):
    from mmengine.config import DictAction
    parser = argparse.ArgumentParser(description='Latency / throughput / memory / FLOPs benchmark of configs')
    parser.add_argument(
        'configs',
        nargs='+',
        metavar='CONFIG',
        help='config file(s) or host configs (mmdet::pvt/<file>.py); the first is the reference')
    parser.add_argument('--shape', type=int, nargs='+', default=[224, 224], help='input size "H W" (or one number)')
    parser.add_argument('--batch', type=int, default=1, help='images per timed run')
    parser.add_argument(
        '--part',
        choices=['model', 'backbone'],
        default='model',
        help='time the whole model (default) or only cfg.model.backbone')
    parser.add_argument(
        '--mode',
        choices=['infer', 'train'],
        default='infer',
        help='infer: eval + no_grad forward; train: forward + backward of a surrogate loss')
    parser.add_argument(
        '--forward',
        choices=['tensor', 'predict'],
        default='tensor',
        help="whole models in infer mode: 'tensor' = network only (default), "
        "'predict' = with post-processing (NMS, resizing)")
    parser.add_argument('--repeat', type=int, default=20, help='timed runs per config')
    parser.add_argument('--warmup', type=int, default=5, help='untimed runs per config first')
    parser.add_argument('--threads', type=int, default=None, help='torch.set_num_threads (default: torch default)')
    parser.add_argument('--device', default='auto', help="'auto' (CUDA when available), 'cpu' or 'cuda[:i]'")
    parser.add_argument(
        '--compile',
        action='store_true',
        help='torch.compile the timed model; the first warm-up round compiles (needs --warmup >= 1)')
    parser.add_argument('--no-flops', action='store_true', help='skip the FLOP count (one JIT trace per config)')
    parser.add_argument('--no-memory', action='store_true', help='skip the peak-memory child processes')
    parser.add_argument('--json', default=None, metavar='OUT', help='write the results as a JSON list')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction, help='overrides for every config, k=v')
    parser.add_argument('--quiet', action='store_true', help='no progress messages')
    parser.add_argument('--debug', action='store_true', help='show full tracebacks')
    return parser.parse_args(argv)


def main(argv=None):
    """Entry point; returns the list of result records."""
    args = parse_args(argv)
    from mmvit_ext.utils.launch import user_errors
    with user_errors(args.debug):
        from mmvit_ext.analysis.benchmark import format_results, run_benchmark, write_json
        records = run_benchmark(
            args.configs,
            args.shape,
            batch_size=args.batch,
            part=args.part,
            mode=args.mode,
            forward=args.forward,
            repeat=args.repeat,
            warmup=args.warmup,
            threads=args.threads,
            device=args.device,
            cfg_options=args.cfg_options,
            flops=not args.no_flops,
            memory=not args.no_memory,
            compile=args.compile,
            log=None if args.quiet else (lambda msg: print(msg, file=sys.stderr, flush=True)))
        print(format_results(records))
        if args.json:
            write_json(records, args.json)
            print(f'\nresults written to {args.json}')
    return records


if __name__ == '__main__':
    main()
