"""P2T specifics: parameter counts, pooled sizes (round-half-even, clamp), stage sizes, export, freezing semantics.

The generic contract (shapes, gradients, with_cp, norm_eval, round trips, bad args) is in ``test_common.py``;
exactness against the official architecture is in ``tests/test_converters/test_p2t.py``.
"""
import io
import warnings

import pytest
import torch

from mmvit_ext.models.backbones import P2T
from mmvit_ext.models.layers import pyramid_pool_sizes

SMALL_ARCH = dict(embed_dims=[16, 32, 40, 64], depths=[1, 1, 1, 1], num_heads=[1, 2, 5, 8], mlp_ratios=[2, 2, 2, 2])

# backbone params, + 1000-class Linear head, state-dict tensors (official count minus head.weight/head.bias)
COUNTS = {
    'tiny': (11_205_840, 11_590_840, 282),
    'small': (23_566_848, 24_079_848, 336),
    'base': (35_553_408, 36_066_408, 552),
    'large': (53_836_096, 54_477_096, 786),
}


@pytest.mark.parametrize('arch', sorted(COUNTS))
def test_parameter_and_tensor_counts(arch):
    with torch.device('meta'):
        model = P2T(arch)
    backbone, with_head, tensors = COUNTS[arch]
    n = sum(p.numel() for p in model.parameters())
    assert n == backbone
    assert n + model.out_channels[-1] * 1000 + 1000 == with_head
    assert len(model.state_dict()) == tensors
    assert not list(model.buffers())
    alias = P2T.arch_zoo[arch[0]]
    assert alias == P2T.arch_zoo[arch]


def _kv_token_counts(model, x):
    """Number of key/value tokens of the first block of every stage, read from the ``attn.kv`` input."""
    counts = []
    hooks = [
        stage.blocks[0].attn.kv.register_forward_hook(lambda m, i, o: counts.append(i[0].shape[1]))
        for stage in model.stages
    ]
    with torch.no_grad():
        outs = model(x)
    for h in hooks:
        h.remove()
    return counts, outs


@pytest.mark.parametrize(
    'size, expected',
    [
        ((224, 224), [54, 54, 54, 73]),
        # 800x608: stage maps 200x152, 100x76, 50x38, 25x19 hit x.5 at every stage: 12.5 -> 12 and 9.5 -> 10
        # (floor(x + 0.5) would give 13 x 10 and count 479/479/479/683)
        ((800, 608), [469, 469, 469, 673]),
        # the official minimum, 65 px: stage maps 17, 9, 5, 3; round(3 / 4) = 1
        ((65, 65), [4, 7, 7, 15]),
    ])
def test_kv_token_counts_in_the_model(size, expected):
    model = P2T(SMALL_ARCH).eval()
    counts, outs = _kv_token_counts(model, torch.randn(1, 3, *size))
    assert counts == expected
    assert all(torch.isfinite(o).all() for o in outs)


@pytest.mark.parametrize('hw, expected', [((512, 512), [246, 246, 246, 361]), ((800, 1344), [1010, 1010, 1010, 1474])])
def test_kv_token_counts_at_dense_sizes(hw, expected):
    counts = []
    for i, ratios in enumerate(P2T.default_pool_ratios):
        stage_hw = [-(-s // (4 * 2**i)) for s in hw]
        counts.append(sum(h * w for h, w in pyramid_pool_sizes(stage_hw, ratios)))
    assert counts == expected


@pytest.mark.parametrize(
    'size, expected',
    [
        (223, [56, 28, 14, 7]),
        (225, [57, 29, 15, 8]),
        (100, [25, 13, 7, 4]),
        (65, [17, 9, 5, 3]),  # the smallest valid input
    ])
def test_stage_sizes_follow_the_conv(size, expected):
    model = P2T(SMALL_ARCH).eval()
    with torch.no_grad():
        outs = model(torch.randn(1, 3, size, size + 1))
    assert [o.shape[-2] for o in outs] == expected
    assert [o.shape[1] for o in outs] == SMALL_ARCH['embed_dims']


def test_layer_norm_eps_and_activation():
    model = P2T(SMALL_ARCH)
    stage = model.stages[1]
    assert stage.downsample.norm.eps == 1e-5
    assert stage.blocks[0].norm1.eps == stage.blocks[0].norm2.eps == 1e-6
    assert stage.blocks[0].attn.norm.eps == 1e-5
    assert isinstance(stage.blocks[0].mlp.act1, torch.nn.Hardswish)
    assert stage.downsample.proj.kernel_size == (3, 3) and model.stages[0].downsample.proj.kernel_size == (7, 7)
    assert [len(s.pool_convs) for s in model.stages] == [4, 4, 4, 4]
    assert model.out_strides == (4, 8, 16, 32)


def test_drop_path_schedule_and_dead_dropouts():
    model = P2T('tiny', drop_path_rate=0.3)
    rates = [
        blk.drop_path.drop_prob if hasattr(blk.drop_path, 'drop_prob') else 0. for stage in model.stages
        for blk in stage.blocks
    ]
    torch.testing.assert_close(torch.tensor(rates), torch.linspace(0, 0.3, 13))
    attn = model.stages[0].blocks[0].attn
    assert attn.attn_drop_rate == 0. and attn.proj_drop.p == 0.


def test_frozen_stages_zero_freezes_only_the_first_patch_embedding():
    model = P2T(SMALL_ARCH, frozen_stages=0).train()
    frozen = {n for n, p in model.named_parameters() if not p.requires_grad}
    assert frozen == {n for n, _ in model.named_parameters() if n.startswith('stages.0.downsample.')}
    assert not model.stages[0].downsample.training and model.stages[0].blocks.training


def _assert_official_init(model):
    q = model.stages[3].blocks[0].attn.q
    assert q.bias.abs().max() == 0
    # trunc_normal_(std=.02) with the official (absolute) bounds +-2, i.e. practically N(0, 0.02)
    assert 0.018 < q.weight.std() < 0.022 and q.weight.mean().abs() < 0.002
    ln = model.stages[3].blocks[0].norm1
    assert torch.equal(ln.weight, torch.ones_like(ln.weight)) and ln.bias.abs().max() == 0


@pytest.mark.parametrize(
    'init_cfg', [None, [], dict(type='Constant', layer='Conv2d', val=0.)], ids=['none', 'empty', 'adds-an-entry'])
def test_init_cfg_without_pretrained_keeps_the_official_init(init_cfg):
    """``init_cfg=None`` (from scratch, as the missing-weights message suggests) or extra entries must not fall
    back to PyTorch's defaults (q.weight std 0.083 at 384 channels instead of 0.02); added entries apply on top."""
    model = P2T('tiny', init_cfg=init_cfg)
    model.init_weights()
    _assert_official_init(model)
    conv = model.stages[0].downsample.proj
    assert (conv.weight.abs().max() == 0) == isinstance(init_cfg, dict)
    if isinstance(init_cfg, dict):
        return  # zero convs: zero features
    # features at initialisation in a sane range: unit-scale input, every stage output of order one
    with torch.no_grad():
        outs = model.eval()(torch.randn(2, 3, 96, 96))
    for out in outs:
        assert torch.isfinite(out).all() and 0.05 < out.std() < 20


def test_default_init():
    model = P2T(SMALL_ARCH)
    model.init_weights()
    q = model.stages[3].blocks[0].attn.q
    assert q.bias.abs().max() == 0
    # trunc_normal_(std=.02) with the official (absolute) bounds +-2, i.e. practically N(0, 0.02)
    assert 0.018 < q.weight.std() < 0.022 and q.weight.mean().abs() < 0.002
    ln = model.stages[3].blocks[0].norm1
    assert torch.equal(ln.weight, torch.ones_like(ln.weight)) and ln.bias.abs().max() == 0


def test_pool_ratios_validation():
    with pytest.raises(ValueError, match='pool_ratios'):
        P2T(SMALL_ARCH, pool_ratios=[[1, 2]] * 3)
    model = P2T(SMALL_ARCH, pool_ratios=[[8]] * 4).eval()  # the single-pool ablation of the paper
    assert model.min_input_size == 129  # stage 4 needs round(H4 / 8) >= 1, i.e. H4 >= 5
    counts, _ = _kv_token_counts(model, torch.randn(1, 3, 160, 160))  # stage maps 40, 20, 10, 5
    assert counts == [25, 4, 1, 1]


@pytest.fixture(scope='module')
def export_case():
    torch.manual_seed(0)
    model = P2T(SMALL_ARCH).eval()
    x = torch.randn(2, 3, 100, 130)
    with torch.no_grad():
        return model, x, model(x)


def test_jit_trace_equals_eager(export_case):
    model, x, expected = export_case
    with warnings.catch_warnings():
        warnings.simplefilter('ignore', torch.jit.TracerWarning)
        traced = torch.jit.trace(model, x, check_trace=False)  # the check re-runs twice; compared below instead
    with torch.no_grad(), torch.jit.optimized_execution(False):
        outs = traced(x)
    assert len(outs) == 4
    for out, ref in zip(outs, expected):
        torch.testing.assert_close(out, ref, rtol=1e-5, atol=1e-5)


def test_onnx_export_equals_eager(export_case):
    ort = pytest.importorskip('onnxruntime')
    model, x, expected = export_case
    buffer = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')
        torch.onnx.export(model, (x, ), buffer, dynamo=False, opset_version=17, input_names=['x'])
    session = ort.InferenceSession(buffer.getvalue(), providers=['CPUExecutionProvider'])
    outs = session.run(None, {'x': x.numpy()})
    assert [tuple(o.shape) for o in outs] == [tuple(e.shape) for e in expected]
    for out, ref in zip(outs, expected):
        torch.testing.assert_close(torch.from_numpy(out), ref, rtol=1e-4, atol=1e-4)


def test_minimum_input_size_is_65_and_depends_on_out_indices():
    """Below 65 px the official model crashes on an empty pooled map; ours names the minimum instead."""
    model = P2T('tiny').eval()
    assert model.min_input_size == 65
    with pytest.raises(ValueError, match=r'at least 65x65 px, got 64x300'):
        model(torch.randn(1, 3, 64, 300))
    assert P2T('tiny', out_indices=(0, 1, 2)).min_input_size == 49  # stage 4 not computed: stage 1-3 limits
