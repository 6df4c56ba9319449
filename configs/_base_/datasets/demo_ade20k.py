# Synthetic shapes in ADE20K format (label 0 = background/"other", shapes 1..3), made by
#   python tools/misc/make_demo_data.py data/demo
# mmseg's ADE20K base with the demo data root, classes and small scales. The dataset type is the generic
# `BaseSegDataset` with ADE20K's settings (`.jpg` / `.png`, `reduce_zero_label=True`): `ADE20KDataset` only
# accepts subsets of the 150 ADE20K classes as `metainfo.classes`.
_base_ = 'mmseg::_base_/datasets/ade20k.py'

dataset_type = 'BaseSegDataset'
data_root = 'data/demo/ade/ADEChallengeData2016'
metainfo = dict(classes=('circle', 'square', 'triangle'), palette=[[220, 40, 40], [40, 180, 60], [40, 80, 220]])
# The demo images are 160x160 (real ADE20K: scale (2048, 512), crop 512x512).
img_scale = (640, 160)
crop_size = (128, 128)

train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations', reduce_zero_label=True),
    dict(type='RandomResize', scale=img_scale, ratio_range=(0.8, 1.5), keep_ratio=True),
    dict(type='RandomCrop', crop_size=crop_size, cat_max_ratio=0.75),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PhotoMetricDistortion'),
    dict(type='PackSegInputs')
]
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=img_scale, keep_ratio=True),
    dict(type='LoadAnnotations', reduce_zero_label=True),
    dict(type='PackSegInputs')
]
train_dataloader = dict(
    batch_size=4,
    num_workers=1,
    dataset=dict(
        type=dataset_type,
        data_root=data_root,
        metainfo=metainfo,
        img_suffix='.jpg',
        seg_map_suffix='.png',
        reduce_zero_label=True,
        pipeline=train_pipeline))
val_dataloader = dict(
    batch_size=4,
    num_workers=1,
    dataset=dict(
        type=dataset_type,
        data_root=data_root,
        metainfo=metainfo,
        img_suffix='.jpg',
        seg_map_suffix='.png',
        reduce_zero_label=True,
        pipeline=test_pipeline))
test_dataloader = val_dataloader

# `tools/test.py --tta`: three scales x horizontal flip (mmseg's ADE20K base has six scales of 2048x512)
img_ratios = [0.75, 1.0, 1.25]
tta_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(
        type='TestTimeAug',
        transforms=[[dict(type='Resize', scale_factor=r, keep_ratio=True) for r in img_ratios],
                    [
                        dict(type='RandomFlip', prob=0., direction='horizontal'),
                        dict(type='RandomFlip', prob=1., direction='horizontal')
                    ], [dict(type='LoadAnnotations', reduce_zero_label=True)], [dict(type='PackSegInputs')]])
]
