"""``mmvit_ext.AlignResize``: the official P2T segmentation test-time resize (p2t.md §8).

Rounding rule (from the spec, "resizes to the next multiples of 32", and the official transform's behaviour):
each side goes **up**, ``ceil(side / 32) * 32``; e.g. ADE20K's 512×683 after the (2048, 512) keep-ratio resize
becomes 512×704.
"""
import os
import os.path as osp
import subprocess
import sys

import numpy as np
import pytest
import torch
from mmcv.transforms import Compose, Resize
from mmengine.config import Config
from mmengine.registry import init_default_scope

import mmvit_ext  # noqa: F401
from mmvit_ext.datasets.transforms import AlignResize, aligned_size
from mmvit_ext.registry import TRANSFORMS

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
FPN_T = osp.join(REPO, 'configs', 'p2t', 'fpn_p2t-t_8xb2-80k_ade20k-512x512.py')


def _image(h, w, seed=0):
    return np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)


@pytest.mark.parametrize('hw, expected', [((512, 683), (512, 704)), ((512, 672), (512, 672)), ((683, 512), (704, 512)),
                                          ((1, 1), (32, 32)), ((33, 64), (64, 64)), ((511, 513), (512, 544))])
def test_aligned_size_rounds_up(hw, expected):
    assert aligned_size(*hw, 32) == expected


@pytest.mark.parametrize('hw, expected', [((512, 683), (512, 704)), ((500, 375), (512, 384)), ((64, 64), (64, 64)),
                                          ((97, 130), (128, 160))])
def test_align_only_shapes_and_metadata(hw, expected):
    results = AlignResize(size_divisor=32)(dict(img=_image(*hw), ori_shape=hw))
    h, w = expected
    assert results['img'].shape == (h, w, 3) and results['img'].dtype == np.uint8
    assert results['img_shape'] == (h, w)
    assert results['scale_factor'] == pytest.approx((w / hw[1], h / hw[0]))
    assert results['size_divisor'] == 32 and 'keep_ratio' not in results


# (H, W) of the loaded image -> (H, W) after Resize((2048, 512), keep_ratio) + AlignResize(32)
CHAIN = [((512, 683), (512, 704)), ((683, 512), (704, 512)), ((375, 500), (512, 704)), ((100, 1000), (224, 2048)),
         ((1000, 1000), (512, 512)), ((256, 341), (512, 704))]


@pytest.mark.parametrize('hw, expected', CHAIN)
def test_after_keep_ratio_resize(hw, expected):
    pipeline = Compose([Resize(scale=(2048, 512), keep_ratio=True), AlignResize(size_divisor=32)])
    results = pipeline(dict(img=_image(*hw), ori_shape=hw))
    h, w = expected
    assert results['img'].shape[:2] == results['img_shape'] == (h, w)
    # scale_factor (w, h) is that of the whole chain: aligned size / original size
    assert results['scale_factor'] == pytest.approx((w / hw[1], h / hw[0]))
    assert results['ori_shape'] == hw and results['keep_ratio'] is True


@pytest.mark.parametrize('hw', [hw for hw, _ in CHAIN])
def test_one_step_form_equals_resize_then_align(hw):
    img = _image(*hw, seed=1)
    two = Compose([Resize(scale=(2048, 512), keep_ratio=True), AlignResize(size_divisor=32)])(dict(img=img.copy()))
    one = AlignResize(scale=(2048, 512), keep_ratio=True, size_divisor=32)(dict(img=img.copy()))
    np.testing.assert_array_equal(one['img'], two['img'])
    for key in ('img_shape', 'scale_factor', 'keep_ratio', 'scale'):
        assert one[key] == two[key], key


def test_annotations_follow_the_image():
    h, w = 40, 50  # -> 64 x 64
    seg = np.zeros((h, w), np.uint8)
    seg[10:30, 5:25] = 3
    seg[:, 40:] = 255
    boxes = np.array([[5., 10., 25., 30.]], np.float32)
    results = AlignResize(size_divisor=32)(dict(img=_image(h, w), gt_seg_map=seg, gt_bboxes=boxes.copy()))
    assert results['gt_seg_map'].shape == (64, 64)
    assert set(np.unique(results['gt_seg_map'])) == {0, 3, 255}  # nearest neighbour: no new labels
    np.testing.assert_allclose(results['gt_bboxes'], boxes * np.array([64 / 50, 64 / 40] * 2))


def test_already_aligned_is_untouched():
    img = _image(64, 96)
    results = AlignResize(size_divisor=32)(dict(img=img, scale_factor=(0.5, 0.25)))
    assert results['img'] is img
    assert results['img_shape'] == (64, 96) and results['scale_factor'] == (0.5, 0.25)


def test_bad_size_divisor():
    for bad in (0, -32, 3.5):
        with pytest.raises(ValueError, match='size_divisor'):
            AlignResize(size_divisor=bad)
    assert 'size_divisor=16' in repr(AlignResize(size_divisor=16))


def test_registry_and_lazy_export():
    from mmengine.registry import TRANSFORMS as ROOT
    assert TRANSFORMS.scope == 'mmvit_ext' and TRANSFORMS.parent is ROOT
    assert ROOT.children['mmvit_ext'] is TRANSFORMS
    from mmvit_ext.datasets import AlignResize as exported
    assert exported is AlignResize


def test_found_from_an_mmseg_pipeline_in_a_fresh_process():
    """mmseg's TRANSFORMS does not know the name; MMEngine goes to the root, imports ``mmvit_ext.registry`` for the
    prefix and the child's ``locations`` register the transform: no ``import mmvit_ext`` or custom_imports."""
    code = ('import sys\nfrom mmengine.registry import init_default_scope\nfrom mmseg.registry import TRANSFORMS\n'
            "init_default_scope('mmseg')\nassert 'mmvit_ext' not in sys.modules\n"
            "t = TRANSFORMS.build(dict(type='mmvit_ext.AlignResize', size_divisor=32))\n"
            'print(type(t).__module__, type(t).__name__)\n')
    out = subprocess.run([sys.executable, '-c', code],
                         capture_output=True,
                         text=True,
                         timeout=300,
                         env=dict(os.environ, OMP_WAIT_POLICY='PASSIVE'))
    assert out.returncode == 0, out.stderr[-3000:]
    assert out.stdout.strip().endswith('mmvit_ext.datasets.transforms AlignResize')


# ---------------------------------------------------------------------------------------------- the config
@pytest.fixture(scope='module')
def demo_ade_root(tmp_path_factory):
    """One non-square demo image (150 x 200) in the ADE20K layout, drawn by the demo-data renderer."""
    import cv2

    from mmvit_ext.datasets.demo_data import render_scene
    root = tmp_path_factory.mktemp('ade')
    image, instances = render_scene(np.random.default_rng(0), (150, 200), (3, 3), (0.15, 0.2))
    labels = np.zeros((150, 200), np.uint8)
    for inst in instances:
        labels[inst['mask']] = inst['label'] + 1
    for sub in ('images/validation', 'annotations/validation'):
        os.makedirs(root / sub)
    cv2.imwrite(str(root / 'images/validation/ADE_val_00000001.jpg'), cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
    cv2.imwrite(str(root / 'annotations/validation/ADE_val_00000001.png'), labels)
    return str(root), labels


@pytest.mark.parametrize('loader', ['val_dataloader', 'test_dataloader'])
def test_config_pipeline_uses_align_resize(loader):
    cfg = Config.fromfile(FPN_T)
    types = [t['type'] for t in cfg[loader].dataset.pipeline]
    assert types == ['LoadImageFromFile', 'Resize', 'mmvit_ext.AlignResize', 'LoadAnnotations', 'PackSegInputs']
    align = cfg[loader].dataset.pipeline[2]
    assert align['size_divisor'] == 32 and cfg[loader].dataset.pipeline[1]['scale'] == (2048, 512)


def test_config_test_pipeline_end_to_end(demo_ade_root):
    """The config's val dataset on a demo image: aligned input, original-size labels, and predictions that the
    segmentor maps back onto the labels (a perfect prediction at the input size scores ~100 mIoU)."""
    from mmseg.evaluation import IoUMetric
    from mmseg.registry import DATASETS, MODELS

    root, labels = demo_ade_root
    cfg = Config.fromfile(FPN_T)
    init_default_scope('mmseg')
    dataset = DATASETS.build(dict(cfg.val_dataloader.dataset, data_root=root))
    data = dataset[0]
    sample = data['data_samples']
    # 150x200 -> keep-ratio (2048, 512): 512x683 -> aligned up to multiples of 32: 512x704
    assert tuple(data['inputs'].shape) == (3, 512, 704)
    assert sample.ori_shape == (150, 200) and sample.img_shape == (512, 704)
    assert sample.scale_factor == pytest.approx((704 / 200, 512 / 150))
    gt = sample.gt_sem_seg.data
    assert tuple(gt.shape) == (1, 150, 200)  # annotations loaded after the resize: original size
    expected_gt = labels.astype(np.int64) - 1  # reduce_zero_label: 0 -> 255, k -> k - 1
    expected_gt[labels == 0] = 255
    np.testing.assert_array_equal(gt[0].numpy(), expected_gt)

    # the data preprocessor neither pads nor crops at test time: the network sees 512x704
    preprocessor = MODELS.build(cfg.model.data_preprocessor)
    batch = preprocessor(dict(inputs=[data['inputs']], data_samples=[sample]), False)
    assert tuple(batch['inputs'].shape) == (1, 3, 512, 704)

    # a perfect prediction at the aligned size, resized back by the segmentor's post-processing
    aligned = AlignResize(
        scale=(2048, 512), keep_ratio=True)(dict(img=labels[..., None].repeat(3, -1),
                                                 gt_seg_map=labels.copy()))['gt_seg_map']
    assert aligned.shape == (512, 704)
    num_classes = cfg.model.decode_head.num_classes
    logits = torch.nn.functional.one_hot(torch.from_numpy(aligned.astype(np.int64) - 1).clamp(min=0),
                                         num_classes).permute(2, 0, 1)[None].float()
    model = MODELS.build(cfg.model).eval()
    with torch.no_grad():  # the real network on the aligned input (about 3 s on 2 CPU cores)
        real = model.test_step(dict(inputs=[data['inputs']], data_samples=[sample.clone()]))
    assert tuple(real[0].pred_sem_seg.shape) == tuple(real[0].gt_sem_seg.shape) == (150, 200)
    preds = model.postprocess_result(logits, batch['data_samples'])
    assert tuple(preds[0].pred_sem_seg.data.shape) == (1, 150, 200)
    metric = IoUMetric(iou_metrics=['mIoU'])
    metric.dataset_meta = dataset.metainfo
    metric.process({}, [p.to_dict() for p in preds])
    present = np.unique(expected_gt[expected_gt != 255])
    ious = [metric.results[0][0][c] / metric.results[0][1][c] for c in present]  # intersect / union per class
    assert min(ious) > 0.9, ious


def test_config_tta_pipeline_builds_and_runs(demo_ade_root):
    root, _ = demo_ade_root
    cfg = Config.fromfile(FPN_T)
    init_default_scope('mmseg')
    results = Compose(cfg.tta_pipeline)(
        dict(
            img_path=osp.join(root, 'images/validation/ADE_val_00000001.jpg'),
            seg_map_path=osp.join(root, 'annotations/validation/ADE_val_00000001.png'),
            reduce_zero_label=True,
            seg_fields=[]))
    shapes = sorted({tuple(x.shape[-2:]) for x in results['inputs']})
    # ratios 0.5 .. 1.75 of (2048, 512) on a 150x200 image, each side rounded up to a multiple of 32
    assert shapes == [(256, 352), (384, 512), (512, 704), (640, 864), (768, 1024), (896, 1216)]
    assert len(results['inputs']) == 12  # 6 scales x 2 flips
