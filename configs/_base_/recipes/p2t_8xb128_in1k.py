# ImageNet-1K 224x224, 300 epochs, the official P2T recipe (DeiT-style: AdamW lr 1e-3 for batch 1024, wd 0.05
# without decay on norms/biases, 20 warm-up epochs, cosine to 1e-5, label smoothing 0.1, Mixup 0.8 / CutMix 1.0,
# RandAugment m9-mstd0.5, random erasing 0.25, repeated augmentation, bicubic; eval resize 256 -> crop 224).
# Not reproduced: timm's 10 cool-down epochs. Everything but the backbone and the head input channels, which each
# configs/p2t/p2t-*_8xb128_in1k.py takes from its arch base (../models/p2t-*.py).
_base_ = [
    'mmpretrain::_base_/datasets/imagenet_bs64_swin_224.py',
    'mmpretrain::_base_/schedules/imagenet_bs1024_adamw_swin.py', 'mmpretrain::_base_/default_runtime.py'
]
model = dict(
    type='ImageClassifier',
    neck=dict(type='GlobalAveragePooling'),
    head=dict(
        type='LinearClsHead',
        num_classes=1000,
        init_cfg=None,  # the classifier-level init_cfg below initialises the head
        loss=dict(type='LabelSmoothLoss', label_smooth_val=0.1, mode='original'),
        cal_acc=False),
    init_cfg=[
        dict(type='TruncNormal', layer='Linear', std=0.02, bias=0.),
        dict(type='Constant', layer='LayerNorm', val=1., bias=0.)
    ],
    train_cfg=dict(
        augments=[dict(type='Mixup', alpha=0.8), dict(type='CutMix', alpha=1.0)]))
train_dataloader = dict(batch_size=128, sampler=dict(_delete_=True, type='RepeatAugSampler', shuffle=True))
