# RetinaNet + CMT-XS, COCO 1x (the PVT/P2T recipe; CMT has no official one).
_base_ = ['../_base_/recipes/retinanet_cmt_fpn_1x_coco.py', '../_base_/models/cmt-xs.py']
model = dict(backbone=dict(_delete_=True, **_base_.cmt_dense_backbone), neck=dict(in_channels=_base_.cmt_channels))
