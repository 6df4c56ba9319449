"""Data transforms of mmvit_ext, registered in :data:`mmvit_ext.registry.TRANSFORMS`.

``AlignResize`` reproduces the test-time resizing of the official P2T segmentation code (``segmentation/
align_resize.py`` of github.com/yuhuan-wu/P2T, mmseg 0.x, itself the ``AlignedResize`` of SegFormer): after the
keep-ratio resize to ``(2048, 512)``, the image is *resized* (not padded) so that both sides are the next
multiples of 32. It is written here from that description on top of mmcv's ``Resize``; no code was copied.

Host pipelines reach it with the scope prefix, ``dict(type='mmvit_ext.AlignResize', size_divisor=32)``: mmseg's
``TRANSFORMS`` registry does not know the name, goes to MMEngine's root and finds our child registry by its
scope (importing ``mmvit_ext.registry`` and this module on demand, see STYLE.md §6.8).
"""
import math
from typing import Optional, Sequence, Tuple, Union

from mmcv.transforms import BaseTransform, Resize

from mmvit_ext.registry import TRANSFORMS

__all__ = ['AlignResize', 'aligned_size']


def aligned_size(height: int, width: int, size_divisor: int) -> Tuple[int, int]:
    """``(H, W)`` rounded **up** to the next multiples of ``size_divisor`` (unchanged when already multiples).

    Example:
        >>> aligned_size(512, 683, 32)
        (512, 704)
    """
    if size_divisor < 1:
        raise ValueError(f'size_divisor must be a positive integer, got {size_divisor}')
    return (math.ceil(height / size_divisor) * size_divisor, math.ceil(width / size_divisor) * size_divisor)


@TRANSFORMS.register_module()
class AlignResize(BaseTransform):
    """Resize the image (and annotations) so that height and width are multiples of ``size_divisor``.

    Rounding rule: each side goes **up** to the next multiple, ``ceil(side / size_divisor) * size_divisor``
    (e.g. 512×683 → 512×704 with 32; 512×672 stays). The image is *stretched* to that size by interpolation, by
    less than ``size_divisor`` pixels per side, unlike ``Pad``, which adds border pixels.

    With ``scale`` or ``scale_factor`` set, mmcv's :class:`~mmcv.transforms.Resize` runs first with those
    arguments, so one transform does what the official ``AlignResize(keep_ratio=True)`` inside
    ``MultiScaleFlipAug(img_scale=...)`` did (used for the multi-scale test pipeline). Without them only the
    alignment step runs; place it after a ``Resize``:

    .. code-block:: python

        test_pipeline = [
            dict(type='LoadImageFromFile'),
            dict(type='Resize', scale=(2048, 512), keep_ratio=True),
            dict(type='mmvit_ext.AlignResize', size_divisor=32),
            dict(type='LoadAnnotations', reduce_zero_label=True),  # after resizing: labels stay original-size
            dict(type='PackSegInputs')
        ]

    Metadata: ``img_shape`` is the aligned ``(H, W)``, and ``scale_factor`` is ``(w_scale, h_scale)`` of the
    *whole* chain of resizes, i.e. the previous ``scale_factor`` (from ``Resize``) times that of the alignment,
    which equals ``img_shape / ori_shape`` when the chain started at the loaded image. ``ori_shape`` is left
    alone; mmseg resizes the logits back to it (``BaseSegmentor.postprocess_result``), so predictions come
    back at the original size.

    Ground truth: like mmcv's ``Resize``, ``gt_seg_map`` is resized to the aligned size with nearest-neighbour
    interpolation when present (and ``gt_bboxes`` / ``gt_keypoints`` are scaled), so the transform can also be
    used in training pipelines. In a **test** pipeline load the annotations *after* it, as above: mmseg 1.x's
    ``IoUMetric`` compares the prediction, resized to ``ori_shape``, with ``gt_sem_seg`` as packed, so the label
    map must keep its original size (the official mmseg 0.x code also evaluated against the original maps).

    Required Keys:

    - img
    - gt_seg_map (optional)
    - gt_bboxes (optional)
    - gt_keypoints (optional)

    Modified Keys:

    - img
    - img_shape
    - gt_seg_map
    - gt_bboxes
    - gt_keypoints

    Added Keys:

    - scale
    - scale_factor
    - keep_ratio
    - size_divisor

    Args:
        size_divisor (int): Both sides become multiples of it. Defaults to 32.
        scale (int | tuple[int, int], optional): ``(w, h)`` of an mmcv ``Resize`` run first. Defaults to None.
        scale_factor (float | tuple[float, float], optional): Scale factor of an mmcv ``Resize`` run first
            (``scale`` wins when both are set). Defaults to None.
        keep_ratio (bool): ``keep_ratio`` of that first ``Resize``. Defaults to True.
        interpolation (str): Image interpolation of both steps (labels always use ``'nearest'``).
            Defaults to ``'bilinear'``, as mmcv's ``Resize`` and the official code.
        backend (str): ``'cv2'`` or ``'pillow'``. Defaults to ``'cv2'``.
        clip_object_border (bool): Clip scaled boxes/keypoints to the image. Defaults to True.
    """

    def __init__(self,
                 size_divisor: int = 32,
                 scale: Optional[Union[int, Tuple[int, int]]] = None,
                 scale_factor: Optional[Union[float, Tuple[float, float]]] = None,
                 keep_ratio: bool = True,
                 interpolation: str = 'bilinear',
                 backend: str = 'cv2',
                 clip_object_border: bool = True) -> None:
        if not isinstance(size_divisor, int) or isinstance(size_divisor, bool) or size_divisor < 1:
            raise ValueError(f'size_divisor must be a positive integer, got {size_divisor!r}')
        self.size_divisor = size_divisor
        self.interpolation = interpolation
        self.backend = backend
        self.clip_object_border = clip_object_border
        self.keep_ratio = keep_ratio
        self.rescale: Optional[Resize] = None
        if scale is not None or scale_factor is not None:
            self.rescale = Resize(
                scale=scale,
                scale_factor=scale_factor,
                keep_ratio=keep_ratio,
                clip_object_border=clip_object_border,
                backend=backend,
                interpolation=interpolation)

    def transform(self, results: dict) -> dict:
        """Optionally rescale, then align ``results['img']`` and its annotations (see the class docstring)."""
        if self.rescale is not None:
            results = self.rescale(results)
        prev_w, prev_h = _as_pair(results.get('scale_factor', (1.0, 1.0)))
        keep_ratio = results.get('keep_ratio', self.keep_ratio if self.rescale is not None else None)
        h, w = results['img'].shape[:2]
        new_h, new_w = aligned_size(h, w, self.size_divisor)
        if (new_h, new_w) != (h, w):
            # NOTE: mmcv's Resize with keep_ratio=False is exactly "resize everything to (new_w, new_h)"; it sets
            # scale_factor to this step's factor, composed with the earlier one below.
            step = Resize(
                scale=(new_w, new_h),
                keep_ratio=False,
                clip_object_border=self.clip_object_border,
                backend=self.backend,
                interpolation=self.interpolation)
            results = step(results)
            step_w, step_h = results['scale_factor']
        else:
            results['img_shape'] = (h, w)
            results['scale'] = (w, h)
            step_w = step_h = 1.0
        results['scale_factor'] = (prev_w * step_w, prev_h * step_h)
        if keep_ratio is None:
            results.pop('keep_ratio', None)
        else:
            results['keep_ratio'] = keep_ratio  # that of the main resize, not of the small alignment stretch
        results['size_divisor'] = self.size_divisor
        return results

    def __repr__(self) -> str:
        rescale = '' if self.rescale is None else (
            f', scale={self.rescale.scale}, scale_factor={self.rescale.scale_factor}, keep_ratio={self.keep_ratio}')
        return (f'{self.__class__.__name__}(size_divisor={self.size_divisor}{rescale}, '
                f'interpolation={self.interpolation!r}, backend={self.backend!r})')


def _as_pair(value: Union[float, Sequence[float]]) -> Tuple[float, float]:
    """``s`` -> ``(s, s)``; ``(w, h)`` -> ``(w, h)`` as floats."""
    if isinstance(value, (int, float)):
        return float(value), float(value)
    w, h = value
    return float(w), float(h)
