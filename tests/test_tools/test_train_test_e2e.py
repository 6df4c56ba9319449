"""tools/train.py, tools/test.py and tools/dist_train.sh as a user runs them, on the demo data.

A downstream config in a temporary directory inherits the demo config through ``mmvit_ext::`` (so these runs also
prove config inheritance through our tools), trains a few iterations, is evaluated, resumed, and trained by two
gloo processes on the CPU. User mistakes stop with one clear message (exit status 2).
"""
import json
import os
import os.path as osp
import re
import subprocess
import sys

import pytest
import torch

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
DEMO = 'p2t/fpn_p2t-t_1xb4-300iter_demo-ade20k-128x128.py'
PY = sys.executable

RANK_DUMP = '''
import torch, torch.distributed as dist
from mmengine.hooks import Hook
from mmengine.registry import HOOKS


@HOOKS.register_module()
class RankDumpHook(Hook):
    """Saves every rank's final parameters so the test can compare them."""

    def after_run(self, runner):
        rank = dist.get_rank() if dist.is_available() and dist.is_initialized() else 0
        model = getattr(runner.model, 'module', runner.model)
        torch.save(dict(params={k: v.detach().clone() for k, v in model.named_parameters()},
                        wrapper=type(runner.model).__name__,
                        backend=dist.get_backend() if dist.is_initialized() else None,
                        world=dist.get_world_size() if dist.is_initialized() else 1),
                   f'{runner.work_dir}/rank{rank}.pth')
'''


@pytest.fixture(scope='module')
def demo_root(tmp_path_factory):
    from mmvit_ext.datasets.demo_data import make_demo_data
    out = tmp_path_factory.mktemp('demo_data')
    make_demo_data(str(out), datasets=('ade', ), num_train=16, num_val=4)
    return out / 'ade' / 'ADEChallengeData2016'


@pytest.fixture(scope='module')
def downstream(tmp_path_factory, demo_root):
    """A user's config outside this repo, inheriting ours."""
    d = tmp_path_factory.mktemp('downstream')
    (d / 'rank_dump.py').write_text(RANK_DUMP)
    (d / 'demo_small.py').write_text(f'''_base_ = 'mmvit_ext::{DEMO}'
custom_imports = dict(imports=['mmvit_ext', 'rank_dump'], allow_failed_imports=False)
custom_hooks = [dict(type='RankDumpHook')]
train_dataloader = dict(batch_size=2, num_workers=0, persistent_workers=False, dataset=dict(data_root='{demo_root}'))
val_dataloader = dict(batch_size=2, num_workers=0, persistent_workers=False, dataset=dict(data_root='{demo_root}'))
test_dataloader = val_dataloader
train_cfg = dict(max_iters=4, val_interval=4)
param_scheduler = [dict(type='ConstantLR', factor=1.0, by_epoch=False, begin=0, end=8)]
default_hooks = dict(logger=dict(interval=1), checkpoint=dict(interval=2, max_keep_ckpts=5))
''')
    return d


def run_tool(args, cwd, env_extra=None, check=True):
    env = dict(
        os.environ, PYTHONPATH=f'{cwd}{os.pathsep}{os.environ.get("PYTHONPATH", "")}', PYTHON=PY, OMP_NUM_THREADS='1')
    env.update(env_extra or {})
    out = subprocess.run(args, cwd=cwd, capture_output=True, text=True, timeout=900, env=env)
    if check:
        assert out.returncode == 0, f'{args}\nSTDOUT:\n{out.stdout[-3000:]}\nSTDERR:\n{out.stderr[-5000:]}'
    return out


@pytest.fixture(scope='module')
def trained(downstream):
    work = downstream / 'work'
    run_tool([PY, osp.join(ROOT, 'tools/train.py'), 'demo_small.py', '--work-dir', str(work)], downstream)
    return work


@pytest.mark.slow
def test_train_writes_checkpoints_and_metrics(trained):
    assert (trained / 'iter_2.pth').is_file() and (trained / 'iter_4.pth').is_file()
    last = (trained / 'last_checkpoint').read_text().strip()
    assert last.endswith('iter_4.pth')
    ckpt = torch.load(last, map_location='cpu', weights_only=False)
    assert ckpt['meta']['iter'] == 4
    assert any(k.startswith('backbone.stages.0.') for k in ckpt['state_dict'])


@pytest.mark.slow
def test_test_tool_reports_miou_and_dumps_predictions(trained, downstream):
    out = run_tool([
        PY,
        osp.join(ROOT, 'tools/test.py'), 'demo_small.py',
        str(trained / 'iter_4.pth'), '--work-dir',
        str(trained / 'eval'), '--out',
        str(trained / 'preds.pkl'), '--show-dir',
        str(trained / 'vis')
    ], downstream)
    miou = re.search(r'Test results: .*mIoU: ([0-9.]+)', out.stdout)
    assert miou and 0.0 <= float(miou.group(1)) <= 100.0, out.stdout[-2000:]
    assert (trained / 'preds.pkl').stat().st_size > 0
    painted = list((trained / 'vis').rglob('*.png'))
    assert len(painted) == 4, painted  # every validation image, painted with its prediction
    # the last step of `make demo`: the scores next to the trivial segmenter's, on the same validation maps
    report = run_tool([PY, osp.join(ROOT, 'tools/misc/demo_report.py'), 'demo_small.py',
                       str(trained / 'eval')], downstream)
    row = re.search(r'^model +([0-9.]+) +([0-9.]+)', report.stdout, re.M)
    assert row and float(row.group(1)) == pytest.approx(float(miou.group(1)), abs=0.01), report.stdout
    saved = json.loads((trained / 'eval' / 'demo_report.json').read_text())
    assert saved['model']['mIoU'] == pytest.approx(float(miou.group(1)), abs=0.01)
    trivial = saved['trivial baseline']
    assert 0 < trivial['mIoU'] < 100 / 3 and trivial['mIoU'] == pytest.approx(trivial['aAcc'] / 3, abs=0.01)
    missing = run_tool([PY, osp.join(ROOT, 'tools/misc/demo_report.py'), 'demo_small.py',
                        str(trained / 'nowhere')],
                       downstream,
                       check=False)
    assert missing.returncode == 2 and 'no test scores (mIoU)' in missing.stderr and 'Traceback' not in missing.stderr


@pytest.mark.slow
def test_relative_show_dir_lands_under_the_work_dir_timestamp(trained, downstream):
    """--show-dir vis_rel: WORK_DIR/TIMESTAMP/vis_rel as the help says, not the cwd (mmseg's visualizer)."""
    run_tool([
        PY,
        osp.join(ROOT, 'tools/test.py'), 'demo_small.py',
        str(trained / 'iter_4.pth'), '--work-dir',
        str(trained / 'eval_rel'), '--show-dir', 'vis_rel'
    ], downstream)
    assert not (downstream / 'vis_rel').exists()
    painted = list((trained / 'eval_rel').glob('*/vis_rel/*.png'))
    assert len(painted) == 4, list((trained / 'eval_rel').rglob('*.png'))


@pytest.mark.slow
def test_test_tool_tta_evaluates_the_augmented_views(trained, downstream):
    """--tta: the demo config's tta_pipeline (3 scales x flip) through mmseg's SegTTAModel, the checkpoint loaded
    strictly into the wrapped segmentor."""
    out = run_tool([
        PY,
        osp.join(ROOT, 'tools/test.py'), 'demo_small.py',
        str(trained / 'iter_4.pth'), '--work-dir',
        str(trained / 'eval_tta'), '--tta'
    ], downstream)
    miou = re.search(r'Test results: .*mIoU: ([0-9.]+)', out.stdout)
    assert miou and 0.0 <= float(miou.group(1)) <= 100.0, out.stdout[-2000:]
    log = next((trained / 'eval_tta').glob('*/*.log')).read_text()
    model_cfg = re.search(r'\nmodel = dict\((.*?)\n(?=\S)', log, re.S).group(1)  # the dumped config's model
    assert "module=dict(" in model_cfg and "type='SegTTAModel'" in model_cfg, model_cfg[:500]


@pytest.mark.slow
def test_resume_continues_from_the_checkpoint(trained, downstream):
    """--resume CKPT from iter 2 trains iterations 3-4 only, with the optimizer state restored (AdamW's step
    count reaches 4, not 2), through the weights_only-safe loader."""
    work = downstream / 'work_resume'
    run_tool([
        PY,
        osp.join(ROOT, 'tools/train.py'), 'demo_small.py', '--work-dir',
        str(work), '--resume',
        str(trained / 'iter_2.pth')
    ], downstream)
    log = next(work.glob('*/*.log')).read_text()
    assert 'resumed epoch: 0, iter: 2' in log
    assert 'Iter(train) [3/4]' in log and 'Iter(train) [1/4]' not in log
    final = torch.load(work / 'iter_4.pth', map_location='cpu', weights_only=False)
    steps = {int(s['step']) for s in final['optimizer']['state'].values()}
    assert steps == {4}, steps
    start = torch.load(trained / 'iter_2.pth', map_location='cpu', weights_only=False)['state_dict']
    assert any(not torch.equal(v, start[k]) for k, v in final['state_dict'].items())


@pytest.mark.slow
@pytest.mark.skipif(torch.cuda.is_available(), reason='checks the CPU (gloo) path')
def test_dist_train_two_cpu_processes_stay_in_sync(downstream):
    work = downstream / 'work_dist'
    out = run_tool(
        ['bash', osp.join(ROOT, 'tools/dist_train.sh'), 'demo_small.py', '2', '--work-dir',
         str(work)],
        downstream,
        env_extra=dict(PORT='29517'))
    # every gradient has its parameter's strides, so DDP's bucket views take them as they are
    assert 'Grad strides do not match bucket view strides' not in out.stderr + out.stdout
    r0 = torch.load(work / 'rank0.pth', weights_only=False)
    r1 = torch.load(work / 'rank1.pth', weights_only=False)
    assert r0['world'] == r1['world'] == 2 and r0['backend'] == 'gloo'
    assert r0['wrapper'] == 'MMDistributedDataParallel'
    init = torch.load(work / 'iter_2.pth', weights_only=False)['state_dict']
    moved = 0
    for k, v in r0['params'].items():
        assert torch.equal(v, r1['params'][k]), f'ranks differ at {k}'
        moved += int(not torch.equal(v, init[k]))
    assert moved > 0, 'parameters did not change between iteration 2 and 4'


def test_unknown_type_is_one_clear_message(downstream):
    bad_cfg = "_base_ = './demo_small.py'\nmodel = dict(backbone=dict(type='mmvit_ext.P2Tx'))\n"
    (downstream / 'bad_type.py').write_text(bad_cfg)
    out = run_tool([PY, osp.join(ROOT, 'tools/train.py'), 'bad_type.py', '--work-dir',
                    str(downstream / 'work_bad')],
                   downstream,
                   check=False)
    assert out.returncode == 2
    assert 'error: ' in out.stderr and 'P2Tx is not in the' in out.stderr and 'Traceback' not in out.stderr
    assert "registered: " in out.stderr and 'P2T' in out.stderr


def test_missing_dataset_is_one_clear_message(downstream, tmp_path):
    out = run_tool([
        PY,
        osp.join(ROOT, 'tools/train.py'), 'demo_small.py', '--cfg-options',
        f'train_dataloader.dataset.data_root={tmp_path}/nowhere'
    ],
                   downstream,
                   check=False)
    assert out.returncode == 2 and 'Traceback' not in out.stderr
    assert 'dataset not found' in out.stderr and 'train_dataloader.dataset.data_root' in out.stderr
    assert 'docs/dataset_prepare.md' in out.stderr


def test_missing_config_is_one_clear_message(downstream):
    out = run_tool([PY, osp.join(ROOT, 'tools/train.py'), 'configs/nope.py'], downstream, check=False)
    assert out.returncode == 2 and "config file 'configs/nope.py' does not exist" in out.stderr


def test_checkpoint_that_does_not_fit_is_one_clear_message(downstream, tmp_path):
    bad = tmp_path / 'other.pth'
    torch.save({'state_dict': {'backbone.foo.weight': torch.zeros(1)}}, bad)
    out = run_tool(
        [PY, osp.join(ROOT, 'tools/test.py'), 'demo_small.py',
         str(bad), '--work-dir',
         str(tmp_path / 'w')],
        downstream,
        check=False)
    assert out.returncode == 2 and 'Traceback' not in out.stderr
    assert 'does not fit EncoderDecoder' in out.stderr and 'a checkpoint of the model of demo_small.py' in out.stderr
    assert 'unexpected keys: backbone.foo.weight' in out.stderr and 'missing keys' in out.stderr


def test_pretrained_weights_that_do_not_fit_are_one_clear_message(downstream, tmp_path):
    """init_cfg=Pretrained loads strictly: a checkpoint of another arch stops with the key list and the fix."""
    from mmvit_ext.models.backbones.p2t import P2T
    wrong = tmp_path / 'p2t_small.pth'
    torch.save({'state_dict': P2T('small').state_dict()}, wrong)
    (downstream / 'wrong_weights.py').write_text(
        "_base_ = './demo_small.py'\n"
        f"model = dict(backbone=dict(init_cfg=dict(_delete_=True, type='Pretrained', checkpoint='{wrong}')))\n")
    out = run_tool([PY, osp.join(ROOT, 'tools/train.py'), 'wrong_weights.py', '--work-dir',
                    str(tmp_path / 'w')],
                   downstream,
                   check=False)
    assert out.returncode == 2 and 'Traceback' not in out.stderr, out.stderr[-3000:]
    assert 'does not fit P2T' in out.stderr and 'convert_checkpoint.py' in out.stderr


# --------------------------------------------------------------------------------------------------------------
# tools/test.py --show-dir and --tta on mmpretrain and mmdet configs (the mmseg ones are above), with untrained
# weights: these check where the painted images land and that the TTA wrapper is used, not accuracy.

HOST_CFGS = dict(
    cls=('''_base_ = ['mmvit_ext::_base_/models/p2t-t.py', 'mmvit_ext::_base_/datasets/demo_imagenet.py',
          'mmpretrain::_base_/default_runtime.py']
model = dict(type='ImageClassifier', backbone=dict(**_base_.p2t_arch, out_indices=(3, )),
             neck=dict(type='GlobalAveragePooling'),
             head=dict(type='LinearClsHead', num_classes=3, in_channels=_base_.p2t_channels[-1]))
''', 'imagenet', r'accuracy/top1: ([0-9.]+)', 'mmpretrain.AverageClsScoreTTA'),
    det=('''_base_ = ['mmvit_ext::_base_/models/p2t-t.py', 'mmvit_ext::_base_/datasets/demo_coco_detection.py',
          'mmdet::_base_/models/retinanet_r50_fpn.py', 'mmdet::_base_/default_runtime.py']
model = dict(backbone=dict(_delete_=True, **_base_.p2t_arch), neck=dict(in_channels=_base_.p2t_channels),
             bbox_head=dict(num_classes=3), test_cfg=dict(score_thr=0.0))
''', 'coco/', r'Test results: ', 'DetTTAModel'))


@pytest.fixture(scope='module')
def host_cfgs(tmp_path_factory):
    """Per task: a downstream config on a small demo set and a checkpoint of its (untrained) model."""
    from mmengine.config import Config
    from mmengine.registry import MODELS, init_default_scope

    from mmvit_ext.datasets.demo_data import make_demo_data
    d = tmp_path_factory.mktemp('hosts')
    make_demo_data(str(d / 'data'), datasets=('coco', 'imagenet'), num_train=3, num_val=3)
    out = {}
    for task, (text, root, _, _) in HOST_CFGS.items():
        # a test-only config: the dataset bases' train/val loaders, but no schedule (tools/test.py drops them)
        loaders = ''.join(f"{split}_dataloader = dict(batch_size=3, num_workers=0, persistent_workers=False, "
                          f"dataset=dict(data_root='{d / 'data' / root}'))\n" for split in ('train', 'test'))
        evaluator = f"test_evaluator = dict(ann_file='{d / 'data' / root}/annotations/instances_val2017.json')\n"
        (d / f'{task}.py').write_text(text + loaders + "test_cfg = dict(type='TestLoop')\n" +
                                      (evaluator if task == 'det' else ''))
        cfg = Config.fromfile(str(d / f'{task}.py'))
        init_default_scope(cfg.default_scope)
        torch.manual_seed(0)
        torch.save({'state_dict': MODELS.build(cfg.model).state_dict()}, d / f'{task}.pth')
        out[task] = d
    return out


@pytest.mark.slow
@pytest.mark.parametrize('task', sorted(HOST_CFGS))
def test_relative_show_dir_and_tta_for_mmpretrain_and_mmdet(host_cfgs, task):
    d = host_cfgs[task]
    work = d / f'work_{task}'
    test = [PY, osp.join(ROOT, 'tools/test.py'), f'{task}.py', str(d / f'{task}.pth'), '--work-dir', str(work)]
    out = run_tool(test + ['--show-dir', 'vis_rel'], d)
    assert re.search(HOST_CFGS[task][2], out.stdout), out.stdout[-2000:]
    assert not (d / 'vis_rel').exists()
    painted = list(work.glob('*/vis_rel/**/*.png')) + list(work.glob('*/vis_rel/**/*.jpg'))
    assert len(painted) == 3, list(work.rglob('*.*g'))  # every validation image, under WORK_DIR/TIMESTAMP
    # --tta without tta_model / tta_pipeline in the config: the host tool's flip TTA
    out = run_tool(test + ['--tta'], d)
    assert re.search(HOST_CFGS[task][2], out.stdout), out.stdout[-2000:]
    log = max(work.glob('*/*.log')).read_text()
    model_cfg = re.search(r'\nmodel = dict\((.*?)\n(?=\S)', log, re.S).group(1)
    assert f"type='{HOST_CFGS[task][3]}'" in model_cfg and 'module=dict(' in model_cfg, model_cfg[:500]
    assert "type='TestTimeAug'" in log
