"""HourglassViT / HourglassSwin: host equivalence when off, checkpoint compatibility, the hourglass plumbing, and
the plain/hourglass config pairs of configs/expedite/."""
import copy
import glob
import os.path as osp
import re

import pytest
import torch
from mmdet.models.backbones import SwinTransformer as DetSwin
from mmengine.config import Config
from mmseg.models.backbones import SwinTransformer, VisionTransformer
from mmseg.registry import MODELS as MMSEG_MODELS

from mmvit_ext.models.hosts.expedite import HourglassSwin, HourglassSwinDet, HourglassViT
from mmvit_ext.models.layers import relative_position_index, shift_window_mask, window_attention
from mmvit_ext.models.layers.token_ops import TokenClustering, TokenReconstruction
from mmvit_ext.registry import MODELS

VIT = dict(
    img_size=(32, 48),
    patch_size=8,
    embed_dims=16,
    num_layers=5,
    num_heads=2,
    mlp_ratio=2,
    out_indices=(0, 2, 4),
    final_norm=True)
SWIN = dict(
    embed_dims=8,
    depths=(2, 2, 4, 2),
    num_heads=(1, 1, 2, 2),
    window_size=4,
    mlp_ratio=2,
    out_indices=(0, 1, 2, 3),
    drop_path_rate=0.)


def build_pair(host_cls, wrapper_cls, host_cfg, expedite, seed=0):
    """A host and a wrapper with the same (random) weights, in eval mode."""
    torch.manual_seed(seed)
    host = host_cls(**host_cfg)
    host.init_weights()
    with torch.no_grad():  # a non-zero bias table so that window/bias mistakes show
        for name, p in host.named_parameters():
            if 'relative_position_bias_table' in name:
                p.normal_(0, 1)
    wrapper = wrapper_cls(**host_cfg, expedite=expedite)
    result = wrapper.load_state_dict(host.state_dict(), strict=True)
    assert not result.missing_keys and not result.unexpected_keys
    host.eval()
    wrapper.eval()
    return host, wrapper


def assert_outputs_equal(outs, ref):
    assert isinstance(outs, tuple), 'every mmvit_ext backbone returns a tuple'
    assert len(outs) == len(ref)
    for out, r in zip(outs, ref):
        assert torch.equal(out, r)


# ------------------------------------------------------------------------------------------------------------ ViT


@pytest.mark.parametrize('expedite', [None, dict(enabled=False, alpha=2, cluster_shape=(2, 3))])
def test_vit_off_is_host(expedite):
    host, vit = build_pair(VisionTransformer, HourglassViT, dict(VIT, output_cls_token=True), expedite)
    x = torch.randn(2, 3, 40, 56)
    with torch.no_grad():
        outs, ref = vit(x), host(x)
    for (out, cls), (r, r_cls) in zip(outs, ref):
        assert torch.equal(out, r) and torch.equal(cls, r_cls)


def test_vit_checkpoint_keys_unchanged():
    vit = HourglassViT(**VIT, expedite=dict(alpha=2, cluster_shape=(2, 3)))
    host = VisionTransformer(**VIT)
    assert list(vit.state_dict()) == list(host.state_dict())
    assert not any(True for _ in vit.clustering.parameters()) and not vit.reconstruction.state_dict()
    host.load_state_dict(vit.state_dict(), strict=True)


def manual_hourglass(host, x, alpha, beta, grid, **ops):
    """Expedite written out with the host's parts and the token ops: the reference for the wrapper."""
    clustering = TokenClustering(grid, window=ops.get('window', 5), iters=ops.get('iters', 5), tau=ops.get('tau', .02))
    reconstruction = TokenReconstruction(k=ops.get('k', 20), tau=ops.get('tau', .02))
    tokens, hw = host.patch_embed(x)
    tokens = torch.cat((host.cls_token.expand(x.shape[0], -1, -1), tokens), dim=1)
    tokens = host._pos_embeding(tokens, hw, host.pos_embed)
    outs, saved = [], None
    for i, layer in enumerate(host.layers):
        if i == alpha:
            saved = tokens[:, 1:]
            centres, _ = clustering(saved, hw)
            tokens = torch.cat((tokens[:, :1], centres), dim=1)
        if beta is not None and i == alpha + beta:
            tokens = torch.cat((tokens[:, :1], reconstruction(tokens[:, 1:], saved, centres)), dim=1)
            saved = None
        tokens = layer(tokens)
        if i == len(host.layers) - 1:
            tokens = host.norm1(tokens)
        if i in host.out_indices:
            patches = tokens[:, 1:] if saved is None else reconstruction(tokens[:, 1:], saved, centres)
            outs.append(patches.reshape(x.shape[0], *hw, -1).permute(0, 3, 1, 2))
    return outs


@pytest.mark.parametrize('alpha,beta', [(1, None), (2, 2), (0, 1)])
def test_vit_hourglass_matches_manual_composition(alpha, beta):
    expedite = dict(alpha=alpha, beta=beta, cluster_shape=(2, 3), window=3, iters=3, tau=0.05, k=4)
    host, vit = build_pair(VisionTransformer, HourglassViT, VIT, expedite)
    x = torch.randn(2, 3, 40, 56)  # 5 x 7 patches -> 2 x 3 clusters
    with torch.no_grad():
        outs = vit(x)
        ref = manual_hourglass(host, x, alpha, beta, (2, 3), window=3, iters=3, tau=0.05, k=4)
        plain = host(x)
    for out, r, p in zip(outs, ref, plain):
        assert out.shape == p.shape == (2, 16, 5, 7)
        assert torch.allclose(out, r, atol=1e-6)
    # the hourglass changes the features from the first clustered layer on, and only from there
    assert torch.equal(outs[0], plain[0]) == (alpha > 0)
    assert not torch.allclose(outs[-1], plain[-1], atol=1e-3)


def test_vit_layers_see_clustered_tokens():
    _, vit = build_pair(VisionTransformer, HourglassViT, VIT, dict(alpha=1, beta=2, cluster_shape=0.5))
    seen = []
    for layer in vit.layers:
        layer.register_forward_pre_hook(lambda m, args: seen.append(args[0].shape[1]))
    with torch.no_grad():
        outs = vit(torch.randn(1, 3, 48, 64))  # 6 x 8 patches, ratio 0.5 -> 3 x 4 clusters
    # cls + 48 patch tokens, then cls + 12 clusters for beta = 2 layers, then full resolution again
    assert seen == [49, 13, 13, 49, 49]
    assert [tuple(o.shape) for o in outs] == [(1, 16, 6, 8)] * 3


def test_vit_identity_clustering_reproduces_host():
    # one cluster per patch, a huge tau and k = 1: clustering and reconstruction are identities
    expedite = dict(alpha=2, cluster_shape=(5, 7), window=3, tau=1e4, k=1)
    host, vit = build_pair(VisionTransformer, HourglassViT, VIT, expedite)
    x = torch.randn(1, 3, 40, 56)
    with torch.no_grad():
        for out, r in zip(vit(x), host(x)):
            assert torch.allclose(out, r, atol=1e-5)


def test_vit_backward_reaches_every_parameter():
    vit = HourglassViT(**VIT, expedite=dict(alpha=2, beta=1, cluster_shape=(2, 3), window=3, k=3))
    sum((o * torch.randn_like(o)).sum() for o in vit(torch.randn(1, 3, 40, 56))).backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in vit.parameters() if p.requires_grad)


def test_vit_from_config_and_errors():
    cfg = dict(type='mmvit_ext.HourglassViT', **VIT, expedite=dict(alpha=2, cluster_shape=(2, 3)))
    assert isinstance(MODELS.build(copy.deepcopy(cfg)), HourglassViT)
    assert isinstance(MMSEG_MODELS.build(copy.deepcopy(cfg)), HourglassViT)  # from an mmseg config
    with pytest.raises(ValueError, match='Unknown expedite keys'):
        HourglassViT(**VIT, expedite=dict(alpha=2, cluster_shape=(2, 3), lambda_=5))
    with pytest.raises(ValueError, match='needs'):
        HourglassViT(**VIT, expedite=dict(cluster_shape=(2, 3)))
    with pytest.raises(AssertionError, match='alpha'):
        HourglassViT(**VIT, expedite=dict(alpha=5, cluster_shape=(2, 3)))


# ----------------------------------------------------------------------------------------------------------- Swin


@pytest.mark.parametrize('host_cls,wrapper_cls', [(SwinTransformer, HourglassSwin), (DetSwin, HourglassSwinDet)])
@pytest.mark.parametrize('expedite', [None, dict(enabled=False, alpha=5, cluster_shape=2)])
def test_swin_off_is_host(host_cls, wrapper_cls, expedite):
    host, swin = build_pair(host_cls, wrapper_cls, SWIN, expedite)
    x = torch.randn(2, 3, 75, 101)
    with torch.no_grad():
        assert_outputs_equal(swin(x), host(x))


def test_swin_window_attention_and_index_match_host():
    host, swin = build_pair(SwinTransformer, HourglassSwin, SWIN, dict(alpha=5, cluster_shape=2))
    block = host.stages[1].blocks[1]  # a shifted block
    w_msa = block.attn.w_msa
    assert torch.equal(relative_position_index(4), w_msa.relative_position_index)
    bias = w_msa.relative_position_bias_table[w_msa.relative_position_index.view(-1)].view(16, 16, -1).permute(2, 0, 1)
    x = torch.randn(2, 7 * 10, 16)  # padded to 8 x 12
    with torch.no_grad():
        ref = block.attn(x, (7, 10))
        # NOTE: the shared window attention runs one fused sdpa call: equal to the host's eager math to rounding
        out = window_attention(
            x, (7, 10),
            qkv=w_msa.qkv,
            proj=w_msa.proj,
            num_heads=w_msa.num_heads,
            window_size=4,
            scale=w_msa.scale,
            rel_pos_bias=bias,
            shift_size=2)
        regular = host.stages[1].blocks[0].attn  # an unshifted block
        r_msa = regular.w_msa
        r_bias = r_msa.relative_position_bias_table[r_msa.relative_position_index.view(-1)].view(16, 16, -1)
        unshifted = window_attention(
            x, (7, 10),
            qkv=r_msa.qkv,
            proj=r_msa.proj,
            num_heads=r_msa.num_heads,
            window_size=4,
            scale=r_msa.scale,
            rel_pos_bias=r_bias.permute(2, 0, 1))
        ref_unshifted = regular(x, (7, 10))
    torch.testing.assert_close(out, ref, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(unshifted, ref_unshifted, rtol=1e-5, atol=1e-6)


def test_swin_clustered_bias_and_shift_mask():
    _, swin = build_pair(SwinTransformer, HourglassSwin, SWIN, dict(alpha=5, cluster_shape=2))
    w_msa = swin.stages[2].blocks[1].attn.w_msa
    before = w_msa.relative_position_bias_table.detach().clone()
    bias = swin._clustered_bias(w_msa)
    assert bias.shape == (2, 4, 4)
    # the bias of a 2 x 2 window is a bilinear resample of the 7 x 7 table at the 3 x 3 relative offsets
    table = before.t().reshape(2, 7, 7)
    centre = swin.clustered_position_index[0, 0]  # offset (0, 0)
    assert torch.allclose(bias[:, 0, 0], table[:, 3, 3]) and centre == 4
    with torch.no_grad():
        w_msa.relative_position_bias_table.fill_(0.25)
    assert torch.allclose(swin._clustered_bias(w_msa), torch.full((2, 4, 4), 0.25))
    # shifted-window mask: regions [0, -4), [-4, -1), [-1, end) on an 8 x 8 grid with window 4, shift 1
    mask = shift_window_mask((8, 8), 4, 1)
    assert mask.shape == (4, 16, 16) and (mask[0] == 0).all()
    last = torch.tensor([0, 0, 0, 1, 0, 0, 0, 1, 0, 0, 0, 1, 2, 2, 2, 3])  # region of each token, bottom-right window
    assert torch.equal(mask[3] == 0, last[:, None] == last[None, :])


def test_swin_identity_clustering_reproduces_host():
    # k = window, a huge tau and top-1 reconstruction: the hourglass stage is the host stage
    expedite = dict(alpha=5, cluster_shape=4, window=3, tau=1e4, k=1)
    host, swin = build_pair(SwinTransformer, HourglassSwin, SWIN, expedite)
    x = torch.randn(2, 3, 128, 64)  # stage 2 is 8 x 4: two windows, no padding
    with torch.no_grad():
        for out, r in zip(swin(x), host(x)):
            assert torch.allclose(out, r, atol=1e-5)


@pytest.mark.parametrize('alpha,stage,first', [(5, 2, 1), (4, 2, 0), (9, 3, 1)])
def test_swin_blocks_see_clustered_windows(alpha, stage, first):
    _, swin = build_pair(SwinTransformer, HourglassSwin, SWIN, dict(alpha=alpha, cluster_shape=2, window=3, k=3))
    seen = {}
    for s, st in enumerate(swin.stages):
        for b, block in enumerate(st.blocks):
            block.norm1.register_forward_pre_hook(lambda m, args, key=(s, b): seen.__setitem__(key, args[0].shape[1]))
    x = torch.randn(1, 3, 160, 96)  # stages: 40x24, 20x12, 10x6 (padded to 12x8), 5x3 (padded to 8x4)
    with torch.no_grad():
        outs = swin(x)
    hw = {0: 40 * 24, 1: 20 * 12, 2: 10 * 6, 3: 5 * 3}
    clustered = {2: 6 * 4, 3: 4 * 2}  # each 4 x 4 window (padding included) -> 2 x 2 clusters
    for (s, b), n in seen.items():
        assert n == (clustered[s] if (s == stage and b >= first) else hw[s]), (s, b, n)
    assert [tuple(o.shape[2:]) for o in outs] == [(40, 24), (20, 12), (10, 6), (5, 3)]


def test_swin_padding_and_shift_mask_switches():
    cfg = dict(alpha=5, cluster_shape=2, window=3, k=3)
    host, swin = build_pair(SwinTransformer, HourglassSwin, SWIN, cfg)
    variants = {}
    for name, extra in dict(
            default={}, pad_clustered=dict(mask_padding=False), legacy=dict(legacy_shift_mask=True)).items():
        model = HourglassSwin(**SWIN, expedite=dict(cfg, **extra))
        model.load_state_dict(host.state_dict())
        variants[name] = model.eval()
    padded, unpadded = torch.randn(1, 3, 80, 112), torch.randn(1, 3, 128, 128)  # stage 2: 5 x 7 / 8 x 8
    with torch.no_grad():
        out = {name: m(padded)[2] for name, m in variants.items()}
        assert not torch.allclose(out['default'], out['pad_clustered'], atol=1e-4)
        assert torch.equal(variants['default'](unpadded)[2], variants['pad_clustered'](unpadded)[2])
        # k // 2 = 1 but the legacy mask uses the host shift 2 (only the second clustered block is shifted)
        assert not torch.allclose(out['default'], out['legacy'], atol=1e-4)


def test_swin_checkpoint_unchanged_and_not_mutated():
    host, swin = build_pair(SwinTransformer, HourglassSwin, SWIN, dict(alpha=5, cluster_shape=2))
    before = {k: v.clone() for k, v in swin.state_dict().items()}
    assert list(before) == list(host.state_dict())
    with torch.no_grad():
        swin(torch.randn(1, 3, 64, 64))
    after = swin.state_dict()
    assert list(after) == list(before) and all(torch.equal(after[k], v) for k, v in before.items())


def test_swin_backward_and_det_variant():
    expedite = dict(alpha=5, cluster_shape=2, window=3, k=3)
    _, swin = build_pair(SwinTransformer, HourglassSwin, SWIN, expedite)
    swin.train()
    x = torch.randn(1, 3, 64, 96)
    # a random probe: the sum of a LayerNorm output over channels has no gradient
    sum((o * torch.randn_like(o)).sum() for o in swin(x)).backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in swin.parameters() if p.requires_grad)
    det = HourglassSwinDet(**SWIN, expedite=expedite)
    det.load_state_dict(swin.state_dict(), strict=True)
    swin.eval()
    det.eval()
    with torch.no_grad():
        for a, b in zip(det(x), swin(x)):
            assert torch.allclose(a, b, atol=1e-6)


def test_swin_config_errors():
    with pytest.raises(AssertionError, match='square'):
        HourglassSwin(**SWIN, expedite=dict(alpha=5, cluster_shape=(2, 3)))
    with pytest.raises(AssertionError, match='k must be'):
        HourglassSwin(**SWIN, expedite=dict(alpha=5, cluster_shape=5))
    with pytest.raises(AssertionError, match='alpha'):
        HourglassSwin(**SWIN, expedite=dict(alpha=10, cluster_shape=2))
    with pytest.raises(ValueError, match='beta'):
        HourglassSwin(**SWIN, expedite=dict(alpha=5, cluster_shape=2, beta=1))
    assert isinstance(
        MODELS.build(dict(type='mmvit_ext.HourglassSwin', **SWIN, expedite=dict(alpha=5, cluster_shape=2))),
        HourglassSwin)


def test_out_channels_and_strides():
    vit = HourglassViT(**VIT, expedite=dict(alpha=2, cluster_shape=(2, 3)))
    swin = HourglassSwin(**SWIN, expedite=dict(alpha=5, cluster_shape=2))
    vit.eval()
    swin.eval()
    with torch.no_grad():
        vit_outs, swin_outs = vit(torch.randn(1, 3, 40, 56)), swin(torch.randn(1, 3, 64, 96))
    assert vit.out_channels == tuple(o.shape[1] for o in vit_outs) == (16, 16, 16)
    assert vit.out_strides == (8, 8, 8)
    assert swin.out_channels == tuple(o.shape[1] for o in swin_outs) == (8, 16, 32, 64)
    assert swin.out_strides == tuple(64 // o.shape[2] for o in swin_outs) == (4, 8, 16, 32)
    assert HourglassSwin(**dict(SWIN, out_indices=(1, 3))).out_strides == (8, 32)


# ------------------------------------------------------------------------------------------------ configs/expedite

CONFIG_DIR = osp.join(osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__)))), 'configs', 'expedite')
HOURGLASS_CONFIGS = sorted(glob.glob(osp.join(CONFIG_DIR, '*-hourglass-*.py')))
# The released settings (docs/models/expedite.md), in the mmvit_ext convention (alpha = blocks at full resolution).
RELEASED = {
    'segmenter': dict(alpha=10, cluster_shape=[28, 28], window=5, iters=5, tau=0.02, k=20),  # Segmenter ADE20K 640
    'ade20k': dict(alpha=7, cluster_shape=8, window=5, iters=5, tau=0.01, k=10),  # Mask2Former Swin-L ADE semantic
    'coco': dict(alpha=12, cluster_shape=8, window=11, iters=5, tau=0.01, k=60),  # Mask2Former Swin-L COCO instance
}
WRAPPER = {
    ('mmseg', 'VisionTransformer'): 'mmvit_ext.HourglassViT',
    ('mmseg', 'SwinTransformer'): 'mmvit_ext.HourglassSwin',
    ('mmdet', 'SwinTransformer'): 'mmvit_ext.HourglassSwinDet',
}


def _lists(obj):
    """Tuples -> lists, so configs compare whatever the parser kept."""
    if isinstance(obj, dict):
        return {k: _lists(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_lists(v) for v in obj]
    return obj


def test_expedite_configs_come_in_pairs():
    plain = sorted(set(glob.glob(osp.join(CONFIG_DIR, '*.py'))) - set(HOURGLASS_CONFIGS))
    assert len(HOURGLASS_CONFIGS) == len(plain) == 6
    assert sorted(re.sub(r'-hourglass-a\d+-\d+x\d+', '', p) for p in HOURGLASS_CONFIGS) == plain


@pytest.mark.parametrize('path', HOURGLASS_CONFIGS, ids=osp.basename)
def test_expedite_config_is_its_plain_twin_plus_the_released_settings(path):
    """Same host arguments, init_cfg/pretrained and everything else as the plain config (so its checkpoints load);
    only the backbone type and the ``expedite`` dict differ, and those hold the released hyper-parameters."""
    plain_path = re.sub(r'-hourglass-a\d+-\d+x\d+', '', path)
    with open(path) as f:
        assert f"_base_ = './{osp.basename(plain_path)}'" in f.read()
    cfg, plain = _lists(Config.fromfile(path).to_dict()), _lists(Config.fromfile(plain_path).to_dict())
    backbone, plain_backbone = cfg['model'].pop('backbone'), plain['model'].pop('backbone')
    assert backbone.pop('type') == WRAPPER[(plain['default_scope'], plain_backbone.pop('type'))]
    expedite = backbone.pop('expedite')
    assert backbone == plain_backbone
    assert cfg.pop('custom_imports') == dict(imports=['mmvit_ext'], allow_failed_imports=False)
    assert cfg == plain
    setting = next(key for key in RELEASED if key in osp.basename(path))
    assert {k: expedite[k] for k in RELEASED[setting]} == RELEASED[setting]
    shape = RELEASED[setting]['cluster_shape']
    h, w = shape if isinstance(shape, list) else (shape, shape)
    assert f"-hourglass-a{expedite['alpha']}-{h}x{w}_" in osp.basename(path)
