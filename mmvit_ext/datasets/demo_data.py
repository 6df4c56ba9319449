"""Small synthetic data sets in the real COCO, ADE20K and ImageNet formats.

Every image shows shapes (``circle``, ``square``, ``triangle``) of varying number and size on a low-saturation
textured background. The outline and the fill texture decide the class (circles plain, squares striped, triangles
dotted; random orientation, period and contrast); every instance gets its own random saturated colour, whatever
its class, so a model must learn shapes and textures, not colours (a colour-only classifier stays at chance, see
``tests/test_datasets/test_demo_data.py``). The files are laid out exactly as the host libraries expect the real
data sets, so the same configs and tools work on both:

.. code-block:: none

    OUT_DIR/
    ├── coco/                                  # mmdet CocoDataset (instances, polygons)
    │   ├── annotations/instances_{train,val}2017.json
    │   ├── {train,val}2017/000000000001.jpg ...
    │   └── stuffthingmaps/{train,val}2017/*.png   # HTC semantic branch: shapes 0..K-1, background K
    ├── ade/ADEChallengeData2016/              # mmseg ADE20K layout
    │   ├── images/{training,validation}/ADE_{train,val}_00000001.jpg ...
    │   └── annotations/{training,validation}/ADE_{train,val}_00000001.png   # 0 = background, shapes 1..K
    └── imagenet/                              # mmpretrain ImageNet layout
        ├── {train,val}/<class>/<class>_00000.JPEG ...
        └── meta/{train,val}.txt               # "<class>/<file>.JPEG <label>"

Generation is deterministic: the same arguments give byte-identical files. Each image has its own random
stream seeded by ``(seed, data set, split, index)``, so changing ``num_train`` leaves the validation images as
they are. Only numpy and OpenCV are used (OpenCV is imported lazily, when files are written).

Shapes never overlap, so every instance is fully visible: its COCO polygon is the drawn polygon (shifted by
half a pixel into COCO's continuous coordinates), and its box and area are measured on the drawn mask.

Example:
    >>> from mmvit_ext.datasets import make_demo_data
    >>> summary = make_demo_data('data/demo', seed=0)  # doctest: +SKIP
"""
import colorsys
import json
import os
import os.path as osp
import time
from typing import Dict, Iterable, List, Optional, Sequence, Tuple

import numpy as np

DEMO_CLASSES: Tuple[str, ...] = ('circle', 'square', 'triangle')
"""Class names of every demo data set (COCO category ids are 1..K, ADE labels 1..K, ImageNet labels 0..K-1)."""

DEMO_PALETTE: Tuple[Tuple[int, int, int], ...] = ((220, 40, 40), (40, 180, 60), (40, 80, 220))
"""Visualisation palette of the classes in the configs (the images themselves colour instances at random)."""

DATASETS: Tuple[str, ...] = ('coco', 'ade', 'imagenet')

_DATASET_IDS = {'coco': 1, 'ade': 2, 'imagenet': 3}
_SPLIT_IDS = {'train': 0, 'val': 1}
# Bounding radius of each shape relative to its nominal radius ``r`` (used for non-overlapping placement).
_SHAPE_EXTENT = 1.35
_CIRCLE_VERTICES = 32
_JPEG_QUALITY = 95


def shape_polygon(kind: str, center: Tuple[float, float], radius: float, angle: float) -> np.ndarray:
    """Vertices of one shape in pixel-centre coordinates (pixel ``(i, j)`` is centred on ``x=j, y=i``).

    The three shapes have similar areas: a circle of radius ``r`` (πr²), a square of circumradius 1.2r (2.9r²)
    and an equilateral triangle of circumradius 1.35r (2.4r²).

    Args:
        kind (str): ``'circle'``, ``'square'`` or ``'triangle'``.
        center (tuple[float, float]): ``(x, y)`` of the centre.
        radius (float): Nominal radius ``r``.
        angle (float): Rotation in radians.

    Returns:
        np.ndarray: Float64 array of shape ``(V, 2)`` with ``(x, y)`` rows, counter-clockwise in image space.
    """
    if kind == 'circle':
        num, circumradius, offset = _CIRCLE_VERTICES, radius, 0.0
    elif kind == 'square':
        num, circumradius, offset = 4, 1.2 * radius, np.pi / 4
    elif kind == 'triangle':
        num, circumradius, offset = 3, _SHAPE_EXTENT * radius, -np.pi / 2
    else:
        raise ValueError(f'Unknown shape {kind!r}; expected one of {DEMO_CLASSES}')
    angles = angle + offset + 2 * np.pi * np.arange(num) / num
    return np.stack([center[0] + circumradius * np.cos(angles), center[1] + circumradius * np.sin(angles)], axis=1)


def polygon_to_mask(polygon: np.ndarray, height: int, width: int) -> np.ndarray:
    """Rasterise a convex polygon given in pixel-centre coordinates.

    A pixel belongs to the mask when its centre lies inside the polygon or on its border, so the mask's extent
    differs from the polygon's by less than half a pixel on every side.

    Args:
        polygon (np.ndarray): ``(V, 2)`` array of ``(x, y)`` vertices of a convex polygon, in order.
        height (int): Mask height.
        width (int): Mask width.

    Returns:
        np.ndarray: Boolean mask of shape ``(height, width)``.
    """
    mask = np.zeros((height, width), bool)
    x0, y0 = np.maximum(np.floor(polygon.min(0)).astype(int), 0)
    x1, y1 = np.minimum(np.ceil(polygon.max(0)).astype(int), [width - 1, height - 1])
    if x1 < x0 or y1 < y0:
        return mask
    yy, xx = np.mgrid[y0:y1 + 1, x0:x1 + 1]
    start, end = polygon, np.roll(polygon, -1, axis=0)
    # Cross product of each edge with (pixel centre - edge start): V x h x w; inside = one sign for all edges.
    cross = ((end[:, 0] - start[:, 0])[:, None, None] * (yy - start[:, 1, None, None]) -
             (end[:, 1] - start[:, 1])[:, None, None] * (xx - start[:, 0, None, None]))
    mask[y0:y1 + 1, x0:x1 + 1] = np.all(cross >= -1e-9, axis=0) | np.all(cross <= 1e-9, axis=0)
    return mask


def _smooth_noise(rng: np.random.Generator, height: int, width: int, cells: int, channels: int) -> np.ndarray:
    """Low-frequency noise: a ``cells x cells`` random grid upsampled bicubically to ``height x width``."""
    import cv2

    grid = rng.standard_normal((cells, cells, channels)).astype(np.float32)
    up = cv2.resize(grid, (width, height), interpolation=cv2.INTER_CUBIC)
    return up.reshape(height, width, channels)


def _background(rng: np.random.Generator, height: int, width: int) -> np.ndarray:
    """A textured, weakly saturated background (float32 RGB, H x W x 3)."""
    level = rng.uniform(90.0, 170.0)
    tint = rng.uniform(-10.0, 10.0, size=3)
    luminance = 22.0 * _smooth_noise(rng, height, width, int(rng.integers(3, 8)), 1)
    chroma = 5.0 * _smooth_noise(rng, height, width, 4, 3)
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    theta, period = rng.uniform(0, np.pi), rng.uniform(6.0, 16.0)
    stripes = rng.uniform(3.0, 9.0) * np.sin(2 * np.pi * (xx * np.cos(theta) + yy * np.sin(theta)) / period)
    grain = rng.normal(0.0, 6.0, size=(height, width, 1))
    return (level + tint + luminance + chroma + stripes[..., None] + grain).astype(np.float32)


def _instance_colour(rng: np.random.Generator) -> np.ndarray:
    """A random saturated RGB colour (float32, 0..255), drawn independently of the instance's class."""
    hue, saturation, value = rng.uniform(0.0, 1.0), rng.uniform(0.45, 0.95), rng.uniform(0.4, 0.95)
    return 255.0 * np.asarray(colorsys.hsv_to_rgb(hue, saturation, value), np.float32)


def _class_texture(rng: np.random.Generator, label: int, xx: np.ndarray, yy: np.ndarray) -> np.ndarray:
    """The luminance pattern of a class at pixels ``(yy, xx)``: none (circle), stripes (square) or a dot grid
    (triangle), each at a random orientation, period and contrast, so the pattern's kind, not its parameters,
    goes with the class."""
    if label == 0:
        return np.zeros(xx.shape, np.float32)
    theta, period = rng.uniform(0, np.pi), rng.uniform(5.0, 9.0)
    u = (xx * np.cos(theta) + yy * np.sin(theta)) * (2 * np.pi / period) + rng.uniform(0, 2 * np.pi)
    if label == 1:
        pattern = np.sin(u)
    else:
        v = (yy * np.cos(theta) - xx * np.sin(theta)) * (2 * np.pi / period) + rng.uniform(0, 2 * np.pi)
        pattern = 2.0 * np.sin(u) * np.sin(v)
    return (rng.uniform(30.0, 45.0) * pattern).astype(np.float32)


def _paint_shape(rng: np.random.Generator, image: np.ndarray, mask: np.ndarray, label: int) -> None:
    """Fill ``mask`` in ``image`` (in place) with a random shaded colour (which says nothing of the class) and the
    class's texture."""
    height, width = mask.shape
    colour = _instance_colour(rng)
    yy, xx = np.nonzero(mask)
    direction = rng.uniform(0, 2 * np.pi)
    proj = (xx * np.cos(direction) + yy * np.sin(direction)) / max(height, width)
    shading = rng.uniform(15.0, 35.0) * (proj - proj.mean()) + _class_texture(rng, label, xx, yy)
    grain = rng.normal(0.0, 6.0, size=(yy.size, 3))
    image[yy, xx] = colour + shading[:, None] + grain


def render_scene(rng: np.random.Generator,
                 size: Tuple[int, int],
                 num_shapes: Tuple[int, int],
                 radius_range: Tuple[float, float],
                 labels: Optional[Sequence[int]] = None,
                 max_tries: int = 200) -> Tuple[np.ndarray, List[dict]]:
    """Draw non-overlapping shapes on a textured background.

    Args:
        rng (np.random.Generator): Random stream of this image.
        size (tuple[int, int]): ``(height, width)`` of the image.
        num_shapes (tuple[int, int]): Inclusive ``(min, max)`` number of shapes. Fewer are drawn only when
            no free place is found in ``max_tries`` attempts (never fewer than one).
        radius_range (tuple[float, float]): Nominal shape radius as a fraction of ``min(height, width)``.
        labels (Sequence[int], optional): Class indices of the shapes, in drawing order; random when None.
            Must hold at least ``num_shapes[1]`` entries. Defaults to None.
        max_tries (int): Placement attempts per image. Defaults to 200.

    Returns:
        tuple[np.ndarray, list[dict]]: The RGB ``uint8`` image (H x W x 3) and one dict per shape with
        ``label`` (0-based class index), ``polygon`` (``(V, 2)`` pixel-centre vertices) and ``mask`` (bool H x W).
    """
    height, width = size
    short = min(height, width)
    image = _background(rng, height, width)
    wanted = int(rng.integers(num_shapes[0], num_shapes[1] + 1))
    placed: List[Tuple[float, float, float]] = []  # (x, y, bounding radius)
    instances = []
    for _ in range(max_tries):
        if len(instances) == wanted:
            break
        radius = rng.uniform(*radius_range) * short
        extent = _SHAPE_EXTENT * radius
        margin = extent + 2.0
        if 2 * margin >= min(height, width):
            radius = (min(height, width) / 2 - 3.0) / _SHAPE_EXTENT
            extent, margin = _SHAPE_EXTENT * radius, _SHAPE_EXTENT * radius + 2.0
        cx, cy = rng.uniform(margin, width - 1 - margin), rng.uniform(margin, height - 1 - margin)
        label = int(rng.integers(len(DEMO_CLASSES))) if labels is None else int(labels[len(instances)])
        angle = rng.uniform(0, 2 * np.pi)
        if any(np.hypot(cx - x, cy - y) < extent + r + 3.0 for x, y, r in placed):
            continue
        polygon = shape_polygon(DEMO_CLASSES[label], (cx, cy), radius, angle)
        mask = polygon_to_mask(polygon, height, width)
        _paint_shape(rng, image, mask, label)
        placed.append((cx, cy, extent))
        instances.append(dict(label=label, polygon=polygon, mask=mask))
    return np.clip(np.round(image), 0, 255).astype(np.uint8), instances


def mask_to_bbox(mask: np.ndarray) -> List[float]:
    """Tight COCO box ``[x, y, w, h]`` of a boolean mask (pixel ``j`` spans ``[j, j + 1)``)."""
    ys, xs = np.nonzero(mask)
    x0, x1, y0, y1 = int(xs.min()), int(xs.max()), int(ys.min()), int(ys.max())
    return [float(x0), float(y0), float(x1 - x0 + 1), float(y1 - y0 + 1)]


def _encode(image: np.ndarray, ext: str) -> bytes:
    """Encode an RGB (or single-channel) ``uint8`` image as JPEG or PNG bytes."""
    import cv2

    if image.ndim == 3:
        image = cv2.cvtColor(image, cv2.COLOR_RGB2BGR)
    params = [cv2.IMWRITE_JPEG_QUALITY, _JPEG_QUALITY] if ext == '.jpg' else [cv2.IMWRITE_PNG_COMPRESSION, 6]
    ok, buf = cv2.imencode(ext, image, params)
    if not ok:
        raise RuntimeError(f'OpenCV could not encode a {ext} image')
    return buf.tobytes()


def _write(path: str, data: bytes) -> int:
    os.makedirs(osp.dirname(path), exist_ok=True)
    with open(path, 'wb') as f:
        f.write(data)
    return len(data)


def _rng(seed: int, dataset: str, split: str, index: int) -> np.random.Generator:
    return np.random.default_rng([seed, _DATASET_IDS[dataset], _SPLIT_IDS[split], index])


def _check_args(seed: int, size: int, num: int) -> None:
    if seed < 0:
        raise ValueError(f'seed must be >= 0, got {seed}')
    if size < 32:
        raise ValueError(f'size must be >= 32 px, got {size}')
    if num < 1:
        raise ValueError(f'the number of images must be >= 1, got {num}')


def make_coco(
    out_dir: str,
    seed: int = 0,
    num_train: int = 64,
    num_val: int = 24,
    size: int = 160,
    num_shapes: Tuple[int, int] = (1, 6),
    radius_range: Tuple[float, float] = (0.07, 0.24)
) -> Dict[str, int]:
    """Write a COCO-format instance segmentation set to ``out_dir`` (usually ``<root>/coco``).

    Args:
        out_dir (str): Root of the COCO layout.
        seed (int): Random seed. Defaults to 0.
        num_train (int): Images in ``train2017``. Defaults to 64.
        num_val (int): Images in ``val2017``. Defaults to 24.
        size (int): Side of the square images in pixels. Defaults to 160.
        num_shapes (tuple[int, int]): Inclusive range of shapes per image. Defaults to ``(1, 6)``.
        radius_range (tuple[float, float]): Shape radius as a fraction of the image side.
            Defaults to ``(0.07, 0.24)``.

    Returns:
        dict[str, int]: Image and instance counts per split, and the bytes written.
    """
    stats = dict(bytes=0)
    categories = [dict(id=i + 1, name=name, supercategory='shape') for i, name in enumerate(DEMO_CLASSES)]
    for split, num, first_id in (('train', num_train, 1), ('val', num_val, 1_000_001)):
        _check_args(seed, size, num)
        images, annotations = [], []
        for index in range(num):
            image_id = first_id + index
            file_name = f'{image_id:012d}.jpg'
            image, instances = render_scene(_rng(seed, 'coco', split, index), (size, size), num_shapes, radius_range)
            stats['bytes'] += _write(osp.join(out_dir, f'{split}2017', file_name), _encode(image, '.jpg'))
            # COCO-stuff style map for HTC's semantic branch: things 0..K-1, background stuff K.
            stuff = np.full((size, size), len(DEMO_CLASSES), np.uint8)
            for inst in instances:
                stuff[inst['mask']] = inst['label']
                # Pixel-centre vertices -> COCO continuous coordinates (pixel j spans [j, j + 1)).
                coco_poly = np.round(inst['polygon'] + 0.5, 2).reshape(-1).tolist()
                annotations.append(
                    dict(
                        id=len(annotations) + 1,
                        image_id=image_id,
                        category_id=inst['label'] + 1,
                        segmentation=[coco_poly],
                        area=float(inst['mask'].sum()),
                        bbox=mask_to_bbox(inst['mask']),
                        iscrowd=0))
            stats['bytes'] += _write(
                osp.join(out_dir, 'stuffthingmaps', f'{split}2017', file_name.replace('.jpg', '.png')),
                _encode(stuff, '.png'))
            images.append(dict(id=image_id, file_name=file_name, width=size, height=size))
        coco = dict(
            info=dict(description='mmvit_ext synthetic shapes demo (COCO format)', version='1.0', year=2024),
            licenses=[],
            images=images,
            annotations=annotations,
            categories=categories)
        stats['bytes'] += _write(
            osp.join(out_dir, 'annotations', f'instances_{split}2017.json'),
            json.dumps(coco, separators=(',', ':')).encode('utf-8'))
        stats[f'{split}_images'], stats[f'{split}_instances'] = num, len(annotations)
    return stats


def make_ade(
    out_dir: str,
    seed: int = 0,
    num_train: int = 64,
    num_val: int = 24,
    size: int = 160,
    num_shapes: Tuple[int, int] = (1, 6),
    radius_range: Tuple[float, float] = (0.06, 0.24)
) -> Dict[str, int]:
    """Write an ADE20K-format semantic segmentation set to ``out_dir`` (usually ``<root>/ade/ADEChallengeData2016``).

    Label maps follow ADE20K: ``0`` is "other" (here the background; mmseg's ``reduce_zero_label=True`` turns it
    into the ignore index 255) and the classes are ``1..K``.

    Args:
        out_dir (str): Root of the ``ADEChallengeData2016`` layout.
        seed (int): Random seed. Defaults to 0.
        num_train (int): Images in ``training``. Defaults to 64.
        num_val (int): Images in ``validation``. Defaults to 24.
        size (int): Side of the square images in pixels. Defaults to 160.
        num_shapes (tuple[int, int]): Inclusive range of shapes per image. Defaults to ``(1, 6)``.
        radius_range (tuple[float, float]): Shape radius as a fraction of the image side.
            Defaults to ``(0.06, 0.24)``.

    Returns:
        dict[str, int]: Image counts per split, and the bytes written.
    """
    stats = dict(bytes=0)
    for split, num, folder, prefix in (('train', num_train, 'training', 'ADE_train'), ('val', num_val, 'validation',
                                                                                       'ADE_val')):
        _check_args(seed, size, num)
        for index in range(num):
            image, instances = render_scene(_rng(seed, 'ade', split, index), (size, size), num_shapes, radius_range)
            label_map = np.zeros((size, size), np.uint8)
            for inst in instances:
                label_map[inst['mask']] = inst['label'] + 1
            name = f'{prefix}_{index + 1:08d}'
            stats['bytes'] += _write(osp.join(out_dir, 'images', folder, name + '.jpg'), _encode(image, '.jpg'))
            stats['bytes'] += _write(
                osp.join(out_dir, 'annotations', folder, name + '.png'), _encode(label_map, '.png'))
        stats[f'{split}_images'] = num
    return stats


def make_imagenet(out_dir: str,
                  seed: int = 0,
                  num_train: int = 96,
                  num_val: int = 30,
                  size: int = 96,
                  radius_range: Tuple[float, float] = (0.15, 0.33)) -> Dict[str, int]:
    """Write an ImageNet-format classification set to ``out_dir`` (usually ``<root>/imagenet``).

    Each image shows one shape; classes are balanced (image ``i`` has label ``i % K``). Class folders are named
    after the classes, and ``meta/{train,val}.txt`` list ``<class>/<file>.JPEG <label>`` relative to the split
    folder, as mmpretrain's ``ImageNet`` expects with ``data_prefix='train'`` / ``'val'``.

    Args:
        out_dir (str): Root of the ImageNet layout.
        seed (int): Random seed. Defaults to 0.
        num_train (int): Images in ``train``. Defaults to 96.
        num_val (int): Images in ``val``. Defaults to 30.
        size (int): Side of the square images in pixels. Defaults to 96 (P2T needs at least 65).
        radius_range (tuple[float, float]): Shape radius as a fraction of the image side.
            Defaults to ``(0.15, 0.33)``.

    Returns:
        dict[str, int]: Image counts per split, and the bytes written.
    """
    stats = dict(bytes=0)
    for split, num in (('train', num_train), ('val', num_val)):
        _check_args(seed, size, num)
        lines = []
        for index in range(num):
            label = index % len(DEMO_CLASSES)
            image, _ = render_scene(
                _rng(seed, 'imagenet', split, index), (size, size), (1, 1), radius_range, labels=[label])
            name = DEMO_CLASSES[label]
            rel = f'{name}/{name}_{index:05d}.JPEG'
            stats['bytes'] += _write(osp.join(out_dir, split, rel), _encode(image, '.jpg'))
            lines.append(f'{rel} {label}\n')
        stats['bytes'] += _write(osp.join(out_dir, 'meta', f'{split}.txt'), ''.join(lines).encode('utf-8'))
        stats[f'{split}_images'] = num
    return stats


def make_demo_data(out_dir: str,
                   seed: int = 0,
                   num_train: Optional[int] = None,
                   num_val: Optional[int] = None,
                   size: Optional[int] = None,
                   cls_size: Optional[int] = None,
                   datasets: Sequence[str] = DATASETS) -> Dict[str, Dict[str, float]]:
    """Write the demo data sets under ``out_dir`` (``coco/``, ``ade/ADEChallengeData2016/``, ``imagenet/``).

    Args:
        out_dir (str): Output root, ``data/demo`` for the demo configs.
        seed (int): Random seed. Defaults to 0.
        num_train (int, optional): Training images of every data set. Defaults to each maker's default
            (64 for COCO and ADE20K, 96 for ImageNet).
        num_val (int, optional): Validation images of every data set. Defaults to each maker's default
            (24 for COCO and ADE20K, 30 for ImageNet).
        size (int, optional): Image side of COCO and ADE20K. Defaults to 160.
        cls_size (int, optional): Image side of ImageNet. Defaults to 96.
        datasets (Sequence[str]): Which of ``'coco'``, ``'ade'``, ``'imagenet'`` to write. Defaults to all.

    Returns:
        dict[str, dict]: Per data set, the counts returned by its maker plus the generation ``seconds``.
    """
    unknown = set(datasets) - set(DATASETS)
    if unknown:
        raise ValueError(f'Unknown data sets {sorted(unknown)}; choose from {DATASETS}')
    common = {k: v for k, v in dict(seed=seed, num_train=num_train, num_val=num_val).items() if v is not None}
    makers = dict(
        coco=(make_coco, osp.join(out_dir, 'coco'), size),
        ade=(make_ade, osp.join(out_dir, 'ade', 'ADEChallengeData2016'), size),
        imagenet=(make_imagenet, osp.join(out_dir, 'imagenet'), cls_size))
    summary = {}
    for name in DATASETS:
        if name not in datasets:
            continue
        maker, root, side = makers[name]
        kwargs = dict(common, **({} if side is None else dict(size=side)))
        start = time.perf_counter()
        stats = maker(root, **kwargs)
        summary[name] = dict(stats, seconds=round(time.perf_counter() - start, 3))
    return summary


def majority_class_baseline(train_maps: Iterable[np.ndarray],
                            val_maps: Iterable[np.ndarray],
                            num_classes: int,
                            ignore_index: int = 255) -> Dict[str, float]:
    """The scores of a segmenter that predicts the most frequent training class at every pixel.

    The floor any trained model on a semantic segmentation set must beat: its ``mIoU`` and ``aAcc`` are computed
    as mmseg's ``IoUMetric`` does (pixels labelled ``ignore_index`` are not counted, the mean IoU is over the
    classes that occur in the ground truth or the prediction).

    Args:
        train_maps (Iterable[np.ndarray]): Training label maps (class indices ``0..num_classes-1`` or
            ``ignore_index``), as the model sees them (after ``reduce_zero_label``).
        val_maps (Iterable[np.ndarray]): Validation label maps, in the same form.
        num_classes (int): Number of classes.
        ignore_index (int): Label of the pixels not evaluated. Defaults to 255.

    Returns:
        dict[str, float]: ``mIoU`` and ``aAcc`` in percent, and ``class`` (the predicted class index).
    """

    def pixels_per_class(maps: Iterable[np.ndarray]) -> np.ndarray:
        counts = np.zeros(num_classes, np.int64)
        for label in maps:
            counts += np.bincount(label[label != ignore_index].ravel(), minlength=num_classes)[:num_classes]
        return counts

    majority = int(pixels_per_class(train_maps).argmax())
    val_counts = pixels_per_class(val_maps)
    total = int(val_counts.sum())
    if total == 0:
        raise ValueError('the validation label maps hold no evaluated pixel')
    # Predicting `majority` everywhere: IoU(majority) = its pixels / all pixels, IoU = 0 for the other classes
    # present in the ground truth; classes absent from both are left out of the mean.
    present = (val_counts > 0) | (np.arange(num_classes) == majority)
    iou = np.where(np.arange(num_classes) == majority, val_counts[majority] / total, 0.0)
    return {
        'mIoU': 100.0 * float(iou[present].mean()),
        'aAcc': 100.0 * float(val_counts[majority]) / total,
        'class': majority
    }
