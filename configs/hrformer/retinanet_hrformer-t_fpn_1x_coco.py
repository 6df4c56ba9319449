# RetinaNet + HRFormer-Tiny, COCO 1x (the PVT/P2T recipe).
_base_ = ['../_base_/recipes/retinanet_hrformer_fpn_1x_coco.py', '../_base_/models/hrformer-t.py']
model = dict(
    backbone=dict(_delete_=True, **_base_.hrformer_dense_backbone), neck=dict(in_channels=_base_.hrformer_channels))
