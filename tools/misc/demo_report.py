"""Print a segmentation config's latest test scores next to those of a trivial segmenter on the same data.

Usage (the last step of ``make demo``)::

    python tools/misc/demo_report.py CONFIG WORK_DIR

``WORK_DIR`` is the ``--work-dir`` given to ``tools/test.py``: the scores are read from the newest
``WORK_DIR/TIMESTAMP/TIMESTAMP.json`` that holds an ``mIoU``. The trivial segmenter predicts the most frequent
training class at every pixel; its scores are computed on the config's validation label maps as mmseg's
``IoUMetric`` computes them (see ``mmvit_ext.datasets.majority_class_baseline``). A model that does not
clearly beat it has learnt nothing. Prints the two rows and writes them to ``WORK_DIR/demo_report.json``.
"""
import argparse
import glob
import json
import os.path as osp

from mmvit_ext.datasets.demo_data import majority_class_baseline
from mmvit_ext.utils.errors import UserError, user_errors
from mmvit_ext.utils.launch import load_config


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description='Test scores of a segmentation config next to a trivial baseline.')
    parser.add_argument('config', help='the config given to tools/test.py')
    parser.add_argument('work_dir', help='the --work-dir given to tools/test.py')
    parser.add_argument('--debug', action='store_true', help='show full tracebacks')
    return parser.parse_args(argv)


def latest_test_scores(work_dir: str) -> dict:
    """The last record holding an ``mIoU`` in the newest ``WORK_DIR/TIMESTAMP/TIMESTAMP.json`` that has one."""
    for path in sorted(glob.glob(osp.join(work_dir, '*', '*.json')), reverse=True):
        if osp.basename(path) != osp.basename(osp.dirname(path)) + '.json':
            continue
        with open(path) as f:
            records = [json.loads(line) for line in f if line.strip()]
        scored = [r for r in records if 'mIoU' in r]
        if scored:
            return dict(scored[-1], log=path)
    raise UserError(f'no test scores (mIoU) under {work_dir}/*/: run tools/test.py CONFIG CHECKPOINT '
                    f'--work-dir {work_dir} first')


def label_maps(dataset_cfg: dict):
    """The dataset's label maps as the model is scored on them (``reduce_zero_label`` applied)."""
    import cv2
    import numpy as np

    folder = osp.join(dataset_cfg.get('data_root', ''), dataset_cfg.get('data_prefix', {}).get('seg_map_path', ''))
    suffix = dataset_cfg.get('seg_map_suffix', '.png')
    paths = sorted(glob.glob(osp.join(folder, '*' + suffix)))
    if not paths:
        raise UserError(f'no {suffix} label maps in {folder}: write the demo data with '
                        f'python tools/misc/make_demo_data.py')
    for path in paths:
        label = cv2.imread(path, cv2.IMREAD_UNCHANGED).astype(np.int64)
        if dataset_cfg.get('reduce_zero_label', False):
            label = np.where(label == 0, 255, label - 1)
        yield label


def main(argv=None):
    args = parse_args(argv)
    with user_errors(args.debug):
        cfg = load_config(args.config)
        model_scores = latest_test_scores(args.work_dir)
        train, val = cfg.train_dataloader.dataset, cfg.test_dataloader.dataset
        classes = val.get('metainfo', {}).get('classes')
        if not classes:
            raise UserError(f'{args.config}: test_dataloader.dataset.metainfo.classes is not set')
        baseline = majority_class_baseline(label_maps(train), label_maps(val), len(classes))
        rows = [('model', model_scores['mIoU'], model_scores['aAcc'], f'tools/test.py ({model_scores["log"]})'),
                ('trivial baseline', baseline['mIoU'], baseline['aAcc'],
                 f"'{classes[baseline['class']]}' (the most frequent training class) at every pixel")]
        print(f'{"":18s}{"mIoU":>7s}{"aAcc":>7s}')
        for name, miou, aacc, what in rows:
            print(f'{name:18s}{miou:7.2f}{aacc:7.2f}  {what}')
        with open(osp.join(args.work_dir, 'demo_report.json'), 'w') as f:
            json.dump({name: dict(mIoU=miou, aAcc=aacc, what=what) for name, miou, aacc, what in rows}, f, indent=1)


if __name__ == '__main__':
    main()
