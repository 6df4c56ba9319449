"""Window partition / padding / masks / attention and relative-position biases against naive per-window loops."""
import pytest
import torch

from mmvit_ext.models.layers import (QueryKeyBias, RelativePositionBias, WindowMSA, relative_position_bias,
                                     relative_position_index, resize_query_key_bias, resize_rel_pos_table,
                                     use_fused_attn, window_pads, window_partition, window_reverse)


@pytest.mark.parametrize('shuffle', [False, True])
@pytest.mark.parametrize('window', [(3, 4), (6, 1), (1, 8)])  # rectangles and stripes
def test_partition_round_trip_and_order(window, shuffle):
    x = torch.randn(2, 6, 8, 5)
    windows = window_partition(x, window, shuffle=shuffle)
    wh, ww = window
    nh, nw = 6 // wh, 8 // ww
    assert windows.shape == (2 * nh * nw, wh * ww, 5)
    assert torch.equal(window_reverse(windows, window, (6, 8), shuffle=shuffle), x)
    for a in range(nh):
        for b in range(nw):
            for i in range(wh):
                for j in range(ww):
                    # shuffled: row i * (H / wh) + a is row i of window row a (Shuffle Transformer)
                    r, c = (i * nh + a, j * nw + b) if shuffle else (a * wh + i, b * ww + j)
                    assert torch.equal(windows[a * nw + b, i * ww + j], x[0, r, c])


def test_pads():
    assert window_pads((7, 10), 4) == (0, 1, 0, 2)
    assert window_pads((7, 10), 4, position='center') == (0, 1, 1, 1)
    assert window_pads((5, 9), (7, 4), position='center') == (1, 1, 1, 2)
    assert window_pads((8, 8), 4, position='center') == (0, 0, 0, 0)
    with pytest.raises(ValueError, match='choose one of'):
        window_pads((8, 8), 4, position='top')


def test_relative_position_bias_matches_offsets():
    table = torch.randn(5 * 7, 2)  # window (3, 4)
    bias = relative_position_bias(table, (3, 4))
    coords = [(i, j) for i in range(3) for j in range(4)]
    for n, (i, j) in enumerate(coords):
        for m, (k, l) in enumerate(coords):
            assert torch.equal(bias[:, n, m], table[(i - k + 2) * 7 + (j - l + 3)])
    assert relative_position_index(3).shape == (9, 9) and relative_position_index(3).max() == 24


def test_table_resize_and_load_hook():
    table = torch.randn(49, 3)
    assert resize_rel_pos_table(table, 4, 4) is table
    const = torch.full((49, 3), 0.5)
    torch.testing.assert_close(resize_rel_pos_table(const, 4, 2), torch.full((9, 3), 0.5))
    module = RelativePositionBias(2, num_heads=3)
    torch.testing.assert_close(
        module(window_size=4), relative_position_bias(module.relative_position_bias_table, 4, table_window_size=2))
    assert 'relative_position_index' not in module.state_dict()
    result = module.load_state_dict({'relative_position_bias_table': table})  # a window-4 table: resized (bicubic)
    assert not result.missing_keys and not result.unexpected_keys
    torch.testing.assert_close(module.relative_position_bias_table.data,
                               resize_rel_pos_table(table, 4, 2, mode='bicubic'))
    with pytest.raises(RuntimeError, match='size mismatch'):  # not a square odd table: not guessed
        module.load_state_dict({'relative_position_bias_table': torch.randn(10, 3)})


def test_query_key_bias_resize():
    bias = torch.randn(2, 16, 4)  # query grid 4x4, key grid 2x2
    assert torch.equal(resize_query_key_bias(bias, (4, 4), (2, 2), (4, 4), (2, 2)), bias)
    out = resize_query_key_bias(bias, (4, 4), (2, 2), (6, 8), (3, 4))
    assert out.shape == (2, 48, 12)
    const = torch.full((2, 16, 4), 0.25)
    torch.testing.assert_close(
        resize_query_key_bias(const, (4, 4), (2, 2), (6, 8), (3, 4)), torch.full((2, 48, 12), 0.25))
    # the key grid is resized per query: a bias constant over queries stays constant over queries
    per_key = torch.randn(2, 1, 4).expand(2, 16, 4)
    out = resize_query_key_bias(per_key, (4, 4), (2, 2), (4, 4), (4, 4))
    torch.testing.assert_close(out, out[:, :1].expand_as(out))


def test_query_key_bias_module_exact_at_its_grids_smooth_elsewhere():
    module = QueryKeyBias(num_heads=2, query_hw=(8, 8), key_hw=(8, 8))
    assert module((8, 8), (8, 8)) is module.table  # the training grids: the parameter itself, bit-exact

    # a smooth table (a plane over the normalised cell centres, values in [-4, 7]) stays close to that plane on other
    # grids: within 0.05 where bicubic has all four taps inside the table (PyTorch's a = -0.75 kernel is not exact
    # on linear functions: 0.006 per unit slope), within 0.25 at the borders; a swapped axis is off by > 1
    def plane(q_hw, k_hw):
        qy, qx = [(torch.arange(n) + .5) / n for n in q_hw]
        ky, kx = [(torch.arange(n) + .5) / n for n in k_hw]
        q = (qy[:, None] + 2 * qx[None]).flatten()
        k = (3 * ky[:, None] - kx[None]).flatten()
        return torch.stack([q[:, None] + k[None], q[:, None] - k[None]])

    with torch.no_grad():
        module.table.copy_(plane((8, 8), (8, 8)))
    out = module((12, 10), (6, 5))
    assert out.shape == (2, 120, 30)
    inner = plane((12, 10), (6, 5)).view(2, 12, 10, 6, 5)[:, 2:-2, 2:-2, 1:-1, 1:-1]
    torch.testing.assert_close(out.view(2, 12, 10, 6, 5)[:, 2:-2, 2:-2, 1:-1, 1:-1], inner, atol=0.05, rtol=0)
    assert (out - plane((12, 10), (6, 5))).abs().max() < 0.25  # borders: bicubic extrapolation, still smooth


def test_query_key_bias_cache_and_gradients():
    module = QueryKeyBias(num_heads=1, query_hw=(4, 4), key_hw=(2, 2), cache_size=1)
    with torch.no_grad():
        first = module((6, 6), (3, 3))
        assert module((6, 6), (3, 3)) is first  # once per size
        other = module((4, 8), (2, 4))
        assert module((6, 6), (3, 3)) is not first  # cache_size 1: the last size only
        assert module((6, 6), (3, 3)) is module((6, 6), (3, 3))
        cached = module((6, 6), (3, 3))
        module.table.add_(1.)  # an optimizer step or a load: recomputed
        torch.testing.assert_close(module((6, 6), (3, 3)), cached + 1.)
    assert other.shape == (1, 32, 8)
    out = module((6, 6), (3, 3))  # with autograd: part of the graph, never cached
    assert out.requires_grad and out is not module((6, 6), (3, 3))
    out.sum().backward()
    assert module.table.grad is not None and module.table.grad.abs().sum() > 0
    uncached = QueryKeyBias(num_heads=1, query_hw=(4, 4), key_hw=(2, 2), cache_size=0)
    with torch.no_grad():
        assert uncached((6, 6), (3, 3)) is not uncached((6, 6), (3, 3))


def test_query_key_bias_resizes_square_tables_on_load():
    module = QueryKeyBias(num_heads=2, query_hw=(8, 8), key_hw=(2, 2))
    table = torch.randn(2, 16, 1)  # trained with a 4x4 query grid and a 1x1 key grid
    module.load_state_dict({'table': table})
    torch.testing.assert_close(module.table.data, resize_query_key_bias(table, (4, 4), (1, 1), (8, 8), (2, 2)))
    with pytest.raises(RuntimeError, match='size mismatch'):  # another head count is not guessed
        module.load_state_dict({'table': torch.randn(3, 16, 1)})


def naive_window_msa(msa, x, hw, shift=(0, 0)):
    """Loops over windows and tokens: explicit padding, roll, shuffle, masks and offset-indexed bias."""
    B, L, C = x.shape
    H, W = hw
    wh, ww = msa.window_size
    ph, pw = (-H) % wh, (-W) % ww
    top, left = (ph // 2, pw // 2) if msa.pad_position == 'center' else (0, 0)
    Hp, Wp = H + ph, W + pw
    grid = torch.zeros(B, Hp, Wp, C)
    grid[:, top:top + H, left:left + W] = x.view(B, H, W, C)
    valid = torch.zeros(Hp, Wp, dtype=torch.bool)
    valid[top:top + H, left:left + W] = True
    nh, nw = Hp // wh, Wp // ww
    table = msa.rel_pos.relative_position_bias_table
    heads, d = msa.num_heads, C // msa.num_heads
    out = torch.zeros_like(grid)

    def band(p, size, window, s):
        return 0 if s == 0 or p < size - window else (1 if p < size - s else 2)

    for a in range(nh):
        for b in range(nw):
            local = [(i, j) for i in range(wh) for j in range(ww)]
            rolled = [((i * nh + a, j * nw + b) if msa.shuffle else (a * wh + i, b * ww + j)) for i, j in local]
            src = [((p + shift[0]) % Hp, (q + shift[1]) % Wp) for p, q in rolled]
            tokens = torch.stack([grid[:, p, q] for p, q in src], dim=1)  # B, N, C
            q, k, v = msa.qkv(tokens).view(B, -1, 3, heads, d).permute(2, 0, 3, 1, 4)
            logits = (q @ k.transpose(-2, -1)) * msa.scale
            for n, (i, j) in enumerate(local):
                for m, (i2, j2) in enumerate(local):
                    logits[:, :, n, m] += table[(i - i2 + wh - 1) * (2 * ww - 1) + (j - j2 + ww - 1)]
                    rn = (band(rolled[n][0], Hp, wh, shift[0]), band(rolled[n][1], Wp, ww, shift[1]))
                    rm = (band(rolled[m][0], Hp, wh, shift[0]), band(rolled[m][1], Wp, ww, shift[1]))
                    if rn != rm:
                        logits[:, :, n, m] -= 100.
                    if msa.mask_padding and not valid[src[m]]:
                        logits[:, :, n, m] = float('-inf')
            res = msa.proj((logits.softmax(-1) @ v).transpose(1, 2).reshape(B, -1, C))
            for n, (p, q) in enumerate(src):
                out[:, p, q] = res[:, n]
    return out[:, top:top + H, left:left + W].reshape(B, H * W, C)


CASES = {
    'swin-shift-odd': (dict(window_size=4), (7, 10), (2, 2)),
    'rect-center': (dict(window_size=(3, 4), pad_position='center'), (5, 9), (0, 0)),
    'center-masked': (dict(window_size=4, pad_position='center', mask_padding=True), (6, 7), (0, 0)),
    'bottom-right-masked-shift': (dict(window_size=3, mask_padding=True), (5, 7), (1, 1)),
    'shuffle': (dict(window_size=3, shuffle=True), (6, 9), (0, 0)),
    'shuffle-padded-masked': (dict(window_size=3, shuffle=True, mask_padding=True), (7, 8), (0, 0)),
    'stripe': (dict(window_size=(7, 1), pad_position='center'), (7, 5), (0, 0)),
}


@pytest.mark.parametrize('case', sorted(CASES))
@pytest.mark.parametrize('fused', [True, False])
def test_window_msa_matches_naive_loops(case, fused):
    kwargs, hw, shift = CASES[case]
    torch.manual_seed(0)
    msa = WindowMSA(8, num_heads=2, **kwargs).eval()
    with torch.no_grad():
        msa.rel_pos.relative_position_bias_table.normal_(0, 1)
        x = torch.randn(2, hw[0] * hw[1], 8)
        with use_fused_attn(fused):
            out = msa(x, hw, shift_size=shift)
        ref = naive_window_msa(msa, x, hw, shift)
    torch.testing.assert_close(out, ref, rtol=1e-5, atol=1e-5)


def test_window_msa_gradients_reach_bias_table():
    msa = WindowMSA(8, num_heads=2, window_size=3, mask_padding=True).train()
    msa(torch.randn(1, 5 * 7, 8), (5, 7), shift_size=1).sum().backward()
    assert msa.rel_pos.relative_position_bias_table.grad.abs().sum() > 0
    assert torch.isfinite(msa.qkv.weight.grad).all()
