"""``mmvit_ext.utils.benchmark`` and ``tools/analysis_tools/benchmark.py``.

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
from mmvit_ext.utils.benchmark import (JSON_KEYS, describe_timed_work, format_results, run_benchmark, time_interleaved,
                                       write_json)

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


def test_cli_train_mode_json(two_configs, tmp_path, capsys):
    path = osp.join(REPO, 'tools', 'analysis_tools', 'benchmark.py')
    spec = importlib.util.spec_from_file_location('_tool_benchmark', path)
    tool = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tool)
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

    with pytest.raises(SystemExit) as exit_info:
        tool.main([str(tmp_path / 'missing.py'), '--shape', '32', '--no-memory'])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert 'Config file not found' in err and 'missing.py' in err


def test_time_interleaved_order():
    calls = []

    def make(name):

        def run():
            calls.append(name)
            return 0.001

        return run

    times = time_interleaved([make('A'), make('B')], repeat=3, warmup=1)
    assert calls == ['A', 'B'] * 4
    assert times == [[0.001] * 3, [0.001] * 3]
    with pytest.raises(ValueError):
        time_interleaved([make('A')], repeat=0, warmup=0)


def test_describe_and_validation(two_configs):
    assert 'no_grad' in describe_timed_work('infer', 'backbone')
    assert 'no optimizer step' in describe_timed_work('train', 'model')
    with pytest.raises(ValueError, match='predict'):
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
    with pytest.raises(FileNotFoundError, match='mmseg::segformer/nope.py'):
        run_benchmark(['mmseg::segformer/nope.py'], 32, log=None)
