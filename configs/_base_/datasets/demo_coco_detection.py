# Synthetic shapes in COCO format (detection: boxes only), made by
#   python tools/misc/make_demo_data.py data/demo
# Everything but the data root, the classes, the scales and the loader sizes comes from mmdet's COCO base.
_base_ = 'mmdet::_base_/datasets/coco_detection.py'

data_root = 'data/demo/coco/'
metainfo = dict(classes=('circle', 'square', 'triangle'), palette=[(220, 40, 40), (40, 180, 60), (40, 80, 220)])
# The demo images are 160x160 with shapes of about 20-100 px, which the usual anchors (32-512 px) cover: keep the native
# size on CPU (real COCO: (1333, 800)). (320, 320) gives a little more accuracy for 4x the compute.
img_scale = (160, 160)

train_pipeline = [
    dict(type='LoadImageFromFile', backend_args=None),
    dict(type='LoadAnnotations', with_bbox=True),
    dict(type='Resize', scale=img_scale, keep_ratio=True),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PackDetInputs')
]
test_pipeline = [
    dict(type='LoadImageFromFile', backend_args=None),
    dict(type='Resize', scale=img_scale, keep_ratio=True),
    dict(type='LoadAnnotations', with_bbox=True),
    dict(type='PackDetInputs', meta_keys=('img_id', 'img_path', 'ori_shape', 'img_shape', 'scale_factor'))
]
train_dataloader = dict(
    batch_size=2, num_workers=1, dataset=dict(data_root=data_root, metainfo=metainfo, pipeline=train_pipeline))
val_dataloader = dict(
    batch_size=2, num_workers=1, dataset=dict(data_root=data_root, metainfo=metainfo, pipeline=test_pipeline))
test_dataloader = val_dataloader

val_evaluator = dict(ann_file=data_root + 'annotations/instances_val2017.json')
test_evaluator = val_evaluator
