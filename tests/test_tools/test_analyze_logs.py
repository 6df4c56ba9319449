"""``tools/analysis_tools/analyze_logs.py`` on synthetic MMEngine ``vis_data/scalars.json`` logs.

The synthetic lines have the layout MMEngine 0.10.7 writes (checked against a real ``Runner`` run): training
lines with ``lr``, ``data_time``, ``loss``, ``time``, ``[epoch]``, ``iter``, ``step``; validation lines with the
metrics, ``data_time``, ``time`` and ``step`` (the epoch in epoch-based runs, the iteration in iteration-based
ones).
"""
import importlib.util
import json
import os.path as osp

import numpy as np
import pytest

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))


def _load_tool():
    path = osp.join(REPO, 'tools', 'analysis_tools', 'analyze_logs.py')
    spec = importlib.util.spec_from_file_location('_tool_analyze_logs', path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


tool = _load_tool()


def _write(path, records, tail=''):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(''.join(json.dumps(r) + '\n' for r in records) + tail)
    return str(path)


@pytest.fixture
def iter_log(tmp_path):
    """mmseg-style iteration-based run: 40 iters, logged every 10, mIoU every 20 (step = iteration)."""
    recs = []
    for it in range(10, 41, 10):
        recs.append(
            dict(
                lr=0.01 * (1 - it / 50),
                data_time=0.01,
                loss=2.0 / it,
                time=0.5 if it > 10 else 3.0,
                iter=it,
                step=it,
                memory=100))
        if it % 20 == 0:
            recs.append({
                'aAcc': 50.0 + it,
                'mIoU': 10.0 + it,
                'mAcc': 20.0,
                'data_time': 0.02,
                'time': 0.1,
                'step': it
            })
    return _write(tmp_path / 'seg_run' / '20240101_000000' / 'vis_data' / 'scalars.json', recs)


@pytest.fixture
def epoch_log(tmp_path):
    """mmdet-style epoch-based run: 2 epochs of 30 iters, logged at in-epoch 10/20/30; val step = epoch."""
    recs, times = [], {1: [9.0, 0.4, 0.6], 2: [8.0, 0.5, 0.7]}
    for epoch in (1, 2):
        for k, inner in enumerate((10, 20, 30)):
            it = (epoch - 1) * 30 + inner
            recs.append(
                dict(
                    lr=0.02,
                    data_time=0.05,
                    loss=1.0 / it,
                    loss_cls=0.5 / it,
                    time=times[epoch][k],
                    epoch=epoch,
                    iter=it,
                    step=it))
        recs.append({
            'coco/bbox_mAP': 0.1 * epoch,
            'coco/bbox_mAP_50': 0.2 * epoch,
            'data_time': 0.01,
            'time': 0.2,
            'step': epoch
        })
    # a half-written last line, as in a log of a run that is still going
    return _write(tmp_path / 'det_run' / '20240102_000000' / 'vis_data' / 'scalars.json', recs, tail='{"lr": 0.0')


def test_plot_curve_png(iter_log, epoch_log, tmp_path, capsys):
    out = tmp_path / 'figs' / 'curves.png'
    tool.main(['plot_curve', iter_log, '--keys', 'loss', 'lr', 'mIoU', '--out', str(out), '--title', 'seg'])
    assert out.is_file() and out.stat().st_size > 10_000
    with open(out, 'rb') as f:
        assert f.read(8) == b'\x89PNG\r\n\x1a\n'
    import matplotlib.image as mpimg
    img = mpimg.imread(str(out))
    assert img.shape[0] > 300 and img.shape[1] > 300
    assert len(np.unique(img.reshape(-1, img.shape[-1]), axis=0)) > 20  # more than a blank canvas
    printed = capsys.readouterr().out
    assert 'key mIoU (val, 2 points)' in printed and f'save curve to: {out}' in printed

    # two logs of different kinds in one figure, keys given by their last component
    out2 = tmp_path / 'cmp.pdf'
    tool.main([
        'plot_curve', epoch_log,
        osp.dirname(iter_log), '--keys', 'loss', '--legend', 'det', 'seg', '--out',
        str(out2)
    ])
    assert out2.is_file() and out2.stat().st_size > 1000


def test_val_steps_map_to_iterations(iter_log, epoch_log):
    det = tool.ScalarLog(epoch_log)
    assert det.skipped == 1 and det.by_epoch and det.iters_per_epoch() == 30
    assert det.val_step_unit() == 'epoch'
    xs, ys, which = tool.curve(det, 'bbox_mAP')
    assert which == 'val' and xs == [30, 60] and ys == [0.1, 0.2]
    xs, _, _ = tool.curve(det, 'bbox_mAP', xaxis='epoch')
    assert xs == [1, 2]
    xs, _, which = tool.curve(det, 'loss', xaxis='epoch')
    assert which == 'train' and xs[2] == 1.0 and xs[-1] == 2.0

    seg = tool.ScalarLog(iter_log)
    assert not seg.by_epoch and seg.val_step_unit() == 'iter'
    xs, ys, _ = tool.curve(seg, 'mIoU')
    assert xs == [20, 40] and ys == [30.0, 50.0]
    with pytest.raises(tool.LogError, match='epoch-based'):
        tool.curve(seg, 'mIoU', xaxis='epoch')


def test_missing_key_lists_available(iter_log, tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        tool.main(['plot_curve', iter_log, '--keys', 'bbox_mAP', '--out', str(tmp_path / 'x.png')])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert "no key 'bbox_mAP'" in err and 'mIoU' in err and 'loss' in err
    with pytest.raises(SystemExit):
        tool.main(['cal_train_time', str(tmp_path / 'nope.json')])
    assert 'log file not found' in capsys.readouterr().err


def test_cal_train_time(iter_log, epoch_log, capsys):
    res = tool.main(['cal_train_time', epoch_log, iter_log])
    printed = capsys.readouterr().out
    det, seg = res
    # first line of each epoch dropped: (0.4 + 0.6 + 0.5 + 0.7) / 4
    assert det['average'] == pytest.approx(0.55)
    assert 'average iter time: 0.5500 s/iter' in printed
    assert 'slowest epoch 2, average time is 0.6000 s/iter' in printed
    assert 'fastest epoch 1, average time is 0.5000 s/iter' in printed
    assert seg['average'] == pytest.approx(0.5) and 'average iter time: 0.5000 s/iter' in printed

    res = tool.main(['cal_train_time', epoch_log, '--include-outliers'])
    assert res[0]['average'] == pytest.approx((9.0 + 0.4 + 0.6 + 8.0 + 0.5 + 0.7) / 6)
