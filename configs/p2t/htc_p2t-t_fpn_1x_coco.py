# HTC with the semantic branch + P2T-Tiny, COCO 1x; needs data/coco/stuffthingmaps.
_base_ = ['../_base_/recipes/htc_p2t_fpn_1x_coco.py', '../_base_/models/p2t-t.py']
model = dict(backbone=dict(_delete_=True, **_base_.p2t_backbone), neck=dict(in_channels=_base_.p2t_channels))
