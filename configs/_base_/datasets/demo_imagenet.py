# Synthetic shapes in ImageNet format (one shape per 96x96 image, 3 balanced classes), made by
#   python tools/misc/make_demo_data.py data/demo
# mmpretrain's ImageNet base with the demo data root, classes and small scales. `ImageNet` reads
# `meta/{train,val}.txt` for `split='train'` / `'val'`; `metainfo.classes` replaces the 1000 ImageNet classes.
_base_ = 'mmpretrain::_base_/datasets/imagenet_bs32.py'

data_root = 'data/demo/imagenet'
metainfo = dict(classes=('circle', 'square', 'triangle'))
data_preprocessor = dict(num_classes=3)
img_size = 96  # P2T needs inputs of at least 65x65 px

train_pipeline = [
    dict(type='LoadImageFromFile'),
    # The shapes fill ~1/4 of the image: keep most of it (ImageNet default crop_ratio_range=(0.08, 1.0)).
    dict(type='RandomResizedCrop', scale=img_size, crop_ratio_range=(0.5, 1.0)),
    dict(type='RandomFlip', prob=0.5, direction='horizontal'),
    dict(type='PackInputs'),
]
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='ResizeEdge', scale=img_size, edge='short'),
    dict(type='CenterCrop', crop_size=img_size),
    dict(type='PackInputs'),
]
train_dataloader = dict(
    batch_size=16, num_workers=1, dataset=dict(data_root=data_root, metainfo=metainfo, pipeline=train_pipeline))
val_dataloader = dict(
    batch_size=16, num_workers=1, dataset=dict(data_root=data_root, metainfo=metainfo, pipeline=test_pipeline))
test_dataloader = val_dataloader

# Top-5 is meaningless (and fails) with 3 classes.
val_evaluator = dict(type='Accuracy', topk=(1, ))
test_evaluator = val_evaluator
