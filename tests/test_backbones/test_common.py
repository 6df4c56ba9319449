"""One battery over every backbone registered in ``mmvit_ext.registry.MODELS``, plus two unregistered toy
backbones (``toy_backbones.py``) that bring BatchNorms and parallel branches, which no family has yet.

A new family must add a tiny config to ``TINY_CFGS`` (``test_every_registered_backbone_has_a_tiny_cfg`` fails
otherwise). Entry keys:

* ``kwargs``: constructor arguments giving a small, fast model (no drop path, so train-mode outputs are
  deterministic);
* ``out_hw`` (optional): ``(H, W, stride) -> (h, w)`` of an output map; defaults to ``ceil(H / stride)``;
* ``rejects`` (optional): ``{(H, W): (exception type, regex)}`` for input sizes a family documents as unsupported;
* ``skip`` (optional): ``{test function name: reason}`` for a check that does not apply (say why).
"""
import copy
import inspect
import math

import pytest
import torch
import torch.utils.checkpoint
from torch.nn.modules.batchnorm import _BatchNorm
from toy_backbones import ToyBNChain, ToyBranches  # tests/test_backbones is on sys.path (rootdir conftest)

import mmvit_ext.models  # noqa: F401  (registration)
from mmvit_ext.registry import MODELS

# Wrappers of mmseg/mmdet backbones keep the host's API (no arch table, no validated frozen_stages/out_indices).
_HOST_API_SKIPS = dict(
    test_out_indices_select_and_normalise='host out_indices, not normalised',
    test_frozen_stages='host frozen_stages (none in mmseg ViT; not validated)',
    test_norm_eval='host norm_eval (mmseg ViT puts LayerNorm in eval; Swin has none)',
    test_bad_arguments_raise='no arch table (host kwargs); expedite keys are checked in test_expedite.py')
_TINY_SWIN = dict(
    embed_dims=8,
    depths=(2, 2, 2, 2),
    num_heads=(1, 1, 2, 2),
    window_size=4,
    mlp_ratio=2,
    drop_path_rate=0.,
    expedite=dict(alpha=5, cluster_shape=3, window=3, k=3))

# yapf: disable
TINY_CFGS = {
    'P2T': dict(kwargs=dict(arch=dict(embed_dims=[16, 32, 40, 64], depths=[1, 2, 1, 1], num_heads=[1, 2, 5, 8],
                                      mlp_ratios=[2, 2, 2, 2]),
                            # smaller pooling ratios than the official ones, so 64 px is above the minimum (33)
                            pool_ratios=((8, 12), (4, 6), (2, 3), (1, 2)), drop_path_rate=0.)),
    'CMT': dict(kwargs=dict(arch=dict(embed_dims=[8, 16, 24, 32], depths=[1, 2, 1, 1], num_heads=[1, 2, 3, 4],
                                      mlp_hidden_dims=[12, 20, 36, 40], stem_channels=6),
                            # 64 px: the tables are used as stored; 67x93 resizes them and pads every stage
                            pretrain_img_size=64, drop_path_rate=0.)),
    # windows of 3 so that 64 px (16/8/4/2 per branch) and 67x93 pad every branch but one
    'HRFormer': dict(kwargs=dict(arch=dict(channels=[8, 16, 24, 32], num_heads=[1, 2, 3, 4], num_modules=[1, 1, 2, 1],
                                           num_blocks=[1, 1, 1, 1], mlp_ratios=[2, 2, 2, 2], window_size=3))),
    'HourglassViT': dict(kwargs=dict(img_size=(64, 64), patch_size=8, embed_dims=16, num_layers=4, num_heads=2,
                                     mlp_ratio=2, out_indices=(1, 3), final_norm=True,
                                     expedite=dict(alpha=1, beta=2, cluster_shape=(4, 4), window=3, k=4)),
                         skip=_HOST_API_SKIPS),
    'HourglassSwin': dict(kwargs=_TINY_SWIN, skip=_HOST_API_SKIPS),
    'HourglassSwinDet': dict(kwargs=_TINY_SWIN, skip=_HOST_API_SKIPS),
    # not registered: built from TOYS
    'ToyBNChain': dict(kwargs=dict(arch='tiny')),
    'ToyBranches': dict(kwargs=dict(arch='tiny')),
}
TOYS = {'ToyBNChain': ToyBNChain, 'ToyBranches': ToyBranches}
# yapf: enable
SIZES = [(64, 64), (67, 93)]


def registered_backbones():
    MODELS.import_from_location()  # native families
    MODELS.import_hosts()  # host wrappers, imported on first lookup otherwise
    return sorted(name for name, cls in MODELS.module_dict.items()
                  if cls.__module__.startswith(('mmvit_ext.models.backbones.', 'mmvit_ext.models.hosts.')))


# Only backbones with an entry are parametrized; the others fail once, in the first test below.
BACKBONES = [name for name in registered_backbones() if name in TINY_CFGS] + sorted(TOYS)


@pytest.fixture(autouse=True)
def _skip_if_declared(request):
    name = request.node.callspec.params.get('name') if hasattr(request.node, 'callspec') else None
    reason = TINY_CFGS.get(name, {}).get('skip', {}).get(request.node.originalname)
    if reason:
        pytest.skip(f'{name}: {reason}')


def _backbone_class(name):
    return TOYS[name] if name in TOYS else MODELS.get(name)


def build(name, seed=0, **overrides):
    kwargs = copy.deepcopy(TINY_CFGS[name]['kwargs'])
    kwargs.update(overrides)
    torch.manual_seed(seed)
    if name in TOYS:
        return TOYS[name](**kwargs)
    return MODELS.build(dict(type=name, **kwargs))


def expected_hw(name, size, stride):
    rule = TINY_CFGS[name].get('out_hw', lambda h, w, s: (math.ceil(h / s), math.ceil(w / s)))
    return tuple(rule(*size, stride))


def test_every_registered_backbone_has_a_tiny_cfg():
    assert 'P2T' in BACKBONES
    missing = sorted(set(registered_backbones()) - set(TINY_CFGS))
    assert not missing, f'add entries to TINY_CFGS in {__file__} for {missing}'


@pytest.mark.parametrize('name', BACKBONES)
@pytest.mark.parametrize('size', SIZES)
def test_forward_shapes_match_out_channels_and_strides(name, size):
    model = build(name).eval()
    x = torch.randn(2, 3, *size)
    rejects = TINY_CFGS[name].get('rejects', {})
    if size in rejects:
        exc, match = rejects[size]
        with pytest.raises(exc, match=match):
            model(x)
        return
    with torch.no_grad():
        outs = model(x)
    assert isinstance(outs, tuple) and len(outs) == len(model.out_indices) == len(model.out_channels)
    for out, channels, stride in zip(outs, model.out_channels, model.out_strides):
        assert out.shape == (2, channels, *expected_hw(name, size, stride))
        assert out.is_contiguous() and torch.isfinite(out).all()
    # batch elements are independent
    with torch.no_grad():
        single = model(x[1:])
    for out, one in zip(outs, single):
        torch.testing.assert_close(out[1:], one, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize('name', BACKBONES)
def test_inputs_below_the_documented_minimum_raise(name):
    """A backbone with ``min_input_size`` accepts exactly that size and rejects one pixel less, clearly."""
    model = build(name).eval()
    minimum = getattr(model, 'min_input_size', None)
    if minimum is None:
        pytest.skip(f'{name} declares no minimum input size')
    with torch.no_grad():
        model(torch.randn(1, 3, minimum, minimum + 3))
        with pytest.raises(ValueError, match=f'at least {minimum}x{minimum} px'):
            model(torch.randn(1, 3, minimum + 3, minimum - 1))


@pytest.mark.parametrize('name', BACKBONES)
def test_out_indices_select_and_normalise(name):
    full = build(name).eval()
    n = len(full.feature_channels)
    assert n == len(full.feature_strides) == len(full.out_indices) >= 2
    picked = build(name, out_indices=(-1, 0)).eval()
    assert picked.out_indices == (0, n - 1)
    assert picked.out_channels == (full.feature_channels[0], full.feature_channels[-1])
    assert picked.out_strides == (full.feature_strides[0], full.feature_strides[-1])
    result = picked.load_state_dict(full.state_dict())
    assert not result.missing_keys and not result.unexpected_keys
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        all_outs, some = full(x), picked(x)
    assert len(some) == 2
    torch.testing.assert_close(some[0], all_outs[0])
    torch.testing.assert_close(some[1], all_outs[n - 1])
    assert build(name, out_indices=0).out_indices == (0, )


@pytest.mark.parametrize('name', BACKBONES)
def test_backward_reaches_every_parameter(name):
    model = build(name).train()
    outs = model(torch.randn(2, 3, 64, 64))
    torch.manual_seed(1)
    loss = sum((o * torch.randn_like(o)).sum() for o in outs)
    loss.backward()
    no_grad = [n for n, p in model.named_parameters() if p.grad is None or not p.grad.abs().sum() > 0]
    assert not no_grad, f'parameters without gradient: {no_grad}'


@pytest.mark.parametrize('name', BACKBONES)
def test_gradients_have_their_parameters_strides(name):
    """DistributedDataParallel copies each gradient into a bucket view with its parameter's strides and warns
    ("Grad strides do not match bucket view strides") when the two differ in any dimension, size-1 ones included;
    autograd keeps whatever strides the op's backward produced (a depthwise kernel's gradient from a channels-last
    input is channels-last). Every gradient must match its parameter exactly."""
    model = build(name).train()
    outs = model(torch.randn(2, 3, 64, 64))
    sum(o.sum() for o in outs).backward()
    mismatched = {
        n: (tuple(p.shape), p.stride(), p.grad.stride())
        for n, p in model.named_parameters() if p.grad is not None and p.grad.stride() != p.stride()
    }
    assert not mismatched, f'(shape, parameter strides, gradient strides): {mismatched}'


def _count_saved_tensors(model, x):
    """Outputs of ``model(x)`` and how many tensors autograd saved for backward outside checkpointed regions."""
    count = 0

    def pack(tensor):
        nonlocal count
        count += 1
        return tensor

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda tensor: tensor):
        outs = model(x)
    return outs, count


@pytest.mark.parametrize('name', BACKBONES)
def test_with_cp_same_outputs_and_gradients(name):
    results = []
    for with_cp in (False, True):
        model = build(name, with_cp=with_cp).train()
        x = torch.randn(1, 3, 64, 64, generator=torch.Generator().manual_seed(0), requires_grad=True)
        outs, saved = _count_saved_tensors(model, x)
        sum(o.pow(2).mean() for o in outs).backward()
        grads = {n: p.grad.clone() for n, p in model.named_parameters()}
        results.append(([o.detach() for o in outs], grads, x.grad.clone(), saved))
    (outs0, grads0, xg0, saved0), (outs1, grads1, xg1, saved1) = results
    # checkpointing really ran: the blocks' activations are recomputed in backward instead of being kept
    assert saved1 < saved0 / 2, f'with_cp=True kept {saved1} tensors for backward, with_cp=False {saved0}'
    for a, b in zip(outs0, outs1):
        torch.testing.assert_close(a, b)
    assert grads0.keys() == grads1.keys()
    for k in grads0:
        torch.testing.assert_close(grads0[k], grads1[k], rtol=1e-5, atol=1e-6, msg=k)
    torch.testing.assert_close(xg0, xg1, rtol=1e-5, atol=1e-6)


RECOMPUTE_ACT = [n for n in BACKBONES if 'recompute_act' in inspect.signature(_backbone_class(n)).parameters]


@pytest.mark.parametrize('name', RECOMPUTE_ACT)
def test_recompute_act_same_outputs_and_gradients_fewer_saved_tensors(name):
    """``recompute_act=True`` stores fewer tensors for backward (the FFN activations, or the BatchNorm/GELU
    intermediates) and changes no output, gradient or BatchNorm statistic. In float64: BatchNorm's backward
    cancels, which turns float32 last-bit differences into visible ones over a whole network."""
    results = []
    for recompute in (False, True):
        model = build(name, recompute_act=recompute).double().train()
        x = torch.randn(
            2, 3, 64, 64, generator=torch.Generator().manual_seed(0), dtype=torch.float64, requires_grad=True)
        outs, saved = _count_saved_tensors(model, x)
        sum(o.pow(2).mean() for o in outs).backward()
        grads = {n: p.grad.clone() for n, p in model.named_parameters()}
        stats = {n: b.clone() for n, b in model.named_buffers()}
        results.append(([o.detach() for o in outs], grads, stats, x.grad.clone(), saved))
    (outs0, grads0, stats0, xg0, saved0), (outs1, grads1, stats1, xg1, saved1) = results
    assert saved1 < saved0, f'recompute_act=True kept {saved1} tensors for backward, False {saved0}'
    for a, b in zip(outs0, outs1):
        torch.testing.assert_close(a, b)
    for k in grads0:
        torch.testing.assert_close(grads0[k], grads1[k], rtol=1e-9, atol=1e-12, msg=k)
    for k in stats0:
        torch.testing.assert_close(stats0[k], stats1[k], rtol=1e-9, atol=1e-12, msg=k)
    torch.testing.assert_close(xg0, xg1, rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize('name', BACKBONES)
def test_frozen_stages(name):
    model = build(name, frozen_stages=-1).train()
    assert all(p.requires_grad for p in model.parameters())

    model = build(name, frozen_stages=1)
    # frozen at construction already (optimizers are built before train() is called)
    assert not any(p.requires_grad for p in model.stages[0].parameters())
    model.train()
    assert all(not m.training for m in model.stages[0].modules())
    assert all(p.requires_grad for p in model.stages[1].parameters())
    assert all(m.training for m in model.stages[1].modules())
    sum(o.sum() for o in model(torch.randn(1, 3, 64, 64))).backward()
    assert all(p.grad is None for p in model.stages[0].parameters())
    assert all(p.grad is not None for p in model.stages[1].parameters())

    model = build(name, frozen_stages=model.num_stages).train()
    assert not any(p.requires_grad for p in model.stages.parameters())
    assert not any(m.training for stage in model.stages for m in stage.modules())
    for bad in (-2, model.num_stages + 1, 1.5):
        with pytest.raises(ValueError, match='frozen_stages'):
            build(name, frozen_stages=bad)


def test_battery_covers_batchnorm_and_branches():
    """norm_eval and outputs that are not stages are only tested if some backbone of the battery has them."""
    with_bn = [name for name in BACKBONES if any(isinstance(m, _BatchNorm) for m in build(name).modules())]
    assert 'ToyBNChain' in with_bn and 'ToyBranches' in with_bn
    branches = build('ToyBranches')
    assert branches.num_outputs == len(branches.feature_channels) and len(branches.stages) == branches.num_stages


@pytest.mark.parametrize('name', BACKBONES)
def test_norm_eval(name):
    model = build(name, norm_eval=True).train()
    assert model.training
    bns = [m for m in model.modules() if isinstance(m, _BatchNorm)]
    assert all(not m.training for m in bns)
    others = [m for m in model.modules() if not isinstance(m, _BatchNorm)]
    assert all(m.training for m in others)
    if bns:  # frozen statistics: a train-mode forward leaves the running stats alone
        before = [m.running_mean.clone() for m in bns]
        with torch.no_grad():
            model(torch.randn(2, 3, 64, 64))
        assert all(torch.equal(b, m.running_mean) for b, m in zip(before, bns))
    model = build(name, norm_eval=False).train()
    assert all(m.training for m in model.modules())
    if bns:
        with torch.no_grad():
            model(torch.randn(2, 3, 64, 64))
        assert any(not torch.equal(m.running_mean, torch.zeros_like(m.running_mean)) for m in model.modules()
                   if isinstance(m, _BatchNorm))


@pytest.mark.parametrize('name', BACKBONES)
def test_state_dict_round_trip_is_strict_and_has_no_shared_duplicates(name):
    src = build(name).eval()
    state = src.state_dict()
    # a module shared by several blocks (P2T's pool convs) must be stored once, not once per block
    assert len({v.data_ptr() for v in state.values()}) == len(state)
    dst = build(name, seed=123).eval()
    assert not all(torch.equal(state[k], v) for k, v in dst.state_dict().items())
    result = dst.load_state_dict(state, strict=True)
    assert not result.missing_keys and not result.unexpected_keys
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        for a, b in zip(src(x), dst(x)):
            torch.testing.assert_close(a, b, rtol=0, atol=0)


@pytest.mark.parametrize('name', BACKBONES)
def test_bad_arguments_raise(name):
    cls = TOYS.get(name) or MODELS.get(name)
    with pytest.raises(ValueError, match='unknown arch .*choose one of'):
        build(name, arch='no-such-arch')
    arch = cls.resolve_arch(TINY_CFGS[name]['kwargs']['arch'])
    with pytest.raises(ValueError, match='exactly the keys'):
        build(name, arch={**arch, 'bogus': 1})
    key = sorted(cls.essential_keys)[0]
    with pytest.raises(ValueError, match='exactly the keys'):
        build(name, arch={k: v for k, v in arch.items() if k != key})
    per_stage = sorted(cls.per_stage_keys or cls.essential_keys)[0]
    with pytest.raises(ValueError, match='one entry per (stage|branch)'):
        build(name, arch={**arch, per_stage: arch[per_stage][:-1]})
    n = len(build(name).feature_channels)
    for bad in [(n, ), (0, 0), (-n - 1, ), ()]:
        with pytest.raises(ValueError, match='out_indices'):
            build(name, out_indices=bad)
    with pytest.raises(TypeError):
        build(name, no_such_argument=1)  # unknown kwargs are never swallowed
    for alias in cls.arch_zoo:  # every alias resolves to a complete arch
        assert set(cls.resolve_arch(alias)) == cls.essential_keys
