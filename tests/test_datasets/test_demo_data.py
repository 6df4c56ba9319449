"""The synthetic demo data sets: determinism, annotation consistency and the demo dataset configs."""
import filecmp
import inspect
import json
import os
import os.path as osp

import cv2
import numpy as np
import pytest

from mmvit_ext.datasets import demo_data
from mmvit_ext.datasets.demo_data import DEMO_CLASSES, make_demo_data, mask_to_bbox, render_scene

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
CONFIGS = osp.join(REPO, 'configs', '_base_', 'datasets')
K = len(DEMO_CLASSES)
SMALL = dict(num_train=6, num_val=3, size=96, cls_size=48)


def _files(root):
    return sorted(osp.relpath(osp.join(d, f), root) for d, _, fs in os.walk(root) for f in fs)


@pytest.fixture(scope='module')
def demo_root(tmp_path_factory):
    root = str(tmp_path_factory.mktemp('demo'))
    make_demo_data(root, seed=0, **SMALL)
    return root


def test_same_seed_same_bytes(demo_root, tmp_path):
    again = str(tmp_path / 'again')
    make_demo_data(again, seed=0, **SMALL)
    files = _files(demo_root)
    assert files == _files(again)
    _, mismatch, errors = filecmp.cmpfiles(demo_root, again, files, shallow=False)
    assert not mismatch and not errors


def test_other_seed_other_images(demo_root, tmp_path):
    other = str(tmp_path / 'other')
    make_demo_data(other, seed=1, datasets=['coco'], **SMALL)
    name = osp.join('coco', 'train2017', '000000000001.jpg')
    assert not filecmp.cmp(osp.join(demo_root, name), osp.join(other, name), shallow=False)


def test_val_independent_of_num_train(demo_root, tmp_path):
    more = str(tmp_path / 'more')
    make_demo_data(more, seed=0, datasets=['ade'], **dict(SMALL, num_train=9))
    val = osp.join('ade', 'ADEChallengeData2016', 'images', 'validation', 'ADE_val_00000001.jpg')
    assert filecmp.cmp(osp.join(demo_root, val), osp.join(more, val), shallow=False)


def test_layout_and_counts(demo_root):
    files = set(_files(demo_root))
    for split, num in (('train', 6), ('val', 3)):
        assert sum(f.startswith(f'coco/{split}2017/') for f in files) == num
        assert sum(f.startswith(f'coco/stuffthingmaps/{split}2017/') for f in files) == num
        assert f'coco/annotations/instances_{split}2017.json' in files
        assert f'imagenet/meta/{split}.txt' in files
        assert sum(f.startswith(f'imagenet/{split}/') and f.endswith('.JPEG') for f in files) == num
    for folder, num in (('training', 6), ('validation', 3)):
        imgs = sorted(f for f in files if f.startswith(f'ade/ADEChallengeData2016/images/{folder}/'))
        anns = sorted(f for f in files if f.startswith(f'ade/ADEChallengeData2016/annotations/{folder}/'))
        assert len(imgs) == len(anns) == num
        assert [osp.splitext(osp.basename(f))[0] for f in imgs] == [osp.splitext(osp.basename(f))[0] for f in anns]


@pytest.mark.parametrize('seed', range(4))
def test_rendered_masks_match_polygons_and_boxes(seed):
    rng = np.random.default_rng(seed)
    image, instances = render_scene(rng, (120, 100), (3, 5), (0.1, 0.2))
    assert image.shape == (120, 100, 3) and image.dtype == np.uint8
    assert len(instances) >= 3
    union = np.zeros((120, 100), int)
    for inst in instances:
        mask, poly = inst['mask'], inst['polygon']
        assert 0 <= inst['label'] < K
        union += mask
        # The box measured on the mask equals the polygon's extent within 1.5 px (pixel j spans [j, j + 1)): a
        # pixel is in the mask when its centre is, so a 60-degree triangle tip narrower than a pixel can be missed.
        x, y, w, h = mask_to_bbox(mask)
        lo, hi = poly.min(0) + 0.5, poly.max(0) + 0.5
        np.testing.assert_allclose([x, y, x + w, y + h], [*lo, *hi], atol=1.5)
        # Shapes keep a margin to the border.
        assert x >= 1 and y >= 1 and x + w <= 99 and y + h <= 119
    assert union.max() == 1, 'shapes must not overlap'


def _scenes(seed, num, maker=demo_data.make_ade):
    """``num`` scenes drawn with ``maker``'s default shape counts and sizes at its default image size."""
    defaults = {k: v.default for k, v in inspect.signature(maker).parameters.items()}
    size = (defaults['size'], ) * 2
    return [
        render_scene(np.random.default_rng([seed, i]), size, defaults['num_shapes'], defaults['radius_range'])
        for i in range(num)
    ]


def test_colour_does_not_decide_the_class():
    """A nearest-class-mean classifier on each instance's mean colour, fitted on one set of scenes and scored on
    another, stays near chance (1/3): the outline, not the colour, decides the class. (With one hue per class, as
    the demo data had before, it scored 100 %.)"""

    def colours(seed):
        feats, labels = [], []
        for image, instances in _scenes(seed, 60):
            for inst in instances:
                feats.append(image[inst['mask']].reshape(-1, 3).mean(0))
                labels.append(inst['label'])
        return np.asarray(feats), np.asarray(labels)

    fit_x, fit_y = colours(0)
    test_x, test_y = colours(1)
    assert np.bincount(fit_y, minlength=K).min() > 40 and len(test_y) > 150
    centroids = np.stack([fit_x[fit_y == k].mean(0) for k in range(K)])
    predicted = np.argmin(((test_x[:, None] - centroids[None])**2).sum(-1), axis=1)
    assert (predicted == test_y).mean() < 0.45


@pytest.mark.parametrize('maker', [demo_data.make_ade, demo_data.make_coco])
def test_shape_counts_and_sizes_vary(maker):
    scenes = _scenes(0, 60, maker)
    counts = np.bincount([len(instances) for _, instances in scenes])
    assert (counts[1:] > 0).sum() >= 5, f'images with 0, 1, 2, ... shapes: {counts.tolist()}'
    areas = np.asarray([inst['mask'].sum() for _, instances in scenes for inst in instances])
    small, large = np.percentile(areas, [5, 95])
    assert large / small > 6, (small, large)


def test_majority_class_baseline_matches_mmseg_iou_metric():
    """The trivial segmenter's scores equal what mmseg's IoUMetric reports for its all-one-class prediction."""
    iou_metric = pytest.importorskip('mmseg.evaluation.metrics.iou_metric')
    import torch
    rng = np.random.default_rng(0)
    train = [rng.choice([0, 1, 1, 2, 255], size=(8, 9)) for _ in range(3)]  # class 1 is the most frequent
    val = [rng.choice([0, 1, 2, 2, 2, 255], size=(7, 5)) for _ in range(4)]
    got = demo_data.majority_class_baseline(train, val, num_classes=K)
    assert got['class'] == 1
    metric = iou_metric.IoUMetric(iou_metrics=['mIoU'])
    results = [
        metric.intersect_and_union(torch.ones(v.shape, dtype=torch.long), torch.from_numpy(v), K, 255) for v in val
    ]
    areas = [sum(r[i] for r in results) for i in range(4)]
    expected = metric.total_area_to_metrics(*areas, ['mIoU'])
    assert got['mIoU'] == pytest.approx(100 * np.nanmean(np.asarray(expected['IoU'])))
    assert got['aAcc'] == pytest.approx(100 * float(expected['aAcc']))
    with pytest.raises(ValueError, match='no evaluated pixel'):
        demo_data.majority_class_baseline(train, [np.full((2, 2), 255)], num_classes=K)


def test_bad_arguments(tmp_path):
    with pytest.raises(ValueError, match='Unknown shape'):
        demo_data.shape_polygon('hexagon', (0, 0), 1, 0)
    with pytest.raises(ValueError, match='Unknown data sets'):
        make_demo_data(str(tmp_path), datasets=['voc'])
    with pytest.raises(ValueError, match='size'):
        make_demo_data(str(tmp_path), size=8, datasets=['coco'])


def test_coco_annotations(demo_root):
    mask_utils = pytest.importorskip('pycocotools.mask')
    root = osp.join(demo_root, 'coco')
    for split in ('train', 'val'):
        with open(osp.join(root, 'annotations', f'instances_{split}2017.json')) as f:
            coco = json.load(f)
        assert [c['name'] for c in coco['categories']] == list(DEMO_CLASSES)
        assert [c['id'] for c in coco['categories']] == list(range(1, K + 1))
        ids = [a['id'] for a in coco['annotations']]
        assert len(set(ids)) == len(ids)
        anns_of = {img['id']: [] for img in coco['images']}
        for ann in coco['annotations']:
            anns_of[ann['image_id']].append(ann)
        for img in coco['images']:
            h, w = img['height'], img['width']
            pixels = cv2.imread(osp.join(root, f'{split}2017', img['file_name']))
            assert pixels.shape == (h, w, 3)
            # The lossless COCO-stuff style map is the drawn ground truth: things 0..K-1, background K.
            stuff = cv2.imread(osp.join(root, 'stuffthingmaps', f'{split}2017', img['file_name'][:-4] + '.png'), 0)
            assert stuff.shape == (h, w) and stuff.max() <= K
            assert anns_of[img['id']], 'every image has at least one shape'
            for ann in anns_of[img['id']]:
                assert ann['iscrowd'] == 0 and 1 <= ann['category_id'] <= K
                x, y, bw, bh = ann['bbox']
                drawn = stuff[int(y):int(y + bh), int(x):int(x + bw)] == ann['category_id'] - 1
                # The box is tight on the drawn shape: its border rows and columns touch the shape.
                assert drawn[0].any() and drawn[-1].any() and drawn[:, 0].any() and drawn[:, -1].any()
                assert ann['area'] <= drawn.sum()
                # The polygon, rasterised by pycocotools as mmdet does, covers the drawn shape.
                poly = mask_utils.decode(mask_utils.merge(mask_utils.frPyObjects(ann['segmentation'], h, w)))
                px, py, pw, ph = mask_to_bbox(poly.astype(bool))
                np.testing.assert_allclose([px, py, px + pw, py + ph], [x, y, x + bw, y + bh], atol=1.0)
                inside = stuff[poly.astype(bool)] == ann['category_id'] - 1
                assert inside.mean() > 0.95
                assert abs(poly.sum() - ann['area']) <= 0.1 * ann['area']


def test_ade_labels(demo_root):
    root = osp.join(demo_root, 'ade', 'ADEChallengeData2016')
    seen = set()
    for folder in ('training', 'validation'):
        for name in sorted(os.listdir(osp.join(root, 'annotations', folder))):
            label = cv2.imread(osp.join(root, 'annotations', folder, name), cv2.IMREAD_UNCHANGED)
            image = cv2.imread(osp.join(root, 'images', folder, name[:-4] + '.jpg'))
            assert label.dtype == np.uint8 and label.shape == image.shape[:2] == (96, 96)
            values = set(np.unique(label).tolist())
            assert 0 in values, '0 (ADE "other") is the background'
            assert values <= set(range(K + 1))
            seen |= values
    assert seen == set(range(K + 1))


def test_imagenet_meta(demo_root):
    root = osp.join(demo_root, 'imagenet')
    for split, num in (('train', 6), ('val', 3)):
        with open(osp.join(root, 'meta', f'{split}.txt')) as f:
            lines = f.read().splitlines()
        assert len(lines) == num
        labels = []
        for line in lines:
            rel, label = line.split(' ')
            label = int(label)
            assert 0 <= label < K and rel.split('/')[0] == DEMO_CLASSES[label]
            image = cv2.imread(osp.join(root, split, rel))
            assert image is not None and image.shape == (48, 48, 3)
            labels.append(label)
        assert np.bincount(labels, minlength=K).tolist() == [num // K] * K


def test_cli(tmp_path):
    import runpy
    script = osp.join(REPO, 'tools', 'misc', 'make_demo_data.py')
    out = str(tmp_path / 'cli')
    module = runpy.run_path(script)
    module['main']([out, '--seed', '3', '--num-train', '3', '--num-val', '3', '--size', '64', '--datasets', 'imagenet'])
    with open(osp.join(out, 'imagenet', 'meta', 'val.txt')) as f:
        assert len(f.read().splitlines()) == 3
    assert not osp.exists(osp.join(out, 'coco'))


# --------------------------------------------------------------------------------------------------------------
# The demo dataset configs build their datasets with the host libraries.


def _dataset_cfg(config, demo_root, part, key='train_dataloader'):
    from mmengine.config import Config
    cfg = Config.fromfile(osp.join(CONFIGS, config))
    dataset = cfg[key]['dataset']
    dataset['data_root'] = osp.join(demo_root, part)
    return cfg, dataset


@pytest.mark.parametrize('config,with_mask', [('demo_coco_instance.py', True), ('demo_coco_detection.py', False),
                                              ('demo_coco_instance_semantic.py', True)])
def test_coco_configs_build(demo_root, config, with_mask):
    pytest.importorskip('mmdet.datasets')
    from mmdet.registry import DATASETS
    from mmengine.registry import init_default_scope
    init_default_scope('mmdet')
    cfg, dataset_cfg = _dataset_cfg(config, demo_root, 'coco')
    assert cfg.val_evaluator.ann_file.startswith(cfg.data_root)
    assert cfg.test_evaluator.ann_file == cfg.val_evaluator.ann_file
    dataset = DATASETS.build(dataset_cfg)
    assert len(dataset) == 6 and dataset.metainfo['classes'] == DEMO_CLASSES
    sample = dataset[0]
    assert sample['inputs'].ndim == 3 and sample['inputs'].shape[0] == 3
    gt = sample['data_samples'].gt_instances
    assert len(gt) >= 1 and int(gt.labels.max()) < K
    assert hasattr(gt, 'masks') == with_mask
    if 'semantic' in config:
        sem = sample['data_samples'].gt_sem_seg.sem_seg
        assert set(sem.unique().tolist()) <= set(range(K + 1)) | {255}
    _, val_cfg = _dataset_cfg(config, demo_root, 'coco', 'val_dataloader')
    val = DATASETS.build(val_cfg)
    assert len(val) == 3 and val[0]['data_samples'].img_id == 1_000_001


def test_ade_config_builds(demo_root):
    pytest.importorskip('mmseg.datasets')
    from mmengine.registry import init_default_scope
    from mmseg.registry import DATASETS
    init_default_scope('mmseg')
    cfg, dataset_cfg = _dataset_cfg('demo_ade20k.py', demo_root, osp.join('ade', 'ADEChallengeData2016'))
    dataset = DATASETS.build(dataset_cfg)
    assert len(dataset) == 6 and tuple(dataset.metainfo['classes']) == DEMO_CLASSES
    sample = dataset[0]
    assert tuple(sample['inputs'].shape[1:]) == cfg.crop_size
    labels = set(sample['data_samples'].gt_sem_seg.data.unique().tolist())
    assert labels <= set(range(K)) | {255} and 255 in labels, 'background (0) must become the ignore index'
    _, val_cfg = _dataset_cfg('demo_ade20k.py', demo_root, osp.join('ade', 'ADEChallengeData2016'), 'val_dataloader')
    val = DATASETS.build(val_cfg)
    # The test Resize brings the short side to 160 (the default demo size).
    assert len(val) == 3 and tuple(val[0]['inputs'].shape) == (3, 160, 160)


def test_imagenet_config_builds(demo_root):
    pytest.importorskip('mmpretrain.datasets')
    from mmengine.registry import init_default_scope
    from mmpretrain.registry import DATASETS
    init_default_scope('mmpretrain')
    cfg, dataset_cfg = _dataset_cfg('demo_imagenet.py', demo_root, 'imagenet')
    assert cfg.data_preprocessor.num_classes == K
    dataset = DATASETS.build(dataset_cfg)
    assert len(dataset) == 6 and tuple(dataset.metainfo['classes']) == DEMO_CLASSES
    assert [dataset.get_gt_labels()[i] for i in range(6)] == [i % K for i in range(6)]
    sample = dataset[0]
    assert tuple(sample['inputs'].shape) == (3, 96, 96)
    assert int(sample['data_samples'].gt_label) == 0
