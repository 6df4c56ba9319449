"""``mmvit_ext.analysis.benchmark`` and ``tools/analysis_tools/benchmark.py``.

A benchmark is not a test: these only check that it runs on two tiny configs (with the memory child processes)
and that its JSON is well formed with sane values. The configs' models are registered in MMEngine's root
registry by a module in ``tmp_path`` that the configs import (``custom_imports``), so the spawned memory
processes can build them too.
"""
import importlib.util
import json
import math
import os.path as osp
import textwrap

import pytest
import torch

import mmvit_ext  # noqa: F401
from mmvit_ext.analysis.benchmark import (JSON_KEYS, TimedCase, describe_timed_work, format_results, run_benchmark,
                                          time_interleaved, write_json)
from mmvit_ext.utils.launch import UserError

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))

NETS = '''
import torch.nn as nn
import torch.nn.functional as F
from mmengine.registry import MODELS


@MODELS.register_module(force=True)
class BenchTestNet(nn.Module):
    def __init__(self, dim=8):
        super().__init__()
        self.stem = nn.Conv2d(3, dim, 4, 4)
        self.qkv = nn.Linear(dim, 3 * dim)
        self.head = nn.Linear(dim, 4)

    def forward(self, x):
        x = self.stem(x).flatten(2).transpose(1, 2)
        q, k, v = self.qkv(x).chunk(3, dim=-1)
        x = F.scaled_dot_product_attention(q, k, v)
        return self.head(x.mean(1))
'''


@pytest.fixture
def two_configs(tmp_path, monkeypatch):
    (tmp_path / 'mmvit_ext_bench_test_nets.py').write_text(NETS)
    monkeypatch.syspath_prepend(str(tmp_path))  # inherited by the spawned memory processes
    paths = []
    for name, dim in (('small', 8), ('wide', 24)):
        cfg = tmp_path / f'{name}.py'
        cfg.write_text(
            textwrap.dedent(f'''
            custom_imports = dict(imports=['mmvit_ext_bench_test_nets'], allow_failed_imports=False)
            model = dict(type='BenchTestNet', dim={dim})
        '''))
        paths.append(str(cfg))
    return paths


def _check_record(rec, config, batch):
    assert rec['config'] == config
    assert isinstance(rec['params'], int) and rec['params'] > 0
    assert isinstance(rec['flops'], int) and rec['flops'] > 0
    assert 0 < rec['latency_ms_min'] <= rec['latency_ms_median'] <= rec['latency_ms_max'] < 60e3
    assert math.isclose(rec['images_per_s'], batch * 1e3 / rec['latency_ms_median'])


def test_run_benchmark_two_configs_with_memory(two_configs, tmp_path):
    records = run_benchmark(two_configs, (32, 32), batch_size=2, repeat=3, warmup=1, threads=1, device='cpu', log=None)
    assert len(records) == 2
    for rec, cfg in zip(records, two_configs):
        _check_record(rec, cfg, batch=2)
        assert isinstance(rec['peak_mem_mb'], float) and 0 <= rec['peak_mem_mb'] < 4096, rec['peak_mem_mb']
    small, wide = records
    assert wide['params'] > small['params'] and wide['flops'] > small['flops']
    assert small['ratio_vs_first']['latency_ms_median'] == 1.0
    assert math.isclose(wide['ratio_vs_first']['flops'], wide['flops'] / small['flops'])

    out = tmp_path / 'res' / 'bench.json'
    write_json(records, str(out))
    loaded = json.loads(out.read_text())
    assert isinstance(loaded, list) and len(loaded) == 2
    for rec in loaded:
        assert list(rec)[:len(JSON_KEYS)] == list(JSON_KEYS)

    text = format_results(records)
    assert 'Ratios vs #0' in text and 'GMACs (multiply-accumulates' in text and 'peak RSS' in text


def _load_tool():
    path = osp.join(REPO, 'tools', 'analysis_tools', 'benchmark.py')
    spec = importlib.util.spec_from_file_location('_tool_benchmark', path)
    tool = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tool)
    return tool


def test_cli_train_mode_json(two_configs, tmp_path, capsys):
    tool = _load_tool()
    out = tmp_path / 'train.json'
    tool.main(two_configs + [
        '--shape', '32', '48', '--mode', 'train', '--batch', '2', '--repeat', '2', '--warmup', '1', '--threads', '1',
        '--device', 'cpu', '--no-memory', '--quiet', '--json',
        str(out)
    ])
    printed = capsys.readouterr().out
    assert 'backward() of a surrogate loss' in printed and 'Ratios vs #0' in printed
    records = json.loads(out.read_text())
    for rec, cfg in zip(records, two_configs):
        assert set(JSON_KEYS) <= set(rec)
        _check_record(rec, cfg, batch=2)
        assert rec['peak_mem_mb'] is None and rec['mode'] == 'train' and rec['shape'] == [32, 48]
        assert rec['compiled'] is False

    with pytest.raises(SystemExit) as exit_info:
        tool.main([str(tmp_path / 'missing.py'), '--shape', '32', '--no-memory'])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("error: config file '") and 'missing.py' in err and 'Traceback' not in err
    with pytest.raises(SystemExit) as exit_info:  # the timed compilation would be meaningless
        tool.main(two_configs[:1] + ['--compile', '--warmup', '0', '--no-memory', '--quiet'])
    assert exit_info.value.code == 2 and 'error: --compile needs --warmup >= 1' in capsys.readouterr().err


def test_cli_compile_tiny_model(two_configs, tmp_path, capsys, monkeypatch):
    """``--compile`` times the torch.compile'd model (compiled in the warm-up, with the weights frozen as constants
    for inference) and says so in the text and JSON."""
    from torch._dynamo.utils import counters
    calls, real_compile = [], torch.compile
    monkeypatch.setattr(torch, 'compile', lambda *args, **kwargs: calls.append(kwargs) or real_compile(*args, **kwargs))
    tool = _load_tool()
    out = tmp_path / 'compiled.json'
    counters.clear()
    records = tool.main(two_configs[:1] + [
        '--shape', '32', '--compile', '--repeat', '2', '--warmup', '1', '--threads', '1', '--device', 'cpu',
        '--no-memory', '--no-flops', '--quiet', '--json',
        str(out)
    ])
    printed = capsys.readouterr().out
    assert 'torch.compile on (compiled in the warm-up)' in printed and 'torch.compile(' in printed
    rec = json.loads(out.read_text())[0]
    assert rec['compiled'] is True and 'compiled during the warm-up' in rec['timed_work']
    assert 0 < rec['latency_ms_median'] < 60e3 and records[0]['compiled'] is True
    assert counters['stats']['unique_graphs'] >= 1  # really compiled, not only labelled so
    assert calls == [dict(options=dict(freezing=True))]


def test_time_interleaved_order():
    """Round r runs A then B once each (warm-up rounds included); prepare and sync frame every run, untimed;
    after_round sees each timed round."""
    calls = []

    def case(name):
        return TimedCase(
            run=lambda r: calls.append(f'{name}{r}'),
            prepare=lambda r: calls.append(f'prep-{name}'),
            sync=lambda: calls.append('sync'))

    rounds = []
    timings = time_interleaved([case('A'), case('B')],
                               repeat=3,
                               warmup=1,
                               after_round=lambda r, t: rounds.append((r, len(t[0].wall), len(t[1].wall))))
    assert calls[:8] == ['prep-A', 'sync', 'A0', 'sync', 'prep-B', 'sync', 'B0', 'sync']
    assert [c for c in calls if c[0] in 'AB'] == ['A0', 'B0', 'A1', 'B1', 'A2', 'B2', 'A3', 'B3']
    assert rounds == [(1, 1, 1), (2, 2, 2), (3, 3, 3)]
    assert all(len(t.wall) == len(t.cpu) == 3 and min(t.wall) >= 0 for t in timings)
    with pytest.raises(UserError):
        time_interleaved([case('A')], repeat=0, warmup=0)


def test_describe_and_validation(two_configs):
    assert 'no_grad' in describe_timed_work('infer', 'backbone')
    assert 'no optimizer step' in describe_timed_work('train', 'model')
    with pytest.raises(UserError, match='predict'):
        run_benchmark(two_configs[:1], 32, mode='train', forward='predict', log=None)


@pytest.mark.skipif(not torch.cuda.is_available(), reason='needs CUDA')
def test_cuda_memory(two_configs):
    rec = run_benchmark(two_configs[:1], 32, repeat=2, warmup=1, device='cuda', log=None)[0]
    assert rec['device'].startswith('cuda') and rec['peak_mem_mb'] > 0


def _mmseg_models_import():
    try:
        import mmseg.models  # noqa: F401
    except Exception:  # not installed, or a torch/torchvision mismatch
        return False
    return True


@pytest.mark.skipif(not _mmseg_models_import(), reason='needs mmseg.models')
def test_host_config_backbone_with_memory_child():
    """A ``pkg::`` config goes through the whole benchmark, including the spawned memory process, which resolves
    the name again."""
    cfg = 'mmseg::segformer/segformer_mit-b0_8xb2-160k_ade20k-512x512.py'
    rec = run_benchmark([cfg], (32, 48), part='backbone', repeat=2, warmup=1, threads=1, device='cpu', log=None)[0]
    _check_record(rec, cfg, batch=1)
    assert rec['model_type'] == 'MixVisionTransformer' and rec['params'] == 3_319_392
    assert isinstance(rec['peak_mem_mb'], float) and 0 <= rec['peak_mem_mb'] < 4096
    assert cfg in format_results([rec])
    with pytest.raises(UserError, match='mmseg::segformer/nope.py'):
        run_benchmark(['mmseg::segformer/nope.py'], 32, log=None)
