# Semantic FPN + P2T-Tiny, ADE20K 512x512, 80k iterations (the official P2T recipe: AdamW 1e-4, wd 1e-4 on all
# parameters, poly 0.9 to 1e-6, 8 GPUs x 2 images).
_base_ = [
    'mmseg::_base_/models/fpn_r50.py', 'mmseg::_base_/datasets/ade20k.py', 'mmseg::_base_/default_runtime.py',
    'mmseg::_base_/schedules/schedule_80k.py'
]
custom_imports = dict(imports=['mmvit_ext'], allow_failed_imports=False)
# Official ImageNet-1K weights, used as released (converted on load); see docs/models/p2t.md.
checkpoint = 'checkpoints/p2t_tiny.pth'
crop_size = (512, 512)
model = dict(
    data_preprocessor=dict(size=crop_size),
    pretrained=None,
    backbone=dict(
        _delete_=True,
        type='mmvit_ext.P2T',
        arch='tiny',
        drop_path_rate=0.1,
        init_cfg=dict(type='Pretrained', checkpoint=checkpoint)),
    neck=dict(in_channels=[48, 96, 240, 384], out_channels=256, num_outs=4),
    decode_head=dict(num_classes=150))
optim_wrapper = dict(
    _delete_=True,
    type='OptimWrapper',
    optimizer=dict(type='AdamW', lr=0.0001, weight_decay=0.0001),
    clip_grad=None)
param_scheduler = [dict(type='PolyLR', power=0.9, eta_min=1e-6, begin=0, end=80000, by_epoch=False)]
train_dataloader = dict(batch_size=2)
