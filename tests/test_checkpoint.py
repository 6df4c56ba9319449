"""Safe checkpoint loading on torch >= 2.6: MMEngine's own checkpoints load with weights_only=True kept, through
``load_checkpoint``, ``Runner`` resume and ``init_cfg=dict(type='Pretrained')``; anything else is refused before
its payload runs."""
import argparse
import glob
import os
import os.path as osp
import pickle
import sys
import types
from collections import OrderedDict

import numpy as np
import pytest
import torch
import torch.nn as nn
from mmengine.evaluator import BaseMetric
from mmengine.model import BaseModel, BaseModule
from mmengine.runner import Runner
from mmengine.runner.checkpoint import CheckpointLoader, load_checkpoint
from torch.utils.data import Dataset

import mmvit_ext  # noqa: F401  (installs the safe loader)
from mmvit_ext.utils.checkpoint import UnsafeCheckpointError, safe_torch_load


class ToyModel(BaseModel):

    def __init__(self):
        super().__init__()
        self.linear = nn.Linear(2, 1)

    def forward(self, x, y=None, mode='tensor'):
        out = self.linear(torch.stack(x)).squeeze(-1)
        if mode == 'loss':
            return dict(loss=((out - torch.stack(y))**2).mean())
        return [dict(pred=o) for o in out]


class ToyData(Dataset):

    def __len__(self):
        return 8

    def __getitem__(self, i):
        return dict(x=torch.tensor([float(i), 1.0]), y=torch.tensor(0.5 * i))


class ToyMetric(BaseMetric):

    def process(self, data_batch, data_samples):
        self.results.extend(float(s['pred']) for s in data_samples)

    def compute_metrics(self, results):
        return dict(score=np.float64(np.mean(results)))  # a numpy scalar, as real metrics produce


def make_runner(work_dir, max_epochs, resume=False, load_from=None):
    return Runner(
        model=ToyModel(),
        work_dir=str(work_dir),
        train_dataloader=dict(dataset=ToyData(), sampler=dict(type='DefaultSampler', shuffle=True), batch_size=2),
        val_dataloader=dict(dataset=ToyData(), sampler=dict(type='DefaultSampler', shuffle=False), batch_size=4),
        val_evaluator=[ToyMetric()],
        val_cfg=dict(),
        optim_wrapper=dict(optimizer=dict(type='SGD', lr=0.01, momentum=0.9)),
        train_cfg=dict(by_epoch=True, max_epochs=max_epochs, val_interval=1),
        default_hooks=dict(checkpoint=dict(type='CheckpointHook', interval=1, save_best='score', rule='greater')),
        randomness=dict(seed=0),
        resume=resume,
        load_from=load_from,
        experiment_name=f'exp_{max_epochs}_{int(resume)}')


@pytest.fixture(scope='module')
def trained(tmp_path_factory):
    work_dir = tmp_path_factory.mktemp('ckpt_work')
    runner = make_runner(work_dir, max_epochs=2)
    runner.train()
    return work_dir, runner


def test_mmengine_checkpoint_needs_the_allow_list(trained):
    """The checkpoint really holds the globals that broke torch>=2.6 (else this test guards nothing)."""
    work_dir, _ = trained
    unsafe = set(torch.serialization.get_unsafe_globals_in_checkpoint(str(work_dir / 'epoch_2.pth')))
    assert 'mmengine.logging.history_buffer.HistoryBuffer' in unsafe
    assert 'builtins.getattr' in unsafe
    with pytest.raises(pickle.UnpicklingError):
        torch.load(str(work_dir / 'epoch_2.pth'), weights_only=True)


def test_load_checkpoint_round_trip(trained):
    work_dir, runner = trained
    ckpt = CheckpointLoader.load_checkpoint(str(work_dir / 'epoch_2.pth'))
    buffer = ckpt['message_hub']['log_scalars']['train/loss']
    assert buffer.mean() == pytest.approx(runner.message_hub.get_scalar('train/loss').mean())
    assert isinstance(ckpt['message_hub']['runtime_info']['best_score'], np.floating)

    fresh = ToyModel()
    load_checkpoint(fresh, str(work_dir / 'epoch_2.pth'), strict=True)
    for (name, a), b in zip(runner.model.state_dict().items(), fresh.state_dict().values()):
        assert torch.equal(a, b), name


def test_runner_resume_continues_exactly(trained, tmp_path):
    """Resume from epoch 1 and train to epoch 2: same weights as the uninterrupted run."""
    work_dir, runner = trained
    resumed = make_runner(tmp_path, max_epochs=2, resume=True, load_from=str(work_dir / 'epoch_1.pth'))
    resumed.train()
    assert resumed.epoch == 2
    assert resumed.message_hub.get_info('best_score') is not None
    for (name, a), b in zip(runner.model.state_dict().items(), resumed.model.state_dict().values()):
        torch.testing.assert_close(a, b, msg=name)


def test_pretrained_init_cfg_loads_full_checkpoint(trained):
    work_dir, runner = trained

    class Wrapped(BaseModule):

        def __init__(self, init_cfg):
            super().__init__(init_cfg=init_cfg)
            self.linear = nn.Linear(2, 1)

    model = Wrapped(init_cfg=dict(type='Pretrained', checkpoint=str(work_dir / 'epoch_2.pth')))
    model.init_weights()
    assert torch.equal(model.linear.weight, runner.model.linear.weight)


class _Payload:
    marker = None

    def __reduce__(self):
        return (os.system, (f'touch {self.marker}', ))


def test_malicious_checkpoint_is_refused_and_never_runs(tmp_path):
    marker = tmp_path / 'pwned'
    _Payload.marker = str(marker)
    path = tmp_path / 'evil.pth'
    torch.save({'state_dict': {'w': torch.zeros(1)}, 'meta': _Payload()}, str(path))

    for load in (lambda: CheckpointLoader.load_checkpoint(str(path)),
                 lambda: load_checkpoint(nn.Linear(1, 1), str(path)), lambda: safe_torch_load(str(path))):
        with pytest.raises(UnsafeCheckpointError, match='Refused to load checkpoint'):
            load()
    assert not marker.exists()


def test_getattr_is_restricted_to_history_buffer(tmp_path):
    """``builtins.getattr`` is allowed only in the form HistoryBuffer pickles it."""

    class GetattrPayload:

        def __reduce__(self):  # attribute walks from allowed classes are how such exploits start
            return (getattr, (np.ndarray, 'tofile'))

    path = tmp_path / 'evil2.pth'
    torch.save({'x': GetattrPayload()}, str(path))
    with pytest.raises(UnsafeCheckpointError, match='refusing getattr'):
        safe_torch_load(str(path))


class _FakeCfgNode(dict):
    """Pickles as ``yacs.config.CfgNode`` does (a dict subclass with bookkeeping attributes), without yacs: its
    ``__module__`` and ``__qualname__`` say ``yacs.config.CfgNode``, and :func:`_save_as_yacs` provides the module
    while saving."""
    __module__ = 'yacs.config'
    __qualname__ = 'CfgNode'

    def __init__(self, items=(), frozen=True):
        super().__init__(items)
        self.__dict__.update({'__immutable__': frozen, '__deprecated_keys__': set(), '__new_allowed__': False})


def _save_as_yacs(obj, path, monkeypatch):
    """torch.save with ``_FakeCfgNode`` as ``yacs.config.CfgNode``; the module is gone again when loading."""
    module = types.ModuleType('yacs.config')
    module.CfgNode = _FakeCfgNode
    monkeypatch.setitem(sys.modules, 'yacs', types.ModuleType('yacs'))
    monkeypatch.setitem(sys.modules, 'yacs.config', module)
    torch.save(obj, str(path))
    monkeypatch.delitem(sys.modules, 'yacs.config')
    monkeypatch.delitem(sys.modules, 'yacs')


def test_pickled_training_configs_load_as_inert_data(tmp_path, monkeypatch):
    """Official checkpoints pickle their yacs config and argparse args next to the weights: both load with
    weights_only=True and without yacs, the config as nested OrderedDicts, the args as a Namespace."""
    cfg = _FakeCfgNode({'MODEL': _FakeCfgNode({'NAME': 'rest_lite', 'DEPTHS': [2, 2, 2, 2]}), 'LR': 5e-4})
    path = tmp_path / 'official.pth'
    _save_as_yacs({
        'model': {
            'w': torch.ones(2)
        },
        'config': cfg,
        'args': argparse.Namespace(lr=1e-3, cfg=cfg)
    }, path, monkeypatch)
    assert 'yacs.config' not in sys.modules
    ckpt = safe_torch_load(str(path))
    assert torch.equal(ckpt['model']['w'], torch.ones(2))
    config = ckpt['config']
    assert type(config) is OrderedDict and type(config['MODEL']) is OrderedDict
    assert config == {'MODEL': {'NAME': 'rest_lite', 'DEPTHS': [2, 2, 2, 2]}, 'LR': 5e-4}
    assert isinstance(ckpt['args'], argparse.Namespace) and ckpt['args'].lr == 1e-3
    assert ckpt['args'].cfg['MODEL']['NAME'] == 'rest_lite'
    assert 'yacs.config' not in sys.modules  # nothing imported yacs


def test_malicious_object_in_the_config_place_is_still_refused(tmp_path, monkeypatch):
    """The config allowance is narrow: a payload under 'config' or inside the args is refused and never runs."""
    marker = tmp_path / 'pwned'
    _Payload.marker = str(marker)
    for i, obj in enumerate([{
            'config': _Payload()
    }, {
            'args': argparse.Namespace(cfg=_Payload())
    }, {
            'config': _FakeCfgNode({'MODEL': _Payload()})
    }]):
        path = tmp_path / f'evil{i}.pth'
        _save_as_yacs(dict(obj, model={'w': torch.zeros(1)}), path, monkeypatch)
        with pytest.raises(UnsafeCheckpointError, match='Refused to load checkpoint'):
            safe_torch_load(str(path))
    assert not marker.exists()


def test_missing_checkpoint_message(tmp_path):
    with pytest.raises(FileNotFoundError, match='does not exist'):
        CheckpointLoader.load_checkpoint(str(tmp_path / 'nope.pth'))


def test_numpy_and_plain_checkpoints_load(tmp_path):
    path = tmp_path / 'plain.pth'
    payload = {'meta': {'arr': np.arange(3, dtype=np.float32), 'scalar': np.int64(4)}, 'state_dict': {}}
    torch.save(payload, str(path))
    loaded = safe_torch_load(str(path))
    assert loaded['meta']['arr'].tolist() == [0.0, 1.0, 2.0]
    assert loaded['meta']['scalar'] == 4
    assert not glob.glob(osp.join(str(tmp_path), 'pwned*'))


# ---------------------------------------------------------------------------------------------------------------
# load_state_dict_strict: the one strict state-dict load
# ---------------------------------------------------------------------------------------------------------------
def _net():
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.Sequential(nn.Linear(4, 2)))


def test_strict_load_message_names_missing_and_unexpected_keys():
    from mmvit_ext.utils.checkpoint import StateDictMismatchError, load_state_dict_strict
    model = _net()
    state = model.state_dict()
    state.pop('2.0.bias')
    state.pop('1.running_var')
    state['2.1.weight'] = torch.zeros(2)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    state['0.weight'] = state['0.weight'] + 1  # would change the model if anything were loaded
    with pytest.raises(StateDictMismatchError) as err:
        load_state_dict_strict(model, state, source="checkpoint 'x.pth'", hint='Convert it first.')
    text = str(err.value)
    assert text.startswith("checkpoint 'x.pth' does not fit Sequential:")
    assert '2 missing keys: 1.running_var, 2.0.bias' in text and '1 unexpected keys: 2.1.weight' in text
    assert text.endswith('Convert it first.') and 'shape' not in text
    assert err.value.missing == ['1.running_var', '2.0.bias'] and err.value.unexpected == ['2.1.weight']
    for k, v in model.state_dict().items():  # nothing was loaded
        assert torch.equal(v, before[k]), k


def test_strict_load_reports_shape_mismatches():
    from mmvit_ext.utils.checkpoint import StateDictMismatchError, load_state_dict_strict
    model = _net()
    state = model.state_dict()
    state['2.0.weight'] = torch.zeros(3, 4)
    with pytest.raises(StateDictMismatchError) as err:
        load_state_dict_strict(model, state, source='the weights', hint='h')
    assert '1 shape mismatches: 2.0.weight (checkpoint (3, 4) vs model (2, 4))' in str(err.value)
    assert 'missing' not in str(err.value) and err.value.mismatched == [('2.0.weight', (3, 4), (2, 4))]


def test_strict_load_success_and_load_time_migrations():
    """A fitting dict is loaded; keys renamed or tensors resized by a module's own ``_load_from_state_dict`` (as
    ``_version`` upgrades and relative-position tables do) are compared after that migration."""
    from mmvit_ext.utils.checkpoint import load_state_dict_strict

    class Renamed(nn.Module):

        def __init__(self):
            super().__init__()
            self.proj = nn.Linear(2, 3)
            self.register_buffer('table', torch.zeros(4))
            self.register_buffer('cache', torch.zeros(1), persistent=False)

        def _load_from_state_dict(self, state_dict, prefix, *args):
            if prefix + 'old.weight' in state_dict:  # version 1 called it ``old``
                state_dict[prefix + 'proj.weight'] = state_dict.pop(prefix + 'old.weight')
            table = state_dict.get(prefix + 'table')
            if table is not None and table.shape != self.table.shape:  # resized on load
                state_dict[prefix + 'table'] = table.repeat(2)[:4]
            super()._load_from_state_dict(state_dict, prefix, *args)

    src, dst = nn.Sequential(Renamed()), nn.Sequential(Renamed())
    state = src.state_dict()
    load_state_dict_strict(dst, state, source='s', hint='h')
    assert torch.equal(dst[0].proj.weight, src[0].proj.weight)
    old = {('0.old.weight' if k == '0.proj.weight' else k): v for k, v in state.items()}
    old['0.table'] = torch.arange(2.)
    fresh = nn.Sequential(Renamed())
    load_state_dict_strict(fresh, old, source='s', hint='h')
    assert torch.equal(fresh[0].proj.weight, src[0].proj.weight) and fresh[0].table.tolist() == [0., 1., 0., 1.]


def test_checkpoint_module_imports_only_torch_and_mmengine():
    """``mmvit_ext.models`` imports this module: it must not import the models back (or anything heavy)."""
    import ast
    import sys
    source = osp.join(osp.dirname(mmvit_ext.__file__), 'utils', 'checkpoint.py')
    names = set()
    for node in ast.walk(ast.parse(open(source).read())):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            names.add(node.module)
    allowed = ('torch', 'mmengine', 'numpy', 'mmvit_ext.utils.compat')
    outside = {n for n in names if n.split('.')[0] not in sys.stdlib_module_names and not n.startswith(allowed)}
    assert not outside, outside
