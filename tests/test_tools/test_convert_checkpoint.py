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


def _reference_module(family='p2t'):
    """The independent official-layout reference implementation of tests/test_converters/test_{family}.py."""
    path = osp.join(ROOT, 'tests', 'test_converters', f'test_{family}.py')
    spec = importlib.util.spec_from_file_location(f'_{family}_reference', path)
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
    assert "converted 284 tensors from checkpoint['model'] (p2t, classifier)" in out.stdout

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
    assert out.returncode == 0 and 'converted 282 tensors from the bare dict (p2t, backbone)' in out.stdout
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


def test_official_cmt_training_checkpoint_to_imagenet_config(tmp_path):
    """CMT: "model" is converted by default and "model_ema" with --ema; the output says which; the ImageNet config
    (CMT -> ConvPoolNeck -> LinearClsHead) loads it strictly and reproduces the official logits at 160 px."""
    ref_mod = _reference_module('cmt')
    ref = ref_mod.make_reference(ref_mod.TINY, 160)
    ema = ref_mod.make_reference(ref_mod.TINY, 160, seed=1)
    src = tmp_path / 'cmt_tiny.pth'
    torch.save({'model': ref.state_dict(), 'model_ema': ema.state_dict(), 'args': argparse.Namespace(lr=8e-4)}, src)
    init_default_scope('mmpretrain')
    cfg = Config.fromfile(osp.join(ROOT, 'configs', 'cmt', 'cmt-tiny_8xb256_in1k.py'))
    x = torch.randn(2, 3, 160, 160)
    for flags, where, expected_model in (([], "checkpoint['model']", ref), (['--ema'], "checkpoint['model_ema']", ema)):
        dst = tmp_path / f'cmt-tiny_in1k{"_ema" if flags else ""}.pth'
        out = _run('cmt', str(src), str(dst), *flags)
        assert out.returncode == 0, out.stderr
        assert f'converted 676 tensors from {where} (cmt, classifier)' in out.stdout
        model = MODELS.build(cfg.model).eval()
        ckpt = load_checkpoint_strict(model, str(dst))
        assert ckpt['meta']['weights'] == where
        with torch.no_grad():
            logits, expected = model(x, mode='tensor'), expected_model(x)
        assert ((logits - expected).abs().max() / expected.abs().max()).item() <= 1e-4
    bare = tmp_path / 'bare.pth'
    torch.save(ref.state_dict(), bare)
    out = _run('cmt', str(bare), str(tmp_path / 'x.pth'), '--ema')
    assert out.returncode != 0 and 'has no "model_ema" entry' in out.stderr and 'drop --ema' in out.stderr


def test_official_hrformer_checkpoint_to_imagenet_config(tmp_path):
    """HRFormer: an official cls/ checkpoint ({"model": ...}) converts with the CLI; the ImageNet config (HRFormer ->
    HRFuseScalesDW -> ConvPoolNeck -> LinearClsHead) loads it strictly and reproduces the official logits."""
    ref_mod = _reference_module('hrformer')
    from mmvit_ext.models.backbones import HRFormer
    torch.manual_seed(0)
    ref = ref_mod.randomize_(
        ref_mod.OfficialLayoutHRFormer(HRFormer.arch_zoo['tiny'], (32, 64, 128, 256), final_dim=2048, num_classes=1000))
    src = tmp_path / 'hrformer_tiny.pth'
    torch.save({'model': ref.state_dict(), 'epoch': 299}, src)
    dst = tmp_path / 'hrformer-tiny_in1k.pth'
    out = _run('hrformer', str(src), str(dst))
    assert out.returncode == 0, out.stderr
    assert "from checkpoint['model'] (hrformer, classifier)" in out.stdout
    init_default_scope('mmpretrain')
    cfg = Config.fromfile(osp.join(ROOT, 'configs', 'hrformer', 'hrformer-tiny_8xb128_in1k.py'))
    model = MODELS.build(cfg.model).eval()
    load_checkpoint_strict(model, str(dst))
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        logits, expected = model(x, mode='tensor'), ref(x)
    assert ((logits - expected).abs().max() / expected.abs().max()).item() <= 1e-4
