"""Token clustering and token reconstruction: the two parameter-free layers of an hourglass transformer.

Paper: "Expediting Large-Scale Vision Transformer for Dense Prediction without Fine-tuning",
Weicong Liang et al., NeurIPS 2022, https://arxiv.org/abs/2210.01035.
Original code: https://github.com/Expedit-LargeScale-Vision-Transformer (Expedit-Segmenter is Apache-2.0; the
Swin/Mask2Former version is CC-BY-NC 4.0). Written for mmvit_ext from the algorithm description, not copied.

Differences from the released code (results are equal to float tolerance unless stated):

* Clustering scores only the lambda x lambda neighbourhood of each token, as dense blocks per tile of the cluster
  grid (O(N * lambda^2 * C) per iteration, see :class:`Neighbourhood`), instead of a dense (M, N) distance matrix
  with a 1e16 additive mask; outside the neighbourhood a boolean mask gives exactly zero weight.
* Both layers run in fp32 with autocast disabled, whatever the input dtype, and cast back at the end. Labels are
  int64, not floats.
* Reconstruction subtracts the per-row minimum distance before ``exp``. Top-k and the row normalisation are invariant
  to scaling a row, so the weights are unchanged, but a row can no longer underflow to all zeros (the released code
  then outputs a zero token).
* ``k < 0`` keeps every cluster (the Swin/SAM versions raise NameError); ``k >= M`` keeps every cluster (the released
  code fails in ``topk``).
* Optional: a token mask keeps padding tokens out of the clusters (the Swin version clusters zero padding), and a
  ``'sum'`` row normalisation next to the official ``'l2'``.
"""
import functools
from typing import NamedTuple, Optional, Sequence, Tuple, Union

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from mmvit_ext.utils.errors import ConfigError


class Neighbourhood(NamedTuple):
    """The token-cluster pairs that clustering scores, grouped in tiles of the cluster grid.

    A tile is a block of at most lambda x lambda cells (the grid is split evenly); its tokens are those whose
    initial cell lies in the block, its clusters are the block plus a margin of lambda // 2 cells. Each token lies in
    exactly one tile, and that tile holds every cluster the token may join, so the scores are one dense
    (tokens x clusters) block per tile: batched GEMMs of total size at most N x min(h, 3 lambda - 2) x
    min(w, 3 lambda - 2), instead of N x h x w.

    Attributes:
        tokens (Tensor): (T, Lt) long, token index (row-major in H x W) of each tile slot, 0 in unused slots.
        token_ok (Tensor): (T, Lt) bool, False for unused slots.
        clusters (Tensor): (T, Lc) long, cluster index (row-major in h x w) of each tile slot, 0 in unused slots.
        allowed (Tensor): (T, Lt, Lc) bool, the token may join the cluster (both slots used, |d row|, |d col| <=
            lambda // 2 in cells).
    """
    tokens: Tensor
    token_ok: Tensor
    clusters: Tensor
    allowed: Tensor


def _axis_tiles(size: int, cells: int, radius: int) -> Tuple[Tensor, Tensor, Tensor, Tensor]:
    """Tiling of one axis: ``size`` token rows, ``cells`` cluster rows, ``ceil(cells / (2 radius + 1))`` tiles of
    (almost) equal numbers of cells.

    Returns:
        tuple: tokens (t, lt) long, token_ok (t, lt), clusters (t, lc) long, near (t, lt, lc) bool.
    """
    # initial cell of every token row: nearest resize of arange(cells), exactly as F.interpolate rounds it
    own = F.interpolate(
        torch.arange(cells, dtype=torch.float32).view(1, 1, cells, 1), size=(size, 1),
        mode='nearest').view(size).long()
    num_tiles = -(-cells // (2 * radius + 1))
    bounds = torch.arange(num_tiles + 1) * cells // num_tiles  # tile t holds cells [bounds[t], bounds[t + 1])
    # ``own`` is non-decreasing, so the tokens of a tile are the contiguous run [lo, hi)
    lo, hi = torch.searchsorted(own, bounds[:-1]), torch.searchsorted(own, bounds[1:])
    tokens = lo[:, None] + torch.arange(max(1, int((hi - lo).max())))
    token_ok = tokens < hi[:, None]
    tokens = tokens.clamp(max=size - 1)
    c_lo, c_hi = (bounds[:-1] - radius).clamp(min=0), (bounds[1:] + radius).clamp(max=cells)
    clusters = c_lo[:, None] + torch.arange(int((c_hi - c_lo).max()))
    cluster_ok = clusters < c_hi[:, None]
    clusters = clusters.clamp(max=cells - 1)
    near = (own[tokens][:, :, None] - clusters[:, None, :]).abs() <= radius
    return tokens, token_ok, clusters, near & token_ok[:, :, None] & cluster_ok[:, None, :]


@functools.lru_cache(maxsize=32)
def neighbourhood(hw_shape: Tuple[int, int], grid_shape: Tuple[int, int], window: int,
                  device: torch.device) -> Neighbourhood:
    """The tiles of :class:`Neighbourhood` for an (H, W) token grid, an (h, w) cluster grid and an odd ``window``
    (cached: the tables depend on the shapes only)."""
    (H, W), (h, w), radius = hw_shape, grid_shape, window // 2
    rt, rt_ok, rc, r_near = _axis_tiles(H, h, radius)
    ct, ct_ok, cc, c_near = _axis_tiles(W, w, radius)
    # row tiles x column tiles: (tr, tc, lt_r, lt_c) -> (T, Lt), and (tr, tc, lc_r, lc_c) -> (T, Lc)
    tokens = (rt[:, None, :, None] * W + ct[None, :, None, :]).flatten(2).flatten(0, 1)
    token_ok = (rt_ok[:, None, :, None] & ct_ok[None, :, None, :]).flatten(2).flatten(0, 1)
    clusters = (rc[:, None, :, None] * w + cc[None, :, None, :]).flatten(2).flatten(0, 1)
    # (tr, tc, lt_r, lt_c, lc_r, lc_c) -> (T, Lt, Lc)
    allowed = r_near[:, None, :, None, :, None] & c_near[None, :, None, :, None, :]
    allowed = allowed.flatten(4).flatten(2, 3).flatten(0, 1)
    return Neighbourhood(*(t.to(device) for t in (tokens, token_ok, clusters, allowed)))


def _fp32_region(device: torch.device):
    """A context that turns autocast off, so that matmuls inside really run in fp32."""
    return torch.autocast(device_type=device.type, enabled=False)


def _pairwise_sq_dist(a: Tensor, b: Tensor) -> Tensor:
    """Squared L2 distances ``||a_i||^2 + ||b_j||^2 - 2 a_i.b_j`` (the paper's formula), (..., N, C) x (..., M, C)
    -> (..., N, M)."""
    return (a * a).sum(-1).unsqueeze(-1) + (b * b).sum(-1).unsqueeze(-2) - 2 * (a @ b.transpose(-1, -2))


class TokenClustering(nn.Module):
    """Token clustering layer: N tokens on an H x W grid -> M = h x w cluster centres.

    A few iterations of locally constrained soft k-means:

    1. the initial centres are ``adaptive_avg_pool2d`` of the token map to (h, w);
    2. token (y, x) starts in cell (floor(y h / H), floor(x w / W)) (nearest resize of the cell ids) and may only be
       assigned to the clusters whose cell is at most ``window // 2`` rows and columns away from it;
    3. each iteration computes squared L2 distances D between raw tokens and their candidate centres, the assignment
       ``softmax(-tau * D)`` over the candidates, and the new centres as assignment-weighted means of the tokens.

    Only the allowed token-cluster pairs and a halo around them are scored (see :class:`Neighbourhood`), so the cost
    is O(N * window^2 * C) per iteration. The assignments are constants for autograd (as in the released code):
    gradients reach the input through the weighted means of the last iteration only.

    Args:
        cluster_shape (int | tuple[int, int] | float): Cluster grid (h, w). An int means (n, n); a float r in (0, 1]
            means (max(1, round(H * r)), max(1, round(W * r))) for an H x W input, which keeps the aspect ratio of
            non-square inputs. Defaults to (28, 28).
        window (int): Odd neighbourhood size lambda, in cluster-grid cells. Defaults to 5.
        iters (int): Number of k-means iterations kappa. Defaults to 5.
        tau (float): Multiplier of the distances in the softmax (an inverse temperature, the released code's
            ``temperture``). Defaults to 0.02.
        labels (str): How the hard labels are computed. ``'global'`` (released code): nearest final centre among
            all M clusters, one dense (N, M) distance pass. ``'local'``: nearest among the token's allowed clusters,
            which keeps the whole layer O(N * window^2). Defaults to 'global'.

    Examples:
        >>> op = TokenClustering(cluster_shape=(4, 6), window=3)
        >>> centres, labels = op(torch.randn(2, 8 * 12, 16), (8, 12))
        >>> centres.shape, labels.shape, labels.dtype
        (torch.Size([2, 24, 16]), torch.Size([2, 96]), torch.int64)
    """

    def __init__(self,
                 cluster_shape: Union[int, Tuple[int, int], float] = (28, 28),
                 window: int = 5,
                 iters: int = 5,
                 tau: float = 0.02,
                 *,
                 labels: str = 'global') -> None:
        super().__init__()
        if isinstance(cluster_shape, float):
            assert 0 < cluster_shape <= 1, f'a float cluster_shape is a ratio in (0, 1], got {cluster_shape}'
        else:
            if isinstance(cluster_shape, int):
                cluster_shape = (cluster_shape, cluster_shape)
            cluster_shape = tuple(int(s) for s in cluster_shape)
            assert len(cluster_shape) == 2 and min(cluster_shape) > 0, \
                f'cluster_shape must be two positive ints, got {cluster_shape}'
        assert window >= 1 and window % 2 == 1, f'window must be a positive odd int, got {window}'
        assert iters >= 0, f'iters must be >= 0, got {iters}'
        assert tau > 0, f'tau must be > 0, got {tau}'
        if labels not in ('global', 'local'):
            raise ConfigError(f"labels must be 'global' or 'local', got {labels!r}")
        self.cluster_shape = cluster_shape
        self.window = window
        self.iters = iters
        self.tau = tau
        self.labels = labels

    def grid_shape(self, hw_shape: Sequence[int]) -> Tuple[int, int]:
        """The cluster grid (h, w) used for an (H, W) token grid."""
        if isinstance(self.cluster_shape, float):
            return tuple(max(1, round(s * self.cluster_shape)) for s in hw_shape)
        return self.cluster_shape

    def neighbourhood(self, hw_shape: Sequence[int], device: torch.device) -> Neighbourhood:
        """The allowed token-cluster pairs for an (H, W) token grid, in tiles (see :class:`Neighbourhood`)."""
        return neighbourhood(tuple(hw_shape), self.grid_shape(hw_shape), self.window, device)

    @staticmethod
    def _local_dist(z_t: Tensor, zz_t: Tensor, centres: Tensor, nbh: Neighbourhood) -> Tensor:
        """Squared L2 distances within the tiles, +inf where not allowed.

        Args:
            z_t (Tensor): (B, T, Lt, C) tiled tokens, ``zz_t`` (B, T, Lt) their squared norms.
            centres (Tensor): (B, M, C).

        Returns:
            Tensor: (B, T, Lt, Lc).
        """
        cc_t = (centres * centres).sum(-1)[:, nbh.clusters]  # B, T, Lc
        dot = z_t @ centres[:, nbh.clusters].transpose(-1, -2)  # B, T, Lt, Lc
        return (zz_t.unsqueeze(-1) + cc_t.unsqueeze(-2) - 2 * dot).masked_fill(~nbh.allowed, float('inf'))

    def forward(self, x: Tensor, hw_shape: Sequence[int], token_mask: Optional[Tensor] = None) -> Tuple[Tensor, Tensor]:
        """Cluster the tokens.

        Args:
            x (Tensor): Tokens (B, N, C) with N = H * W, row-major, without class tokens. Any float dtype.
            hw_shape (tuple[int, int]): (H, W).
            token_mask (Tensor, optional): (B, N) bool, False for padding tokens. Masked tokens are left out of the
                initial and the iterated centres (a cluster with no valid token gets a zero centre). Their labels
                are still computed. Defaults to None (all tokens valid).

        Returns:
            tuple[Tensor, Tensor]: The centres (B, h*w, C) in the dtype of ``x`` and the hard labels (B, N) int64
            (index of each token's nearest final centre).
        """
        B, N, C = x.shape
        H, W = hw_shape
        assert N == H * W, f'{N} tokens do not fit hw_shape {tuple(hw_shape)}'
        h, w = self.grid_shape(hw_shape)
        nbh = self.neighbourhood(hw_shape, x.device)
        with _fp32_region(x.device):
            z = x.float()
            # B, N, C -> B, C, H, W
            z_map = z.transpose(1, 2).reshape(B, C, H, W)
            if token_mask is None:
                centres = F.adaptive_avg_pool2d(z_map, (h, w))
            else:
                m = token_mask.to(z.dtype).view(B, 1, H, W)
                centres = F.adaptive_avg_pool2d(z_map * m, (h, w)) / F.adaptive_avg_pool2d(m, (h, w)).clamp(1e-16)
            centres = centres.flatten(2).transpose(1, 2)  # B, C, h, w -> B, M, C

            z_t = z[:, nbh.tokens]  # B, T, Lt, C
            zz_t = (z_t * z_t).sum(-1)
            weight_ok = nbh.token_ok if token_mask is None else nbh.token_ok & token_mask[:, nbh.tokens]
            flat_clusters = nbh.clusters.flatten()  # T*Lc
            for i in range(self.iters):
                # NOTE: the assignments are constants for autograd, so only the last mean needs a graph.
                with torch.no_grad():
                    # B, T, Lt, Lc; rows of unused slots are all -inf (NaN after softmax) and are zeroed
                    assign = (-self.tau * self._local_dist(z_t, zz_t, centres, nbh)).softmax(-1)
                    assign = assign.masked_fill(~weight_ok.unsqueeze(-1), 0)
                with torch.set_grad_enabled(torch.is_grad_enabled() and i == self.iters - 1):
                    num = assign.transpose(-1, -2) @ z_t  # B, T, Lc, C
                    num = z.new_zeros(B, h * w, C).index_add(1, flat_clusters, num.flatten(1, 2))
                    den = z.new_zeros(B, h * w).index_add(1, flat_clusters, assign.sum(2).flatten(1))
                    centres = num / den.clamp(min=1e-16).unsqueeze(-1)

            with torch.no_grad():
                if self.labels == 'global':
                    labels = _pairwise_sq_dist(z, centres).argmin(-1)
                else:
                    nearest = self._local_dist(z_t, zz_t, centres, nbh).argmin(-1)  # B, T, Lt (slot in the tile)
                    nearest = nbh.clusters.expand(B, -1, -1).gather(-1, nearest)
                    labels = torch.empty(B, N, dtype=torch.long, device=x.device)
                    labels[:, nbh.tokens[nbh.token_ok]] = nearest[:, nbh.token_ok]
        return centres.to(x.dtype), labels

    def extra_repr(self) -> str:
        return (f'cluster_shape={self.cluster_shape}, window={self.window}, iters={self.iters}, tau={self.tau}, '
                f'labels={self.labels!r}')


class TokenReconstruction(nn.Module):
    """Token reconstruction layer: M low-resolution tokens -> N tokens.

    Every high-resolution token becomes a mix of the low-resolution tokens with weights from the features seen at
    clustering time: ``d = ||z_i - s_j||^2`` between the tokens ``z`` and the final centres ``s``,
    ``w = exp(-tau * (d - min_j d))``, all but the k largest weights of a row set to zero (ties keep more than k),
    then each row normalised (L2 in the paper's code). The top-k runs over all M clusters, as in the released code.

    Args:
        k (int): Number of clusters kept per token; ``k < 0`` or ``k >= M`` keeps all. Defaults to 20.
        tau (float): Multiplier of the distances (inverse temperature). Defaults to 0.02.
        normalize (str): Row normalisation of the weights, ``'l2'`` (released code) or ``'sum'`` (rows sum to
            one). Defaults to 'l2'.
        clamp_dist (bool): Clamp negative distances (round-off) to 0, as the Swin and SAM versions do; the
            Segmenter version does not. Defaults to False.

    Examples:
        >>> clustering, recon = TokenClustering((4, 4), window=3), TokenReconstruction(k=4)
        >>> x = torch.randn(1, 64, 8)
        >>> centres, _ = clustering(x, (8, 8))
        >>> recon(centres * 2, x, centres).shape
        torch.Size([1, 64, 8])
    """

    def __init__(self, k: int = 20, tau: float = 0.02, normalize: str = 'l2', *, clamp_dist: bool = False) -> None:
        super().__init__()
        assert k != 0, 'k must be positive, or negative for no top-k masking'
        assert tau > 0, f'tau must be > 0, got {tau}'
        if normalize not in ('l2', 'sum'):
            raise ConfigError(f"normalize must be 'l2' or 'sum', got {normalize!r}")
        self.k = k
        self.tau = tau
        self.normalize = normalize
        self.clamp_dist = clamp_dist

    @torch.no_grad()
    def _topk_mask(self, dist: Tensor, weight: Tensor) -> Tensor:
        """(B, N, M) bool: the weights >= the k-th largest of their row (ties keep more than k).

        NOTE: exp maps distances one ulp apart to equal floats, so the set of ties depends on how the weights are
        rounded. The selection therefore uses the released code's unshifted ``exp(-tau * d)``, which makes it
        identical to the released code for identical distances. Rows whose k-th unshifted weight underflows to
        zero (where the released code keeps zero tokens) select on the shifted ``weight`` instead.
        """
        raw = torch.exp(-self.tau * dist)
        kth_raw = raw.topk(self.k, dim=-1).values[..., -1:]
        kth = weight.topk(self.k, dim=-1).values[..., -1:]
        return torch.where(kth_raw > 0, raw >= kth_raw, weight >= kth)

    def weights(self, feat_before: Tensor, centres: Tensor) -> Tensor:
        """Reconstruction weights (B, N, M), fp32, from the tokens (B, N, C) and the centres (B, M, C) that the
        clustering layer received and returned. Compute them once to reconstruct several low-resolution maps."""
        with _fp32_region(feat_before.device):
            dist = _pairwise_sq_dist(feat_before.float(), centres.float())  # B, N, M
            if self.clamp_dist:
                dist = dist.clamp(min=0)
            # NOTE: top-k and the normalisation ignore a per-row factor, so the shift changes nothing but underflow.
            weight = torch.exp(-self.tau * (dist - dist.amin(-1, keepdim=True).detach()))
            if 0 < self.k < weight.shape[-1]:
                weight = weight.masked_fill(~self._topk_mask(dist, weight), 0)
            if self.normalize == 'l2':
                return F.normalize(weight, p=2, dim=-1, eps=1e-12)
            return weight / weight.sum(-1, keepdim=True).clamp(min=1e-12)

    @staticmethod
    def apply_weights(weight: Tensor, x_low: Tensor) -> Tensor:
        """(B, N, M) weights x (B, M, C') low-resolution tokens -> (B, N, C') in the dtype of ``x_low``."""
        with _fp32_region(x_low.device):
            return torch.bmm(weight, x_low.float()).to(x_low.dtype)

    def forward(self, x_low: Tensor, feat_before: Tensor, centres: Tensor) -> Tensor:
        """Reconstruct.

        Args:
            x_low (Tensor): Low-resolution tokens (B, M, C'); C' may differ from C (e.g. class logits).
            feat_before (Tensor): Tokens given to the clustering layer (B, N, C).
            centres (Tensor): Centres returned by the clustering layer (B, M, C).

        Returns:
            Tensor: (B, N, C') in the dtype of ``x_low``.
        """
        assert x_low.shape[:2] == centres.shape[:2], \
            f'x_low {tuple(x_low.shape)} and centres {tuple(centres.shape)} differ in batch or clusters'
        return self.apply_weights(self.weights(feat_before, centres), x_low)

    def extra_repr(self) -> str:
        return f'k={self.k}, tau={self.tau}, normalize={self.normalize!r}, clamp_dist={self.clamp_dist}'
