# HTC with the semantic branch + CMT-XS, COCO 1x (PVT/P2T recipe; no official one);
# needs data/coco/stuffthingmaps.
_base_ = ['../_base_/recipes/htc_cmt_fpn_1x_coco.py', '../_base_/models/cmt-xs.py']
model = dict(backbone=dict(_delete_=True, **_base_.cmt_dense_backbone), neck=dict(in_channels=_base_.cmt_channels))
