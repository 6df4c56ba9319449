"""Every tool uses one error scheme (``error: <message>``, exit status 2, ``--debug`` for the traceback) and
train/test take ``--compile`` as MMEngine's ``cfg.compile``. In-process, without training anything."""
import importlib.util
import json
import os.path as osp

import pytest

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))


def _load_tool(rel_path):
    spec = importlib.util.spec_from_file_location('_tool_' + osp.basename(rel_path)[:-3], osp.join(ROOT, rel_path))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


class _Stop(Exception):
    """Raised instead of building the Runner."""


@pytest.fixture
def captured_cfg(monkeypatch):
    from mmengine.runner import Runner
    seen = {}

    def from_cfg(cfg):
        seen['cfg'] = cfg
        raise _Stop

    monkeypatch.setattr(Runner, 'from_cfg', staticmethod(from_cfg))
    return seen


@pytest.fixture
def plain_config(tmp_path):
    path = tmp_path / 'plain.py'
    path.write_text("model = dict(type='mmvit_ext.P2T', arch='tiny')\n"
                    "optim_wrapper = dict(type='OptimWrapper', optimizer=dict(type='SGD', lr=0.1))\n"
                    "train_dataloader = dict(batch_size=1, dataset=dict(type='X'))\n"
                    "train_cfg = dict(type='IterBasedTrainLoop', max_iters=1)\n"
                    "auto_scale_lr = dict(enable=False)\n")
    return str(path)


@pytest.mark.parametrize('tool_path', ['tools/train.py', 'tools/test.py'])
def test_compile_flag_sets_cfg_compile(tool_path, plain_config, captured_cfg, tmp_path):
    tool = _load_tool(tool_path)
    ckpt = tmp_path / 'c.pth'
    ckpt.write_bytes(b'')
    extra = [str(ckpt)] if tool_path.endswith('test.py') else []
    # test.py compiles for inference: the weights are frozen as constants (see INFERENCE_COMPILE_OPTIONS)
    compiled = dict(options=dict(freezing=True)) if tool_path.endswith('test.py') else True
    for flag, expected in (([], None), (['--compile'], compiled)):
        with pytest.raises(_Stop):
            tool.main([plain_config] + extra + ['--work-dir', str(tmp_path / 'w')] + flag)
        assert captured_cfg['cfg'].get('compile') == expected


def test_train_config_mistake_is_a_user_error(plain_config, captured_cfg, tmp_path, capsys):
    tool = _load_tool('tools/train.py')
    with pytest.raises(SystemExit) as exit_info:
        tool.main([plain_config, '--auto-scale-lr', '--work-dir', str(tmp_path / 'w')])
    assert exit_info.value.code == 2
    assert 'error: --auto-scale-lr needs auto_scale_lr.base_batch_size' in capsys.readouterr().err


def test_make_demo_data_errors(tmp_path, capsys):
    from mmvit_ext.utils.launch import UserError
    tool = _load_tool('tools/misc/make_demo_data.py')
    with pytest.raises(SystemExit) as exit_info:
        tool.main([str(tmp_path / 'd'), '--seed', '-1', '--datasets', 'imagenet'])
    assert exit_info.value.code == 2
    assert capsys.readouterr().err.startswith('error: seed must be >= 0, got -1')
    blocker = tmp_path / 'file'
    blocker.write_text('')
    with pytest.raises(SystemExit) as exit_info:  # a file where the output folder should be
        tool.main([str(blocker / 'd'), '--num-train', '3', '--num-val', '3', '--datasets', 'imagenet'])
    assert exit_info.value.code == 2 and capsys.readouterr().err.startswith('error: ')
    with pytest.raises(Exception) as err:
        tool.main([str(tmp_path / 'd'), '--seed', '-1', '--datasets', 'imagenet', '--debug'])
    assert type(err.value).__name__ == UserError.__name__


def test_analyze_logs_debug_reraises(tmp_path, capsys):
    tool = _load_tool('tools/analysis_tools/analyze_logs.py')
    log = tmp_path / 'scalars.json'
    log.write_text(json.dumps(dict(iter=1, step=1, lr=0.1, loss=1.0, time=0.5)) + '\n')
    with pytest.raises(SystemExit) as exit_info:
        tool.main(['plot_curve', str(log), '--keys', 'mIoU', '--out', str(tmp_path / 'x.png')])
    assert exit_info.value.code == 2 and capsys.readouterr().err.startswith("error: ")
    with pytest.raises(tool.LogError, match="no key 'mIoU'"):
        tool.main(['plot_curve', str(log), '--keys', 'mIoU', '--out', str(tmp_path / 'x.png'), '--debug'])


@pytest.fixture
def runner_builds_and_runs_model(monkeypatch):
    """Runner.from_cfg replaced by what it does first: build the model (through the registry, nested in a host
    model) and run a forward of a 32x32 image, below P2T's minimum size."""
    import torch
    from mmengine.registry import MODELS, DefaultScope
    from mmengine.runner import Runner

    def from_cfg(cfg):
        with DefaultScope.overwrite_default_scope('mmpretrain'):  # whatever scope an earlier test left current
            model = MODELS.build(dict(type='mmpretrain.ImageClassifier', backbone=cfg.model))
        model.backbone(torch.zeros(1, 3, 32, 32))
        raise _Stop

    monkeypatch.setattr(Runner, 'from_cfg', staticmethod(from_cfg))


@pytest.mark.parametrize('arch,expected', [("'tinyy'", "P2T: unknown arch 'tinyy'; choose one of"),
                                           ("'tiny'", 'P2T needs inputs of at least 65x65 px, got 32x32')])
def test_model_construction_and_input_errors_are_one_message(arch, expected, runner_builds_and_runs_model, tmp_path,
                                                             capsys):
    """A bad arch (raised while the host model builds its backbone) and a too-small input (raised in forward):
    ``error: ...`` naming the fix, exit status 2, no traceback; ``--debug`` re-raises the ValueError."""
    config = tmp_path / 'bad.py'
    config.write_text(f"model = dict(type='mmvit_ext.P2T', arch={arch})\n")
    tool = _load_tool('tools/train.py')
    with pytest.raises(SystemExit) as exit_info:
        tool.main([str(config), '--work-dir', str(tmp_path / 'w')])
    err = capsys.readouterr().err
    assert exit_info.value.code == 2
    assert err.startswith('error: ') and expected in err and 'Traceback' not in err
    with pytest.raises(ValueError, match=expected.split(';')[0].replace('(', r'\(')):
        tool.main([str(config), '--work-dir', str(tmp_path / 'w'), '--debug'])


def test_tta_flag_wraps_the_model_and_sets_the_innermost_test_pipeline(captured_cfg, tmp_path, capsys):
    """--tta as the host tools rewrite the config (mmdet's batch_shapes_cfg off, dataset wrappers descended)."""
    config = tmp_path / 'tta.py'
    config.write_text("model = dict(type='mmvit_ext.P2T', arch='tiny')\n"
                      "tta_model = dict(type='DetTTAModel', tta_cfg=dict(max_per_img=10))\n"
                      "tta_pipeline = [dict(type='LoadImageFromFile'), dict(type='TestTimeAug', transforms=[])]\n"
                      "test_dataloader = dict(dataset=dict(type='RepeatDataset', times=2, dataset=dict(\n"
                      "    type='CocoDataset', batch_shapes_cfg=dict(size=640), pipeline=[dict(type='Resize')])))\n"
                      "test_cfg = dict(type='TestLoop')\ntest_evaluator = dict(type='CocoMetric')\n")
    ckpt = tmp_path / 'c.pth'
    ckpt.write_bytes(b'')
    tool = _load_tool('tools/test.py')
    with pytest.raises(_Stop):
        tool.main([str(config), str(ckpt), '--work-dir', str(tmp_path / 'w'), '--tta'])
    cfg = captured_cfg['cfg']
    assert cfg.model.type == 'DetTTAModel' and cfg.model.tta_cfg == dict(max_per_img=10)
    assert cfg.model.module == dict(type='mmvit_ext.P2T', arch='tiny')
    inner = cfg.test_dataloader.dataset.dataset
    assert inner.pipeline == cfg.tta_pipeline and inner.batch_shapes_cfg is None
    assert cfg.test_dataloader.dataset.get('pipeline') is None
    config.write_text("model = dict(type='mmvit_ext.P2T', arch='tiny')\ntest_dataloader = dict(dataset=dict())\n")
    with pytest.raises(SystemExit) as exit_info:
        tool.main([str(config), str(ckpt), '--work-dir', str(tmp_path / 'w'), '--tta'])
    assert exit_info.value.code == 2
    assert 'error: --tta needs tta_model and tta_pipeline in the config' in capsys.readouterr().err


def test_no_validate_drops_the_val_loop(plain_config, captured_cfg, tmp_path):
    with open(plain_config, 'a') as f:  # a complete val loop, which --no-validate must drop as a whole
        f.write("val_dataloader = dict(dataset=dict(type='X'))\nval_cfg = dict(type='ValLoop')\n"
                "val_evaluator = dict(type='M')\n")
    tool = _load_tool('tools/train.py')
    with pytest.raises(_Stop):
        tool.main([plain_config, '--work-dir', str(tmp_path / 'w'), '--no-validate'])
    cfg = captured_cfg['cfg']
    assert all(cfg[k] is None for k in ('val_dataloader', 'val_cfg', 'val_evaluator'))
    assert cfg.train_dataloader is not None
