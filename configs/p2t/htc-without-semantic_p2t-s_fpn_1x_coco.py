# HTC (no semantic branch) + P2T-Small, COCO 1x.
_base_ = ['../_base_/recipes/htc-without-semantic_p2t_fpn_1x_coco.py', '../_base_/models/p2t-s.py']
model = dict(backbone=dict(_delete_=True, **_base_.p2t_backbone), neck=dict(in_channels=_base_.p2t_channels))
