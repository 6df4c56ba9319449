"""``tools/analysis_tools/expedite_report.py``: runs on tiny plain/hourglass config pairs (an mmseg ViT and an mmseg
Swin segmentor) and writes well-formed JSON. A report is not a test of the numbers: only their ranges are checked."""
import importlib.util
import json
import math
import os.path as osp

import pytest

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))

SEG = '''
default_scope = 'mmseg'
model = dict(
    type='EncoderDecoder',
    data_preprocessor=dict(type='SegDataPreProcessor', mean=[127.5] * 3, std=[127.5] * 3, bgr_to_rgb=True,
                           size=(64, 96)),
    backbone={backbone},
    decode_head=dict(type='FCNHead', in_channels={channels}, in_index=-1, channels=8, num_convs=1, num_classes=3,
                     norm_cfg=dict(type='BN'), loss_decode=dict(type='CrossEntropyLoss')))
'''
VIT = dict(
    type='VisionTransformer',
    img_size=(64, 96),
    patch_size=8,
    embed_dims=16,
    num_layers=4,
    num_heads=2,
    mlp_ratio=2,
    out_indices=(1, 3),
    final_norm=True,
    init_cfg=dict(type='Pretrained', checkpoint='none.pth'))
SWIN = dict(
    type='SwinTransformer',
    embed_dims=8,
    depths=(2, 2, 4, 2),
    num_heads=(1, 1, 2, 2),
    window_size=4,
    mlp_ratio=2,
    drop_path_rate=0.,
    init_cfg=dict(type='Pretrained', checkpoint='none.pth'))


def _load_tool():
    path = osp.join(REPO, 'tools', 'analysis_tools', 'expedite_report.py')
    spec = importlib.util.spec_from_file_location('_tool_expedite_report', path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def pairs(tmp_path):
    """Two (plain, hourglass) config pairs; the plain backbones name a checkpoint that does not exist, which the
    report must not try to load."""
    paths = []
    for name, backbone, channels, hourglass in (('vit', VIT, 16,
                                                 dict(
                                                     type='mmvit_ext.HourglassViT',
                                                     expedite=dict(alpha=1, cluster_shape=(4, 6), window=3, k=4))),
                                                ('swin', SWIN, 64,
                                                 dict(
                                                     type='mmvit_ext.HourglassSwin',
                                                     expedite=dict(alpha=5, cluster_shape=2, window=3, k=3)))):
        (tmp_path / f'{name}.py').write_text(SEG.format(backbone=backbone, channels=channels))
        (tmp_path / f'{name}-hourglass.py').write_text(f"_base_ = './{name}.py'\nmodel = dict(backbone={hourglass})\n")
        paths += [str(tmp_path / f'{name}.py'), str(tmp_path / f'{name}-hourglass.py')]
    return paths


@pytest.mark.parametrize('part', ['backbone', 'model'])
def test_report_runs_and_writes_json(pairs, tmp_path, capsys, part):
    tool = _load_tool()
    out = tmp_path / 'report.json'
    results = tool.main(
        pairs +
        ['--shape', '64', '96', '--repeat', '2', '--warmup', '1', '--part', part, '--json',
         str(out), '--quiet'])
    text = capsys.readouterr().out
    assert 'speed-up' in text and 'cos mean' in text and str(out) in text
    data = json.loads(out.read_text())
    assert data == json.loads(json.dumps(results))  # what main returns is what it wrote
    assert [osp.basename(r['hourglass']) for r in data] == ['vit-hourglass.py', 'swin-hourglass.py']
    for res in data:
        assert res['part'] == part and res['repeat'] == 2 and res['state_dict_compatible'] is True
        assert res['weights'].startswith('random') and res['images'].startswith('synthetic')
        assert res['input_shape'] == [1, 3, 64, 96]
        for key in ('plain_ms', 'hourglass_ms', 'speedup', 'speedup_best', 'plain_cpu_ms', 'hourglass_cpu_ms',
                    'speedup_cpu', 'clustering_ms', 'reconstruction_ms'):
            assert math.isfinite(res[key]) and res[key] > 0, key
        assert 0 < res['ops_share_percent'] <= res['ops_share_percent_max'] < 100
        assert 0 <= res['ops_share_percent_cpu'] < 100
        for o in res['outputs']:
            assert -1 - 1e-6 <= o['cos_min'] <= o['cos_p01'] <= o['cos_mean'] <= 1 + 1e-6
            assert o['rel_l2'] >= 0
        assert res['final_cos_mean'] == res['outputs'][-1]['cos_mean']
    vit, swin = data
    assert vit['expedite']['cluster_shape'] == [4, 6] and 'windowed_ops_ms' not in vit
    assert [o['shape'] for o in vit['outputs']] == [[16, 8, 12]] * 2
    assert swin['windowed_ops_ms'] >= swin['clustering_ms'] and 0 < swin['windowed_ops_share_percent'] < 100
    assert [o['shape'] for o in swin['outputs']] == [[8, 16, 24], [16, 8, 12], [32, 4, 6], [64, 2, 3]]
    # Swin: alpha=5 clusters in stage 3, so the first two stages are the plain model's
    assert swin['outputs'][0]['cos_min'] > 1 - 1e-6 and swin['outputs'][0]['rel_l2'] < 1e-6


def test_report_images_folder_and_errors(pairs, tmp_path):
    import cv2
    import numpy as np
    tool = _load_tool()
    folder = tmp_path / 'imgs'
    folder.mkdir()
    cv2.imwrite(str(folder / 'a.png'), np.full((50, 70, 3), 128, np.uint8))
    res = tool.main(pairs[:2] +
                    ['--shape', '64', '96', '--repeat', '1', '--warmup', '0', '--images',
                     str(folder), '--quiet'])
    assert res[0]['images'].startswith(str(folder))


def test_report_errors_are_one_message(pairs, tmp_path, capsys):
    tool = _load_tool()
    for argv, message in (
        (pairs[:3], 'give the configs in pairs'),
        ([pairs[0], pairs[0], '--shape', '64', '96', '--quiet'], 'is not an enabled Expedite backbone'),
        (pairs[:2] + ['--images', str(tmp_path / 'empty'), '--quiet'], '--images: no images'),
    ):
        with pytest.raises(SystemExit) as exit_info:
            tool.main(argv)
        err = capsys.readouterr().err
        assert exit_info.value.code == 2 and err.startswith('error: ') and message in err, err
    from mmvit_ext.utils.launch import UserError
    with pytest.raises(UserError, match='in pairs'):
        tool.main(pairs[:3] + ['--debug'])


def test_report_refuses_a_checkpoint_that_does_not_fit(pairs, tmp_path, capsys):
    """--checkpoint loads strictly: keys of another model stop the report with the mismatch, before any timing."""
    import torch
    bad = tmp_path / 'other.pth'
    torch.save({'state_dict': {'backbone.foo.weight': torch.zeros(1)}}, bad)
    tool = _load_tool()
    with pytest.raises(SystemExit) as exit_info:
        tool.main(pairs[:2] + ['--shape', '64', '96', '--checkpoint', str(bad), '--quiet'])
    err = capsys.readouterr().err
    assert exit_info.value.code == 2 and 'Traceback' not in err
    assert f"checkpoint '{bad}' does not fit EncoderDecoder" in err and 'the plain model of' in err
    assert '1 unexpected keys: backbone.foo.weight' in err and 'missing keys: backbone.' in err
