"""HRFormer converter: official and mmpose-1.x layouts -> mmvit_ext, checked against an independent reference.

``OfficialLayoutHRFormer`` below is a deliberately plain re-implementation of the published classification model
(spec: ``shared/specs/hrformer.md`` §3) with the official parameter names (``conv1``, ``layer1.0.bn1``,
``transition1.1.0.0``, ``stage2.0.branches.0.0.attn.attn.q_proj``, ``...mlp.dw3x3``, ``fuse_layers.1.0.0.2``,
``incre_modules``, ``classifier`` ...): NCHW convs, separate q/k/v projections, the relative-position index built
with explicit loops, windows cut with explicit loops, no shared mmvit_ext code. Random weights in that layout (with
non-trivial norms and BatchNorm statistics) are converted, loaded strictly into ``HRFormer`` and must reproduce its
outputs; an mmpose-1.x copy of the same weights (fused ``qkv``, ``proj``, ``ffn.``) must convert identically.
"""
from collections import OrderedDict

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from mmvit_ext.converters import get_converter, is_official_layout
from mmvit_ext.converters._rules import UnmatchedKeysError
from mmvit_ext.models.backbones import HRFormer
from mmvit_ext.models.backbones.base import PretrainedLoadError
from mmvit_ext.models.necks import ConvPoolNeck, HRFuseScalesDW

SMALL = dict(channels=[8, 16, 24, 32], num_heads=[1, 2, 3, 4], num_modules=[1, 1, 2, 1], num_blocks=[2, 1, 1, 1],
             mlp_ratios=[2, 2, 2, 2], window_size=3)  # yapf: disable
HEAD_PLANES = (4, 8, 12, 16)
convert = get_converter('hrformer')


def bn(c):
    return nn.BatchNorm2d(c)


class RefBottleneck(nn.Module):

    def __init__(self, cin, planes, dw=False):
        super().__init__()
        self.conv1, self.bn1 = nn.Conv2d(cin, planes, 1, bias=False), bn(planes)
        self.conv2, self.bn2 = nn.Conv2d(planes, planes, 3, 1, 1, bias=False, groups=planes if dw else 1), bn(planes)
        self.conv3, self.bn3 = nn.Conv2d(planes, 4 * planes, 1, bias=False), bn(4 * planes)
        if cin != 4 * planes:
            self.downsample = nn.Sequential(nn.Conv2d(cin, 4 * planes, 1, bias=False), bn(4 * planes))

    def forward(self, x):
        out = F.relu(self.bn1(self.conv1(x)))
        out = F.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return F.relu(out + (self.downsample(x) if hasattr(self, 'downsample') else x))


def ref_index(w):
    index = torch.zeros(w * w, w * w, dtype=torch.long)
    for i in range(w * w):
        for j in range(w * w):
            dh, dw = i // w - j // w, i % w - j % w
            index[i, j] = (dh + w - 1) * (2 * w - 1) + (dw + w - 1)
    return index


class RefMHA(nn.Module):

    def __init__(self, dim, heads, w):
        super().__init__()
        self.heads, self.w = heads, w
        self.k_proj, self.v_proj, self.q_proj, self.out_proj = (nn.Linear(dim, dim) for _ in range(4))
        self.relative_position_bias_table = nn.Parameter(torch.randn((2 * w - 1)**2, heads))
        self.register_buffer('relative_position_index', ref_index(w))

    def forward(self, t):  # t: windows, (n, w*w, C)
        n, N, C = t.shape
        d = C // self.heads
        q = (self.q_proj(t) * d**-0.5).view(n, N, self.heads, d).transpose(1, 2)
        k = self.k_proj(t).view(n, N, self.heads, d).transpose(1, 2)
        v = self.v_proj(t).view(n, N, self.heads, d).transpose(1, 2)
        bias = self.relative_position_bias_table[self.relative_position_index].permute(2, 0, 1)
        attn = (q @ k.transpose(-2, -1) + bias).softmax(-1)
        return self.out_proj((attn @ v).transpose(1, 2).reshape(n, N, C))


class RefISA(nn.Module):

    def __init__(self, dim, heads, w):
        super().__init__()
        self.w = w
        self.attn = RefMHA(dim, heads, w)

    def forward(self, x, H, W):  # x: (B, H*W, C), after norm1
        B, N, C = x.shape
        w = self.w
        ph, pw = -H % w, -W % w
        m = F.pad(x.view(B, H, W, C), (0, 0, pw // 2, pw - pw // 2, ph // 2, ph - ph // 2))
        out = torch.zeros_like(m)
        for r in range(0, H + ph, w):
            for c in range(0, W + pw, w):
                win = m[:, r:r + w, c:c + w].reshape(B, w * w, C)
                out[:, r:r + w, c:c + w] = self.attn(win).view(B, w, w, C)
        return out[:, ph // 2:ph // 2 + H, pw // 2:pw // 2 + W].reshape(B, N, C)


class RefMlp(nn.Module):

    def __init__(self, dim, hidden):
        super().__init__()
        self.fc1, self.norm1 = nn.Conv2d(dim, hidden, 1), bn(hidden)
        self.dw3x3, self.norm2 = nn.Conv2d(hidden, hidden, 3, 1, 1, groups=hidden), bn(hidden)
        self.fc2, self.norm3 = nn.Conv2d(hidden, dim, 1), bn(dim)

    def forward(self, x):
        x = F.gelu(self.norm1(self.fc1(x)))
        x = F.gelu(self.norm2(self.dw3x3(x)))
        return F.gelu(self.norm3(self.fc2(x)))


class RefBlock(nn.Module):

    def __init__(self, dim, heads, w, ratio):
        super().__init__()
        self.norm1, self.norm2 = nn.LayerNorm(dim, eps=1e-6), nn.LayerNorm(dim, eps=1e-6)
        self.attn = RefISA(dim, heads, w)
        self.mlp = RefMlp(dim, dim * ratio)

    def forward(self, x):
        B, C, H, W = x.shape
        t = x.flatten(2).transpose(1, 2)
        t = t + self.attn(self.norm1(t), H, W)
        y = self.mlp(self.norm2(t).transpose(1, 2).reshape(B, C, H, W))
        return (t + y.flatten(2).transpose(1, 2)).transpose(1, 2).reshape(B, C, H, W)


class RefModule(nn.Module):

    def __init__(self, chans, heads, blocks, w, ratios):
        super().__init__()
        n = len(chans)
        self.branches = nn.ModuleList(
            nn.Sequential(*(RefBlock(chans[b], heads[b], w, ratios[b]) for _ in range(blocks))) for b in range(n))
        fuse = []
        for i in range(n):
            row = []
            for j in range(n):
                if j > i:
                    row.append(
                        nn.Sequential(
                            nn.Conv2d(chans[j], chans[i], 1, bias=False), bn(chans[i]),
                            nn.Upsample(scale_factor=2**(j - i), mode='nearest')))
                elif j == i:
                    row.append(None)
                else:
                    steps = []
                    for k in range(i - j):
                        last = k == i - j - 1
                        cout = chans[i] if last else chans[j]
                        layers = [
                            nn.Conv2d(chans[j], chans[j], 3, 2, 1, groups=chans[j], bias=False),
                            bn(chans[j]),
                            nn.Conv2d(chans[j], cout, 1, bias=False),
                            bn(cout)
                        ]
                        steps.append(nn.Sequential(*layers, *([] if last else [nn.ReLU()])))
                    row.append(nn.Sequential(*steps))
            fuse.append(nn.ModuleList(row))
        self.fuse_layers = nn.ModuleList(fuse)

    def forward(self, xs):
        xs = [branch(x) for branch, x in zip(self.branches, xs)]
        outs = []
        for i, row in enumerate(self.fuse_layers):
            y = xs[0] if i == 0 else row[0](xs[0])
            for j in range(1, len(xs)):
                if j == i:
                    y = y + xs[j]
                elif j > i:
                    y = y + F.interpolate(row[j](xs[j]), size=xs[i].shape[2:], mode='bilinear', align_corners=True)
                else:
                    y = y + row[j](xs[j])
            outs.append(F.relu(y))
        return outs


class OfficialLayoutHRFormer(nn.Module):
    """The official classification model's layout and semantics; ``branches`` returns the four stage-4 maps."""

    def __init__(self, arch, head_planes=HEAD_PLANES, final_dim=64, num_classes=10):
        super().__init__()
        C, w = arch['channels'], arch['window_size']
        self.conv1, self.bn1 = nn.Conv2d(3, 64, 3, 2, 1, bias=False), bn(64)
        self.conv2, self.bn2 = nn.Conv2d(64, 64, 3, 2, 1, bias=False), bn(64)
        self.layer1 = nn.Sequential(*(RefBottleneck(64 if k == 0 else 256, 64) for k in range(arch['num_blocks'][0])))
        prev = [256]
        for s in (1, 2, 3):
            cur = C[:s + 1]
            trans = []
            for b in range(s + 1):
                if b < len(prev):
                    trans.append(None if prev[b] == cur[b] else nn.
                                 Sequential(nn.Conv2d(prev[b], cur[b], 3, 1, 1, bias=False), bn(cur[b]), nn.ReLU()))
                else:
                    trans.append(
                        nn.Sequential(
                            nn.Sequential(nn.Conv2d(prev[-1], cur[b], 3, 2, 1, bias=False), bn(cur[b]), nn.ReLU())))
            setattr(self, f'transition{s}', nn.ModuleList(trans))
            setattr(
                self, f'stage{s + 1}',
                nn.Sequential(*(RefModule(cur, arch['num_heads'], arch['num_blocks'][s], w, arch['mlp_ratios'])
                                for _ in range(arch['num_modules'][s]))))
            prev = cur
        self.incre_modules = nn.ModuleList(nn.Sequential(RefBottleneck(c, p, dw=True)) for c, p in zip(C, head_planes))
        widths = [4 * p for p in head_planes]
        self.downsamp_modules = nn.ModuleList(
            nn.Sequential(nn.Conv2d(a, a, 3, 2, 1, groups=a), bn(a), nn.Conv2d(a, b, 1), bn(b), nn.ReLU())
            for a, b in zip(widths[:-1], widths[1:]))
        self.final_layer = nn.Sequential(nn.Conv2d(widths[-1], final_dim, 1), bn(final_dim), nn.ReLU())
        self.classifier = nn.Linear(final_dim, num_classes)

    def branches(self, x):
        x = F.relu(self.bn2(self.conv2(F.relu(self.bn1(self.conv1(x))))))
        xs = [self.layer1(x)]
        for s in (1, 2, 3):
            trans = getattr(self, f'transition{s}')
            xs = [t(xs[b] if b < len(xs) else xs[-1]) if t is not None else xs[b] for b, t in enumerate(trans)]
            xs = getattr(self, f'stage{s + 1}')(xs)
        return xs

    def forward(self, x):
        xs = self.branches(x)
        y = self.incre_modules[0](xs[0])
        for i, down in enumerate(self.downsamp_modules):
            y = self.incre_modules[i + 1](xs[i + 1]) + down(y)
        return self.classifier(self.final_layer(y).mean((2, 3)))


def randomize_(model, seed=0):
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, t in model.state_dict().items():
            if not t.dtype.is_floating_point:
                continue
            if name.endswith('running_var'):
                t.copy_(torch.rand(t.shape, generator=g) + 0.5)
            elif t.dim() == 1 and name.endswith('weight'):
                t.copy_(1 + 0.2 * torch.randn(t.shape, generator=g))
            else:
                t.copy_(0.2 * torch.randn(t.shape, generator=g) / max(1, t[0].numel())**0.5)
    return model.eval()


def to_mmpose1x(sd):
    """The same weights in mmpose 1.x's ``HRFormer`` layout (fused qkv, ``proj``, ``ffn.``, index kept)."""
    out = OrderedDict()
    for k, v in sd.items():
        if '.attn.attn.k_proj.' in k or '.attn.attn.v_proj.' in k:
            continue
        if '.attn.attn.q_proj.' in k:
            parts = [sd[k.replace('q_proj', p)] for p in ('q_proj', 'k_proj', 'v_proj')]
            out[k.replace('q_proj', 'qkv')] = torch.cat(parts)
            continue
        out[k.replace('.attn.attn.out_proj.', '.attn.attn.proj.').replace('.mlp.', '.ffn.')] = v
    return out


@pytest.fixture(scope='module')
def ref():
    torch.manual_seed(0)
    return randomize_(OfficialLayoutHRFormer(SMALL))


def _backbone(sd, **kwargs):
    model = HRFormer(SMALL, **kwargs).eval()
    model.load_state_dict_strict(convert(sd, target='backbone'))
    return model


def _rel(a, b):
    return ((a - b).norm() / b.norm()).item()


def test_reference_layout_is_the_official_one(ref):
    keys = set(ref.state_dict())
    for key in ('conv1.weight', 'bn2.num_batches_tracked', 'layer1.0.downsample.1.running_var', 'layer1.1.conv3.weight',
                'transition1.0.0.weight', 'transition1.1.0.0.weight', 'transition3.3.0.1.bias',
                'stage2.0.branches.1.0.attn.attn.q_proj.weight', 'stage3.1.branches.2.0.mlp.dw3x3.weight',
                'stage4.0.branches.3.0.attn.attn.relative_position_index', 'stage4.0.fuse_layers.0.3.0.weight',
                'stage4.0.fuse_layers.3.0.2.3.running_mean', 'incre_modules.0.0.conv3.weight',
                'downsamp_modules.2.2.bias', 'final_layer.1.weight', 'classifier.bias'):
        assert key in keys, key
    assert is_official_layout('hrformer', ref.state_dict())


@pytest.mark.parametrize('size', [(48, 48), (35, 61)])
def test_converted_weights_match_the_reference(ref, size):
    """48 px: branches 12/6/3/2 (padded where not a multiple of 3); 35x61 also rounds up in every stride-2 conv and
    resizes in the fusion (the official resize after the nearest upsampling)."""
    model = _backbone(ref.state_dict())
    x = torch.randn(2, 3, *size)
    with torch.no_grad():
        expected, got = ref.branches(x), model(x)
    for e, o in zip(expected, got):
        assert o.shape == e.shape
        assert _rel(o, e) < 1e-5


def test_mmpose1x_layout_converts_identically(ref):
    official = convert(ref.state_dict(), target='backbone')
    mmpose = convert(
        OrderedDict(('backbone.' + k, v) for k, v in to_mmpose1x(ref.state_dict()).items()), target='backbone')
    assert official.keys() == mmpose.keys()
    assert all(torch.equal(official[k], mmpose[k]) for k in official)


def test_classifier_target_reproduces_logits(ref):
    sd = convert({'model': ref.state_dict()}, target='classifier')
    backbone = HRFormer(SMALL).eval()
    neck0 = HRFuseScalesDW(SMALL['channels'], HEAD_PLANES).eval()
    neck1 = ConvPoolNeck(4 * HEAD_PLANES[-1], 64, act_cfg=dict(type='ReLU')).eval()
    fc = nn.Linear(64, 10)
    for prefix, module in (('backbone.', backbone), ('neck.0.', neck0), ('neck.1.', neck1), ('head.fc.', fc)):
        part = OrderedDict((k[len(prefix):], v) for k, v in sd.items() if k.startswith(prefix))
        module.load_state_dict(part, strict=True)
    x = torch.randn(2, 3, 48, 48)
    with torch.no_grad():
        logits = fc(neck1(neck0(backbone(x)))[0])
        assert _rel(logits, ref(x)) < 1e-5


@pytest.mark.parametrize('target', ['backbone', 'classifier'])
def test_idempotent(ref, target):
    once = convert(ref.state_dict(), target=target)
    twice = convert(once, target=target)
    assert once.keys() == twice.keys() and all(torch.equal(once[k], twice[k]) for k in once)


def test_seg_and_pose_checkpoints_keep_only_the_backbone(ref):
    seg = {
        'state_dict':
        OrderedDict([(f'module.backbone.{k}', v) for k, v in ref.state_dict().items()] +
                    [('module.aux_head.0.weight', torch.zeros(1)), ('module.cls_head.bias', torch.zeros(1))])
    }
    pose = {
        'state_dict':
        OrderedDict([(f'backbone.{k}', v) for k, v in to_mmpose1x(ref.state_dict()).items()] +
                    [('keypoint_head.final_layer.weight', torch.zeros(1))])
    }
    expected = convert(ref.state_dict(), target='backbone')
    for ckpt in (seg, pose):
        out = convert(ckpt, target='backbone')
        assert out.keys() == expected.keys()
    assert not any('relative_position_index' in k or k.startswith(('incre', 'classifier')) for k in expected)


def test_strictness(ref):
    sd = ref.state_dict()
    with pytest.raises(
            UnmatchedKeysError, match=r'1 keys match no conversion rule: \[stage2\.0\.branches\.0\.0\.attn\.foo'):
        convert({**sd, 'stage2.0.branches.0.0.attn.foo': torch.zeros(1)}, target='backbone')
    partial = OrderedDict((k, v) for k, v in sd.items() if 'stage2.0.branches.0.0.attn.attn.k_proj' not in k)
    with pytest.raises(UnmatchedKeysError, match='has no matching'):
        convert(partial, target='backbone')
    no_head = OrderedDict((k, v) for k, v in sd.items() if not k.startswith(('final_layer', 'classifier')))
    with pytest.raises(ValueError, match='needs the official incre_modules'):
        convert(no_head, target='classifier')
    with pytest.raises(ValueError, match='target must be one of'):
        convert(sd, target='detector')


def test_single_output_and_rpe_off_drop_what_they_do_not_build(ref, caplog):
    """out_indices=(0,) (the pose backbone) does not build the last module's other fusions; with_rpe=False (the
    pose fork) builds no tables: loading a full checkpoint drops those tensors with a log line, and nothing else."""
    sd = convert(ref.state_dict(), target='backbone')
    pose = HRFormer(SMALL, out_indices=(0, ), with_rpe=False).eval()
    pose.load_state_dict_strict(dict(sd))
    full = _backbone(ref.state_dict(), with_rpe=False)
    x = torch.randn(1, 3, 48, 48)
    with torch.no_grad():
        assert torch.allclose(pose(x)[0], full(x)[0], atol=1e-6)
    last = 'stages.3.layers.0.fuse_layers.'
    assert not any(k.startswith(last + '1') for k in pose.state_dict())
    assert not any(k.endswith('relative_position_bias_table') for k in pose.state_dict())


def test_init_cfg_pretrained_loads_official_files_strictly(ref, tmp_path):
    path = tmp_path / 'hrformer_small.pth'
    torch.save({'model': ref.state_dict(), 'epoch': 299}, path)
    model = HRFormer(SMALL, init_cfg=dict(type='Pretrained', checkpoint=str(path))).eval()
    model.init_weights()
    x = torch.randn(1, 3, 48, 48)
    with torch.no_grad():
        assert _rel(model(x)[3], ref.branches(x)[3]) < 1e-5
    wrong = dict(SMALL, channels=[8, 16, 24, 40])
    with pytest.raises(PretrainedLoadError, match='shape mismatches'):
        HRFormer(wrong, init_cfg=dict(type='Pretrained', checkpoint=str(path))).init_weights()
