"""ConvPoolNeck: conv -> norm -> act -> pool (in that order, unlike a pool-first LinearNeck) -> dropout."""
import torch
import torch.nn.functional as F

from mmvit_ext.models.necks import ConvPoolNeck


def test_conv_pool_neck_order_and_inputs():
    torch.manual_seed(0)
    neck = ConvPoolNeck(6, 10, dropout=0.5).eval()
    with torch.no_grad():
        neck.norm.running_mean.normal_()
        neck.norm.weight.normal_()
    x = torch.randn(2, 6, 5, 7)
    z = F.batch_norm(
        F.conv2d(x, neck.conv.weight, neck.conv.bias), neck.norm.running_mean, neck.norm.running_var, neck.norm.weight,
        neck.norm.bias)
    expected = (z * torch.sigmoid(z)).mean((2, 3))  # Swish before pooling
    with torch.no_grad():
        outs = neck((x, x + 1))
        torch.testing.assert_close(outs[0], expected)
        torch.testing.assert_close(neck(x), expected)
    assert len(outs) == 2 and outs[1].shape == (2, 10)
    assert not torch.allclose(expected,
                              F.silu(
                                  F.batch_norm(
                                      F.conv2d(x.mean((2, 3), keepdim=True), neck.conv.weight,
                                               neck.conv.bias), neck.norm.running_mean, neck.norm.running_var,
                                      neck.norm.weight, neck.norm.bias)).flatten(1))  # pooling first differs
    assert neck.train()(x).eq(0).any()  # dropout in training
    bare = ConvPoolNeck(6, 10, norm_cfg=None, act_cfg=None)
    assert bare.norm is None and bare.act is None and bare(x).shape == (2, 10)
