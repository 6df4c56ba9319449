"""FLOP counting (``mmvit_ext.analysis.flops`` and ``tools/analysis_tools/get_flops.py``).

The key property: a model that uses ``F.scaled_dot_product_attention`` counts exactly as the same model written
with explicit matmuls (MMEngine alone silently drops the fused op). Configs are tiny throw-away files in
``tmp_path`` whose model is registered in MMEngine's root registry by a module that the config imports.
"""
import importlib.util
import os.path as osp
import textwrap

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F
from mmengine.analysis import FlopAnalyzer

import mmvit_ext  # noqa: F401
from mmvit_ext.analysis.flops import MACS_UNIT, count_flops, get_flops
from mmvit_ext.analysis.inputs import parse_shape
from mmvit_ext.utils.launch import UserError

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))


class Attention(nn.Module):
    """Multi-head attention with optional reduced keys/values, fused (SDPA) or explicit."""

    def __init__(self, dim=32, heads=4, kv_dim=None, fused=True):
        super().__init__()
        self.heads, self.fused = heads, fused
        self.q = nn.Linear(dim, dim)
        self.kv = nn.Linear(kv_dim or dim, 2 * dim)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x, y):
        B, N, C = x.shape
        M = y.shape[1]
        q = self.q(x).reshape(B, N, self.heads, C // self.heads).transpose(1, 2)  # B, h, N, d
        k, v = self.kv(y).reshape(B, M, 2, self.heads, C // self.heads).permute(2, 0, 3, 1, 4)  # 2, B, h, M, d
        if self.fused:
            out = F.scaled_dot_product_attention(q, k, v)
        else:
            attn = (q * q.shape[-1]**-0.5) @ k.transpose(-2, -1)
            out = attn.softmax(dim=-1) @ v
        return self.proj(out.transpose(1, 2).reshape(B, N, C))


@pytest.mark.parametrize('n, m', [(49, 49), (50, 13)])
def test_sdpa_counts_like_explicit_matmuls(n, m):
    torch.manual_seed(0)
    x, y = torch.randn(2, n, 32), torch.randn(2, m, 16)
    fused = count_flops(Attention(kv_dim=16, fused=True), (x, y))
    eager = count_flops(Attention(kv_dim=16, fused=False), (x, y))
    assert fused.macs == eager.macs
    # linears + B·heads·(N·M·d + N·M·d)
    expected = 2 * n * 32 * 32 + 2 * m * 16 * 64 + 2 * n * 32 * 32 + 2 * 4 * (n * m * 8 * 2)
    assert fused.macs == expected
    assert fused.by_operator['scaled_dot_product_attention'] == eager.by_operator['matmul'] == 2 * 4 * n * m * 16
    assert not fused.uncounted_unknown


def test_plain_mmengine_misses_sdpa():
    """Documents the pitfall the extra handle fixes (OPENMMLAB.md §2.8)."""
    x = torch.randn(1, 49, 32)
    plain = FlopAnalyzer(Attention(fused=True), (x, x)).unsupported_ops_warnings(False)
    ours = count_flops(Attention(fused=True), (x, x))
    plain_total = plain.total()
    assert 'aten::scaled_dot_product_attention' in plain.unsupported_ops()
    assert ours.macs - plain_total == 4 * 49 * 49 * 8 * 2


def test_sdpa_value_dim_and_gqa():

    class GQA(nn.Module):

        def forward(self, q, k, v):
            return F.scaled_dot_product_attention(q, k, v, enable_gqa=True)

    q, k, v = torch.randn(1, 8, 10, 4), torch.randn(1, 2, 6, 4), torch.randn(1, 2, 6, 5)
    assert count_flops(GQA(), (q, k, v)).macs == 8 * 10 * 6 * (4 + 5)


def test_broadcast_matmul_baddbmm_cdist():

    class Ops(nn.Module):

        def forward(self, a, b, c, bias):
            m1 = a @ b  # (7, 3) @ (2, 3, 5): broadcast batch 2
            m2 = torch.baddbmm(bias, c, c.transpose(1, 2))  # (2, 4, 3) @ (2, 3, 4)
            d = torch.cdist(c, c[:, :2])  # (2, 4, 3) x (2, 2, 3)
            return m1.sum() + m2.sum() + d.sum()

    a, b, c = torch.randn(7, 3), torch.randn(2, 3, 5), torch.randn(2, 4, 3)
    res = count_flops(Ops(), (a, b, c, torch.zeros(2, 4, 4)))
    assert res.by_operator == {'matmul': 2 * 7 * 3 * 5, 'baddbmm': 2 * 4 * 3 * 4, 'cdist': 2 * 4 * 2 * 3}


def test_ignore_ops_and_summary():
    net = nn.Sequential(nn.Conv2d(3, 8, 3), nn.BatchNorm2d(8), nn.GELU()).eval()
    x = torch.randn(1, 3, 10, 10)
    full = count_flops(net, x)
    no_bn = count_flops(net, x, ignore_ops=['aten::batch_norm'])
    conv = 8 * 8 * 8 * 3 * 3 * 3
    assert no_bn.macs == conv and full.macs > conv
    text = full.summary()
    assert MACS_UNIT in text and '(1, 3, 10, 10)' in text and 'gelu' in text


def test_parse_shape():
    assert parse_shape([224]) == (224, 224) and parse_shape([512, 1024]) == (512, 1024)
    with pytest.raises(UserError, match='H W'):
        parse_shape([1, 2, 3])


# ------------------------------------------------------------------ configs
NETS = '''
import torch.nn as nn
import torch.nn.functional as F
from mmengine.registry import MODELS


@MODELS.register_module(force=True)
class FlopsTestBackbone(nn.Module):
    def __init__(self, dim=16, heads=2):
        super().__init__()
        self.stem = nn.Conv2d(3, dim, 4, 4)
        self.qkv = nn.Linear(dim, 3 * dim)
        self.heads = heads

    def forward(self, x):
        x = self.stem(x)
        B, C, H, W = x.shape
        q, k, v = self.qkv(x.flatten(2).transpose(1, 2)).reshape(B, H * W, 3, self.heads, -1).permute(2, 0, 3, 1, 4)
        out = F.scaled_dot_product_attention(q, k, v)
        return (out.transpose(1, 2).reshape(B, H * W, C).transpose(1, 2).reshape(B, C, H, W), )


@MODELS.register_module(force=True)
class FlopsTestModel(nn.Module):
    def __init__(self, backbone, num_classes=5):
        super().__init__()
        self.backbone = MODELS.build(backbone)
        self.head = nn.Linear(backbone.get('dim', 16), num_classes)

    def forward(self, x):
        return self.head(self.backbone(x)[0].mean((2, 3)))
'''


@pytest.fixture
def tiny_config(tmp_path, monkeypatch):
    (tmp_path / 'mmvit_ext_flops_test_nets.py').write_text(NETS)
    monkeypatch.syspath_prepend(str(tmp_path))
    cfg = tmp_path / 'tiny.py'
    cfg.write_text(
        textwrap.dedent('''
        custom_imports = dict(imports=['mmvit_ext_flops_test_nets'], allow_failed_imports=False)
        model = dict(type='FlopsTestModel', backbone=dict(type='FlopsTestBackbone', dim=16, heads=2))
    '''))
    return str(cfg)


def _expected_backbone_macs(h, w, dim=16):
    n = (h // 4) * (w // 4)
    return n * dim * 3 * 4 * 4 + n * dim * 3 * dim + 2 * n * n * dim


def test_get_flops_from_config(tiny_config):
    bb = get_flops(tiny_config, (32, 48), part='backbone')
    model = get_flops(tiny_config, (32, 48), part='model')
    assert bb.input_shape == (1, 3, 32, 48) and bb.model_type == 'FlopsTestBackbone'
    assert bb.macs == _expected_backbone_macs(32, 48)
    assert model.macs == bb.macs + 16 * 5 and model.params == bb.params + 16 * 5 + 5
    assert model.by_operator['scaled_dot_product_attention'] == 2 * (8 * 12)**2 * 16


def test_get_flops_errors(tmp_path, tiny_config):
    with pytest.raises(UserError, match=r"config file '.*nope\.py' does not exist"):
        get_flops(str(tmp_path / 'nope.py'), 32)
    bad = tmp_path / 'flat.py'
    bad.write_text("custom_imports = dict(imports=['mmvit_ext_flops_test_nets'])\n"
                   "model = dict(type='FlopsTestBackbone')\n")
    with pytest.raises(UserError, match='no `backbone` entry'):
        get_flops(str(bad), 32, part='backbone')


def _load_tool(name):
    path = osp.join(REPO, 'tools', 'analysis_tools', f'{name}.py')
    spec = importlib.util.spec_from_file_location(f'_tool_{name}', path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_get_flops_cli(tiny_config, tmp_path, capsys):
    tool = _load_tool('get_flops')
    res = tool.main([tiny_config, '--shape', '32', '48', '--part', 'backbone', '--device', 'cpu', '--show-table'])
    out = capsys.readouterr().out
    assert res.macs == _expected_backbone_macs(32, 48)
    assert 'GMACs (multiply-accumulates; papers call these FLOPs)' in out
    assert 'Input shape:  (1, 3, 32, 48)' in out and f'{res.macs:,} MACs' in out
    with pytest.raises(SystemExit) as exit_info:
        tool.main([str(tmp_path / 'missing.py'), '--shape', '32'])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("error: config file '") and 'missing.py' in err and 'Traceback' not in err
    with pytest.raises(SystemExit) as exit_info:
        tool.main([tiny_config, '--shape', '1', '2', '3'])
    assert exit_info.value.code == 2 and 'error: --shape must be "H W"' in capsys.readouterr().err
    with pytest.raises(UserError):
        tool.main([tiny_config, '--shape', '1', '2', '3', '--debug'])


def _has(module):
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        return False


@pytest.mark.skipif(not (_has('mmseg') and _has('mmcv')), reason='needs mmseg + mmcv')
def test_mmseg_encoder_decoder(tmp_path):
    """Whole model = data preprocessor + mode='tensor' forward; backbone alone is smaller."""
    try:
        import mmseg.models  # noqa: F401
    except Exception as err:  # e.g. a torch/torchvision mismatch
        pytest.skip(f'mmseg.models does not import: {err}')
    cfg = tmp_path / 'seg.py'
    cfg.write_text(
        textwrap.dedent('''
        default_scope = 'mmseg'
        norm_cfg = dict(type='BN', requires_grad=True)
        model = dict(
            type='EncoderDecoder',
            data_preprocessor=dict(type='SegDataPreProcessor', mean=[123.675, 116.28, 103.53],
                                   std=[58.395, 57.12, 57.375], bgr_to_rgb=True, pad_val=0, seg_pad_val=255,
                                   size_divisor=32, test_cfg=dict(size_divisor=32)),
            backbone=dict(type='MixVisionTransformer', in_channels=3, embed_dims=8, num_stages=4,
                          num_layers=[1, 1, 1, 1], num_heads=[1, 2, 4, 8], patch_sizes=[7, 3, 3, 3],
                          sr_ratios=[8, 4, 2, 1], out_indices=(0, 1, 2, 3), mlp_ratio=2),
            decode_head=dict(type='SegformerHead', in_channels=[8, 16, 32, 64], in_index=[0, 1, 2, 3],
                             channels=16, dropout_ratio=0.1, num_classes=3, norm_cfg=norm_cfg,
                             align_corners=False,
                             loss_decode=dict(type='CrossEntropyLoss', use_sigmoid=False, loss_weight=1.0)),
            train_cfg=dict(), test_cfg=dict(mode='whole'))
    '''))
    whole = get_flops(str(cfg), (64, 80), part='model')
    bb = get_flops(str(cfg), (64, 80), part='backbone')
    assert whole.model_type == 'EncoderDecoder' and bb.model_type == 'MixVisionTransformer'
    assert whole.input_shape == (1, 3, 64, 96)  # padded to a multiple of 32 by the data preprocessor
    assert whole.macs > bb.macs > 0 and whole.params > bb.params


# ------------------------------------------------------------------ host-repository (pkg::) configs
SEGFORMER_B0 = 'mmseg::segformer/segformer_mit-b0_8xb2-160k_ade20k-512x512.py'
POOLFORMER = 'mmseg::poolformer/fpn_poolformer_s12_8xb4-40k_ade20k-512x512.py'  # SyncBN + AmpOptimWrapper


def _needs_mmseg():
    if not (_has('mmseg') and _has('mmcv')):
        pytest.skip('needs mmseg + mmcv')
    try:
        import mmseg.models  # noqa: F401
    except Exception as err:  # e.g. a torch/torchvision mismatch
        pytest.skip(f'mmseg.models does not import: {err}')


def test_resolve_config_path(tmp_path):
    from mmvit_ext.utils.launch import resolve_config_path
    local = tmp_path / 'a.py'
    local.write_text('x = 1\n')
    assert resolve_config_path(str(local)) == str(local)
    if not _has('mmseg'):
        pytest.skip('needs mmseg')
    path = resolve_config_path(SEGFORMER_B0)
    assert osp.isfile(path) and path.endswith(
        osp.join('.mim', 'configs', 'segformer', 'segformer_mit-b0_8xb2-160k_ade20k-512x512.py'))
    with pytest.raises(UserError, match=r'mmseg::segformer/nope\.py.*holds: segformer_mit-b0'):
        resolve_config_path('mmseg::segformer/nope.py')
    with pytest.raises(UserError, match="unknown package 'mmfoo'"):
        resolve_config_path('mmfoo::a/b.py')
    with pytest.raises(UserError, match='<pkg>::<dir>/<file>.py'):
        resolve_config_path('mmseg::nofolder.py')


def test_host_config_backbone_flops(tmp_path):
    """``get_flops('mmseg::...')`` counts what a local config with that ``_base_`` counts (the way it used to be
    done by hand)."""
    _needs_mmseg()
    direct = get_flops(SEGFORMER_B0, (64, 96), part='backbone', device='cpu')
    wrapper = tmp_path / 'wrapper.py'
    wrapper.write_text(f"_base_ = '{SEGFORMER_B0}'\n")
    via_base = get_flops(str(wrapper), (64, 96), part='backbone', device='cpu')
    assert direct.model_type == 'MixVisionTransformer' and direct.config == SEGFORMER_B0
    assert direct.input_shape == (1, 3, 64, 96)
    assert direct.macs == via_base.macs > 0 and direct.params == via_base.params == 3_319_392
    assert not direct.uncounted_unknown


def test_host_config_with_gpu_only_pieces_builds_on_cpu():
    """mmseg's PoolFormer FPN config uses SyncBN and AmpOptimWrapper (which asserts a GPU when built)."""
    _needs_mmseg()
    from mmengine.config import Config

    from mmvit_ext.analysis.inputs import build_model_from_cfg, load_analysis_config
    from mmvit_ext.utils.launch import resolve_config_path
    raw = Config.fromfile(resolve_config_path(POOLFORMER))
    assert raw.optim_wrapper.type == 'AmpOptimWrapper' and raw.model.decode_head.norm_cfg.type == 'SyncBN'
    cfg = load_analysis_config(POOLFORMER, device='cpu')
    assert cfg.optim_wrapper.type == 'mmvit_ext.AutocastOptimWrapper' and 'loss_scale' not in cfg.optim_wrapper
    assert 'SyncBN' not in str(cfg.model.to_dict())
    model = build_model_from_cfg(cfg, 'model')
    assert not any(isinstance(m, nn.SyncBatchNorm) for m in model.modules())
    res = get_flops(POOLFORMER, (64, 64), part='model', device='cpu')
    assert res.model_type == 'EncoderDecoder' and res.macs > 0


def test_get_flops_cli_host_config(capsys):
    _needs_mmseg()
    tool = _load_tool('get_flops')
    res = tool.main([SEGFORMER_B0, '--shape', '64', '--part', 'backbone', '--device', 'cpu'])
    out = capsys.readouterr().out
    assert f'Config:       {SEGFORMER_B0}' in out and res.model_type == 'MixVisionTransformer'
    with pytest.raises(SystemExit) as exit_info:
        tool.main(['mmseg::segformer/nope.py', '--shape', '32'])
    assert exit_info.value.code == 2
    assert "error: config file 'mmseg::segformer/nope.py' does not exist" in capsys.readouterr().err
