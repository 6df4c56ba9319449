"""TokenClustering / TokenReconstruction against dense references written from the paper's formulas.

The references below build the full (N, M) distance matrix and the neighbourhood mask, exactly as the algorithm is
stated; the layers under test only score each token's lambda x lambda neighbourhood.
"""
import pytest
import torch
import torch.nn.functional as F

from mmvit_ext.models.layers.token_ops import TokenClustering, TokenReconstruction


def sq_dist(a, b):
    """(B, N, C), (B, M, C) -> (B, N, M) squared L2 distances."""
    return (a * a).sum(-1)[:, :, None] + (b * b).sum(-1)[:, None, :] - 2 * a @ b.transpose(1, 2)


def dense_clustering(x, hw_shape, cluster_shape, window, iters, tau, token_mask=None):
    """Reference clustering: dense distances, additive neighbourhood mask, softmax over all clusters."""
    B, N, C = x.shape
    (H, W), (h, w) = hw_shape, cluster_shape
    z = x.double()
    z_map = z.transpose(1, 2).reshape(B, C, H, W)
    m = torch.ones(B, N, dtype=z.dtype) if token_mask is None else token_mask.to(z.dtype)
    m_map = m.view(B, 1, H, W)
    centres = F.adaptive_avg_pool2d(z_map * m_map, (h, w)) / F.adaptive_avg_pool2d(m_map, (h, w)).clamp(1e-16)
    centres = centres.flatten(2).transpose(1, 2)
    # token (y, x) starts in cell (floor(y h / H), floor(x w / W))
    row = torch.arange(H).repeat_interleave(W) * h // H
    col = torch.arange(W).repeat(H) * w // W
    cell_row = torch.arange(h).repeat_interleave(w)
    cell_col = torch.arange(w).repeat(h)
    allowed = ((row[:, None] - cell_row[None]).abs() <= window // 2) & \
              ((col[:, None] - cell_col[None]).abs() <= window // 2)  # N, M
    for _ in range(iters):
        dist = sq_dist(z, centres)
        assign = (-tau * dist).masked_fill(~allowed, float('-inf')).softmax(-1).detach() * m[..., None]
        centres = assign.transpose(1, 2) @ z / assign.sum(1)[..., None].clamp(min=1e-16)
    labels = sq_dist(z, centres).argmin(-1)
    return centres, labels, allowed


def dense_reconstruction(x_low, feat, centres, k, tau, normalize='l2', clamp=False):
    """Reference reconstruction: plain exp(-tau d), keep >= k-th largest, normalise rows (use float64 inputs where
    exp(-tau d) would underflow in fp32)."""
    dist = sq_dist(feat, centres)
    if clamp:
        dist = dist.clamp(min=0)
    weight = torch.exp(-tau * dist)
    if 0 < k < weight.shape[-1]:
        kth = weight.topk(k, dim=-1).values[..., -1:]
        weight = torch.where(weight >= kth, weight, torch.zeros_like(weight))
    norm = weight.norm(dim=-1, keepdim=True) if normalize == 'l2' else weight.sum(-1, keepdim=True)
    weight = weight / norm
    return weight @ x_low


def assert_rel_close(actual, expected, rel=1e-5):
    err = (actual.double() - expected.double()).abs().max() / expected.double().abs().max()
    assert err <= rel, f'relative error {err:.3g} > {rel}'


# B, (H, W), C, (h, w), window: square, non-square, batch 2, grids that do not divide the token grid, more
# cluster rows than token rows (cells without tokens), window 3 and 5, window wider than the grid.
CASES = [
    (1, (8, 8), 16, (4, 4), 3),
    (2, (10, 14), 8, (4, 6), 5),
    (2, (9, 7), 8, (4, 3), 5),
    (1, (11, 13), 12, (5, 6), 3),
    (1, (6, 10), 4, (7, 3), 3),
    (2, (12, 12), 8, (8, 8), 5),
    (1, (12, 12), 8, (3, 3), 7),
]


@pytest.mark.parametrize('B,hw,C,grid,window', CASES)
def test_clustering_local_equals_dense(B, hw, C, grid, window):
    torch.manual_seed(0)
    x = torch.randn(B, hw[0] * hw[1], C)
    op = TokenClustering(cluster_shape=grid, window=window, iters=5, tau=0.1)
    centres, labels = op(x, hw)
    ref_centres, ref_labels, allowed = dense_clustering(x, hw, grid, window, 5, 0.1)
    assert centres.shape == (B, grid[0] * grid[1], C) and centres.dtype == torch.float32
    assert labels.shape == (B, hw[0] * hw[1]) and labels.dtype == torch.int64
    assert_rel_close(centres, ref_centres)
    assert torch.equal(labels, ref_labels)
    # the tiles score exactly the allowed pairs of the dense mask, each token in one tile, with a bounded halo
    nbh = op.neighbourhood(hw, x.device)
    assert torch.equal(nbh.tokens[nbh.token_ok].sort().values, torch.arange(hw[0] * hw[1]))
    pairs = nbh.allowed.nonzero()
    local_mask = torch.zeros_like(allowed)
    local_mask[nbh.tokens[pairs[:, 0], pairs[:, 1]], nbh.clusters[pairs[:, 0], pairs[:, 2]]] = True
    assert torch.equal(local_mask, allowed)
    assert nbh.clusters.shape[1] <= min(grid[0], 3 * window - 2) * min(grid[1], 3 * window - 2)


def test_clustering_local_labels():
    torch.manual_seed(1)
    hw, grid = (10, 12), (5, 4)
    x = torch.randn(2, 120, 8) * 3
    ref_centres, ref_labels, allowed = dense_clustering(x, hw, grid, 3, 4, 0.05)
    centres, labels = TokenClustering(grid, window=3, iters=4, tau=0.05, labels='local')(x, hw)
    assert_rel_close(centres, ref_centres)
    local_ref = sq_dist(x.double(), ref_centres).masked_fill(~allowed, float('inf')).argmin(-1)
    assert torch.equal(labels, local_ref)
    # here some tokens are nearer to a centre outside their neighbourhood: only 'global' finds it
    assert not torch.equal(labels, ref_labels)


def test_clustering_iters0_is_adaptive_pooling():
    x = torch.randn(1, 9 * 7, 5)
    centres, _ = TokenClustering((4, 3), window=3, iters=0)(x, (9, 7))
    pooled = F.adaptive_avg_pool2d(x.transpose(1, 2).reshape(1, 5, 9, 7), (4, 3)).flatten(2).transpose(1, 2)
    assert torch.allclose(centres, pooled, atol=1e-6)


def test_clustering_identity_when_clusters_are_tokens():
    torch.manual_seed(2)
    x = torch.randn(2, 6 * 5, 8)
    # distinct tokens are >= ~4 apart, so with tau = 100 every token owns its own cluster
    centres, labels = TokenClustering((6, 5), window=3, iters=5, tau=100.)(x, (6, 5))
    assert torch.allclose(centres, x, atol=1e-6)
    assert torch.equal(labels, torch.arange(30).expand(2, -1))


def test_clustering_token_mask_keeps_padding_out():
    torch.manual_seed(3)
    hw, grid = (12, 12), (8, 8)
    x = torch.randn(2, 144, 8)
    mask = torch.ones(2, 12, 12, dtype=torch.bool)
    mask[0, 9:] = False  # bottom padding in image 0
    mask[1, :, 7:] = False  # right padding in image 1
    mask = mask.flatten(1)
    op = TokenClustering(grid, window=5, iters=5, tau=0.1)
    centres, _ = op(x, hw, token_mask=mask)
    ref_centres, _, _ = dense_clustering(x, hw, grid, 5, 5, 0.1, token_mask=mask)
    assert_rel_close(centres, ref_centres)
    # changing the padded tokens changes nothing
    x2 = torch.where(mask[..., None], x, torch.randn_like(x) * 100)
    assert torch.allclose(op(x2, hw, token_mask=mask)[0], centres, atol=1e-6)
    # an all-valid mask is the unmasked layer
    assert torch.allclose(op(x, hw, token_mask=torch.ones_like(mask))[0], op(x, hw)[0], atol=1e-6)


@pytest.mark.parametrize('dtype', [torch.float16, torch.bfloat16])
def test_clustering_and_reconstruction_low_precision(dtype):
    torch.manual_seed(4)
    hw, grid = (8, 10), (4, 5)
    # ||z||^2 ~ 64 * 40^2 ~ 1e5 overflows fp16 (max 65504) if the distances were computed in fp16
    x = (torch.randn(2, 80, 64) * 40).to(dtype)
    clustering, recon = TokenClustering(grid, window=3, tau=1e-3), TokenReconstruction(k=5, tau=1e-3)
    centres, labels = clustering(x, hw)
    ref_centres, ref_labels = clustering(x.float(), hw)
    assert centres.dtype == dtype and torch.isfinite(centres).all()
    assert torch.equal(labels, ref_labels)
    assert_rel_close(centres, ref_centres, rel=1e-2)
    x_low = torch.randn(2, 20, 8).to(dtype)
    out = recon(x_low, x, centres)
    assert out.dtype == dtype and torch.isfinite(out).all()
    assert_rel_close(out, recon(x_low.float(), x.float(), ref_centres), rel=2e-2)


def test_ops_ignore_autocast():
    torch.manual_seed(5)
    x = torch.randn(1, 64, 16)
    clustering, recon = TokenClustering((4, 4), window=3), TokenReconstruction(k=4)
    centres, labels = clustering(x, (8, 8))
    out = recon(centres, x, centres)
    with torch.autocast('cpu', dtype=torch.bfloat16):
        ac_centres, ac_labels = clustering(x, (8, 8))
        ac_out = recon(centres, x, centres)
    assert ac_centres.dtype == torch.float32 and torch.equal(ac_centres, centres)
    assert torch.equal(ac_labels, labels) and torch.equal(ac_out, out)


@pytest.mark.parametrize('k,normalize,clamp', [(3, 'l2', False), (5, 'sum', False), (-1, 'l2', True),
                                               (100, 'sum', True)])
def test_reconstruction_equals_dense(k, normalize, clamp):
    torch.manual_seed(6)
    feat = torch.randn(2, 50, 8)
    centres, _ = TokenClustering((3, 4), window=3, tau=0.1)(feat, (5, 10))
    x_low = torch.randn(2, 12, 6)
    op = TokenReconstruction(k=k, tau=0.1, normalize=normalize, clamp_dist=clamp)
    out = op(x_low, feat, centres)
    assert out.shape == (2, 50, 6)
    assert_rel_close(out, dense_reconstruction(x_low.double(), feat.double(), centres.double(), k, 0.1, normalize,
                                               clamp))
    weight = op.weights(feat, centres)
    kept = (weight > 0).sum(-1)
    assert (kept == (k if 0 < k < 12 else 12)).all()
    if normalize == 'sum':
        assert torch.allclose(weight.sum(-1), torch.ones(2, 50), atol=1e-6)
    else:
        assert torch.allclose(weight.norm(dim=-1), torch.ones(2, 50), atol=1e-6)


def test_reconstruction_topk_ties_keep_more_than_k():
    feat = torch.zeros(1, 1, 3)
    # four centres at distance 1 and one at distance 4 from the token
    centres = torch.tensor([[[1., 0, 0], [-1, 0, 0], [0, 1, 0], [0, -1, 0], [0, 0, 2]]])
    weight = TokenReconstruction(k=2, tau=0.5).weights(feat, centres)
    assert torch.allclose(weight, torch.tensor([[[0.5, 0.5, 0.5, 0.5, 0.]]]))
    weight = TokenReconstruction(k=2, tau=0.5, normalize='sum').weights(feat, centres)
    assert torch.allclose(weight, torch.tensor([[[0.25, 0.25, 0.25, 0.25, 0.]]]))
    # k = 5 keeps the far centre too, with weight exp(-0.5 * 3) relative to the near ones
    weight = TokenReconstruction(k=5, tau=0.5, normalize='sum').weights(feat, centres)
    far = torch.exp(torch.tensor(-1.5))
    assert torch.allclose(weight[0, 0, 4], far / (4 + far))


def test_reconstruction_no_underflow():
    torch.manual_seed(7)
    # every distance is ~1.4e4, so the paper's plain exp(-0.02 d) underflows to 0 in fp32 (a zero token)
    feat = torch.randn(1, 20, 16) * 3
    centres = torch.randn(1, 6, 16) * 3 + 30
    x_low = torch.randn(1, 6, 4)
    assert (torch.exp(-0.02 * sq_dist(feat, centres)) == 0).all()
    out = TokenReconstruction(k=3, tau=0.02)(x_low, feat, centres)
    ref = dense_reconstruction(x_low.double(), feat.double(), centres.double(), 3, 0.02)
    assert out.abs().amin(-1).gt(0).all()
    # fp32 distances of ~1.4e4 carry ~1e-3 of round-off, i.e. ~2e-5 in the weights
    assert_rel_close(out, ref, rel=1e-4)


def test_reconstruction_identity_when_clusters_are_tokens():
    torch.manual_seed(8)
    x = torch.randn(2, 24, 8)
    centres, _ = TokenClustering((4, 6), window=3, tau=100.)(x, (4, 6))
    x_low = torch.randn(2, 24, 5)
    # k = 1 is a one-hot copy of the nearest centre, i.e. the token's own cluster
    assert torch.equal(TokenReconstruction(k=1, tau=0.02)(x_low, x, centres), x_low)
    # the round trip tokens -> clusters -> tokens gives back the input
    assert torch.allclose(TokenReconstruction(k=1)(centres, x, centres), x, atol=1e-6)


def test_gradients_match_dense_reference():
    torch.manual_seed(9)
    hw, grid = (6, 8), (3, 4)
    x = torch.randn(2, 48, 8, requires_grad=True)
    x_ref = x.detach().double().requires_grad_()
    x_low = torch.randn(2, 12, 5, requires_grad=True)
    x_low_ref = x_low.detach().double().requires_grad_()
    probe = torch.randn(2, 48, 5)

    centres, _ = TokenClustering(grid, window=3, iters=3, tau=0.1)(x, hw)
    out = TokenReconstruction(k=4, tau=0.1)(x_low, x, centres)
    (out * probe).sum().backward()

    ref_centres, _, _ = dense_clustering(x_ref, hw, grid, 3, 3, 0.1)
    ref_out = dense_reconstruction(x_low_ref, x_ref, ref_centres, 4, 0.1)
    (ref_out * probe.double()).sum().backward()

    assert x.grad.abs().sum() > 0 and x_low.grad.abs().sum() > 0
    assert_rel_close(x.grad, x_ref.grad, rel=1e-4)
    assert_rel_close(x_low.grad, x_low_ref.grad, rel=1e-5)


def test_float_cluster_shape_and_arguments():
    op = TokenClustering(cluster_shape=0.7)
    assert op.grid_shape((40, 40)) == (28, 28) and op.grid_shape((40, 60)) == (28, 42)
    centres, _ = op(torch.randn(1, 40 * 60, 4), (40, 60))
    assert centres.shape == (1, 28 * 42, 4)
    assert TokenClustering(cluster_shape=6).grid_shape((9, 9)) == (6, 6)
    with pytest.raises(AssertionError, match='odd'):
        TokenClustering(window=4)
    with pytest.raises(ValueError, match='labels'):
        TokenClustering(labels='dense')
    with pytest.raises(ValueError, match='normalize'):
        TokenReconstruction(normalize='l1')
    with pytest.raises(AssertionError, match='k must be'):
        TokenReconstruction(k=0)
    with pytest.raises(AssertionError, match='hw_shape'):
        TokenClustering((2, 2))(torch.randn(1, 10, 4), (3, 3))
