"""tools/model_converters/convert_checkpoint.py as a user runs it: an official-format P2T training checkpoint
(DeiT-style, with an ``args`` Namespace) -> mmpretrain classifier weights that our ImageNet config loads strictly
and that reproduce the official logits."""
import argparse
import importlib.util
import os.path as osp
import subprocess
import sys

import torch
from mmengine.config import Config
from mmengine.registry import MODELS, init_default_scope

from mmvit_ext.utils.launch import load_checkpoint_strict

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
CLI = osp.join(ROOT, 'tools', 'model_converters', 'convert_checkpoint.py')


def _reference_module():
    """The independent official-layout reference implementation of tests/test_converters/test_p2t.py."""
    path = osp.join(ROOT, 'tests', 'test_converters', 'test_p2t.py')
    spec = importlib.util.spec_from_file_location('_p2t_reference', path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _run(*args):
    return subprocess.run([sys.executable, CLI, *args], capture_output=True, text=True, timeout=300)


def test_official_checkpoint_to_imagenet_config(tmp_path):
    ref_mod = _reference_module()
    ref = ref_mod.make_reference(ref_mod.TINY)
    src = tmp_path / 'checkpoint.pth'
    torch.save({'model': ref.state_dict(), 'epoch': 299, 'args': argparse.Namespace(model='p2t_tiny', lr=1e-3)}, src)

    dst = tmp_path / 'p2t-tiny_in1k.pth'
    out = _run('p2t', str(src), str(dst))
    assert out.returncode == 0, out.stderr
    assert 'converted 284 tensors (p2t, classifier)' in out.stdout

    init_default_scope('mmpretrain')
    cfg = Config.fromfile(osp.join(ROOT, 'configs', 'p2t', 'p2t-tiny_8xb128_in1k.py'))
    model = MODELS.build(cfg.model).eval()
    ckpt = load_checkpoint_strict(model, str(dst))  # every key used, none missing
    assert ckpt['meta']['converted_from'] == 'checkpoint.pth'
    x = torch.randn(2, 3, 224, 224)
    with torch.no_grad():
        logits = model(x, mode='tensor')
        expected = ref(x)
    assert ((logits - expected).abs().max() / expected.abs().max()).item() <= 1e-4


def test_backbone_target_and_errors(tmp_path):
    ref_mod = _reference_module()
    src = tmp_path / 'p2t.pth'
    torch.save(ref_mod.make_reference(ref_mod.TINY).state_dict(), src)
    out = _run('p2t', str(src), str(tmp_path / 'bb.pth'), '--target', 'backbone')
    assert out.returncode == 0 and 'converted 282 tensors (p2t, backbone)' in out.stdout
    assert all(k.startswith('stages.') for k in torch.load(tmp_path / 'bb.pth')['state_dict'])

    bad = tmp_path / 'v1.pth'  # pre-TPAMI "v1" key layout: must not convert silently
    torch.save({'block1.0.attn.q.weight': torch.zeros(48, 48)}, bad)
    out = _run('p2t', str(bad), str(tmp_path / 'x.pth'))
    assert out.returncode == 2 and 'error: cannot convert' in out.stderr and 'Traceback' not in out.stderr
    assert 'block1.0.attn.q.weight' in out.stderr

    out = _run('p2t', str(tmp_path / 'missing.pth'), str(tmp_path / 'x.pth'))
    assert out.returncode == 2 and 'does not exist' in out.stderr
    out = _run('nope', str(src), str(tmp_path / 'x.pth'))
    assert out.returncode == 2 and "invalid choice: 'nope'" in out.stderr
