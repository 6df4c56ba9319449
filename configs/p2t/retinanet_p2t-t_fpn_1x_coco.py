# RetinaNet + P2T-Tiny, COCO 1x (official P2T recipe: AdamW 1e-4, wd 1e-4, 8 GPUs x 2 images). The FPN keeps
# the base's start_level=1 and add_extra_convs='on_input', as the official configs do (stage 1 unused).
_base_ = ['mmdet::_base_/models/retinanet_r50_fpn.py', 'mmdet::_base_/datasets/coco_detection.py',
    'mmdet::_base_/schedules/schedule_1x.py', 'mmdet::_base_/default_runtime.py']
custom_imports = dict(imports=['mmvit_ext'], allow_failed_imports=False)
# Official ImageNet-1K weights, used as released (converted on load); see docs/models/p2t.md.
checkpoint = 'checkpoints/p2t_tiny.pth'
model = dict(
    backbone=dict(
        _delete_=True,
        type='mmvit_ext.P2T',
        arch='tiny',
        drop_path_rate=0.1,
        init_cfg=dict(type='Pretrained', checkpoint=checkpoint)),
    neck=dict(in_channels=[48, 96, 240, 384]))
optim_wrapper = dict(optimizer=dict(_delete_=True, type='AdamW', lr=0.0001, weight_decay=0.0001))
