"""P2T converter: official layout -> mmvit_ext, checked against an independent reference of the official model.

``OfficialLayoutP2T`` below is a deliberately plain re-implementation of the published architecture (spec:
``shared/specs/p2t.md``) with the official parameter names (``patch_embed1.proj``, ``d_convs1.0``,
``block1.0.attn.q.0`` ...): NCHW convs, explicit softmax attention, ``F.adaptive_avg_pool2d``, no shared mmvit_ext
code. Random weights in that layout are converted, loaded strictly into ``P2T`` and must reproduce its outputs.
"""
from collections import OrderedDict

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from mmvit_ext.converters import get_converter, is_official_layout
from mmvit_ext.converters._rules import UnmatchedKeysError
from mmvit_ext.models.backbones import P2T
from mmvit_ext.models.backbones.base import PretrainedLoadError

RATIOS = [[12, 16, 20, 24], [6, 8, 10, 12], [3, 4, 5, 6], [1, 2, 3, 4]]
TINY = dict(embed_dims=[48, 96, 240, 384], depths=[2, 2, 6, 3], num_heads=[1, 2, 5, 8], mlp_ratios=[8, 8, 4, 4])
SHALLOW = dict(embed_dims=[48, 96, 240, 384], depths=[1, 1, 1, 1], num_heads=[1, 2, 5, 8], mlp_ratios=[8, 8, 4, 4])
convert = get_converter('p2t')


class RefPatchEmbed(nn.Module):

    def __init__(self, cin, cout, k, s):
        super().__init__()
        self.proj = nn.Conv2d(cin, cout, k, s, k // 2)
        self.norm = nn.LayerNorm(cout)

    def forward(self, x):
        x = self.proj(x)
        H, W = x.shape[2:]
        return self.norm(x.flatten(2).transpose(1, 2)), H, W


class RefAttention(nn.Module):

    def __init__(self, dim, heads, ratios):
        super().__init__()
        self.heads, self.ratios = heads, ratios
        self.q = nn.Sequential(nn.Linear(dim, dim))
        self.kv = nn.Sequential(nn.Linear(dim, 2 * dim))
        self.proj = nn.Linear(dim, dim)
        self.norm = nn.LayerNorm(dim)

    def forward(self, x, H, W, d_convs):
        B, N, C = x.shape
        d = C // self.heads
        q = self.q(x).reshape(B, N, self.heads, d).permute(0, 2, 1, 3)
        m = x.permute(0, 2, 1).reshape(B, C, H, W)
        pools = []
        for r, conv in zip(self.ratios, d_convs):
            p = F.adaptive_avg_pool2d(m, (round(H / r), round(W / r)))
            p = p + conv(p)
            pools.append(p.reshape(B, C, -1))
        kv_in = self.norm(torch.cat(pools, dim=2).permute(0, 2, 1))
        kv = self.kv(kv_in).reshape(B, -1, 2, self.heads, d).permute(2, 0, 3, 1, 4)
        attn = ((q @ kv[0].transpose(-2, -1)) * d**-0.5).softmax(-1)
        return self.proj((attn @ kv[1]).transpose(1, 2).reshape(B, N, C))


class RefIRB(nn.Module):

    def __init__(self, dim, hidden):
        super().__init__()
        self.fc1 = nn.Conv2d(dim, hidden, 1)
        self.conv = nn.Conv2d(hidden, hidden, 3, 1, 1, groups=hidden)
        self.fc2 = nn.Conv2d(hidden, dim, 1)

    def forward(self, x, H, W):
        B, N, C = x.shape
        x = x.permute(0, 2, 1).reshape(B, C, H, W)
        x = self.fc2(F.hardswish(self.conv(F.hardswish(self.fc1(x)))))
        return x.reshape(B, C, -1).permute(0, 2, 1)


class RefBlock(nn.Module):

    def __init__(self, dim, heads, mlp_ratio, ratios):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=1e-6)
        self.attn = RefAttention(dim, heads, ratios)
        self.norm2 = nn.LayerNorm(dim, eps=1e-6)
        self.mlp = RefIRB(dim, int(dim * mlp_ratio))

    def forward(self, x, H, W, d_convs):
        x = x + self.attn(self.norm1(x), H, W, d_convs)
        return x + self.mlp(self.norm2(x), H, W)


class OfficialLayoutP2T(nn.Module):
    """Official parameter layout; ``forward_features_for_fpn`` returns the four NCHW stage maps."""

    def __init__(self, arch, num_classes=1000):
        super().__init__()
        dims, depths = arch['embed_dims'], arch['depths']
        for s in range(4):
            cin = 3 if s == 0 else dims[s - 1]
            setattr(self, f'patch_embed{s + 1}', RefPatchEmbed(cin, dims[s], 7 if s == 0 else 3, 4 if s == 0 else 2))
        for s in range(4):
            setattr(self, f'd_convs{s + 1}',
                    nn.ModuleList(nn.Conv2d(dims[s], dims[s], 3, 1, 1, groups=dims[s]) for _ in RATIOS[s]))
        for s in range(4):
            setattr(
                self, f'block{s + 1}',
                nn.ModuleList(
                    RefBlock(dims[s], arch['num_heads'][s], arch['mlp_ratios'][s], RATIOS[s])
                    for _ in range(depths[s])))
        self.head = nn.Linear(dims[-1], num_classes)

    def forward_features_for_fpn(self, x):
        outs = []
        for s in range(1, 5):
            x, H, W = getattr(self, f'patch_embed{s}')(x)
            for blk in getattr(self, f'block{s}'):
                x = blk(x, H, W, getattr(self, f'd_convs{s}'))
            x = x.reshape(x.shape[0], H, W, -1).permute(0, 3, 1, 2).contiguous()
            outs.append(x)
        return outs

    def forward(self, x):
        return self.head(self.forward_features_for_fpn(x)[-1].flatten(2).mean(-1))


def make_reference(arch, seed=0):
    torch.manual_seed(seed)
    ref = OfficialLayoutP2T(arch).eval()
    with torch.no_grad():  # non-trivial norms and biases, so that a swapped or skipped tensor shows
        for m in ref.modules():
            if isinstance(m, nn.LayerNorm):
                m.weight.normal_(1, 0.2)
                m.bias.normal_(0, 0.2)
            elif isinstance(m, (nn.Linear, nn.Conv2d)):
                m.bias.normal_(0, 0.05)
    return ref


def rel_err(a, b):
    return ((a - b).abs().max() / b.abs().max()).item()


def assert_outputs_match(ref, model, x):
    with torch.no_grad():
        expected, outs = ref.forward_features_for_fpn(x), model(x)
    assert [o.shape for o in outs] == [e.shape for e in expected]
    for out, exp in zip(outs, expected):
        assert rel_err(out, exp) <= 1e-4


@pytest.fixture(scope='module')
def tiny_ref():
    return make_reference(TINY)


def test_reference_layout_is_the_official_one(tiny_ref):
    sd = tiny_ref.state_dict()
    assert len(sd) == 284  # measured on the official p2t_tiny
    assert sum(v.numel() for v in sd.values()) == 11_590_840
    assert {
        'block1.0.attn.q.0.weight', 'block1.0.attn.kv.0.bias', 'd_convs4.3.weight', 'patch_embed4.norm.bias',
        'block3.5.mlp.fc2.weight', 'head.weight'
    } <= set(sd)
    assert is_official_layout('p2t', sd) and not is_official_layout('p2t', convert(sd, target='backbone'))


def test_converted_tiny_matches_reference_224_batch2(tiny_ref):
    sd = convert(tiny_ref.state_dict(), target='backbone')
    assert len(sd) == 282 and not any(k.startswith('head') for k in sd)
    model = P2T(TINY).eval()
    model.load_state_dict(sd, strict=True)
    assert_outputs_match(tiny_ref, model, torch.randn(2, 3, 224, 224))


@pytest.mark.parametrize('size', [(250, 330), (65, 65), (480, 640)])
def test_converted_matches_reference_at_other_sizes(size):
    """Non-multiples of 32, the official minimum (65, no clamping needed), a detection-like size."""
    ref = make_reference(SHALLOW, seed=1)
    model = P2T(SHALLOW).eval()
    model.load_state_dict(convert(ref.state_dict(), target='backbone'), strict=True)
    assert_outputs_match(ref, model, torch.randn(1, 3, *size))


def test_classifier_target_reproduces_logits(tiny_ref):
    """mmpretrain ImageClassifier: P2T(out_indices=(3,)) -> GlobalAveragePooling -> LinearClsHead (head.fc)."""
    sd = convert({'model': tiny_ref.state_dict()}, target='classifier')
    assert list(sd)[-2:] == ['head.fc.weight', 'head.fc.bias']
    assert all(k.startswith('backbone.stages.') for k in list(sd)[:-2])
    backbone = P2T(TINY, out_indices=(3, )).eval()
    backbone.load_state_dict({k[len('backbone.'):]: v for k, v in sd.items() if k.startswith('backbone.')}, strict=True)
    x = torch.randn(2, 3, 224, 224)
    with torch.no_grad():
        logits = F.linear(backbone(x)[0].mean((2, 3)), sd['head.fc.weight'], sd['head.fc.bias'])
        expected = tiny_ref(x)
    assert rel_err(logits, expected) <= 1e-4


@pytest.mark.parametrize('target', ['backbone', 'classifier'])
def test_idempotent(tiny_ref, target):
    once = convert(tiny_ref.state_dict(), target=target)
    twice = convert(once, target=target)
    assert list(once) == list(twice)
    assert all(once[k] is twice[k] for k in once)


def test_wrapped_and_prefixed_inputs(tiny_ref):
    official = tiny_ref.state_dict()
    expected = convert(official, target='backbone')
    head_free = OrderedDict((k, v) for k, v in official.items() if not k.startswith('head.'))
    variants = {
        'state_dict': {
            'state_dict': official,
            'meta': {}
        },
        'model': {
            'model': official,
            'epoch': 3
        },
        'module.':
        OrderedDict((f'module.{k}', v) for k, v in official.items()),
        # official Semantic-FPN checkpoint: backbone.* incl. an unused random backbone.head.*, plus the decoder
        'seg': {
            'state_dict':
            OrderedDict([(f'backbone.{k}', v)
                         for k, v in official.items()] + [('decode_head.conv_seg.weight', torch.zeros(150, 128, 1, 1))])
        },
        # detector: no head in the backbone, plus neck and bbox head
        'det':
        OrderedDict([(f'backbone.{k}', v) for k, v in head_free.items()] +
                    [('neck.lateral_convs.0.conv.weight', torch.zeros(256, 48, 1, 1))]),
        'ours':
        expected,
    }
    for name, ckpt in variants.items():
        out = convert(ckpt, target='backbone')
        assert list(out) == list(expected), name
        assert all(out[k] is expected[k] for k in out), name
    for name in ('seg', 'det'):
        with pytest.raises(UnmatchedKeysError, match='use target="backbone"'):
            convert(variants[name], target='classifier')


def test_strictness(tiny_ref):
    official = tiny_ref.state_dict()
    extra = OrderedDict(official, **{'block1.0.attn.sr.weight': torch.zeros(1)})
    with pytest.raises(UnmatchedKeysError, match=r'1 keys match no conversion rule: \[block1\.0\.attn\.sr\.weight\]'):
        convert(extra, target='backbone')
    # pre-TPAMI "v1" weights: attn.q.weight without the Sequential index, per-block copies of the d_convs
    v1 = OrderedDict(official)
    v1['block1.0.attn.q.weight'] = v1.pop('block1.0.attn.q.0.weight')
    v1['block1.0.attn.d_convs1.0.weight'] = torch.zeros(48, 1, 3, 3)
    with pytest.raises(UnmatchedKeysError, match='2 keys') as info:
        convert(v1, target='backbone')
    assert 'block1.0.attn.q.weight' in str(info.value) and 'block1.0.attn.d_convs1.0.weight' in str(info.value)
    with pytest.raises(UnmatchedKeysError, match='classification-head'):
        convert(OrderedDict(official, **{'head.extra': torch.zeros(1)}), target='backbone')
    with pytest.raises(ValueError, match='no classification head'):
        convert(convert(official, target='backbone'), target='classifier')
    with pytest.raises(ValueError, match='target must be one of'):
        convert(official, target='detector')
    with pytest.raises(ValueError, match='cannot find a state dict'):
        convert({'optimizer': {'lr': 1}}, target='backbone')
    with pytest.raises(KeyError, match=r"available families: \['cmt', 'hrformer', 'p2t'"):
        get_converter('no-such-family')


def test_init_cfg_pretrained_loads_official_files(tiny_ref, tmp_path):
    official = tiny_ref.state_dict()
    x = torch.randn(1, 3, 96, 128)

    path = tmp_path / 'p2t_tiny_official.pth'
    torch.save({'model': official}, path)
    model = P2T(TINY, init_cfg=dict(type='Pretrained', checkpoint=str(path)))
    model.init_weights()
    assert_outputs_match(tiny_ref, model.eval(), x)

    # a whole official detector checkpoint, selected with prefix
    det = tmp_path / 'retinanet_p2t_t.pth'
    torch.save(
        {
            'state_dict':
            OrderedDict([(f'backbone.{k}', v) for k, v in official.items() if 'head' not in k] +
                        [('neck.fpn_convs.0.conv.bias', torch.zeros(256))])
        }, det)
    model = P2T(TINY, init_cfg=dict(type='Pretrained', checkpoint=str(det), prefix='backbone.'))
    model.init_weights()
    assert_outputs_match(tiny_ref, model.eval(), x)

    # a converted mmpretrain classifier checkpoint, selected with prefix
    cls = tmp_path / 'p2t_tiny_mmpretrain.pth'
    torch.save({'meta': {}, 'state_dict': convert(official, target='classifier')}, cls)
    model = P2T(TINY, init_cfg=dict(type='Pretrained', checkpoint=str(cls), prefix='backbone'))
    model.init_weights()
    assert_outputs_match(tiny_ref, model.eval(), x)


def test_init_cfg_pretrained_is_strict(tiny_ref, tmp_path):
    official = tiny_ref.state_dict()
    path = tmp_path / 'missing.pth'
    torch.save(OrderedDict((k, v) for k, v in official.items() if k != 'block2.1.norm2.bias'), path)
    model = P2T(TINY, init_cfg=dict(type='Pretrained', checkpoint=str(path)))
    with pytest.raises(
            PretrainedLoadError,
            match=r'does not fit P2T:\n  1 missing keys: stages\.1\.blocks\.1\.norm2\.bias\n'
            r'(.|\n)*convert_checkpoint\.py p2t') as err:
        model.init_weights()
    assert (err.value.missing, err.value.unexpected, err.value.mismatched) == (['stages.1.blocks.1.norm2.bias'], [], [])
    # tiny weights into small: shape mismatches name the arch
    path = tmp_path / 'tiny.pth'
    torch.save(official, path)
    model = P2T('small', init_cfg=dict(type='Pretrained', checkpoint=str(path)))
    with pytest.raises(PretrainedLoadError, match=r'shape mismatches: (.|\n)*Check that arch=') as err:
        model.init_weights()
    assert ('stages.0.blocks.0.norm1.weight', (48, ), (64, )) in err.value.mismatched
    # a depth mismatch gives unexpected keys
    model = P2T(SHALLOW, init_cfg=dict(type='Pretrained', checkpoint=str(path)))
    with pytest.raises(PretrainedLoadError, match=r'unexpected keys: stages\.0\.blocks\.1\.'):
        model.init_weights()
    with pytest.raises(ValueError, match='unsupported Pretrained init_cfg keys'):
        P2T(TINY, init_cfg=dict(type='Pretrained', checkpoint=str(path), strict=False)).init_weights()
