"""ConvFFN equals a plain NCHW conv reference for the P2T IRB, MixFFN and CMT IRFFN configurations."""
import pytest
import torch
import torch.nn.functional as F

from mmvit_ext.models.layers import ConvFFN


def reference(ffn, x, hw, act, fc1_act, dw_residual):
    """Straightforward NCHW implementation with F.conv2d."""
    B, N, C = x.shape
    y = x.transpose(1, 2).reshape(B, C, *hw)
    y = F.conv2d(y, ffn.fc1.weight, ffn.fc1.bias)
    if fc1_act:
        y = act(y)
    if ffn.norm1 is not None:
        y = ffn.norm1(y)
    z = F.conv2d(y, ffn.conv.weight, ffn.conv.bias, padding=1, groups=y.shape[1])
    if dw_residual:
        z = z + y
    z = act(z)
    if ffn.norm2 is not None:
        z = ffn.norm2(z)
    z = F.conv2d(z, ffn.fc2.weight, ffn.fc2.bias)
    if ffn.norm3 is not None:
        z = ffn.norm3(z)
    return z.flatten(2).transpose(1, 2)


VARIANTS = {
    'p2t_irb': (dict(act_cfg=dict(type='HSwish')), F.hardswish, True, False),
    'mixffn': (dict(act_cfg=dict(type='GELU'), fc1_act=False), F.gelu, False, False),
    'cmt_irffn': (dict(act_cfg=dict(type='GELU'), dw_residual=True, norm_cfg=dict(type='BN')), F.gelu, True, True),
}


@pytest.mark.parametrize('name', sorted(VARIANTS))
def test_conv_ffn_matches_nchw_reference(name):
    torch.manual_seed(0)
    kwargs, act, fc1_act, dw_residual = VARIANTS[name]
    ffn = ConvFFN(6, hidden_dims=24, **kwargs)
    for m in ffn.modules():  # non-trivial BN statistics
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.normal_()
            m.running_var.uniform_(0.5, 2)
    ffn.eval()
    hw = (5, 7)
    x = torch.randn(2, 35, 6)
    out = ffn(x, hw)
    assert out.shape == (2, 35, 6)
    torch.testing.assert_close(out, reference(ffn, x, hw, act, fc1_act, dw_residual), rtol=1e-5, atol=1e-5)


def test_conv_ffn_keeps_4d_pointwise_kernels_and_names():
    ffn = ConvFFN(8, hidden_dims=32, act_cfg=dict(type='HSwish'))
    shapes = {k: tuple(v.shape) for k, v in ffn.state_dict().items()}
    assert shapes == {
        'fc1.weight': (32, 8, 1, 1),
        'fc1.bias': (32, ),
        'conv.weight': (32, 1, 3, 3),
        'conv.bias': (32, ),
        'fc2.weight': (8, 32, 1, 1),
        'fc2.bias': (8, )
    }
    assert isinstance(ffn.act1, torch.nn.Hardswish) and isinstance(ffn.act2, torch.nn.Hardswish)


def test_conv_ffn_gradients_reach_every_parameter():
    ffn = ConvFFN(4, hidden_dims=8, dw_residual=True, norm_cfg=dict(type='BN'))
    ffn(torch.randn(2, 12, 4), (3, 4)).pow(2).sum().backward()
    for name, p in ffn.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, name


@pytest.mark.parametrize('name', ['p2t_irb', 'mixffn'])
def test_fused_cpu_inference_path_equals_plain_path(name, monkeypatch):
    """Without autograd on CPU the FFN runs oneDNN kernels with bias+activation fused; same numbers."""
    from mmvit_ext.models.layers import ffn as ffn_module
    if not ffn_module._ONEDNN:
        pytest.skip('oneDNN pointwise kernels not available in this torch build')
    torch.manual_seed(0)
    ffn = ConvFFN(8, hidden_dims=32, **VARIANTS[name][0]).eval()
    x, hw = torch.randn(2, 35, 8), (5, 7)
    plain = ffn(x, hw)  # autograd on: plain path
    calls = []
    original = ConvFFN._forward_onednn
    monkeypatch.setattr(ConvFFN, '_forward_onednn', lambda self, t: calls.append(1) or original(self, t))
    with torch.no_grad():
        fused = ffn(x, hw)
    assert calls == [1]
    torch.testing.assert_close(fused, plain, rtol=1e-5, atol=1e-5)
    # large batches run in micro-batches (here 2 images of 5x7x32 hidden elements each)
    monkeypatch.setattr(ffn_module, '_ONEDNN_CHUNK_ELEMENTS', 2 * 35 * 32)
    x5 = torch.randn(5, 35, 8)
    with torch.no_grad():
        chunked = ffn(x5, hw)
    assert calls == [1, 1, 1, 1, 1]  # the whole batch, then 3 micro-batches (2 + 2 + 1)
    torch.testing.assert_close(chunked, ffn._forward_plain(x5.view(5, 5, 7, 8)).reshape(5, 35, 8), rtol=1e-5, atol=1e-5)
    # norms or the depthwise residual keep the plain path
    assert ConvFFN(8, hidden_dims=32, dw_residual=True)._onednn_act is None


def test_recompute_act_same_gradients_and_keeps_only_products(monkeypatch):
    """Selective recomputation keeps the fc1/conv/fc2 outputs and recomputes the activations; the values and
    gradients do not change."""
    from mmvit_ext.models.layers import ffn as ffn_module
    decisions = []
    policy = ffn_module._keep_products

    def recording_policy(ctx, op, *args, **kwargs):
        decision = policy(ctx, op, *args, **kwargs)
        decisions.append((str(op), decision.name, ctx.is_recompute))
        return decision

    monkeypatch.setattr(ffn_module, '_keep_products', recording_policy)
    x = torch.randn(2, 12 * 10, 8)
    results = []
    for recompute in (False, True):
        torch.manual_seed(0)
        ffn = ConvFFN(8, hidden_dims=64, act_cfg=dict(type='HSwish'), recompute_act=recompute)
        xi = x.clone().requires_grad_()
        out = ffn(xi, (12, 10))
        out.pow(2).sum().backward()
        results.append((out.detach(), xi.grad, [p.grad for p in ffn.parameters()]))
    (out0, xg0, pg0), (out1, xg1, pg1) = results
    torch.testing.assert_close(out0, out1)
    torch.testing.assert_close(xg0, xg1)
    for a, b in zip(pg0, pg1):
        torch.testing.assert_close(a, b)
    forward = {(name, decision) for name, decision, is_recompute in decisions if not is_recompute}
    assert {('aten.addmm.default', 'MUST_SAVE'), ('aten.convolution.default', 'MUST_SAVE'),
            ('aten.hardswish.default', 'PREFER_RECOMPUTE')} <= forward
    assert {name for name, _, is_recompute in decisions if is_recompute} >= {'aten.hardswish.default'}
    assert ConvFFN(8, hidden_dims=16).recompute_act
    assert not ConvFFN(8, hidden_dims=16, norm_cfg=dict(type='BN')).recompute_act
