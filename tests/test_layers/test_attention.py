"""sdpa (fused == eager, scale is a multiplier), ReducedKVAttention with every reducer, pyramid pooling sizes."""
import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from mmvit_ext.models.layers import (AvgPoolSR, ConvSR, PyramidPoolSR, ReducedKVAttention, adaptive_avg_pool2d,
                                     fused_attn_enabled, pyramid_pool_sizes, sdpa, use_fused_attn)


def reference_attention(q, k, v, bias=None, scale=None):
    scale = q.shape[-1]**-0.5 if scale is None else scale
    logits = torch.einsum('bhnd,bhmd->bhnm', q.double(), k.double()) * scale
    if bias is not None:
        logits = logits + bias.double()
    return torch.einsum('bhnm,bhmd->bhnd', logits.softmax(-1), v.double()).float()


@pytest.mark.parametrize('fused', [True, False])
@pytest.mark.parametrize('scale', [None, 0.5, 2.0])
@pytest.mark.parametrize('with_bias', [False, True])
def test_sdpa_matches_reference(fused, scale, with_bias):
    torch.manual_seed(0)
    q, k, v = torch.randn(2, 3, 10, 8), torch.randn(2, 3, 7, 8), torch.randn(2, 3, 7, 5)
    bias = torch.randn(3, 10, 7) if with_bias else None  # (heads, N, M), broadcast over the batch (CMT)
    with use_fused_attn(fused):
        assert fused_attn_enabled() is fused
        out = sdpa(q, k, v, attn_bias=bias, scale=scale)
    assert out.shape == (2, 3, 10, 5)
    torch.testing.assert_close(out, reference_attention(q, k, v, bias, scale), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize('bias_shape', [(3, 10, 7), (2, 3, 10, 7), (2, 1, 10, 7), (1, 1, 1, 7)])
@pytest.mark.parametrize('grad', [False, True])
def test_sdpa_with_a_bias_on_cpu_is_explicit_and_sliced_in_inference(monkeypatch, bias_shape, grad):
    """On CPU a biased sdpa() skips the fused kernel (slower there); in inference it works on slices of query rows,
    in place; any broadcastable bias; the same numbers either way."""
    import mmvit_ext.models.layers.attention as attention
    torch.manual_seed(0)
    q, k, v = torch.randn(2, 3, 10, 8), torch.randn(2, 3, 7, 8), torch.randn(2, 3, 7, 5)
    bias = torch.randn(*bias_shape)
    fused = []
    real = F.scaled_dot_product_attention
    monkeypatch.setattr(attention.F, 'scaled_dot_product_attention', lambda *a, **kw: fused.append(1) or real(*a, **kw))
    monkeypatch.setattr(attention, 'ATTN_CHUNK_ELEMENTS', 3 * 7 * 2 * 4)  # slices of 4 query rows: 4 + 4 + 2
    q.requires_grad_(grad)
    with torch.set_grad_enabled(grad):
        out = sdpa(q, k, v, attn_bias=bias)
    assert fused == []
    torch.testing.assert_close(out, reference_attention(q.detach(), k, v, bias), rtol=1e-5, atol=1e-5)
    sdpa(q, k, v)  # without a bias the fused kernel runs
    assert fused == [1]


def test_scale_is_a_multiplier_not_a_divisor():
    torch.manual_seed(0)
    q, k, v = torch.randn(1, 1, 6, 4), torch.randn(1, 1, 5, 4), torch.randn(1, 1, 5, 4)
    for fused in (True, False):
        with use_fused_attn(fused):
            out = sdpa(q, k, v, scale=3.0)
        torch.testing.assert_close(out, reference_attention(q, k, v, scale=3.0), rtol=1e-5, atol=1e-5)
        assert not torch.allclose(out, reference_attention(q, k, v, scale=1 / 3.0), atol=1e-3)


def test_use_fused_attn_restores_previous_state():
    assert fused_attn_enabled()
    with use_fused_attn(False):
        with use_fused_attn(True):
            assert fused_attn_enabled()
        assert not fused_attn_enabled()
    assert fused_attn_enabled()


def test_sdpa_dropout_only_on_eager_weights():
    torch.manual_seed(0)
    q, k, v = torch.randn(1, 1, 4, 4), torch.randn(1, 1, 64, 4), torch.ones(1, 1, 64, 4)
    with use_fused_attn(False):
        out = sdpa(q, k, v, dropout_p=0.5)
    # rows of the dropped-out attention no longer sum to 1, so the constant values do not come back unchanged
    assert not torch.allclose(out, torch.ones_like(out))


def _p2t_convs(channels, n):
    return nn.ModuleList(nn.Conv2d(channels, channels, 3, padding=1, groups=channels) for _ in range(n))


# (reducer factory, reducer kwargs factory, tokens for a 13x17 map with 16 channels)
REDUCERS = {
    'none': (lambda c: None, lambda c: {}, 13 * 17),
    'conv_sr': (lambda c: ConvSR(c, sr_ratio=4), lambda c: {}, 3 * 4),
    'dw_conv_sr_bn': (lambda c: ConvSR(c, sr_ratio=2, depthwise=True, norm_cfg=dict(type='BN')), lambda c: {}, 6 * 8),
    'avg_pool_sr': (lambda c: AvgPoolSR(c, pool_size=7), lambda c: {}, 49),
    # 13x17 at ratios 2, 3, 5: round(6.5)=6 x round(8.5)=8, 4 x 6, 3 x 3
    'pyramid_pool_sr': (lambda c: PyramidPoolSR((2, 3, 5)), lambda c: {
        'pool_convs': _p2t_convs(c, 3)
    }, 48 + 24 + 9),
}


@pytest.mark.parametrize('name', sorted(REDUCERS))
def test_reduced_kv_attention_fused_equals_eager(name):
    torch.manual_seed(0)
    make_reducer, make_kwargs, num_kv = REDUCERS[name]
    C, hw = 16, (13, 17)
    attn = ReducedKVAttention(C, num_heads=2, kv_reducer=make_reducer(C), kv_norm_cfg=dict(type='LN')).eval()
    kwargs = make_kwargs(C)
    x = torch.randn(2, hw[0] * hw[1], C)
    seen = []
    attn.kv.register_forward_hook(lambda m, inp, out: seen.append(inp[0].shape))  # list.append returns None
    with torch.no_grad():
        with use_fused_attn(True):
            fused = attn(x, hw, **kwargs)
        with use_fused_attn(False):
            eager = attn(x, hw, **kwargs)
    assert fused.shape == x.shape
    assert seen == [(2, num_kv, C)] * 2
    torch.testing.assert_close(fused, eager, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize('name', ['conv_sr', 'dw_conv_sr_bn', 'avg_pool_sr', 'pyramid_pool_sr'])
def test_reducer_shapes(name):
    make_reducer, make_kwargs, num_kv = REDUCERS[name]
    out = make_reducer(16)(torch.randn(2, 16, 13, 17), **make_kwargs(16))
    assert out.shape == (2, num_kv, 16)


@pytest.mark.parametrize('size, expected', [((13, 17), (4, 5)), ((12, 16), (3, 4))])
def test_conv_sr_ceil_mode_pads_bottom_right(size, expected):
    """CMT's reduction keeps every row and column: a zero-padded ceil grid; multiples of sr are not padded."""
    torch.manual_seed(0)
    sr = ConvSR(6, sr_ratio=4, depthwise=True, ceil_mode=True)
    x = torch.randn(2, 6, *size)
    out = sr(x)
    assert out.shape == (2, expected[0] * expected[1], 6)
    padded = F.pad(x, (0, -size[1] % 4, 0, -size[0] % 4))
    ref = F.conv2d(padded, sr.conv.weight, sr.conv.bias, stride=4, groups=6).flatten(2).transpose(1, 2)
    torch.testing.assert_close(out, ref)
    assert ConvSR(6, sr_ratio=4)(x).shape[1] == (size[0] // 4) * (size[1] // 4)  # PVT: floor


@pytest.mark.parametrize('sr_ratio', [8, 4, 2])
@pytest.mark.parametrize('size', [(32, 32), (33, 47), (57, 18)])
def test_conv_sr_overlapping_kernel_gives_ceil_grid(sr_ratio, size):
    """ResT's reduction: depthwise kernel sr + 1, padding sr // 2, stride sr -> ceil(H / sr) at every size."""
    torch.manual_seed(0)
    sr = ConvSR(6, sr_ratio=sr_ratio, kernel_size=sr_ratio + 1, padding=sr_ratio // 2, depthwise=True)
    assert tuple(sr.conv.weight.shape) == (6, 1, sr_ratio + 1, sr_ratio + 1)
    x = torch.randn(2, 6, *size)
    out = sr(x)
    grid = [-(-s // sr_ratio) for s in size]
    assert out.shape == (2, grid[0] * grid[1], 6)
    ref = F.conv2d(x, sr.conv.weight, sr.conv.bias, stride=sr_ratio, padding=sr_ratio // 2, groups=6)
    torch.testing.assert_close(out, ref.flatten(2).transpose(1, 2))


def test_conv_sr_ceil_mode_needs_the_default_kernel():
    with pytest.raises(ValueError, match='ceil_mode pads to multiples of the stride'):
        ConvSR(6, sr_ratio=4, kernel_size=5, padding=2, ceil_mode=True)


def test_attn_bias_flows_through_reduced_kv_attention():
    """CMT adds a relative-position bias (heads, N, M) to the logits: it must reach sdpa and get a gradient."""
    torch.manual_seed(0)
    C, heads, hw = 8, 2, (4, 6)
    attn = ReducedKVAttention(C, num_heads=heads, kv_reducer=ConvSR(C, sr_ratio=2, depthwise=True)).eval()
    x = torch.randn(1, 24, C)
    bias = torch.randn(heads, 24, 6, requires_grad=True)
    for fused in (True, False):
        with use_fused_attn(fused):
            out = attn(x, hw, attn_bias=bias)
        # manual computation
        q = attn.q(x).view(1, 24, heads, 4).transpose(1, 2)
        kv = attn.kv(attn.sr(x.transpose(1, 2).reshape(1, C, *hw))).view(1, 6, 2, heads, 4).permute(2, 0, 3, 1, 4)
        ref = reference_attention(q, kv[0], kv[1], bias).transpose(1, 2).reshape(1, 24, C)
        torch.testing.assert_close(out, attn.proj(ref), rtol=1e-4, atol=1e-5)
    out.sum().backward()
    assert bias.grad is not None and bias.grad.abs().sum() > 0


def test_kv_split_order_keys_first_then_values():
    """kv output channels [0:C] are keys, [C:2C] values: zero keys give uniform attention = mean of values."""
    torch.manual_seed(0)
    C = 4
    attn = ReducedKVAttention(C, num_heads=1, kv_reducer=None).eval()
    with torch.no_grad():
        attn.kv.weight.zero_()
        attn.kv.bias.zero_()
        attn.kv.weight[C:] = torch.eye(C)  # values = tokens, keys = 0
        attn.proj.weight.copy_(torch.eye(C))
        attn.proj.bias.zero_()
    x = torch.randn(1, 6, C)
    out = attn(x, (2, 3))
    torch.testing.assert_close(out, x.mean(1, keepdim=True).expand_as(x), rtol=1e-5, atol=1e-6)


def test_reducer_kwargs_without_reducer_raise():
    attn = ReducedKVAttention(8, num_heads=2)
    with pytest.raises(AssertionError, match='no kv_reducer'):
        attn(torch.randn(1, 4, 8), (2, 2), pool_convs=[])


def test_constructor_is_keyword_only_and_checks_heads():
    with pytest.raises(TypeError):
        ReducedKVAttention(8, 2)  # num_heads must be named
    with pytest.raises(AssertionError, match='not divisible'):
        ReducedKVAttention(10, num_heads=3)


@pytest.mark.parametrize(
    'hw, ratios, expected',
    [
        # round-half-to-even: 12.5 -> 12, 9.5 -> 10, 3.5 -> 4, 0.5 -> 0 (clamped to 1)
        ((200, 152), (12, 16, 20, 24), [(17, 13), (12, 10), (10, 8), (8, 6)]),
        ((25, 19), (1, 2, 3, 4), [(25, 19), (12, 10), (8, 6), (6, 5)]),
        ((7, 7), (1, 2, 3, 4), [(7, 7), (4, 4), (2, 2), (2, 2)]),
        ((2, 2), (1, 2, 3, 4), [(2, 2), (1, 1), (1, 1), (1, 1)]),
        ((1, 1), (12, 16), [(1, 1), (1, 1)]),
    ])
def test_pyramid_pool_sizes_round_half_even_and_clamp(hw, ratios, expected):
    assert pyramid_pool_sizes(hw, ratios) == expected


def test_pyramid_pool_sr_levels_and_residual_conv():
    """Each level is pool + conv(pool), flattened row-major, levels concatenated in ratio order."""
    torch.manual_seed(0)
    x = torch.randn(1, 3, 9, 11)
    convs = _p2t_convs(3, 2)
    out = PyramidPoolSR((3, 4))(x, pool_convs=convs)
    expected = []
    for size, conv in zip([(3, 4), (2, 3)], convs):  # round(9/3)=3, round(11/3)=4; round(2.25)=2, round(2.75)=3
        p = F.adaptive_avg_pool2d(x, size)
        expected.append((p + conv(p)).flatten(2).transpose(1, 2))
    torch.testing.assert_close(out, torch.cat(expected, 1))
    with pytest.raises(AssertionError, match='pool_convs'):
        PyramidPoolSR((3, 4))(x, pool_convs=convs[:1])


@pytest.mark.parametrize('size, out', [((56, 56), (5, 5)), ((13, 17), (4, 6)), ((7, 9), (7, 9)), ((10, 3), (1, 1))])
def test_adaptive_pool_export_path_matches_torch(monkeypatch, size, out):
    """The constant-matrix path used during ONNX export reproduces PyTorch's adaptive-pool bins."""
    x = torch.randn(2, 3, *size)
    expected = F.adaptive_avg_pool2d(x, out)
    monkeypatch.setattr(torch.onnx, 'is_in_onnx_export', lambda: True)
    torch.testing.assert_close(adaptive_avg_pool2d(x, out), expected, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize('heads', [1, 4])
def test_head_mixing_is_rest_v1_attention(heads):
    """ResT v1's EMSA: logits * d^-0.5 -> 1x1 conv over heads -> softmax -> InstanceNorm per head map -> @ v,
    against a naive float64 reference; one head is plain softmax attention (no transform modules)."""
    torch.manual_seed(0)
    C, hw, r = 8 * heads, (9, 13), 4
    attn = ReducedKVAttention(
        C,
        num_heads=heads,
        kv_reducer=ConvSR(C, sr_ratio=r, kernel_size=r + 1, padding=r // 2, depthwise=True),
        kv_norm_cfg=dict(type='LN'),
        head_mixing=True).double()
    assert hasattr(attn, 'transform_conv') == (heads > 1)
    x = torch.randn(2, hw[0] * hw[1], C, dtype=torch.float64, requires_grad=True)
    out = attn(x, hw)

    B, N, _ = x.shape
    d = C // heads
    q = attn.q(x).view(B, N, heads, d).transpose(1, 2)
    m = x.transpose(1, 2).reshape(B, C, *hw)
    red = F.conv2d(m, attn.sr.conv.weight, attn.sr.conv.bias, stride=r, padding=r // 2, groups=C)
    red = attn.norm(red.flatten(2).transpose(1, 2))
    kv = attn.kv(red).view(B, -1, 2, heads, d).permute(2, 0, 3, 1, 4)
    logits = q @ kv[0].transpose(-2, -1) * d**-0.5
    if heads > 1:
        logits = F.conv2d(logits, attn.transform_conv.weight, attn.transform_conv.bias)
        weights = logits.softmax(-1)
        mean = weights.mean(dim=(2, 3), keepdim=True)
        var = weights.var(dim=(2, 3), unbiased=False, keepdim=True)
        weights = (weights - mean) / torch.sqrt(var + 1e-5)
    else:
        weights = logits.softmax(-1)
    ref = attn.proj((weights @ kv[1]).transpose(1, 2).reshape(B, N, C))
    torch.testing.assert_close(out, ref, rtol=1e-10, atol=1e-12)
    out.pow(2).sum().backward()
    if heads > 1:
        assert attn.transform_conv.weight.grad.abs().sum() > 0


@pytest.mark.parametrize('r, hw', [(4, (16, 12)), (4, (13, 18)), (2, (7, 9)), (1, (5, 6))])
def test_upsample_branch_is_rest_v2_attention(r, hw):
    """ResT v2's EMSAv2: proj(attn @ v + up_norm(crop(PixelShuffle(dwconv(v_map))))) against a naive float64
    reference, at multiples of r (the official sizes) and not (the ceil grid, cropped)."""
    torch.manual_seed(0)
    C, heads = 8, 2
    reducer = ConvSR(C, sr_ratio=r, kernel_size=r + 1, padding=r // 2, depthwise=True) if r > 1 else None
    attn = ReducedKVAttention(
        C,
        num_heads=heads,
        kv_reducer=reducer,
        kv_norm_cfg=dict(type='LN', eps=1e-6) if r > 1 else None,
        upsample_ratio=r).double()
    assert tuple(attn.up[0].weight.shape) == (r * r * C, 1, 3, 3)
    x = torch.randn(2, hw[0] * hw[1], C, dtype=torch.float64)
    out = attn(x, hw)

    B, N, _ = x.shape
    d = C // heads
    red = x
    if r > 1:
        m = x.transpose(1, 2).reshape(B, C, *hw)
        red = F.conv2d(m, attn.sr.conv.weight, attn.sr.conv.bias, stride=r, padding=r // 2, groups=C)
        red = attn.norm(red.flatten(2).transpose(1, 2))
    k, v = attn.kv(red).view(B, -1, 2, heads, d).permute(2, 0, 3, 1, 4)
    q = attn.q(x).view(B, N, heads, d).transpose(1, 2)
    o = ((q @ k.transpose(-2, -1) * d**-0.5).softmax(-1) @ v).transpose(1, 2).reshape(B, N, C)
    grid = (-(-hw[0] // r), -(-hw[1] // r))
    v_map = v.permute(0, 1, 3, 2).reshape(B, C, *grid)  # channel head * d + j
    up = F.conv2d(v_map, attn.up[0].weight, attn.up[0].bias, padding=1, groups=C)
    up = F.pixel_shuffle(up, r)[:, :, :hw[0], :hw[1]]
    ref = attn.proj(o + attn.up_norm(up.flatten(2).transpose(1, 2)))
    torch.testing.assert_close(out, ref, rtol=1e-10, atol=1e-12)


def test_upsample_branch_needs_the_ceil_grid():
    attn = ReducedKVAttention(8, num_heads=2, kv_reducer=ConvSR(8, sr_ratio=4), upsample_ratio=4)  # floor grid
    with pytest.raises(ValueError, match='needs the reduced grid ceil'):
        attn(torch.randn(1, 13 * 18, 8), (13, 18))
    with pytest.raises(ValueError, match='upsample_ratio must be an int >= 1'):
        ReducedKVAttention(8, num_heads=2, upsample_ratio=0)
