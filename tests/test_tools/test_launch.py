"""Unit tests of the helpers behind the tools (no host library needed)."""
import os.path as osp

import pytest
import torch
import torch.nn as nn
from mmengine.config import Config
from mmengine.registry import OPTIM_WRAPPERS

import mmvit_ext  # noqa: F401
from mmvit_ext.utils.checkpoint import StateDictMismatchError
from mmvit_ext.utils.launch import (UserError, adapt_cfg_for_device, check_dataset_paths, load_checkpoint_strict,
                                    load_config, replace_syncbn, resolve_device, setup_amp, setup_compile, setup_tta,
                                    user_errors)


def _cfg(tmp_path, **dataset):
    return Config(dict(train_dataloader=dict(dataset=dict(type='X', **dataset)), val_dataloader=None))


def test_missing_config_names_the_path(tmp_path):
    with pytest.raises(UserError, match=r"config file '.*nope\.py' does not exist"):
        load_config(str(tmp_path / 'nope.py'))


def test_dataset_paths_ok(tmp_path):
    (tmp_path / 'ann').mkdir()
    (tmp_path / 'ann' / 'train.json').write_text('{}')
    (tmp_path / 'img').mkdir()
    check_dataset_paths(
        _cfg(tmp_path, data_root=str(tmp_path), ann_file='ann/train.json', data_prefix=dict(img='img/')))


def test_dataset_paths_missing_root_gives_fix(tmp_path):
    cfg = _cfg(tmp_path, data_root=str(tmp_path / 'coco'), ann_file='a.json')
    with pytest.raises(UserError) as err:
        check_dataset_paths(cfg)
    text = str(err.value)
    assert "train_dataloader.dataset.data_root = '" in text and 'is not a directory' in text
    assert '--cfg-options train_dataloader.dataset.data_root=/path/to/dataset/' in text
    assert 'docs/dataset_prepare.md' in text


def test_dataset_paths_missing_ann_and_prefix_in_wrapped_dataset(tmp_path):
    cfg = Config(
        dict(
            train_dataloader=dict(
                dataset=dict(
                    type='RepeatDataset',
                    times=2,
                    dataset=dict(
                        type='X', data_root=str(tmp_path), ann_file='missing.json', data_prefix=dict(img='imgs/'))))))
    with pytest.raises(UserError) as err:
        check_dataset_paths(cfg)
    assert 'train_dataloader.dataset.dataset.ann_file' in str(err.value)
    assert 'train_dataloader.dataset.dataset.data_prefix.img' in str(err.value)


def testreplace_syncbn_recursively():
    model = dict(
        backbone=dict(norm_cfg=dict(type='SyncBN', requires_grad=True)),
        heads=[dict(norm_cfg=dict(type='SyncBN')), dict(norm_cfg=dict(type='GN'))])
    assert replace_syncbn(model) == 2
    assert model['backbone']['norm_cfg']['type'] == 'BN' and model['heads'][1]['norm_cfg']['type'] == 'GN'


@pytest.mark.skipif(torch.cuda.is_available(), reason='CPU behaviour')
def test_amp_on_cpu_uses_bfloat16_autocast():
    cfg = Config(dict(optim_wrapper=dict(type='OptimWrapper', optimizer=dict(type='SGD', lr=0.1))))
    assert setup_amp(cfg) == 'mmvit_ext.AutocastOptimWrapper'
    model = nn.Linear(4, 2)
    wrapper_cfg = dict(cfg.optim_wrapper)
    wrapper_cfg.pop('optimizer')
    wrapper = OPTIM_WRAPPERS.build(
        wrapper_cfg, default_args=dict(optimizer=torch.optim.SGD(model.parameters(), lr=0.1)))
    with wrapper.optim_context(model):
        out = model(torch.randn(3, 4))
    assert out.dtype == torch.bfloat16
    before = model.weight.detach().clone()
    wrapper.update_params(out.float().pow(2).mean())
    assert not torch.equal(before, model.weight)


def _gpu_cfg():
    return Config(
        dict(
            optim_wrapper=dict(type='AmpOptimWrapper', loss_scale='dynamic', optimizer=dict(type='SGD')),
            model=dict(
                type='M', backbone=dict(norm_cfg=dict(type='SyncBN')), heads=[dict(norm_cfg=dict(type='MMSyncBN'))])))


def test_adapt_cfg_for_cpu_rewrites_amp_and_syncbn(capsys):
    cfg = _gpu_cfg()
    changes = adapt_cfg_for_device(cfg, 'cpu')
    assert cfg.optim_wrapper.type == 'mmvit_ext.AutocastOptimWrapper' and 'loss_scale' not in cfg.optim_wrapper
    assert cfg.optim_wrapper.dtype == 'bfloat16'
    assert cfg.model.backbone.norm_cfg.type == 'BN' and cfg.model.heads[0].norm_cfg.type == 'BN'
    assert len(changes) == 2 and 'SyncBN -> BN in model (2 norm layer(s))' in changes
    assert capsys.readouterr().out.count('[mmvit_ext] CPU run:') == 2
    assert adapt_cfg_for_device(cfg, 'cpu', log=None) == []  # idempotent
    assert capsys.readouterr().out == ''


def test_inherited_amp_wrapper_builds_and_runs_on_cpu():
    cfg = _gpu_cfg()
    adapt_cfg_for_device(cfg, 'cpu', log=None)
    wrapper_cfg = dict(cfg.optim_wrapper)
    wrapper_cfg.pop('optimizer')
    model = nn.Linear(4, 2)
    wrapper = OPTIM_WRAPPERS.build(
        wrapper_cfg, default_args=dict(optimizer=torch.optim.SGD(model.parameters(), lr=0.1)))
    with wrapper.optim_context(model):
        assert model(torch.randn(3, 4)).dtype == torch.bfloat16


@pytest.mark.skipif(torch.cuda.is_available(), reason='CPU behaviour')
def test_adapt_cfg_auto_without_cuda_is_cpu_and_cuda_request_fails():
    cfg = _gpu_cfg()
    assert adapt_cfg_for_device(cfg, 'auto', log=None)
    with pytest.raises(UserError, match='CUDA is not available'):
        adapt_cfg_for_device(_gpu_cfg(), 'cuda', log=None)
    assert resolve_device('auto').type == 'cpu'


@pytest.mark.skipif(not torch.cuda.is_available(), reason='needs CUDA')
def test_adapt_cfg_for_cuda_changes_nothing():
    cfg = _gpu_cfg()
    assert adapt_cfg_for_device(cfg, 'cuda') == []
    assert cfg.optim_wrapper.type == 'AmpOptimWrapper' and cfg.model.backbone.norm_cfg.type == 'SyncBN'


def test_amp_refuses_unknown_wrapper():
    cfg = Config(dict(optim_wrapper=dict(type='MyWrapper')))
    with pytest.raises(UserError, match='only replaces the plain OptimWrapper'):
        setup_amp(cfg)


def test_strict_checkpoint_loading_lists_keys(tmp_path, capsys):
    src = nn.Sequential(nn.Linear(2, 2), nn.Linear(2, 2))
    torch.save({'state_dict': {'0.weight': src[0].weight, 'extra.bias': torch.zeros(1)}}, tmp_path / 'c.pth')
    with pytest.raises(StateDictMismatchError) as err:
        load_checkpoint_strict(src, str(tmp_path / 'c.pth'), what='the model of x.py')
    text = str(err.value)
    assert '3 missing keys: 0.bias, 1.weight, 1.bias' in text
    assert '1 unexpected keys: extra.bias' in text
    assert 'the model of x.py' in text and 'convert_checkpoint.py' in text
    with pytest.raises(SystemExit) as exit_info:  # the tools print it as one user error
        with user_errors():
            load_checkpoint_strict(src, str(tmp_path / 'c.pth'))
    assert exit_info.value.code == 2
    printed = capsys.readouterr().err
    assert printed.startswith("error: checkpoint '") and '1 unexpected keys: extra.bias' in printed
    with pytest.raises(StateDictMismatchError):
        with user_errors(debug=True):
            load_checkpoint_strict(src, str(tmp_path / 'c.pth'))

    torch.save({'state_dict': {'module.' + k: v for k, v in src.state_dict().items()}}, tmp_path / 'ok.pth')
    dst = nn.Sequential(nn.Linear(2, 2), nn.Linear(2, 2))
    load_checkpoint_strict(dst, str(tmp_path / 'ok.pth'))
    assert torch.equal(dst[1].weight, src[1].weight)


def test_user_errors_prints_one_message(capsys):
    with pytest.raises(SystemExit) as exit_info:
        with user_errors():
            raise UserError('something is wrong; fix it like this')
    assert exit_info.value.code == 2
    assert 'error: something is wrong; fix it like this' in capsys.readouterr().err


def test_user_errors_explains_unknown_types(capsys):
    from mmengine.registry import MODELS
    with pytest.raises(SystemExit):
        with user_errors():
            MODELS.build(dict(type='NoSuchBackbone'))
    err = capsys.readouterr().err
    assert 'NoSuchBackbone is not in the' in err and "type='mmvit_ext.P2T'" in err


def test_user_errors_debug_reraises():
    with pytest.raises(UserError):
        with user_errors(debug=True):
            raise UserError('x')


def test_missing_pretrained_weights_name_the_key_and_the_fix(tmp_path):
    from mmvit_ext.utils.launch import check_pretrained_paths
    cfg = Config(
        dict(
            model=dict(
                backbone=dict(init_cfg=dict(type='Pretrained', checkpoint='ckpts/p2t_tiny.pth')),
                neck=dict(init_cfg=[dict(type='Pretrained', checkpoint='https://x/y.pth')]))))
    with pytest.raises(UserError) as err:
        check_pretrained_paths(cfg)
    text = str(err.value)
    assert "model.backbone.init_cfg.checkpoint = 'ckpts/p2t_tiny.pth'" in text
    assert '--cfg-options model.backbone.init_cfg=None' in text and 'https' not in text
    (tmp_path / 'w.pth').write_bytes(b'')
    cfg.model.backbone.init_cfg.checkpoint = str(tmp_path / 'w.pth')
    check_pretrained_paths(cfg)


def test_pkg_config_names_resolve_and_errors_are_user_errors(tmp_path):
    from mmvit_ext.utils.launch import resolve_config_path
    local = tmp_path / 'a.py'
    local.write_text('x = 1\n')
    assert resolve_config_path(str(local)) == str(local)
    assert osp.isfile(resolve_config_path('mmvit_ext::p2t/fpn_p2t-t_1xb4-300iter_demo-ade20k-128x128.py'))
    with pytest.raises(UserError, match=r"config file 'mmvit_ext::p2t/nope\.py' does not exist.*holds: fpn_p2t"):
        resolve_config_path('mmvit_ext::p2t/nope.py')
    with pytest.raises(UserError, match="unknown package 'mmfoo'"):
        resolve_config_path('mmfoo::a/b.py')
    with pytest.raises(UserError, match='<pkg>::<dir>/<file>.py'):
        resolve_config_path('mmvit_ext::nofolder.py')


def test_compile_requires_a_cpp_compiler_on_cpu(monkeypatch):
    from mmvit_ext.utils.launch import setup_compile
    cfg = Config(dict(compile=dict(backend='inductor', dynamic=False)))
    setup_compile(cfg)
    assert cfg.compile == dict(backend='inductor', dynamic=False)  # options already in the config are kept
    if torch.cuda.is_available():
        return
    monkeypatch.setenv('CXX', 'no-such-compiler-xyz')
    with pytest.raises(UserError, match="'no-such-compiler-xyz' was not found"):
        setup_compile(Config())


def test_loops_are_complete_or_absent_and_test_runs_drop_the_others():
    from mmvit_ext.utils.launch import check_loops, drop_loops
    cfg = Config(
        dict(
            train_dataloader=dict(type='X'),
            optim_wrapper=dict(type='OptimWrapper'),
            param_scheduler=[dict(type='LinearLR')],
            val_dataloader=dict(type='X'),
            val_cfg=dict(type='ValLoop'),
            val_evaluator=dict(type='M'),
            test_dataloader=dict(type='X'),
            test_cfg=dict(type='TestLoop'),
            test_evaluator=dict(type='M')))
    check_loops(cfg, ('val', 'test'))
    with pytest.raises(UserError, match='sets train_dataloader, optim_wrapper but not train_cfg: MMEngine needs all'):
        check_loops(cfg)
    drop_loops(cfg)
    check_loops(cfg)
    assert all(cfg[k] is None for k in ('train_dataloader', 'optim_wrapper', 'param_scheduler', 'val_dataloader'))
    assert cfg.test_dataloader == dict(type='X')


def test_compile_kwargs_freeze_the_weights_for_inference_only():
    from mmvit_ext.utils.launch import compile_kwargs
    assert compile_kwargs(False) == {} and compile_kwargs(False, True) == {}
    assert compile_kwargs(True) == dict(options=dict(freezing=True))
    own = dict(dynamic=False, options=dict(freezing=False, max_autotune=True))
    assert compile_kwargs(True, own) == own and compile_kwargs(False, own) == own  # the config's options win
    cfg = Config(dict(compile=dict(dynamic=False)))
    setup_compile(cfg, inference=True)
    assert cfg.compile == dict(dynamic=False, options=dict(freezing=True))


def _tta_cfg(scope, **extra):
    pipeline = [
        dict(type='LoadImageFromFile'),
        dict(type='Resize', scale=(64, 64)),
        dict(type='PackX', meta_keys=('a', ))
    ]
    dataset = dict(type='RepeatDataset', dataset=dict(type='D', pipeline=pipeline, batch_shapes_cfg=dict(size=32)))
    return Config(dict(default_scope=scope, model=dict(type='M'), test_dataloader=dict(dataset=dataset), **extra))


@pytest.mark.parametrize('scope,model,pack', [('mmdet', 'DetTTAModel', 'PackDetInputs'),
                                              ('mmpretrain', 'mmpretrain.AverageClsScoreTTA', 'PackX')])
def test_tta_defaults_are_the_host_tools_flip_tta(scope, model, pack):
    """mmdet's and mmpretrain's tools/test.py --tta on a config without tta_model/tta_pipeline: flip TTA."""
    cfg = _tta_cfg(scope)
    setup_tta(cfg)
    assert cfg.model.type == model and cfg.model.module == dict(type='M')
    inner = cfg.test_dataloader.dataset.dataset
    assert inner.batch_shapes_cfg is None
    assert [t['type'] for t in inner.pipeline] == ['LoadImageFromFile', 'Resize', 'TestTimeAug']
    flips, (packing, ) = inner.pipeline[-1]['transforms']
    assert [f['prob'] for f in flips] == [1., 0.] and packing['type'] == pack
    if scope == 'mmdet':
        assert packing['meta_keys'][-2:] == ('flip', 'flip_direction')
        assert cfg.model.tta_cfg.nms.iou_threshold == 0.5


def test_tta_uses_the_configs_own_and_needs_them_for_mmseg():
    own = [dict(type='LoadImageFromFile'), dict(type='TestTimeAug', transforms=[[dict(type='Mine')]])]
    cfg = _tta_cfg('mmdet', tta_model=dict(type='MyTTA'), tta_pipeline=own)
    setup_tta(cfg)
    assert cfg.model.type == 'MyTTA' and cfg.test_dataloader.dataset.dataset.pipeline == own
    with pytest.raises(UserError, match='--tta needs tta_model and tta_pipeline'):
        setup_tta(_tta_cfg('mmseg'))
    with pytest.raises(UserError, match='--tta needs tta_pipeline in'):
        setup_tta(_tta_cfg('mmseg', tta_model=dict(type='SegTTAModel')))
