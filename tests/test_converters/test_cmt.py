"""CMT converter: official layout -> mmvit_ext, checked against an independent reference of the official model.

``OfficialLayoutCMT`` below is a deliberately plain re-implementation of the published architecture (spec:
``shared/specs/cmt.md`` §3) with the official parameter names (``stem_conv1``, ``patch_embed_a``, ``relative_pos_a``,
``blocks_a.0.attn.k``, ``blocks_a.0.mlp.conv1.0`` ...): NCHW convs, separate k/v projections, explicit softmax
attention, no shared mmvit_ext code, and it only runs at its construction size, as the official model. Random
weights in that layout (with non-trivial norms and BatchNorm statistics) are converted, loaded strictly into ``CMT``
and must reproduce its outputs.
"""
from collections import OrderedDict

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from mmvit_ext.converters import get_converter, is_official_layout
from mmvit_ext.converters._rules import UnmatchedKeysError
from mmvit_ext.models.backbones import CMT
from mmvit_ext.models.backbones.base import PretrainedLoadError
from mmvit_ext.models.necks import ConvPoolNeck

TINY = CMT.arch_zoo['tiny']
SHALLOW = dict(embed_dims=[16, 32, 48, 64], depths=[1, 2, 1, 1], num_heads=[1, 2, 4, 8],
               mlp_hidden_dims=[30, 60, 90, 130], stem_channels=8)  # yapf: disable
SR = (8, 4, 2, 1)
LETTERS = 'abcd'
convert = get_converter('cmt')


class RefEmbed(nn.Module):

    def __init__(self, cin, cout):
        super().__init__()
        self.proj = nn.Conv2d(cin, cout, 2, 2)
        self.norm = nn.LayerNorm(cout)  # eps 1e-5

    def forward(self, x):
        x = self.proj(x)
        H, W = x.shape[2:]
        return self.norm(x.flatten(2).transpose(1, 2)), H, W


class RefAttention(nn.Module):

    def __init__(self, dim, heads, sr):
        super().__init__()
        self.heads = heads
        self.q, self.k, self.v, self.proj = (nn.Linear(dim, dim) for _ in range(4))
        if sr > 1:
            self.sr = nn.Sequential(nn.Conv2d(dim, dim, sr, sr, groups=dim), nn.BatchNorm2d(dim))

    def forward(self, x, H, W, rel_pos):
        B, N, C = x.shape
        d = C // self.heads
        q = self.q(x).reshape(B, N, self.heads, d).transpose(1, 2)
        if hasattr(self, 'sr'):
            x = self.sr(x.transpose(1, 2).reshape(B, C, H, W)).flatten(2).transpose(1, 2)
        k = self.k(x).reshape(B, -1, self.heads, d).transpose(1, 2)
        v = self.v(x).reshape(B, -1, self.heads, d).transpose(1, 2)
        attn = (q @ k.transpose(-2, -1) * d**-0.5 + rel_pos).softmax(-1)
        return self.proj((attn @ v).transpose(1, 2).reshape(B, N, C))


class RefIRFFN(nn.Module):

    def __init__(self, dim, hidden):
        super().__init__()
        self.conv1 = nn.Sequential(nn.Conv2d(dim, hidden, 1), nn.GELU(), nn.BatchNorm2d(hidden))
        self.proj = nn.Conv2d(hidden, hidden, 3, 1, 1, groups=hidden)
        self.proj_bn = nn.BatchNorm2d(hidden)
        self.conv2 = nn.Sequential(nn.Conv2d(hidden, dim, 1), nn.BatchNorm2d(dim))

    def forward(self, x, H, W):
        B, N, C = x.shape
        x = self.conv1(x.transpose(1, 2).reshape(B, C, H, W))
        x = self.conv2(self.proj_bn(F.gelu(self.proj(x) + x)))
        return x.flatten(2).transpose(1, 2)


class RefBlock(nn.Module):

    def __init__(self, dim, heads, hidden, sr):
        super().__init__()
        self.proj = nn.Conv2d(dim, dim, 3, 1, 1, groups=dim)  # LPU
        self.norm1 = nn.LayerNorm(dim, eps=1e-6)
        self.attn = RefAttention(dim, heads, sr)
        self.norm2 = nn.LayerNorm(dim, eps=1e-6)
        self.mlp = RefIRFFN(dim, hidden)

    def forward(self, x, H, W, rel_pos):
        B, N, C = x.shape
        m = x.transpose(1, 2).reshape(B, C, H, W)
        x = (self.proj(m) + m).flatten(2).transpose(1, 2)
        x = x + self.attn(self.norm1(x), H, W, rel_pos)
        return x + self.mlp(self.norm2(x), H, W)


class OfficialLayoutCMT(nn.Module):
    """Official parameter layout at one resolution; ``stages`` returns the four NCHW stage maps."""

    def __init__(self, arch, img_size, fc_dim=1280, num_classes=1000):
        super().__init__()
        dims, S = arch['embed_dims'], arch['stem_channels']
        for k, cin in enumerate((3, S, S), 1):
            setattr(self, f'stem_conv{k}', nn.Conv2d(cin, S, 3, 2 if k == 1 else 1, 1))
            setattr(self, f'stem_norm{k}', nn.BatchNorm2d(S))
        for s, x in enumerate(LETTERS):
            setattr(self, f'patch_embed_{x}', RefEmbed(S if s == 0 else dims[s - 1], dims[s]))
        for s, x in enumerate(LETTERS):
            n = (img_size // 2**(s + 2))**2
            setattr(self, f'relative_pos_{x}', nn.Parameter(torch.randn(arch['num_heads'][s], n, n // SR[s]**2)))
        for s, x in enumerate(LETTERS):
            setattr(
                self, f'blocks_{x}',
                nn.ModuleList(
                    RefBlock(dims[s], arch['num_heads'][s], arch['mlp_hidden_dims'][s], SR[s])
                    for _ in range(arch['depths'][s])))
        self._fc = nn.Conv2d(dims[-1], fc_dim, 1)
        self._bn = nn.BatchNorm2d(fc_dim)
        self.head = nn.Linear(fc_dim, num_classes)

    def stages(self, x):
        for k in (1, 2, 3):
            x = getattr(self, f'stem_norm{k}')(F.gelu(getattr(self, f'stem_conv{k}')(x)))
        outs = []
        for x_ in LETTERS:
            x, H, W = getattr(self, f'patch_embed_{x_}')(x)
            for blk in getattr(self, f'blocks_{x_}'):
                x = blk(x, H, W, getattr(self, f'relative_pos_{x_}'))
            x = x.transpose(1, 2).reshape(x.shape[0], -1, H, W)
            outs.append(x)
        return outs

    def forward(self, x):
        x = self._bn(self._fc(self.stages(x)[-1]))
        return self.head((x * torch.sigmoid(x)).mean((2, 3)))


def make_reference(arch, img_size, seed=0):
    torch.manual_seed(seed)
    ref = OfficialLayoutCMT(arch, img_size).eval()
    with torch.no_grad():  # non-trivial norms, statistics and biases, so that a swapped or skipped tensor shows
        for m in ref.modules():
            if isinstance(m, (nn.LayerNorm, nn.BatchNorm2d)):
                m.weight.normal_(1, 0.2)
                m.bias.normal_(0, 0.2)
            if isinstance(m, nn.BatchNorm2d):
                m.running_mean.normal_(0, 0.2)
                m.running_var.uniform_(0.5, 1.5)
            elif isinstance(m, (nn.Linear, nn.Conv2d)):
                m.bias.normal_(0, 0.05)
    return ref


def rel_err(a, b):
    return ((a - b).abs().max() / b.abs().max()).item()


def assert_outputs_match(ref, model, x):
    with torch.no_grad():
        expected, outs = ref.stages(x), model(x)
    assert [o.shape for o in outs] == [e.shape for e in expected]
    for out, exp in zip(outs, expected):
        assert rel_err(out, exp) <= 1e-4


@pytest.fixture(scope='module')
def tiny_ref():
    return make_reference(TINY, 160)


@pytest.fixture(scope='module')
def shallow_ref():
    return make_reference(SHALLOW, 64, seed=1)


def test_reference_layout_is_the_official_one(tiny_ref):
    sd = tiny_ref.state_dict()
    assert len(sd) == 708  # spec: 21 stem + 16 patch-embed + 4 rel-pos + 42 per block (a-c) + 35 (d) + 9 head
    assert sum(v.numel() for k, v in sd.items() if 'num_batches' not in k and 'running' not in k) == 9_492_426
    assert tuple(sd['relative_pos_a'].shape) == (1, 1600, 25) and tuple(sd['relative_pos_d'].shape) == (8, 25, 25)
    assert {'blocks_a.0.attn.sr.1.running_var', 'blocks_c.9.mlp.conv1.2.weight', '_bn.num_batches_tracked'} <= set(sd)
    assert is_official_layout('cmt', sd) and not is_official_layout('cmt', convert(sd, target='backbone'))


def test_converted_tiny_matches_reference_at_160(tiny_ref):
    sd = convert(tiny_ref.state_dict(), target='backbone')
    # k and v merge into kv (-2 per block); the head's 9 entries are dropped
    assert len(sd) == 708 - 9 - 2 * 16 and not any(k.startswith(('_fc', '_bn', 'head')) for k in sd)
    model = CMT('tiny').eval()
    model.load_state_dict(sd, strict=True)
    assert_outputs_match(tiny_ref, model, torch.randn(2, 3, 160, 160))


def test_classifier_target_reproduces_logits(tiny_ref):
    """ImageClassifier: CMT(out_indices=(3,)) -> ConvPoolNeck (_fc, _bn, Swish, GAP) -> LinearClsHead (head.fc)."""
    sd = convert({'model': tiny_ref.state_dict()}, target='classifier')
    assert [k for k in sd if not k.startswith('backbone.')] == [
        'neck.conv.weight', 'neck.conv.bias', 'neck.norm.weight', 'neck.norm.bias', 'neck.norm.running_mean',
        'neck.norm.running_var', 'neck.norm.num_batches_tracked', 'head.fc.weight', 'head.fc.bias'
    ]
    backbone = CMT('tiny', out_indices=(3, )).eval()
    backbone.load_state_dict({k[len('backbone.'):]: v for k, v in sd.items() if k.startswith('backbone.')}, strict=True)
    neck = ConvPoolNeck(368, 1280, dropout=0.1).eval()
    neck.load_state_dict({k[len('neck.'):]: v for k, v in sd.items() if k.startswith('neck.')}, strict=True)
    x = torch.randn(2, 3, 160, 160)
    with torch.no_grad():
        logits = F.linear(neck(backbone(x))[0], sd['head.fc.weight'], sd['head.fc.bias'])
        expected = tiny_ref(x)
    assert rel_err(logits, expected) <= 1e-4


@pytest.mark.parametrize('target', ['backbone', 'classifier'])
def test_idempotent_and_round_trip(shallow_ref, target):
    once = convert(shallow_ref.state_dict(), target=target)
    twice = convert(once, target=target)
    assert list(once) == list(twice)
    assert all(once[k] is twice[k] for k in once)
    if target == 'backbone':  # ours -> state_dict -> convert -> load strictly -> the same tensors
        model = CMT(SHALLOW, pretrain_img_size=64)
        model.load_state_dict(once, strict=True)
        again = convert(model.state_dict(), target='backbone')
        assert set(again) == set(once) and all(torch.equal(again[k], once[k]) for k in once)


def test_wrappers_prefixes_and_ema(shallow_ref):
    official = shallow_ref.state_dict()
    expected = convert(official, target='backbone')
    ema = OrderedDict((k, v + 1 if v.is_floating_point() else v) for k, v in official.items())
    variants = {
        'state_dict': {'state_dict': official, 'meta': {}},
        # a DeiT-style training checkpoint: "model" is taken, not "model_ema"
        'model': {'model': official, 'model_ema': ema, 'optimizer': {}, 'epoch': 3},
        'module.': OrderedDict((f'module.{k}', v) for k, v in official.items()),
        'det': OrderedDict([(f'backbone.{k}', v) for k, v in official.items() if not k.startswith(('_', 'head'))] +
                           [('neck.lateral_convs.0.conv.weight', torch.zeros(256, 16, 1, 1))]),
        'ours': expected,
    }  # yapf: disable
    for name, ckpt in variants.items():
        out = convert(ckpt, target='backbone')
        assert list(out) == list(expected), name
        assert all(torch.equal(out[k], expected[k]) for k in out), name
    ema_only = convert({'model_ema': ema}, target='backbone')
    assert torch.equal(ema_only['stages.0.blocks.0.norm1.weight'], ema['blocks_a.0.norm1.weight'])
    with pytest.raises(UnmatchedKeysError, match='use target="backbone"'):
        convert(variants['det'], target='classifier')


def test_strictness(shallow_ref):
    official = shallow_ref.state_dict()
    with pytest.raises(UnmatchedKeysError, match=r'1 keys match no conversion rule: \[blocks_a\.0\.attn\.qkv\.weight'):
        convert(OrderedDict(official, **{'blocks_a.0.attn.qkv.weight': torch.zeros(1)}), target='backbone')
    no_v = OrderedDict((k, v) for k, v in official.items() if k != 'blocks_b.1.attn.v.bias')
    with pytest.raises(UnmatchedKeysError, match=r'blocks_b\.1\.attn\.k\.bias has no matching blocks_b\.1\.attn\.v'):
        convert(no_v, target='backbone')
    with pytest.raises(UnmatchedKeysError, match='blocks_e'):
        convert(OrderedDict(official, **{'blocks_e.0.norm1.weight': torch.zeros(1)}), target='backbone')
    with pytest.raises(ValueError, match='needs the official _fc, _bn and head'):
        convert(convert(official, target='backbone'), target='classifier')


def test_init_cfg_pretrained_loads_official_files(shallow_ref, tmp_path):
    official = shallow_ref.state_dict()
    x = torch.randn(1, 3, 64, 64)
    for name, ckpt in {'bare': official, 'model': {'model': official, 'model_ema': {}, 'epoch': 1},
                       'model_ema': {'model_ema': official}}.items():  # yapf: disable
        path = tmp_path / f'cmt_{name}.pth'
        torch.save(ckpt, path)
        model = CMT(SHALLOW, pretrain_img_size=64, init_cfg=dict(type='Pretrained', checkpoint=str(path)))
        model.init_weights()
        assert_outputs_match(shallow_ref, model.eval(), x)


def test_tables_of_another_resolution_are_resized_on_load(shallow_ref, tmp_path):
    """A checkpoint trained at 64 px loaded into a model made for 128 px: the tables are resized once, on load."""
    path = tmp_path / 'cmt_64.pth'
    torch.save(shallow_ref.state_dict(), path)
    model = CMT(SHALLOW, pretrain_img_size=128, init_cfg=dict(type='Pretrained', checkpoint=str(path)))
    model.init_weights()
    table = model.stages[0].relative_pos.table
    assert tuple(table.shape) == (1, 32 * 32, 4 * 4)
    # the same resize happens at forward time in a model made for 64 px: equal outputs at 128 px
    native = CMT(SHALLOW, pretrain_img_size=64, init_cfg=dict(type='Pretrained', checkpoint=str(path)))
    native.init_weights()
    x = torch.randn(1, 3, 128, 128)
    with torch.no_grad():
        for out, exp in zip(model.eval()(x), native.eval()(x)):
            assert rel_err(out, exp) <= 1e-5


def test_init_cfg_pretrained_is_strict(shallow_ref, tmp_path):
    official = shallow_ref.state_dict()
    path = tmp_path / 'missing.pth'
    torch.save(OrderedDict((k, v) for k, v in official.items() if k != 'blocks_b.1.mlp.proj_bn.running_var'), path)
    model = CMT(SHALLOW, pretrain_img_size=64, init_cfg=dict(type='Pretrained', checkpoint=str(path)))
    with pytest.raises(
            PretrainedLoadError,
            match=r'1 missing keys: stages\.1\.blocks\.1\.mlp\.norm2\.running_var\n(.|\n)*convert_checkpoint\.py cmt'):
        model.init_weights()
    path = tmp_path / 'shallow.pth'
    torch.save(official, path)
    model = CMT('tiny', init_cfg=dict(type='Pretrained', checkpoint=str(path)))
    with pytest.raises(PretrainedLoadError, match=r'Check that arch='):
        model.init_weights()
