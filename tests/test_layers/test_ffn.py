"""ConvFFN against independent NCHW references of the P2T IRB, MixFFN, CMT IRFFN and HRFormer FFN.

Each reference is written here with ``nn.Conv2d``/``nn.Linear``/``nn.BatchNorm2d`` in the official module layout and
key names; its state dict is mapped to ConvFFN by the prefix moves of the ConvFFN docstring and loaded strictly.
"""
import re

import pytest
import torch
import torch.nn as nn

from mmvit_ext.models.layers import ConvFFN

C, HIDDEN, HW = 6, 24, (5, 7)


def tokens_to_nchw(x, hw):
    # B, N, C -> B, C, H, W (contiguous, as the official code does)
    return x.transpose(1, 2).reshape(x.shape[0], x.shape[2], *hw)


def nchw_to_tokens(x):
    return x.flatten(2).transpose(1, 2)


class IRB(nn.Module):
    """P2T IRB: fc1 -> Hardswish -> dw3x3 -> Hardswish -> fc2 (the same act module twice)."""

    def __init__(self):
        super().__init__()
        self.fc1 = nn.Conv2d(C, HIDDEN, 1)
        self.act = nn.Hardswish()
        self.conv = nn.Conv2d(HIDDEN, HIDDEN, 3, padding=1, groups=HIDDEN)
        self.fc2 = nn.Conv2d(HIDDEN, C, 1)

    def forward(self, x, hw):
        x = tokens_to_nchw(x, hw)
        return nchw_to_tokens(self.fc2(self.act(self.conv(self.act(self.fc1(x))))))


class DWConv(nn.Module):

    def __init__(self):
        super().__init__()
        self.dwconv = nn.Conv2d(HIDDEN, HIDDEN, 3, padding=1, groups=HIDDEN)

    def forward(self, x, hw):
        return nchw_to_tokens(self.dwconv(tokens_to_nchw(x, hw)))


class MixFFN(nn.Module):
    """PVTv2/SegFormer ``Mlp``: Linear fc1 -> dw3x3 -> GELU -> Linear fc2 (no act after fc1)."""

    def __init__(self):
        super().__init__()
        self.fc1 = nn.Linear(C, HIDDEN)
        self.dwconv = DWConv()
        self.act = nn.GELU()
        self.fc2 = nn.Linear(HIDDEN, C)

    def forward(self, x, hw):
        return self.fc2(self.act(self.dwconv(self.fc1(x), hw)))


class IRFFN(nn.Module):
    """CMT ``Mlp``: conv1 = (1x1, GELU, BN); x = proj(x) + x; GELU; BN; conv2 = (1x1, BN)."""

    def __init__(self):
        super().__init__()
        self.conv1 = nn.Sequential(nn.Conv2d(C, HIDDEN, 1), nn.GELU(), nn.BatchNorm2d(HIDDEN))
        self.proj = nn.Conv2d(HIDDEN, HIDDEN, 3, padding=1, groups=HIDDEN)
        self.proj_act = nn.GELU()
        self.proj_bn = nn.BatchNorm2d(HIDDEN)
        self.conv2 = nn.Sequential(nn.Conv2d(HIDDEN, C, 1), nn.BatchNorm2d(C))

    def forward(self, x, hw):
        x = self.conv1(tokens_to_nchw(x, hw))
        x = self.proj_bn(self.proj_act(self.proj(x) + x))
        return nchw_to_tokens(self.conv2(x))


class MlpDWBN(nn.Module):
    """HRFormer FFN: three times conv -> BN -> GELU (an activation after the last 1x1 too)."""

    def __init__(self):
        super().__init__()
        self.fc1 = nn.Conv2d(C, HIDDEN, 1)
        self.norm1 = nn.BatchNorm2d(HIDDEN)
        self.act1 = nn.GELU()
        self.dw3x3 = nn.Conv2d(HIDDEN, HIDDEN, 3, padding=1, groups=HIDDEN)
        self.norm2 = nn.BatchNorm2d(HIDDEN)
        self.act2 = nn.GELU()
        self.fc2 = nn.Conv2d(HIDDEN, C, 1)
        self.norm3 = nn.BatchNorm2d(C)
        self.act3 = nn.GELU()

    def forward(self, x, hw):
        x = self.act1(self.norm1(self.fc1(tokens_to_nchw(x, hw))))
        x = self.act2(self.norm2(self.dw3x3(x)))
        return nchw_to_tokens(self.act3(self.norm3(self.fc2(x))))


# name: (reference class, ConvFFN kwargs, official -> ConvFFN key rules as in the ConvFFN docstring)
VARIANTS = {
    'p2t_irb': (IRB, dict(act_cfg=dict(type='HSwish')), []),
    'mixffn': (MixFFN, dict(act_cfg=dict(type='GELU'), fc1_act=False), [(r'^dwconv\.dwconv\.', 'conv.')]),
    'cmt_irffn': (IRFFN, dict(act_cfg=dict(type='GELU'), norm_cfg=dict(type='BN'),
                              dw_residual=True), [(r'^conv1\.0\.', 'fc1.'), (r'^conv1\.2\.', 'norm1.'),
                                                  (r'^proj\.', 'conv.'), (r'^proj_bn\.', 'norm2.'),
                                                  (r'^conv2\.0\.', 'fc2.'), (r'^conv2\.1\.', 'norm3.')]),
    'hrformer_ffn':
    (MlpDWBN, dict(act_cfg=dict(type='GELU'), norm_cfg=dict(type='BN'), order=('conv', 'norm', 'act'),
                   fc2_act=True), [(r'^dw3x3\.', 'conv.')]),
}


def key_map(ref, rules):
    """{official key: ConvFFN key}: prefix moves only."""
    out = {}
    for key in ref.state_dict():
        new = key
        for pattern, repl in rules:
            new = re.sub(pattern, repl, new)
        out[key] = new
    return out


def make_pair(name, seed=0):
    """A random reference (non-trivial biases and BN statistics) and a ConvFFN loaded from it, strictly."""
    ref_cls, kwargs, rules = VARIANTS[name]
    torch.manual_seed(seed)
    ref = ref_cls()
    with torch.no_grad():
        for m in ref.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.weight.uniform_(0.5, 1.5)
                m.bias.normal_(0, 0.5)
                m.running_mean.normal_()
                m.running_var.uniform_(0.5, 2)
    ffn = ConvFFN(C, hidden_dims=HIDDEN, **kwargs)
    names = key_map(ref, rules)
    # Linear kernels (MixFFN) are unsqueezed to 1x1 conv kernels; everything else moves 1:1
    state = {names[k]: v[..., None, None] if v.ndim == 2 else v for k, v in ref.state_dict().items()}
    ffn.load_state_dict(state, strict=True)
    return ref, ffn, names


@pytest.mark.parametrize('train', [True, False], ids=['train', 'eval'])
@pytest.mark.parametrize('name', sorted(VARIANTS))
def test_matches_nchw_reference_outputs_and_gradients(name, train):
    ref, ffn, names = make_pair(name)
    ref.train(train)
    ffn.train(train)
    x = torch.randn(3, HW[0] * HW[1], C)
    x_ref, x_ffn = x.clone().requires_grad_(), x.clone().requires_grad_()
    out_ref, out = ref(x_ref, HW), ffn(x_ffn, HW)
    assert out.shape == (3, HW[0] * HW[1], C)
    torch.testing.assert_close(out, out_ref, rtol=1e-5, atol=1e-5)
    grad = torch.randn_like(out)
    out_ref.backward(grad)
    out.backward(grad)
    torch.testing.assert_close(x_ffn.grad, x_ref.grad, rtol=1e-5, atol=1e-5)
    params = dict(ffn.named_parameters())
    # a bias right before a train-mode BN has an exact-zero gradient, so both sides hold rounding noise of the
    # size of the largest gradient times eps: the absolute tolerance scales with that size
    atol = 1e-6 * max(p.grad.abs().max().item() for p in ref.parameters())
    for key, p in ref.named_parameters():
        g = params[names[key]].grad
        torch.testing.assert_close(g.reshape(p.shape), p.grad, rtol=1e-4, atol=atol, msg=key)
    buffers = dict(ffn.named_buffers())  # train mode: both updated their BN statistics the same way
    for key, b in ref.named_buffers():
        torch.testing.assert_close(buffers[names[key]], b, msg=key)


@pytest.mark.parametrize('name', sorted(VARIANTS))
def test_inference_equals_autograd_path_and_keeps_input(name):
    """Without autograd the activations run in place (and eval-mode BatchNorms are folded into the matrix products
    or applied as in-place affine maps); same numbers, up to rounding with folding, and the input is not touched."""
    _, ffn, _ = make_pair(name)
    ffn.eval()
    x = torch.randn(2, HW[0] * HW[1], C)
    x_copy = x.clone()
    with_grad = ffn(x, HW)
    with torch.no_grad():
        without = ffn(x, HW)
    tol = 2e-6 if ffn.norm1 is not None else 0  # folded BatchNorms round differently
    torch.testing.assert_close(without, with_grad, rtol=tol, atol=tol)
    torch.testing.assert_close(x, x_copy, rtol=0, atol=0)


@pytest.mark.parametrize('name', sorted(VARIANTS))
def test_inference_micro_batches_equal_one_batch(name, monkeypatch):
    """Eval-mode inference splits the batch so the hidden map stays small; the result equals the whole batch."""
    from mmvit_ext.models.layers import ffn as ffn_module
    _, ffn, _ = make_pair(name)
    ffn.eval()
    x = torch.randn(5, HW[0] * HW[1], C)
    whole = ffn(x, HW)  # autograd on: never split
    calls = []
    for method in ('_forward', '_forward_folded'):
        forward = getattr(ffn, method)
        monkeypatch.setattr(ffn, method, lambda t, forward=forward, **kw: calls.append(t.shape[0]) or forward(t, **kw))
    monkeypatch.setattr(ffn_module, 'INFERENCE_CHUNK_ELEMENTS', 2 * HW[0] * HW[1] * HIDDEN)
    folds = []
    fold = ffn._fold
    monkeypatch.setattr(ffn, '_fold', lambda: folds.append(1) or fold())
    with torch.no_grad():
        parts = ffn(x, HW)
    assert calls == [2, 2, 1]
    assert folds == [1]  # the folded weights are computed once per call, not per micro-batch
    torch.testing.assert_close(parts, whole, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize('kwargs', [
    dict(order=('conv', 'act', 'norm')),
    dict(order=('conv', 'norm', 'act')),
    dict(order=('conv', 'act', 'norm'), fc2_act=True),
    dict(order=('conv', 'norm', 'act'), fc2_act=True, dw_residual=True),
    dict(fc1_act=False, norm_after=('fc1', 'conv')),
    dict(norm_after=('fc2', )),
])
def test_eval_batch_norms_fold_exactly(kwargs):
    """Every placement of an eval-mode BatchNorm: folded (into fc1/fc2) or in-place affine, same function."""
    torch.manual_seed(0)
    ffn = ConvFFN(6, hidden_dims=20, act_cfg=dict(type='GELU'), norm_cfg=dict(type='BN'), **kwargs)
    for m in ffn.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.normal_()
            m.running_var.uniform_(0.5, 2.)
            m.weight.data.normal_(1., 0.3)
            m.bias.data.normal_()
    ffn.eval()
    x = torch.randn(2, 20, 6)
    expected = ffn(x, (4, 5))  # autograd on: the plain path
    with torch.no_grad():
        assert ffn._foldable()
        torch.testing.assert_close(ffn(x, (4, 5)), expected, rtol=1e-5, atol=1e-5)
    ffn.norm1.train() if ffn.norm1 is not None else ffn.norm3.train()
    assert not ffn._foldable()  # a train-mode BatchNorm: the plain path


@pytest.mark.parametrize(
    'act_cfg',
    [dict(type='ReLU'), dict(type='SiLU'),
     dict(type='GELU', approximate='tanh'),
     dict(type='Swish')])
def test_inference_activations_in_place_equal_modules(act_cfg):
    torch.manual_seed(0)
    ffn = ConvFFN(4, hidden_dims=16, act_cfg=act_cfg, fc2_act=True).eval()
    x = torch.randn(2, 12, 4)
    with torch.no_grad():
        without = ffn(x, (3, 4))
    torch.testing.assert_close(without, ffn(x, (3, 4)), rtol=0, atol=0)


def test_p2t_key_names_and_4d_pointwise_kernels():
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
    assert isinstance(ffn.act1, nn.Hardswish) and isinstance(ffn.act2, nn.Hardswish) and ffn.act3 is None
    assert ffn.norm1 is None and ffn.norm2 is None and ffn.norm3 is None


def test_norm_after_picks_positions():
    ffn = ConvFFN(4, hidden_dims=8, norm_cfg=dict(type='BN'), norm_after=('conv', ))
    assert ffn.norm1 is None and isinstance(ffn.norm2, nn.BatchNorm2d) and ffn.norm3 is None
    assert {k.split('.')[0] for k in ffn.state_dict()} == {'fc1', 'conv', 'norm2', 'fc2'}
    ffn = ConvFFN(4, hidden_dims=8, norm_cfg=dict(type='BN'), norm_after=('fc1', 'fc2'))
    assert ffn.norm1.num_features == 8 and ffn.norm2 is None and ffn.norm3.num_features == 4


def test_invalid_arguments_raise():
    with pytest.raises(ValueError, match='order must be one of'):
        ConvFFN(4, hidden_dims=8, order=('act', 'conv', 'norm'))
    with pytest.raises(ValueError, match='norm_after takes names from'):
        ConvFFN(4, hidden_dims=8, norm_cfg=dict(type='BN'), norm_after=('fc3', ))
    with pytest.raises(TypeError):
        ConvFFN(4, 8)  # keyword-only


@pytest.mark.parametrize('name', ['p2t_irb', 'mixffn'])
def test_recompute_act_same_gradients_and_keeps_only_products(name, monkeypatch):
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
    _, plain, _ = make_pair(name)
    recomputing = ConvFFN(C, hidden_dims=HIDDEN, recompute_act=True, **VARIANTS[name][1])
    recomputing.load_state_dict(plain.state_dict())
    x = torch.randn(2, HW[0] * HW[1], C)
    results = []
    for ffn in (plain, recomputing):
        xi = x.clone().requires_grad_()
        out = ffn(xi, HW)
        out.pow(2).sum().backward()
        results.append((out.detach(), xi.grad, [p.grad for p in ffn.parameters()]))
    (out0, xg0, pg0), (out1, xg1, pg1) = results
    torch.testing.assert_close(out0, out1, rtol=0, atol=0)
    torch.testing.assert_close(xg0, xg1)
    for a, b in zip(pg0, pg1):
        torch.testing.assert_close(a, b)
    act = 'aten.hardswish.default' if name == 'p2t_irb' else 'aten.gelu.default'
    forward = {(op, decision) for op, decision, is_recompute in decisions if not is_recompute}
    assert {('aten.addmm.default', 'MUST_SAVE'), ('aten.convolution.default', 'MUST_SAVE'),
            (act, 'PREFER_RECOMPUTE')} <= forward
    assert act in {op for op, _, is_recompute in decisions if is_recompute}
    assert not plain.recompute_act  # opt-in


def _saved_bytes(fn, module):
    """Bytes of the distinct storages autograd saves for backward while ``fn`` runs, ``module``'s parameters and
    buffers excluded."""
    storages = {}
    own = {t.untyped_storage().data_ptr() for t in list(module.parameters()) + list(module.buffers())}

    def pack(t):
        if t.untyped_storage().data_ptr() not in own:
            storages[t.untyped_storage().data_ptr()] = t.untyped_storage().nbytes()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        out = fn()
    return out, sum(storages.values())


@pytest.mark.parametrize('name', ['cmt_irffn', 'hrformer_ffn'])
def test_recompute_act_with_batch_norms_same_step_fewer_saved_tensors(name):
    """With BatchNorms, recompute_act makes each norm/GELU pair one node that stores only its input: outputs,
    gradients and running statistics equal the plain FFN's; autograd stores two hidden maps (and for HRFormer one
    C-channel map) less."""
    _, plain, _ = make_pair(name)
    recomputing = ConvFFN(C, hidden_dims=HIDDEN, recompute_act=True, **VARIANTS[name][1])
    recomputing.load_state_dict(plain.state_dict())
    # float64: BatchNorm's backward cancels, which turns float32 last-bit differences into visible ones
    x = torch.randn(3, HW[0] * HW[1], C, dtype=torch.float64)
    results = []
    for ffn in (plain.double().train(), recomputing.double().train()):
        xi = x.clone().requires_grad_()
        out, saved = _saved_bytes(lambda: ffn(xi, HW), ffn)
        out.pow(2).sum().backward()
        stats = [b.clone() for b in ffn.buffers()]
        results.append((out.detach(), xi.grad, [p.grad for p in ffn.parameters()], stats, saved))
    (out0, xg0, pg0, st0, saved0), (out1, xg1, pg1, st1, saved1) = results
    torch.testing.assert_close(out1, out0, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(xg1, xg0, rtol=1e-10, atol=1e-12)
    for a, b in zip(pg1 + st1, pg0 + st0):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-12)
    hidden_map = x.shape[0] * HW[0] * HW[1] * HIDDEN * 8  # float64 bytes
    fewer = 2 * hidden_map + (hidden_map // 4 if name == 'hrformer_ffn' else 0)  # C = HIDDEN / 4
    assert saved0 - saved1 == fewer, (saved0, saved1, fewer)


def test_recompute_act_leaves_sync_batch_norm_pairs_with_a_log_line(monkeypatch):
    from mmvit_ext.models.layers import ffn as ffn_module
    logged = []
    monkeypatch.setattr(ffn_module, 'print_log', lambda msg, **kwargs: logged.append(msg))
    ffn = ConvFFN(4, hidden_dims=8, norm_cfg=dict(type='SyncBN'), recompute_act=True)
    assert isinstance(ffn.norm1, nn.SyncBatchNorm)
    assert len(logged) == 1 and 'recompute_act does not apply to SyncBN pairs' in logged[0]
    ConvFFN(4, hidden_dims=8, norm_cfg=dict(type='BN'), recompute_act=True)
    assert len(logged) == 1


def test_gradients_reach_every_parameter():
    for name in VARIANTS:
        _, ffn, _ = make_pair(name)
        ffn(torch.randn(2, 12, C), (3, 4)).pow(2).sum().backward()
        for key, p in ffn.named_parameters():
            assert p.grad is not None and p.grad.abs().sum() > 0, (name, key)
