# HTC (no semantic branch) + P2T-Tiny, COCO 1x. The official P2T repo has no HTC recipe: P2T's detection
# recipe (AdamW 1e-4, wd 1e-4) on mmdet's HTC 1x.
_base_ = ['mmdet::htc/htc-without-semantic_r50_fpn_1x_coco.py']
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
