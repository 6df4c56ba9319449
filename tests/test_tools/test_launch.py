"""Unit tests of the helpers behind tools/train.py and tools/test.py (no host library needed)."""
import pytest
import torch
import torch.nn as nn
from mmengine.config import Config
from mmengine.registry import OPTIM_WRAPPERS

import mmvit_ext  # noqa: F401
from mmvit_ext.utils.launch import (UserError, check_dataset_paths, ensure_cpu_compatible, load_checkpoint_strict,
                                    load_config, replace_syncbn, setup_amp, user_errors)


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


@pytest.mark.skipif(torch.cuda.is_available(), reason='CPU behaviour')
def test_inherited_amp_wrapper_runs_on_cpu():
    cfg = Config(dict(optim_wrapper=dict(type='AmpOptimWrapper', loss_scale='dynamic', optimizer=dict(type='SGD'))))
    ensure_cpu_compatible(cfg)
    assert cfg.optim_wrapper.type == 'mmvit_ext.AutocastOptimWrapper' and 'loss_scale' not in cfg.optim_wrapper


def test_amp_refuses_unknown_wrapper():
    cfg = Config(dict(optim_wrapper=dict(type='MyWrapper')))
    with pytest.raises(UserError, match='only replaces the plain OptimWrapper'):
        setup_amp(cfg)


def test_strict_checkpoint_loading_lists_keys(tmp_path):
    src = nn.Sequential(nn.Linear(2, 2), nn.Linear(2, 2))
    torch.save({'state_dict': {'0.weight': src[0].weight, 'extra.bias': torch.zeros(1)}}, tmp_path / 'c.pth')
    with pytest.raises(UserError) as err:
        load_checkpoint_strict(src, str(tmp_path / 'c.pth'))
    text = str(err.value)
    assert '3 missing keys: 0.bias, 1.weight, 1.bias' in text
    assert '1 unexpected keys: extra.bias' in text
    assert 'convert_checkpoint.py' in text

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
