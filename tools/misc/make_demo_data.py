"""Write the small synthetic demo data sets (COCO, ADE20K and ImageNet formats).

Usage::

    python tools/misc/make_demo_data.py data/demo                 # what configs/_base_/datasets/demo_*.py read
    python tools/misc/make_demo_data.py OUT_DIR --seed 1 --num-train 128 --num-val 32 --size 192
    python tools/misc/make_demo_data.py OUT_DIR --datasets coco ade

The same arguments always give byte-identical files. See ``mmvit_ext/datasets/demo_data.py`` for the layout.
Out-of-range values and unwritable folders stop with one ``error:`` line (exit status 2); ``--debug`` shows the
traceback.
"""
import argparse
import importlib
import importlib.util
import os.path as osp

_REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))


def _load_light(module: str):
    """``mmvit_ext.<module>``, loaded from the source tree when present.

    Loading the file directly needs only what the module itself imports (numpy and OpenCV for the generator, the
    standard library for the error scheme): ``import mmvit_ext`` would also import torch, mmcv and the models,
    which writing a few images does not need.
    """
    path = osp.join(_REPO, 'mmvit_ext', *module.split('.')) + '.py'
    if osp.isfile(path):
        spec = importlib.util.spec_from_file_location('_mmvit_ext_' + module.replace('.', '_'), path)
        loaded = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(loaded)
        return loaded
    return importlib.import_module(f'mmvit_ext.{module}')


demo_data = _load_light('datasets.demo_data')
errors = _load_light('utils.errors')
DATASETS, make_demo_data = demo_data.DATASETS, demo_data.make_demo_data


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description='Write the synthetic demo data sets of mmvit_ext.')
    parser.add_argument('out_dir', nargs='?', default='data/demo', help='output root (default: data/demo)')
    parser.add_argument('--seed', type=int, default=0, help='random seed (default: 0)')
    parser.add_argument(
        '--num-train', type=int, default=None, help='training images per data set (default: 64; ImageNet 96)')
    parser.add_argument(
        '--num-val', type=int, default=None, help='validation images per data set (default: 24; ImageNet 30)')
    parser.add_argument('--size', type=int, default=None, help='COCO / ADE20K image side in px (default: 160)')
    parser.add_argument('--cls-size', type=int, default=None, help='ImageNet image side in px (default: 96)')
    parser.add_argument(
        '--datasets', nargs='+', choices=DATASETS, default=list(DATASETS), help='which data sets to write')
    parser.add_argument('--debug', action='store_true', help='show full tracebacks')
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    with errors.user_errors(args.debug):
        try:
            summary = make_demo_data(
                args.out_dir,
                seed=args.seed,
                num_train=args.num_train,
                num_val=args.num_val,
                size=args.size,
                cls_size=args.cls_size,
                datasets=args.datasets)
        except ValueError as err:  # out-of-range --seed / --size / --num-*
            raise errors.UserError(str(err)) from None
    roots = dict(coco='coco', ade='ade/ADEChallengeData2016', imagenet='imagenet')
    for name, stats in summary.items():
        counts = ', '.join(f'{k}={v}' for k, v in stats.items() if k not in ('bytes', 'seconds'))
        print(f'{name:9s} {osp.join(args.out_dir, roots[name])}: {counts}; '
              f'{stats["bytes"] / 1e6:.2f} MB in {stats["seconds"]:.2f} s')


if __name__ == '__main__':
    main()
