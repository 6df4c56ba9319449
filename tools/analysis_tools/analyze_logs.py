#!/usr/bin/env python
"""Plot training curves and compute the training speed from MMEngine's scalar logs.

    python tools/analysis_tools/analyze_logs.py plot_curve LOG.json [LOG2.json ...] --keys loss lr mIoU \
        [--legend A B] [--xaxis iter|epoch] [--val-step auto|iter|epoch] [--title T] [--out FIG.png]
    python tools/analysis_tools/analyze_logs.py cal_train_time LOG.json [LOG2.json ...] [--include-outliers]

``LOG.json`` is ``work_dirs/<exp>/<timestamp>/vis_data/scalars.json`` (or ``<timestamp>.json`` next to it, the same
content); a run directory or its ``vis_data`` directory may be given instead. Every line is one JSON object:

* training lines (written every ``interval`` iterations) have ``iter`` (global, 1-based), ``step`` (= ``iter``),
  ``lr``, ``loss`` and the loss terms, ``time``, ``data_time`` (means over the logger's window), ``memory`` on
  CUDA, and ``epoch`` in epoch-based runs;
* validation lines have the metrics (``mIoU``, ``coco/bbox_mAP``, ``accuracy/top1``, ...), ``time``,
  ``data_time`` and ``step``, which is the **epoch** in epoch-based runs (MMEngine's default
  ``log_metric_by_epoch=True``: mmdet, mmpretrain) and the **iteration** in iteration-based ones (mmseg sets
  ``log_metric_by_epoch=False``). ``--val-step auto`` tells them apart; the x axis is the global iteration
  by default, so training and validation curves line up.

``--keys`` accepts a key's last path component (``bbox_mAP`` finds ``coco/bbox_mAP``, ``top1`` finds
``accuracy/top1``). Each key gets its own panel; each log is one line per panel. Matplotlib runs with the
Agg backend (no display needed). Problems with a log or a key stop with one ``error:`` line (exit status 2);
``--debug`` shows the traceback.

What this adds to the host repositories' ``tools/analysis_tools/analyze_logs.py`` (and so why it exists): one tool
for the logs of all three hosts. mmdet's groups lines by epoch (iteration-based mmseg runs collapse into one) and
mmseg's by step (it has no ``cal_train_time``, and epoch-valued validation steps of mmdet / mmpretrain runs land
at the wrong x); both import seaborn (not a dependency of any host); mmpretrain's imports mmpretrain, mmcv and torch.
Here validation steps are mapped to iterations or epochs (``--val-step auto``), keys match by their last path
component, run directories are accepted, half-written lines of a live run are skipped, and a missing key lists
the keys the log has.
"""
import argparse
import glob
import importlib
import importlib.util
import json
import os
import os.path as osp
import statistics
import sys
from collections import OrderedDict
from typing import Dict, List, Optional, Sequence, Tuple

_REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))


def _load_errors():
    """``mmvit_ext.utils.errors``, loaded from the source tree when present: it needs only the standard library,
    while ``import mmvit_ext`` would import torch and the models."""
    path = osp.join(_REPO, 'mmvit_ext', 'utils', 'errors.py')
    if not osp.isfile(path):
        return importlib.import_module('mmvit_ext.utils.errors')
    spec = importlib.util.spec_from_file_location('_mmvit_ext_utils_errors', path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


errors = _load_errors()


class LogError(errors.UserError):
    """A problem with a log file or with the requested keys, shown without a traceback."""


class ScalarLog:
    """The records of one MMEngine ``vis_data`` scalar log, split into training and validation lines.

    Args:
        path (str): The JSON-lines file.

    Attributes:
        path (str): The file.
        train (list[dict]): Lines with ``iter`` (training).
        val (list[dict]): The other lines (validation/test metrics).
        skipped (int): Lines that were not valid JSON objects (e.g. a half-written last line of a live run).
    """

    def __init__(self, path: str):
        self.path = path
        self.train: List[dict] = []
        self.val: List[dict] = []
        self.skipped = 0
        with open(path) as f:
            for line in f:
                line = line.strip()
                if not line:
                    continue
                try:
                    rec = json.loads(line)
                except json.JSONDecodeError:
                    self.skipped += 1
                    continue
                if not isinstance(rec, dict):
                    self.skipped += 1
                elif 'iter' in rec:
                    self.train.append(rec)
                else:
                    self.val.append(rec)
        if not self.train and not self.val:
            raise LogError(f'{path}: no JSON records found; expected MMEngine vis_data/scalars.json lines')

    @property
    def by_epoch(self) -> bool:
        """True for an epoch-based run (training lines carry ``epoch``)."""
        return any('epoch' in r for r in self.train)

    def keys(self, which: str) -> List[str]:
        """Scalar keys present in the ``'train'`` or ``'val'`` records."""
        seen: Dict[str, None] = OrderedDict()
        for rec in getattr(self, which):
            for k, v in rec.items():
                if isinstance(v, (int, float)) and not isinstance(v, bool):
                    seen.setdefault(k, None)
        return list(seen)

    def iters_per_epoch(self) -> Optional[float]:
        """Iterations per epoch of an epoch-based run, from the last logged iteration of successive epochs.

        Training lines sit at the same in-epoch positions in every epoch, so the difference of the last logged
        global iteration of two consecutive epochs is exact. With one epoch only, the last logged iteration
        of epoch 1 is used (exact when the last iteration of the epoch is logged).
        """
        last: Dict[int, int] = {}
        for r in self.train:
            if 'epoch' in r:
                last[int(r['epoch'])] = max(last.get(int(r['epoch']), 0), int(r['iter']))
        if not last:
            return None
        epochs = sorted(last)
        diffs = [last[b] - last[a] for a, b in zip(epochs, epochs[1:]) if b == a + 1]
        if diffs:
            return float(statistics.median(diffs))
        return float(last[epochs[0]]) / epochs[0]

    def val_step_unit(self, val_step: str = 'auto') -> str:
        """``'epoch'`` or ``'iter'``: what the ``step`` of validation lines counts (see the module docstring)."""
        if val_step != 'auto':
            return val_step
        if not self.by_epoch or not self.val:
            return 'iter'
        max_epoch = max(int(r.get('epoch', 0)) for r in self.train)
        max_step = max(r.get('step', 0) for r in self.val)
        # epoch-valued steps never exceed the last epoch (+1 for a validation after the last training line)
        return 'epoch' if max_step <= max_epoch + 1 else 'iter'


def find_log(path: str) -> str:
    """Accept a ``scalars.json`` / ``<timestamp>.json`` file, a ``vis_data`` directory or a run directory."""
    if osp.isfile(path):
        return path
    if osp.isdir(path):
        for cand in (osp.join(path, 'scalars.json'), osp.join(path, 'vis_data', 'scalars.json')):
            if osp.isfile(cand):
                return cand
        found = sorted(glob.glob(osp.join(path, '*', 'vis_data', 'scalars.json')))
        if found:
            return found[-1]  # the newest run (timestamps sort)
        raise LogError(f'no vis_data/scalars.json under directory {path}')
    raise LogError(f'log file not found: {path}')


def resolve_key(key: str, log: ScalarLog) -> Tuple[str, str]:
    """Find ``key`` in the log: ``(full key, 'train' | 'val')``.

    An exact match wins; otherwise a key whose last ``/`` component equals ``key`` (``bbox_mAP`` ->
    ``coco/bbox_mAP``). Raises :class:`LogError` naming the available keys when there is no (unique) match.
    """
    train_keys, val_keys = log.keys('train'), log.keys('val')
    for which, keys in (('train', train_keys), ('val', val_keys)):
        if key in keys:
            return key, which
    matches = [(k, w) for w, keys in (('train', train_keys), ('val', val_keys)) for k in keys
               if k.split('/')[-1] == key or k.endswith('/' + key)]
    if len(matches) == 1:
        return matches[0]
    if len(matches) > 1:
        raise LogError(f'{log.path}: key {key!r} is ambiguous: {", ".join(k for k, _ in matches)}')
    hidden = {'step', 'iter', 'epoch'}
    raise LogError(f'{log.path} has no key {key!r}.\n  training keys: '
                   f'{", ".join(k for k in train_keys if k not in hidden) or "(none)"}\n  validation keys: '
                   f'{", ".join(k for k in val_keys if k not in hidden) or "(none)"}\n'
                   '  (no validation lines means validation did not run or the log stops before it)')


def curve(log: ScalarLog,
          key: str,
          xaxis: str = 'iter',
          val_step: str = 'auto') -> Tuple[List[float], List[float], str]:
    """x and y values of ``key`` in ``log`` on the chosen x axis; also returns ``'train'`` or ``'val'``.

    Raises:
        LogError: For a missing key or ``xaxis='epoch'`` on an iteration-based run.
    """
    full, which = resolve_key(key, log)
    ipe = log.iters_per_epoch()
    if xaxis == 'epoch' and ipe is None:
        raise LogError(f'{log.path}: --xaxis epoch needs an epoch-based run (training lines have no "epoch")')
    xs, ys = [], []
    if which == 'train':
        for r in log.train:
            if full in r:
                xs.append(r['iter'] / ipe if xaxis == 'epoch' else r['iter'])
                ys.append(r[full])
    else:
        unit = log.val_step_unit(val_step)
        if unit == 'epoch' and xaxis == 'iter' and ipe is None:
            raise LogError(f'{log.path}: validation steps are epochs but the iterations per epoch are unknown; '
                           'use --xaxis epoch or --val-step iter')
        for r in log.val:
            if full not in r:
                continue
            step = r.get('step', 0)
            if xaxis == 'iter':
                xs.append(step * ipe if unit == 'epoch' else step)
            else:
                xs.append(step if unit == 'epoch' else step / ipe)
            ys.append(r[full])
    return xs, ys, which


def _label(path: str) -> str:
    """Legend text of a log: its run's work-dir name for ``<work_dir>/<timestamp>/vis_data/*.json``."""
    parts = osp.abspath(path).split(os.sep)
    if len(parts) >= 4 and parts[-2] == 'vis_data':
        return f'{parts[-4]}/{parts[-3]}'
    return osp.basename(path)


def plot_curve(logs: Sequence[ScalarLog],
               keys: Sequence[str],
               out: str,
               *,
               legend: Optional[Sequence[str]] = None,
               xaxis: str = 'iter',
               val_step: str = 'auto',
               title: Optional[str] = None) -> str:
    """Draw one panel per key, one line per log, and save the figure (Agg backend).

    Args:
        logs (Sequence[ScalarLog]): Loaded logs.
        keys (Sequence[str]): Keys to plot (see :func:`resolve_key`).
        out (str): Output image path (the extension picks the format: png, pdf, svg, ...).
        legend (Sequence[str], optional): One label per log.
        xaxis (str): ``'iter'`` or ``'epoch'``.
        val_step (str): ``'auto'``, ``'iter'`` or ``'epoch'``.
        title (str, optional): Figure title.

    Returns:
        str: ``out``.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    if legend is not None and len(legend) != len(logs):
        raise LogError(f'--legend needs one label per log ({len(logs)}), got {len(legend)}')
    labels = list(legend) if legend is not None else [_label(log.path) for log in logs]
    fig = Figure(figsize=(8, 2.6 * len(keys) + 0.6), layout='constrained')
    FigureCanvasAgg(fig)
    axes = fig.subplots(len(keys), 1, sharex=True, squeeze=False)[:, 0]
    for ax, key in zip(axes, keys):
        full_keys = []
        for log, label in zip(logs, labels):
            full_keys.append(resolve_key(key, log)[0])
            xs, ys, which = curve(log, key, xaxis, val_step)
            print(f'plot curve of {log.path}, key {key} ({which}, {len(xs)} points)')
            if which == 'val':
                ax.plot(xs, ys, marker='o', markersize=3, label=label)
            else:
                ax.plot(xs, ys, linewidth=0.8, label=label)
        ax.set_ylabel(' | '.join(OrderedDict.fromkeys(full_keys)))
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize='small')
    axes[-1].set_xlabel('iteration' if xaxis == 'iter' else 'epoch')
    if title:
        fig.suptitle(title)
    dirname = osp.dirname(osp.abspath(out))
    os.makedirs(dirname, exist_ok=True)
    fig.savefig(out, dpi=120)
    print(f'save curve to: {out}')
    return out


def cal_train_time(log: ScalarLog, include_outliers: bool = False) -> Dict[str, float]:
    """Average seconds per training iteration, as mmdet's ``cal_train_time``.

    The ``time`` of each training line is a mean over the logger's window. The first line of every epoch (of
    the run, for iteration-based runs) is dropped unless ``include_outliers``: it includes start-up work
    (data loader workers, CUDA/cudnn warm-up).

    Returns:
        dict: ``average`` (s/iter) and, per epoch, ``epoch_means``; plus ``data_time`` (s/iter) when logged.

    Raises:
        LogError: If the log has no training ``time`` values left.
    """
    groups: Dict[int, List[dict]] = OrderedDict()
    for r in log.train:
        if 'time' in r:
            groups.setdefault(int(r.get('epoch', 1)), []).append(r)
    if not include_outliers:
        groups = OrderedDict((e, rs[1:]) for e, rs in groups.items())
    groups = OrderedDict((e, rs) for e, rs in groups.items() if rs)
    if not groups:
        raise LogError(f'{log.path}: no training "time" values (after dropping the first line of each epoch); '
                       'log more often (default_hooks.logger.interval) or pass --include-outliers')
    times = [r['time'] for rs in groups.values() for r in rs]
    res = dict(
        average=statistics.fmean(times),
        epoch_means={
            e: statistics.fmean(r['time'] for r in rs)
            for e, rs in groups.items()
        },
        num_records=len(times),
        last_iter=max(int(r['iter']) for r in log.train))
    data_times = [r['data_time'] for rs in groups.values() for r in rs if 'data_time' in r]
    if data_times:
        res['data_time'] = statistics.fmean(data_times)
    return res


def _hms(seconds: float) -> str:
    seconds = int(round(seconds))
    return f'{seconds // 3600}:{seconds % 3600 // 60:02d}:{seconds % 60:02d}'


def print_train_time(log: ScalarLog, include_outliers: bool = False) -> Dict[str, float]:
    """Print :func:`cal_train_time` for one log (mmdet's wording) and return it."""
    res = cal_train_time(log, include_outliers)
    print(f'{"-" * 5}Analyze train time of {log.path}{"-" * 5}')
    means = res['epoch_means']
    if log.by_epoch:
        slowest = max(means, key=means.get)
        fastest = min(means, key=means.get)
        print(f'slowest epoch {slowest}, average time is {means[slowest]:.4f} s/iter')
        print(f'fastest epoch {fastest}, average time is {means[fastest]:.4f} s/iter')
        print(f'time std over epochs is {statistics.pstdev(means.values()):.4f}')
    excluded = ''
    if not include_outliers:
        excluded = ', first of each epoch excluded' if log.by_epoch else ', first one excluded'
    print(f'average iter time: {res["average"]:.4f} s/iter ({res["num_records"]} logged windows{excluded})')
    if 'data_time' in res:
        share = 100.0 * res['data_time'] / res['average'] if res['average'] else 0.0
        print(f'average data time: {res["data_time"]:.4f} s/iter ({share:.1f}% of the iter time)')
    print(f'last logged iteration: {res["last_iter"]}, training time to there at this speed: '
          f'{_hms(res["average"] * res["last_iter"])}')
    print()
    return res


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description='Analyze MMEngine vis_data JSON scalar logs')
    sub = parser.add_subparsers(dest='task', required=True)
    plt = sub.add_parser('plot_curve', help='plot scalars (loss, lr, metrics) against iterations or epochs')
    plt.add_argument('json_logs', nargs='+', help='vis_data/scalars.json files (or run directories)')
    plt.add_argument('--keys', nargs='+', default=['loss'], help='keys to plot, e.g. loss lr mIoU bbox_mAP')
    plt.add_argument('--legend', nargs='+', default=None, help='one label per log')
    plt.add_argument('--xaxis', choices=['iter', 'epoch'], default='iter', help='x axis (default: iteration)')
    plt.add_argument(
        '--val-step',
        choices=['auto', 'iter', 'epoch'],
        default='auto',
        help='what the "step" of validation lines counts (auto: epoch for epoch-based runs)')
    plt.add_argument('--title', default=None, help='figure title')
    plt.add_argument('--out', default='curves.png', help='output image (png/pdf/svg), default curves.png')
    tim = sub.add_parser('cal_train_time', help='average time per training iteration')
    tim.add_argument('json_logs', nargs='+', help='vis_data/scalars.json files (or run directories)')
    tim.add_argument(
        '--include-outliers', action='store_true', help='keep the first logged window of every epoch in the average')
    for sub_parser in (plt, tim):
        sub_parser.add_argument('--debug', action='store_true', help='show full tracebacks')
    return parser.parse_args(argv)


def main(argv=None):
    """Entry point."""
    args = parse_args(argv)
    with errors.user_errors(args.debug):
        logs = [ScalarLog(find_log(p)) for p in args.json_logs]
        for log in logs:
            if log.skipped:
                print(f'WARNING: {log.path}: skipped {log.skipped} line(s) that are not JSON objects', file=sys.stderr)
        if args.task == 'plot_curve':
            return plot_curve(
                logs,
                args.keys,
                args.out,
                legend=args.legend,
                xaxis=args.xaxis,
                val_step=args.val_step,
                title=args.title)
        return [print_train_time(log, args.include_outliers) for log in logs]


if __name__ == '__main__':
    main()
