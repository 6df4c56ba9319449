"""Hourglass wrappers (Expedite) for the OpenMMLab ViT and Swin backbones.

Paper: "Expediting Large-Scale Vision Transformer for Dense Prediction without Fine-tuning",
Weicong Liang et al., NeurIPS 2022, https://arxiv.org/abs/2210.01035.
Original code: https://github.com/Expedit-LargeScale-Vision-Transformer (Expedit-Segmenter, Apache-2.0;
Expedit-Mask2Former, CC-BY-NC 4.0). Written for mmvit_ext from the algorithm description, not copied.

The wrappers subclass the host backbones and add no parameters, so host checkpoints load unchanged (same keys, same
shapes, ``strict=True``). After ``alpha`` host layers at full resolution a :class:`TokenClustering` layer reduces the
tokens, the next layers run on the clusters, and a :class:`TokenReconstruction` layer restores full resolution.
With ``expedite=None`` or ``expedite=dict(enabled=False, ...)`` the forward is the host's own.

Differences from the released code:

* ``alpha`` always counts the host layers (blocks) that run at full resolution. Expedit-Segmenter's
  ``location=9`` is ``alpha=10``; Expedit-Mask2Former's ``CLUSTERING_LOCATION=10`` is ``alpha=10``.
* ViT: the features returned for ``out_indices`` are always full resolution. The released Segmenter returns the
  low-resolution map and reconstructs the class logits after the decode head; see ``docs/models/expedite.md``.
* Swin: the relative-position-bias table of the host block is resized for the clustered window inside the forward
  as a pure function of the loaded table (the released code replaces the ``nn.Parameter`` on the first forward).
  Padding tokens are kept out of the clusters unless ``mask_padding=False`` (the released code clusters them). The
  shifted-window mask uses the clustered shift unless ``legacy_shift_mask=True``. The clustered blocks run the
  shared :func:`~mmvit_ext.models.layers.window.window_attention` (one ``sdpa`` call with bias and mask as one
  additive term) with the host block's weights; it equals the host's eager window attention to float tolerance.
"""
from typing import Dict, Optional, Tuple

import torch
from mmdet.models.backbones import SwinTransformer as MMDetSwinTransformer
from mmseg.models.backbones import SwinTransformer as MMSegSwinTransformer
from mmseg.models.backbones import VisionTransformer as MMSegVisionTransformer
from torch import Tensor

from mmvit_ext.registry import MODELS
from ..layers.pos_bias import relative_position_bias, relative_position_index
from ..layers.token_ops import TokenClustering, TokenReconstruction
from ..layers.utils import maybe_checkpoint
from ..layers.window import crop_padding, pad_to_window, window_attention, window_partition, window_reverse

__all__ = ['HourglassViT', 'HourglassSwin', 'HourglassSwinDet']

# Keys of the ``expedite`` dict, with their defaults. ``alpha`` and ``cluster_shape`` are required.
_COMMON_DEFAULTS = dict(enabled=True, window=5, iters=5, tau=0.02, k=20, recon_tau=None, normalize='l2')
_VIT_DEFAULTS = dict(_COMMON_DEFAULTS, beta=None, clamp_dist=False)
_SWIN_DEFAULTS = dict(_COMMON_DEFAULTS, clamp_dist=True, mask_padding=True, legacy_shift_mask=False)


def _parse_expedite(expedite: Optional[dict], defaults: dict) -> Optional[dict]:
    """Validate an ``expedite`` config; None when the hourglass is off."""
    if expedite is None:
        return None
    allowed = {'alpha', 'cluster_shape', *defaults}
    unknown = set(expedite) - allowed
    if unknown:
        raise ValueError(f'Unknown expedite keys {sorted(unknown)}; allowed: {sorted(allowed)}')
    missing = {'alpha', 'cluster_shape'} - set(expedite)
    if missing:
        raise ValueError(f'expedite needs {sorted(missing)}')
    cfg = dict(defaults, **expedite)
    if not cfg['enabled']:
        return None
    if cfg['recon_tau'] is None:
        cfg['recon_tau'] = cfg['tau']
    return cfg


def _build_ops(cfg: dict) -> Tuple[TokenClustering, TokenReconstruction]:
    # NOTE: the wrappers do not use hard labels, so 'local' keeps clustering O(N * window^2).
    clustering = TokenClustering(
        cluster_shape=cfg['cluster_shape'], window=cfg['window'], iters=cfg['iters'], tau=cfg['tau'], labels='local')
    reconstruction = TokenReconstruction(
        k=cfg['k'], tau=cfg['recon_tau'], normalize=cfg['normalize'], clamp_dist=cfg['clamp_dist'])
    return clustering, reconstruction


class _ClusterState:
    """What reconstruction needs from clustering: the tokens before clustering and the centres; the weights
    (B, N, M) are computed on first use and shared by every reconstruction of the same forward."""

    def __init__(self, reconstruction: TokenReconstruction, feat_before: Tensor, centres: Tensor) -> None:
        self.reconstruction = reconstruction
        self.feat_before = feat_before
        self.centres = centres
        self._weights = None

    def reconstruct(self, x_low: Tensor) -> Tensor:
        if self._weights is None:
            self._weights = self.reconstruction.weights(self.feat_before, self.centres)
        return self.reconstruction.apply_weights(self._weights, x_low)


@MODELS.register_module()
class HourglassViT(MMSegVisionTransformer):
    """mmseg ``VisionTransformer`` with token clustering and reconstruction (Expedite).

    Layers ``0 .. alpha-1`` run on the H x W patch tokens; the patch tokens are then clustered to an h x w grid
    (the class token is split off, passes through the clustered layers unchanged by clustering, and is put back in
    front; positional embeddings are not added again); layers ``alpha .. alpha+beta-1`` run on the clusters; then
    the patch tokens are reconstructed and the remaining layers run at full resolution. Every feature map returned
    for ``out_indices`` is full resolution (B, C, H, W): a map taken from a clustered layer is reconstructed with
    the weights of that forward. ``final_norm`` applies to the tokens of the last layer, clustered or not.

    Args:
        expedite (dict, optional): None or ``enabled=False`` runs the host unchanged. Keys:

            - ``alpha`` (int): layers run at full resolution before clustering, ``0 <= alpha < num_layers``.
            - ``cluster_shape`` (int | tuple[int, int] | float): cluster grid (h, w), or a ratio of (H, W).
            - ``beta`` (int, optional): layers run on the clusters; None (default) runs all remaining layers on them
              and reconstructs only the returned features.
            - ``window`` (5), ``iters`` (5), ``tau`` (0.02): :class:`TokenClustering` settings.
            - ``k`` (20), ``recon_tau`` (None: same as ``tau``), ``normalize`` ('l2'), ``clamp_dist`` (False):
              :class:`TokenReconstruction` settings.
            - ``enabled`` (bool): the on/off switch. Defaults to True.

        **kwargs: Arguments of mmseg's ``VisionTransformer``.

    Examples:
        >>> # Expedit-Segmenter ViT-L/16 ADE20K 640: location 9 -> alpha 10, 28 x 28 clusters
        >>> backbone = dict(type='mmvit_ext.HourglassViT', embed_dims=1024, num_layers=24, num_heads=16,
        ...                 expedite=dict(alpha=10, cluster_shape=(28, 28), window=5, iters=5, tau=0.02, k=20))
    """

    def __init__(self, *, expedite: Optional[dict] = None, **kwargs) -> None:
        super().__init__(**kwargs)
        self.expedite_cfg = _parse_expedite(expedite, _VIT_DEFAULTS)
        if self.expedite_cfg is not None:
            alpha, beta = self.expedite_cfg['alpha'], self.expedite_cfg['beta']
            assert 0 <= alpha < len(self.layers), f'alpha must be in [0, {len(self.layers)}), got {alpha}'
            assert beta is None or beta >= 1, f'beta must be None or >= 1, got {beta}'
            self.clustering, self.reconstruction = _build_ops(self.expedite_cfg)

    def train(self, mode: bool = True) -> 'HourglassViT':
        super().train(mode)
        return self  # NOTE: the host's train() returns None, which breaks ``model.eval()`` chains.

    @property
    def out_channels(self) -> Tuple[int, ...]:
        """Channels of each returned feature map (``out_origin`` first, then ``out_indices``)."""
        return (self.cls_token.shape[-1], ) * (len(self.out_indices) + int(self.out_origin))

    @property
    def out_strides(self) -> Tuple[int, ...]:
        """Stride of each returned feature map with respect to the input (the patch size)."""
        return (self.patch_size, ) * len(self.out_channels)

    def _patch_tokens(self, x: Tensor) -> Tuple[Optional[Tensor], Tensor]:
        """(B, [1 +] L, C) -> (class token (B, 1, C) or None, patch tokens (B, L, C))."""
        return (x[:, :1], x[:, 1:]) if self.with_cls_token else (None, x)

    def _feature_map(self, x: Tensor, hw_shape: Tuple[int, int], state: Optional[_ClusterState]):
        """One returned feature: patch tokens -> (B, C, H, W), reconstructed if ``x`` is clustered."""
        cls_token, patches = self._patch_tokens(x)
        if state is not None:
            patches = state.reconstruct(patches)
        B, _, C = patches.shape
        # B, N, C -> B, C, H, W
        out = patches.reshape(B, *hw_shape, C).permute(0, 3, 1, 2).contiguous()
        return [out, x[:, 0]] if self.output_cls_token else out

    def forward(self, inputs: Tensor) -> tuple:
        if self.expedite_cfg is None:
            return super().forward(inputs)
        B = inputs.shape[0]
        x, hw_shape = self.patch_embed(inputs)
        x = torch.cat((self.cls_token.expand(B, -1, -1), x), dim=1)
        x = self._pos_embeding(x, hw_shape, self.pos_embed)
        if not self.with_cls_token:
            x = x[:, 1:]
        if self.pre_norm:
            x = self.pre_ln(x)

        outs = [self._feature_map(x, hw_shape, None)] if self.out_origin else []
        alpha, beta = self.expedite_cfg['alpha'], self.expedite_cfg['beta']
        recon_before = len(self.layers) if beta is None else alpha + beta
        state = None
        for i, layer in enumerate(self.layers):
            if i == alpha:
                cls_token, patches = self._patch_tokens(x)
                centres, _ = self.clustering(patches, hw_shape)
                state = _ClusterState(self.reconstruction, patches, centres)
                x = centres if cls_token is None else torch.cat((cls_token, centres), dim=1)
            elif i == recon_before and state is not None:
                cls_token, patches = self._patch_tokens(x)
                patches = state.reconstruct(patches)
                x = patches if cls_token is None else torch.cat((cls_token, patches), dim=1)
                state = None
            x = layer(x)
            if i == len(self.layers) - 1 and self.final_norm:
                x = self.norm1(x)
            if i in self.out_indices:
                outs.append(self._feature_map(x, hw_shape, state))
        return tuple(outs)


class _HourglassSwinMixin:
    """Hourglass forward for the mmseg/mmdet ``SwinTransformer`` (same module structure in both).

    Clustering happens inside the stage that contains block ``alpha`` (a global block index), before that block:
    the stage input is zero-padded to multiples of the host window (``ws``), each ws x ws window is clustered to
    k x k tokens (``cluster_shape=(k, k)``), and the k x k results are laid out as one k x k window each. The
    remaining blocks of the stage run with window k, shift k // 2 on odd blocks and the host's relative-position-bias
    table resized bilinearly from (2 ws - 1)^2 to (2 k - 1)^2. At the end of the stage, before the downsampling,
    each window is reconstructed to ws x ws and the padding is cropped, so the stage output and every later stage
    are full resolution.
    """

    def _init_expedite(self, expedite: Optional[dict]) -> None:
        self.expedite_cfg = _parse_expedite(expedite, _SWIN_DEFAULTS)
        if self.expedite_cfg is None:
            return
        depths = [len(stage.blocks) for stage in self.stages]
        window_size = self.stages[0].blocks[0].attn.window_size
        alpha = self.expedite_cfg['alpha']
        assert 0 <= alpha < sum(depths), f'alpha must be in [0, {sum(depths)}), got {alpha}'
        shape = self.expedite_cfg['cluster_shape']
        shape = (shape, shape) if isinstance(shape, int) else shape
        assert not isinstance(shape, float) and len(shape) == 2 and shape[0] == shape[1], \
            f'Swin clusters each window into a square k x k grid, got cluster_shape={shape}'
        k = int(shape[0])
        assert 1 <= k <= window_size, f'k must be in [1, {window_size}], got {k}'
        self.expedite_stage = next(i for i in range(len(depths)) if alpha < sum(depths[:i + 1]))
        self.expedite_block = alpha - sum(depths[:self.expedite_stage])
        self.host_window = window_size
        self.clustered_window = k
        self.clustering, self.reconstruction = _build_ops(self.expedite_cfg)
        self.register_buffer('clustered_position_index', relative_position_index(k), persistent=False)

    def train(self, mode: bool = True):
        super().train(mode)
        return self  # NOTE: the host's train() returns None, which breaks ``model.eval()`` chains.

    @property
    def out_channels(self) -> Tuple[int, ...]:
        """Channels of each returned feature map (one per ``out_indices`` stage)."""
        return tuple(self.num_features[i] for i in self.out_indices)

    @property
    def out_strides(self) -> Tuple[int, ...]:
        """Stride of each returned feature map with respect to the input."""
        stride, strides = self.patch_embed.projection.stride[0], []
        for stage in self.stages:
            strides.append(stride)  # a stage returns its features before its downsampling
            if stage.downsample is not None:
                down = stage.downsample.sampler.stride
                stride *= down[0] if isinstance(down, tuple) else down
        return tuple(strides[i] for i in self.out_indices)

    def _clustered_bias(self, w_msa) -> Tensor:
        """(nH, k^2, k^2) bias from the host's (2 ws - 1)^2 table, resized bilinearly (align_corners=False)."""
        return relative_position_bias(
            w_msa.relative_position_bias_table,
            self.clustered_window,
            table_window_size=self.host_window,
            index=self.clustered_position_index)

    def _clustered_block(self, block, x: Tensor, hw_shape: Tuple[int, int]) -> Tensor:
        """A host ``SwinBlock`` run on the clustered grid (window k)."""
        k = self.clustered_window
        shift = k // 2 if block.attn.shift_size > 0 else 0
        # NOTE: the released code builds the mask with the host shift ws // 2 while rolling by k // 2.
        mask_shift = block.attn.shift_size if self.expedite_cfg['legacy_shift_mask'] else shift

        def inner(x: Tensor) -> Tensor:
            w_msa = block.attn.w_msa
            attn = window_attention(
                block.norm1(x),
                hw_shape,
                qkv=w_msa.qkv,
                proj=w_msa.proj,
                num_heads=w_msa.num_heads,
                window_size=k,
                scale=w_msa.scale,
                rel_pos_bias=self._clustered_bias(w_msa),
                shift_size=shift,
                mask_shift_size=mask_shift,
                attn_drop=w_msa.attn_drop.p if self.training else 0.)
            x = x + block.attn.drop(w_msa.proj_drop(attn))
            return block.ffn(block.norm2(x), identity=x)

        return maybe_checkpoint(inner, x, enabled=block.with_cp and x.requires_grad)

    def _cluster_windows(self, x: Tensor, hw_shape: Tuple[int, int]) -> Tuple[Tensor, Tuple[int, int], Dict]:
        """(B, H*W, C) -> clustered grid (B, Hc*Wc, C), (Hc, Wc) and what reconstruction needs."""
        ws, k = self.host_window, self.clustered_window
        B, _, C = x.shape
        H, W = hw_shape
        x, pads = pad_to_window(x.view(B, H, W, C), ws)  # bottom-right, as the host
        Hp, Wp = x.shape[1:3]
        windows = window_partition(x, ws)  # B*nW, ws^2, C
        token_mask = None
        if self.expedite_cfg['mask_padding'] and any(pads):
            valid, _ = pad_to_window(x.new_ones(B, H, W, 1), ws)
            token_mask = window_partition(valid, ws).squeeze(-1) > 0  # B*nW, ws^2
        centres, _ = self.clustering(windows, (ws, ws), token_mask)  # B*nW, k^2, C
        grid = (Hp // ws * k, Wp // ws * k)
        clustered = window_reverse(centres, k, grid).view(B, -1, C)
        return clustered, grid, dict(windows=windows, centres=centres, padded=(Hp, Wp), pads=pads)

    def _reconstruct_windows(self, x: Tensor, grid: Tuple[int, int], hw_shape: Tuple[int, int], saved: Dict) -> Tensor:
        """Clustered grid (B, Hc*Wc, C) -> (B, H*W, C), window by window."""
        B, _, C = x.shape
        x_low = window_partition(x.view(B, *grid, C), self.clustered_window)  # B*nW, k^2, C
        windows = self.reconstruction(x_low, saved['windows'], saved['centres'])  # B*nW, ws^2, C
        x = window_reverse(windows, self.host_window, saved['padded'])
        H, W = hw_shape
        return crop_padding(x, saved['pads']).reshape(B, H * W, C)

    def _hourglass_stage(self, stage, x: Tensor, hw_shape: Tuple[int, int]):
        """The host ``SwinBlockSequence.forward`` with clustering before block ``expedite_block``."""
        first = self.expedite_block
        for block in stage.blocks[:first]:
            x = block(x, hw_shape)
        x, grid, saved = self._cluster_windows(x, hw_shape)
        for block in stage.blocks[first:]:
            x = self._clustered_block(block, x, grid)
        x = self._reconstruct_windows(x, grid, hw_shape, saved)
        if stage.downsample:
            x_down, down_hw_shape = stage.downsample(x, hw_shape)
            return x_down, down_hw_shape, x, hw_shape
        return x, hw_shape, x, hw_shape

    def forward(self, x: Tensor) -> Tuple[Tensor, ...]:
        if self.expedite_cfg is None:
            return tuple(super().forward(x))  # NOTE: the hosts return a list; every mmvit_ext backbone a tuple
        x, hw_shape = self.patch_embed(x)
        if self.use_abs_pos_embed:
            x = x + self.absolute_pos_embed
        x = self.drop_after_pos(x)
        outs = []
        for i, stage in enumerate(self.stages):
            if i == self.expedite_stage:
                x, hw_shape, out, out_hw_shape = self._hourglass_stage(stage, x, hw_shape)
            else:
                x, hw_shape, out, out_hw_shape = stage(x, hw_shape)
            if i in self.out_indices:
                out = getattr(self, f'norm{i}')(out)
                # B, N, C -> B, C, H, W
                outs.append(out.view(-1, *out_hw_shape, self.num_features[i]).permute(0, 3, 1, 2).contiguous())
        return tuple(outs)


@MODELS.register_module()
class HourglassSwin(_HourglassSwinMixin, MMSegSwinTransformer):
    """mmseg ``SwinTransformer`` with per-window token clustering and reconstruction (Expedite).

    Args:
        expedite (dict, optional): None or ``enabled=False`` runs the host unchanged. Keys:

            - ``alpha`` (int): global index of the first clustered block (blocks before it run at full
              resolution), ``0 <= alpha < sum(depths)``. Only the stage that contains it is changed.
            - ``cluster_shape`` (int | tuple[int, int]): k or (k, k), the clusters per host window, k <= window.
            - ``window`` (5), ``iters`` (5), ``tau`` (0.02): :class:`TokenClustering` settings.
            - ``k`` (20), ``recon_tau`` (None: same as ``tau``), ``normalize`` ('l2'), ``clamp_dist`` (True, as the
              released Swin code): :class:`TokenReconstruction` settings.
            - ``mask_padding`` (bool): keep the zero padding of the last window row/column out of the clusters.
              Defaults to True; the released code clusters it (False).
            - ``legacy_shift_mask`` (bool): build the shifted-window mask with the host shift ws // 2 while rolling
              by k // 2, as the released code does. Defaults to False.
            - ``enabled`` (bool): the on/off switch. Defaults to True.

        **kwargs: Arguments of mmseg's ``SwinTransformer``.

    Examples:
        >>> # Expedit-Mask2Former Swin-L COCO panoptic: CLUSTERING_LOCATION 10, 8 x 8 per 12 x 12 window
        >>> backbone = dict(type='mmvit_ext.HourglassSwin', embed_dims=192, depths=(2, 2, 18, 2),
        ...                 num_heads=(6, 12, 24, 48), window_size=12,
        ...                 expedite=dict(alpha=10, cluster_shape=8, window=7, iters=5, tau=0.05, k=10))
    """

    def __init__(self, *, expedite: Optional[dict] = None, **kwargs) -> None:
        super().__init__(**kwargs)
        self._init_expedite(expedite)


@MODELS.register_module()
class HourglassSwinDet(_HourglassSwinMixin, MMDetSwinTransformer):
    """mmdet ``SwinTransformer`` (with its ``convert_weights`` for official Swin checkpoints) with per-window token
    clustering and reconstruction; ``expedite`` as in :class:`HourglassSwin`."""

    def __init__(self, *, expedite: Optional[dict] = None, **kwargs) -> None:
        super().__init__(**kwargs)
        self._init_expedite(expedite)
