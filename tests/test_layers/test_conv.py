"""ConvStem (conv -> norm/act in either order), ResidualDWConv (x + dwconv(x) on tokens) and PixelAttention
(x * sigmoid(dwconv(x)))."""
import torch
import torch.nn.functional as F

from mmvit_ext.models.layers import ConvStem, PixelAttention, ResidualDWConv, nchw_to_nlc, nlc_to_nchw


def test_conv_stem_order_strides_and_keys():
    torch.manual_seed(0)
    stem = ConvStem(
        3, channels=(4, 4, 6), strides=(2, 1, 2), bias=True, act_cfg=dict(type='GELU'),
        order=('conv', 'act', 'norm')).eval()
    with torch.no_grad():
        for layer in stem:
            layer.bn.running_mean.normal_()
            layer.bn.weight.normal_()
    assert stem.out_channels == 6
    assert {'0.conv.weight', '0.conv.bias', '0.bn.running_var', '2.conv.bias'} <= set(stem.state_dict())
    x = torch.randn(2, 3, 17, 20)
    ref = x
    for layer in stem:  # conv -> GELU -> BN, by hand
        conv, bn = layer.conv, layer.bn
        ref = F.gelu(F.conv2d(ref, conv.weight, conv.bias, stride=conv.stride, padding=1))
        ref = F.batch_norm(ref, bn.running_mean, bn.running_var, bn.weight, bn.bias, eps=bn.eps)
    with torch.no_grad():
        out = stem(x)
    assert out.shape == (2, 6, 5, 5)  # ceil(ceil(17 / 2) / 2), ceil(ceil(20 / 2) / 2)
    torch.testing.assert_close(out, ref)
    resnet_like = ConvStem(3, channels=(4, ), strides=(2, ))
    assert resnet_like[0].conv.bias is None and resnet_like[0].order == ('conv', 'norm', 'act')


def test_conv_stem_plain_last_conv_is_rest_v1_stem():
    """ResT v1: conv-BN-ReLU (s2), conv-BN-ReLU (s1), then a plain conv (s2) without norm or activation."""
    torch.manual_seed(0)
    stem = ConvStem(3, channels=(4, 4, 8), strides=(2, 1, 2), last_norm_act=False).eval()
    assert not any(k.startswith('2.bn') for k in stem.state_dict()) and '1.bn.weight' in stem.state_dict()
    assert stem[2].conv.bias is None
    x = torch.randn(2, 3, 17, 20)
    ref = x
    for i, layer in enumerate(stem):
        conv = layer.conv
        ref = F.conv2d(ref, conv.weight, None, stride=conv.stride, padding=1)
        if i < 2:
            bn = layer.bn
            ref = F.relu(F.batch_norm(ref, bn.running_mean, bn.running_var, bn.weight, bn.bias, eps=bn.eps))
    with torch.no_grad():
        out = stem(x)
    assert out.shape == (2, 8, 5, 5)
    torch.testing.assert_close(out, ref)


def test_residual_dw_conv_on_tokens():
    torch.manual_seed(0)
    lpu = ResidualDWConv(5)
    x = torch.randn(2, 6 * 7, 5)
    out = lpu(x, (6, 7))
    m = x.transpose(1, 2).reshape(2, 5, 6, 7)
    ref = (F.conv2d(m, lpu.conv.weight, lpu.conv.bias, padding=1, groups=5) + m).flatten(2).transpose(1, 2)
    torch.testing.assert_close(out, ref)
    assert out.is_contiguous()  # a view of the channels-last map: tokens without a copy
    assert torch.equal(nchw_to_nlc(nlc_to_nchw(out, (6, 7))), out)


def test_pixel_attention_gates_each_pixel_and_keeps_the_layout():
    """ResT's PA: x * sigmoid(depthwise 3x3(x)); the same in inference (in place) and with autograd, and a
    channels-last input stays channels-last."""
    torch.manual_seed(0)
    pa = PixelAttention(5)
    assert set(pa.state_dict()) == {'pa_conv.weight', 'pa_conv.bias'}
    x = torch.randn(2, 5, 6, 7)
    ref = x * torch.sigmoid(F.conv2d(x, pa.pa_conv.weight, pa.pa_conv.bias, padding=1, groups=5))
    xg = x.clone().requires_grad_()
    out = pa(xg)
    torch.testing.assert_close(out, ref)
    out.sum().backward()
    assert xg.grad is not None and pa.pa_conv.weight.grad.abs().sum() > 0
    x_cl = x.contiguous(memory_format=torch.channels_last)
    with torch.no_grad():
        inference = pa(x_cl)
    torch.testing.assert_close(inference, ref)
    assert inference.is_contiguous(memory_format=torch.channels_last)
    torch.testing.assert_close(x_cl, x)  # the input is not overwritten


def test_layer_norm_2d_normalises_channels_at_each_pixel():
    from mmvit_ext.models.layers import LayerNorm2d
    torch.manual_seed(0)
    norm = LayerNorm2d(6)
    with torch.no_grad():
        norm.weight.normal_()
        norm.bias.normal_()
    x = torch.randn(2, 6, 5, 7, dtype=torch.float64)
    norm = norm.double()
    mean = x.mean(1, keepdim=True)
    var = x.var(1, unbiased=False, keepdim=True)
    ref = (x - mean) / torch.sqrt(var + 1e-6) * norm.weight.view(1, -1, 1, 1) + norm.bias.view(1, -1, 1, 1)
    torch.testing.assert_close(norm(x), ref)
    out = norm(x.contiguous(memory_format=torch.channels_last))
    torch.testing.assert_close(out, ref)
    assert out.is_contiguous(memory_format=torch.channels_last)
    assert set(norm.state_dict()) == {'weight', 'bias'} and norm.eps == 1e-6
