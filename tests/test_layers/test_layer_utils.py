"""Layout helpers, to_ntuple, the drop-path schedule and maybe_checkpoint."""
import copy

import pytest
import torch
import torch.nn as nn
from mmengine.model import trunc_normal_init

from mmvit_ext.models.layers import (channels_last_kernel_, drop_path_schedule, maybe_checkpoint, nchw_to_nlc,
                                     nlc_to_nchw, to_ntuple)


def test_nlc_nchw_round_trip_and_views():
    x = torch.randn(2, 12, 5)
    m = nlc_to_nchw(x, (3, 4))
    assert m.shape == (2, 5, 3, 4) and m.data_ptr() == x.data_ptr()  # a view, no copy
    torch.testing.assert_close(m, x.transpose(1, 2).reshape(2, 5, 3, 4))
    back = nchw_to_nlc(m)
    assert back.data_ptr() == x.data_ptr() and torch.equal(back, x)
    y = torch.randn(2, 5, 3, 4)  # default layout: one copy, same values as flatten/transpose
    torch.testing.assert_close(nchw_to_nlc(y), y.flatten(2).transpose(1, 2))
    with pytest.raises(AssertionError, match='cannot be reshaped'):
        nlc_to_nchw(x, (3, 5))


def test_to_ntuple():
    assert to_ntuple(3)(2) == (2, 2, 2)
    assert to_ntuple(2)([1, 5]) == (1, 5)
    assert to_ntuple(2)('ab') == ('ab', 'ab')
    with pytest.raises(AssertionError):
        to_ntuple(2)([1, 2, 3])


def test_drop_path_schedule_is_linear_over_all_blocks():
    rates = drop_path_schedule(0.3, [2, 2, 6, 3])
    assert [len(r) for r in rates] == [2, 2, 6, 3]
    flat = [r for stage in rates for r in stage]
    torch.testing.assert_close(torch.tensor(flat), torch.linspace(0, 0.3, 13))
    assert flat[0] == 0 and abs(flat[-1] - 0.3) < 1e-7
    assert drop_path_schedule(0., [1, 1]) == [[0.], [0.]]


def test_maybe_checkpoint_same_values_and_grads():
    torch.manual_seed(0)
    layer = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.GELU(), torch.nn.Linear(8, 4))
    x = torch.randn(3, 4, requires_grad=True)
    results = []
    for enabled in (False, True):
        layer.zero_grad()
        x.grad = None
        out = maybe_checkpoint(layer, x, enabled=enabled)
        out.pow(2).sum().backward()
        results.append((out.detach(), x.grad.clone(), layer[0].weight.grad.clone()))
    for a, b in zip(*results):
        torch.testing.assert_close(a, b)


@pytest.mark.parametrize('groups,kernel', [(8, 3), (1, 1), (1, 3)])
def test_channels_last_kernel_matches_the_gradient_and_keeps_its_strides(groups, kernel):
    torch.manual_seed(0)
    plain = nn.Conv2d(8, 8, kernel, padding=kernel // 2, groups=groups)
    conv = channels_last_kernel_(copy.deepcopy(plain))
    assert conv.weight.is_contiguous(memory_format=torch.channels_last) and torch.equal(conv.weight, plain.weight)
    strides = conv.weight.stride()
    x = torch.randn(2, 5, 6, 8).permute(0, 3, 1, 2)  # a channels-last view, as the token maps are
    conv(x).square().sum().backward()
    plain(x).square().sum().backward()
    assert conv.weight.grad.stride() == strides, 'the gradient must come back with the kernel strides (DDP)'
    torch.testing.assert_close(conv.weight.grad, plain.weight.grad)
    # what the runners do with a model afterwards keeps the layout
    trunc_normal_init(conv, std=0.02)
    conv.load_state_dict(plain.state_dict())
    assert torch.equal(conv.weight, plain.weight)
    for moved in (conv.to(torch.float64), copy.deepcopy(conv)):
        assert moved.weight.stride() == strides
