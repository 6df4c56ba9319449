# ImageNet-1K, the official CMT recipe (cmt_pytorch/train.py + README of huawei-noah/Efficient-AI-Backbones, DeiT /
# timm-0.3.2 based). What it shares with P2T's DeiT-style recipe is inherited from p2t_8xb128_in1k.py: AdamW without
# weight decay on norms/biases/1-D parameters (timm's add_weight_decay), 20 warm-up epochs, cosine, label smoothing
# 0.1, Mixup 0.8 / CutMix 1.0, RandAugment m9-mstd0.5 (increasing), random erasing 0.25, repeated augmentation
# (RepeatAugSampler), bicubic resizing. CMT-specific here: the classifier head (1x1 conv to 1280 -> BN -> Swish ->
# pooling -> dropout -> Linear, mmvit_ext.ConvPoolNeck + LinearClsHead), its init, weight decay kept on the
# relative-position tables (3-D parameters, decayed by the official code), lr = base lr x total batch / 512, test
# resize of the shorter side to int(256 / 224 x res) then centre crop res, and an EMA of the weights.
# The values here are train.py's defaults, which are CMT-S's (224 px, 8 GPUs x 128, base lr 5e-4, wd 0.05, 300
# epochs, warm-up lr 1e-7 as CMT-S is trained, min-lr 1e-5, EMA decay 0.99996). Each configs/cmt/cmt-*_in1k.py sets
# the values of its README command (resolution, batch, lr, wd, epochs, warm-up lr, min-lr, EMA, head dropout) and
# takes the backbone and the neck input channels from its arch base (../models/cmt-*.py).
# Not reproduced: timm's 10 cool-down epochs at min-lr; timm's cosine is a function of the epoch counted from 0 (here
# from the end of the warm-up) and its warm-up steps per epoch (here per iteration); apex AMP (tools/train.py --amp);
# seed 3407. mmengine's EMAHook validates the EMA weights only (train.py evaluates the raw and the EMA model).
_base_ = './p2t_8xb128_in1k.py'
# A child config that changes these restates what is computed from them below (as configs/cmt/cmt-*_in1k.py do):
# a base's expressions are evaluated in the base.
img_size = 224
base_lr = 5e-4
batch_size = 128
lr = base_lr * batch_size * 8 / 512  # train.py: lr x batch per GPU x GPUs / 512
model = dict(
    neck=dict(_delete_=True, type='mmvit_ext.ConvPoolNeck', out_channels=1280, dropout=0.1),  # + in_channels (arch)
    head=dict(in_channels=1280),
    # official init (cmt.py _init_weights); the backbone applies the same by itself, the neck and head need it here
    init_cfg=[
        dict(type='TruncNormal', layer='Linear', std=0.02, bias=0.),
        dict(type='Kaiming', layer='Conv2d', mode='fan_out', nonlinearity='relu', distribution='normal', bias=0.),
        dict(type='Constant', layer=['LayerNorm', '_BatchNorm'], val=1., bias=0.)
    ])
# As in the official code (timm skips only 1-D parameters and biases), the (heads, N, M) bias tables
# `stages.*.relative_pos.table` are decayed: the base's norm/bias/flat rules do not match them.
optim_wrapper = dict(optimizer=dict(lr=lr, weight_decay=0.05))
param_scheduler = [
    # warm-up from train.py's --warmup-lr, as a factor of the lr
    dict(type='LinearLR', start_factor=1e-7 / lr, by_epoch=True, end=20, convert_to_iter_based=True),
    dict(type='CosineAnnealingLR', eta_min=1e-5, by_epoch=True, begin=20)  # to max_epochs
]
train_cfg = dict(max_epochs=300)
auto_scale_lr = dict(base_batch_size=batch_size * 8)
# timm's ModelEma (decay d, every iteration, buffers included: the BN statistics) = EMAHook(momentum=1 - d)
custom_hooks = [dict(type='EMAHook', momentum=1 - 0.99996, update_buffers=True, priority='ABOVE_NORMAL')]
train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='RandomResizedCrop', scale=img_size, backend='pillow', interpolation='bicubic'),
    *_base_.train_pipeline[2:]  # flip, RandAugment, random erasing, PackInputs: as mmpretrain's Swin/DeiT pipeline
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
