#!/usr/bin/env python
"""Parameters and FLOPs (multiply-accumulates) of a model or its backbone, from a config.

    python tools/analysis_tools/get_flops.py CONFIG --shape H W [--part model|backbone]
        [--cfg-options k=v ...] [--device auto|cpu|cuda] [--ignore-ops aten::layer_norm ...]
        [--show-table [--max-depth 3]] [--debug]

Works for mmdet, mmseg and mmpretrain configs (each carries its own ``default_scope``) and for any config whose
``model`` is registered. CONFIG is a file or a host-repository config named as in ``_base_``, e.g.
``mmdet::pvt/retinanet_pvtv2-b1_fpn_1x_coco.py``; its GPU-only settings (SyncBN, ``AmpOptimWrapper``) are rewritten
for a CPU run as in the other tools.
The input is a dummy batch of one ``3×H×W`` image; for ``--part model`` it goes through the model's data
preprocessor and ``mode='tensor'`` forward (backbone + neck + heads, no post-processing), as the host repositories'
``get_flops.py`` do. Counting is MMEngine's ``FlopAnalyzer`` plus handles for
``scaled_dot_product_attention``, ``baddbmm``, broadcast ``matmul`` and ``cdist`` (see
``mmvit_ext/analysis/flops.py`` and ``docs/tools/get_flops.md``). Mistakes (a missing config, ``--part backbone``
for a model without one) stop with one ``error:`` line (exit status 2); ``--debug`` shows the traceback.

The number printed is in GMACs (multiply-accumulates), which is what papers call "FLOPs".
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
    parser = argparse.ArgumentParser(description='Params and FLOPs (GMACs) of a model or backbone built from a config')
    parser.add_argument('config', help='config file path, or a host config such as mmseg::swin/<file>.py')
    parser.add_argument(
        '--shape',
        type=int,
        nargs='+',
        default=[224, 224],
        help='input size "H W" (or one number for a square); papers use 224 (cls), '
        '512 512 (seg), 800 1280 (det)')
    parser.add_argument(
        '--part',
        choices=['model', 'backbone'],
        default='model',
        help='count the whole model (default) or only cfg.model.backbone')
    parser.add_argument('--device', default='auto', help="'auto' (CUDA when available), 'cpu' or 'cuda[:i]'")
    parser.add_argument(
        '--ignore-ops',
        nargs='+',
        default=[],
        metavar='OP',
        help='operators to leave out, e.g. aten::layer_norm aten::batch_norm')
    parser.add_argument('--show-table', action='store_true', help='print the per-module table')
    parser.add_argument('--max-depth', type=int, default=3, help='depth of the per-module table')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction, help='override config settings, k=v')
    parser.add_argument('--debug', action='store_true', help='show full tracebacks')
    return parser.parse_args(argv)


def main(argv=None):
    """Entry point; returns the :class:`~mmvit_ext.analysis.flops.FlopsResult`."""
    args = parse_args(argv)
    from mmvit_ext.utils.launch import user_errors
    with user_errors(args.debug):
        from mmvit_ext.analysis.flops import get_flops
        from mmvit_ext.analysis.inputs import parse_shape
        shape = parse_shape(args.shape)
        result = get_flops(
            args.config,
            shape,
            part=args.part,
            cfg_options=args.cfg_options,
            device=args.device,
            ignore_ops=args.ignore_ops,
            table_depth=args.max_depth if args.show_table else 0)
    print(result.summary())
    if tuple(result.input_shape[-2:]) != shape:
        print(f'NOTE: the data preprocessor padded the {shape[0]}x{shape[1]} input to '
              f'{result.input_shape[-2]}x{result.input_shape[-1]}; the count is for the padded size.')
    print('Please be cautious when using these numbers in papers: check the list of uncounted operators above '
          'and state the input shape and the unit (MACs).')
    return result


if __name__ == '__main__':
    main()
