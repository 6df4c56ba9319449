# CMT-Tiny, ImageNet-1K 160x160, 800 epochs, 8 GPUs x 256: the official README command for cmt_ti (base lr 8e-4 scaled
# by the total batch / 512, wd 0.05, warm-up lr 1e-7, min-lr 1e-5, no EMA, head dropout 0.1; drop-path in
# ../_base_/models/cmt-ti.py). Official top-1: 79.0.
_base_ = ['../_base_/recipes/cmt_8xb128_in1k.py', '../_base_/models/cmt-ti.py']
img_size = _base_.cmt_img_size  # 160
batch_size = 256
lr = 8e-4 * batch_size * 8 / 512
model = dict(
    backbone=dict(**_base_.cmt_arch, out_indices=(3, )), neck=dict(in_channels=_base_.cmt_channels[-1], dropout=0.1))
optim_wrapper = dict(optimizer=dict(lr=lr, weight_decay=0.05))
param_scheduler = [
    dict(type='LinearLR', start_factor=1e-7 / lr, by_epoch=True, end=20, convert_to_iter_based=True),
    dict(type='CosineAnnealingLR', eta_min=1e-5, by_epoch=True, begin=20)
]
train_cfg = dict(max_epochs=800)
auto_scale_lr = dict(base_batch_size=batch_size * 8)
custom_hooks = []  # trained with --no-model-ema
# the recipe's pipelines at this variant's resolution (test: shorter side to int(256 / 224 * 160) = 182)
train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='RandomResizedCrop', scale=img_size, backend='pillow', interpolation='bicubic'),
    *_base_.train_pipeline[2:]  # flip, RandAugment, random erasing, PackInputs
]
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='ResizeEdge', scale=int(256 / 224 * img_size), edge='short', backend='pillow', interpolation='bicubic'),
    dict(type='CenterCrop', crop_size=img_size),
    dict(type='PackInputs'),
]
train_dataloader = dict(batch_size=batch_size, dataset=dict(pipeline=train_pipeline))
val_dataloader = dict(dataset=dict(pipeline=test_pipeline))
test_dataloader = val_dataloader
