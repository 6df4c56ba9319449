# Semantic FPN, ADE20K 512x512, 80k iterations, with the official P2T recipe (AdamW 1e-4, wd 1e-4 on all
# parameters, poly 0.9 to 1e-6, 8 GPUs x 2 images): everything but the backbone, which each
# configs/p2t/fpn_p2t-*_8xb2-80k_ade20k-512x512.py takes from its arch base (../models/p2t-*.py).
_base_ = [
    'mmseg::_base_/models/fpn_r50.py', 'mmseg::_base_/datasets/ade20k.py', 'mmseg::_base_/default_runtime.py',
    'mmseg::_base_/schedules/schedule_80k.py'
]
crop_size = (512, 512)
model = dict(
    data_preprocessor=dict(size=crop_size),
    pretrained=None,  # the ResNet weights of the base
    neck=dict(out_channels=256, num_outs=4),
    decode_head=dict(num_classes=150))
optim_wrapper = dict(
    _delete_=True, type='OptimWrapper', optimizer=dict(type='AdamW', lr=0.0001, weight_decay=0.0001), clip_grad=None)
param_scheduler = [dict(type='PolyLR', power=0.9, eta_min=1e-6, begin=0, end=80000, by_epoch=False)]
train_dataloader = dict(batch_size=2)
# Test as the official P2T code does: keep-ratio resize to (2048, 512), then *resize* (not pad) both sides up to
# the next multiple of 32 (mmvit_ext.AlignResize). Annotations are loaded afterwards, so IoUMetric compares the
# prediction (resized back to the original size by the segmentor) with the original label map.
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=(2048, 512), keep_ratio=True),
    dict(type='mmvit_ext.AlignResize', size_divisor=32),
    dict(type='LoadAnnotations', reduce_zero_label=True),
    dict(type='PackSegInputs')
]
val_dataloader = dict(dataset=dict(pipeline=test_pipeline))
test_dataloader = val_dataloader
# Multi-scale + flip test (official --aug-test): scales (2048, 512) x ratio, each aligned to multiples of 32.
img_ratios = [0.5, 0.75, 1.0, 1.25, 1.5, 1.75]
tta_pipeline = [
    dict(type='LoadImageFromFile', backend_args=None),
    dict(
        type='TestTimeAug',
        transforms=[
            [
                dict(
                    type='mmvit_ext.AlignResize', scale=(int(2048 * r), int(512 * r)), keep_ratio=True, size_divisor=32)
                for r in img_ratios
            ],
            [
                dict(type='RandomFlip', prob=0., direction='horizontal'),
                dict(type='RandomFlip', prob=1., direction='horizontal')
            ],
            [dict(type='LoadAnnotations')],
            [dict(type='PackSegInputs')],
        ])
]
