"""CMT specifics: the official parameter counts, the per-stage relative-position bias at the training size and
at other sizes, ceil-mode padding for sizes that are not multiples of 32, and the arch checks. Official-output parity
is in tests/test_converters/test_cmt.py, the common battery in test_common.py."""
import io
import warnings

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

import mmvit_ext.models.layers.pos_bias as pos_bias
from mmvit_ext.models.backbones import CMT
from mmvit_ext.models.necks import ConvPoolNeck
from mmvit_ext.utils.errors import ConfigError

SHALLOW = dict(embed_dims=[16, 32, 48, 64], depths=[1, 2, 1, 1], num_heads=[1, 2, 4, 8],
               mlp_hidden_dims=[30, 60, 90, 130], stem_channels=8)  # yapf: disable


def count(*modules):
    return sum(p.numel() for m in modules for p in m.parameters())


@pytest.mark.parametrize('arch, total, entries', [('tiny', 9_492_426, 708), ('xs', 15_247_208, 911),
                                                  ('small', 26_256_160, 1079), ('base', 45_715_076, 1366)])
def test_official_parameter_counts_with_the_classifier_head(arch, total, entries):
    """Spec "Must match": counts with the 1000-class head and the tables at the native resolution, exactly."""
    with torch.device('meta'):
        backbone = CMT(arch, out_indices=(3, ))
        neck, head = ConvPoolNeck(backbone.feature_channels[-1], 1280), nn.Linear(1280, 1000)
    assert count(backbone, neck, head) == total
    blocks = sum(backbone.arch_settings['depths'])
    # the official state dict has separate k and v (one more weight and bias per block) and 9 head entries
    assert len(backbone.state_dict()) + 2 * blocks + 9 == entries


def test_layer_settings_follow_the_paper():
    model = CMT('small')
    assert model.pretrain_img_size == (224, 224)
    assert [tuple(s.relative_pos.table.shape) for s in model.stages] == [(1, 3136, 49), (2, 784, 49), (4, 196, 49),
                                                                         (8, 49, 49)]
    block = model.stages[0].blocks[0]
    assert model.stages[0].downsample.norm.eps == 1e-5 and block.norm1.eps == block.norm2.eps == 1e-6
    assert block.attn.sr.conv.groups == 64 and block.attn.sr.conv.stride == (8, 8)
    assert model.stages[3].blocks[0].attn.sr is None  # sr 1: keys and values from the tokens themselves
    assert block.mlp.conv.out_channels == 256 and block.mlp.dw_residual and block.mlp.act3 is None
    assert [m.bn.eps for m in model.stem] == [1e-5] * 3 and model.stem[0].order == ('conv', 'act', 'norm')
    rates = [b.drop_path.drop_prob for s in model.stages for b in s.blocks if hasattr(b.drop_path, 'drop_prob')]
    assert len(rates) == 24 and rates[-1] == pytest.approx(0.1)
    assert CMT('tiny').pretrain_img_size == (160, 160) and CMT(SHALLOW).pretrain_img_size == (224, 224)


def test_the_training_size_uses_the_tables_as_stored(monkeypatch):
    calls, real = [], pos_bias.resize_query_key_bias

    def spy(*args, **kwargs):
        calls.append(args[3:5])
        return real(*args, **kwargs)

    monkeypatch.setattr(pos_bias, 'resize_query_key_bias', spy)
    model = CMT(SHALLOW, pretrain_img_size=64).eval()
    with torch.no_grad():
        model(torch.randn(1, 3, 64, 64))
        assert calls == []
        model(torch.randn(1, 3, 64, 96))
    assert calls == [((16, 24), (2, 3)), ((8, 12), (2, 3)), ((4, 6), (2, 3)), ((2, 3), (2, 3))]


@pytest.mark.parametrize('size', [(64, 96), (67, 93), (33, 200)])
def test_any_size_with_ceil_padding_only_where_needed(monkeypatch, size):
    """Multiples of 32 are never padded; other sizes pad the bottom/right of the maps that need it."""
    real_pad, pads = F.pad, []

    def spy(x, pad, *args, **kwargs):
        pads.append(tuple(pad))
        return real_pad(x, pad, *args, **kwargs)

    monkeypatch.setattr(F, 'pad', spy)
    model = CMT(SHALLOW, pretrain_img_size=64).eval()
    with torch.no_grad():
        outs = model(torch.randn(1, 3, *size))
    assert [o.shape[-2:] for o in outs] == [(-(-size[0] // s), -(-size[1] // s)) for s in (4, 8, 16, 32)]
    assert all(torch.isfinite(o).all() for o in outs)
    assert (pads == []) == (size[0] % 32 == 0 and size[1] % 32 == 0)
    assert all(p[0] == 0 and p[2] == 0 for p in pads)  # bottom and right only


def test_other_sizes_train_the_tables():
    model = CMT(SHALLOW, pretrain_img_size=64).train()
    model(torch.randn(2, 3, 96, 64))[-1].sum().backward()
    assert all(s.relative_pos.table.grad.abs().sum() > 0 for s in model.stages)


def test_bias_resize_mode_is_an_argument():
    x = torch.randn(1, 3, 96, 96)
    torch.manual_seed(0)
    bicubic = CMT(SHALLOW, pretrain_img_size=64).eval()
    torch.manual_seed(0)
    bilinear = CMT(SHALLOW, pretrain_img_size=64, bias_resize_mode='bilinear').eval()
    assert bilinear.stages[0].relative_pos.resize_mode == 'bilinear'
    with torch.no_grad():
        a, b = bicubic(x)[0], bilinear(x)[0]
        assert not torch.allclose(a, b)
        assert torch.equal(bicubic(x[..., :64, :64])[0], bilinear(x[..., :64, :64])[0])  # no resize at 64


def test_minimum_size_follows_the_deepest_output():
    assert CMT(SHALLOW).min_input_size == 32 and CMT(SHALLOW, out_indices=(0, )).min_input_size == 4
    with pytest.raises(ConfigError, match=r'at least 32x32 px, got 31x64: the stride of output 3, the deepest'):
        CMT(SHALLOW)(torch.randn(1, 3, 31, 64))


@pytest.mark.parametrize('kwargs, match', [
    (dict(arch='cmt-s'), r"unknown arch 'cmt-s'; choose one of \['b', 'base', 's', 'small', 't', 'ti', 'tiny', 'xs'\]"),
    (dict(arch=dict(SHALLOW, num_heads=[1, 2, 5, 8])), r'embed_dims\[2\]=48 is not divisible by num_heads\[2\]=5'),
    (dict(arch=dict(SHALLOW, stem_channels=0)), 'stem_channels'),
    (dict(arch=SHALLOW, sr_ratios=(8, 4, 2)), 'sr_ratios needs one int >= 1 per stage'),
    (dict(arch=SHALLOW, pretrain_img_size=16), 'pretrain_img_size must be at least 32'),
])
def test_bad_arguments_name_the_fix(kwargs, match):
    with pytest.raises(ConfigError, match=match):
        CMT(**kwargs)


@pytest.mark.parametrize('size', [(64, 64), (100, 130)])  # tables as stored; resized tables and ceil padding
def test_jit_trace_and_onnx_export_equal_eager(size):
    torch.manual_seed(0)
    model = CMT(SHALLOW, pretrain_img_size=64).eval()
    x = torch.randn(1, 3, *size)
    with torch.no_grad():
        expected = model(x)
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')
        traced = torch.jit.trace(model, x, check_trace=False)
    with torch.no_grad(), torch.jit.optimized_execution(False):
        for out, ref in zip(traced(x), expected):
            torch.testing.assert_close(out, ref, rtol=1e-5, atol=1e-5)
    ort = pytest.importorskip('onnxruntime')
    buffer = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')
        torch.onnx.export(model, (x, ), buffer, dynamo=False, opset_version=17, input_names=['x'])
    outs = ort.InferenceSession(buffer.getvalue(), providers=['CPUExecutionProvider']).run(None, {'x': x.numpy()})
    for out, ref in zip(outs, expected):
        torch.testing.assert_close(torch.from_numpy(out), ref, rtol=1e-4, atol=1e-4)
