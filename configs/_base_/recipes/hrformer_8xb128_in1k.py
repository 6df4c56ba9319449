# ImageNet-1K 224x224, 300 epochs, the official HRFormer recipe (cls/, a Swin fork: AdamW lr 1e-3 for batch 8 x 128,
# wd 0.05 without decay on norms, biases and bias tables, 20 warm-up epochs from 1e-6, cosine to 1e-5, gradient clip
# 5, label smoothing 0.1, Mixup 0.8 / CutMix 1.0, RandAugment m9-mstd0.5, random erasing 0.25, bicubic; eval resize
# 256 -> crop 224): mmpretrain's Swin recipe, which has these values, plus the clip. The head is the official one:
# mmvit_ext.HRFuseScalesDW (incre/downsamp modules) -> mmvit_ext.ConvPoolNeck (final_layer: 1x1 conv to 2048, BN,
# ReLU, pooling) -> LinearClsHead. Everything but the backbone and the neck's input channels, which each
# configs/hrformer/hrformer-*_8xb128_in1k.py takes from its arch base (../models/hrformer-*.py).
_base_ = [
    'mmpretrain::_base_/datasets/imagenet_bs64_swin_224.py',
    'mmpretrain::_base_/schedules/imagenet_bs1024_adamw_swin.py', 'mmpretrain::_base_/default_runtime.py'
]
model = dict(
    type='ImageClassifier',
    # the neck (official head: HRFuseScalesDW -> ConvPoolNeck) is set with the branch widths by each config
    head=dict(
        type='LinearClsHead',
        num_classes=1000,
        in_channels=2048,
        loss=dict(type='LabelSmoothLoss', label_smooth_val=0.1, mode='original'),
        cal_acc=False),
    train_cfg=dict(
        augments=[dict(type='Mixup', alpha=0.8), dict(type='CutMix', alpha=1.0)]))
train_dataloader = dict(batch_size=128)
optim_wrapper = dict(clip_grad=dict(max_norm=5.0))
