# Semantic FPN + CMT-Base, ADE20K 512x512, 80k iterations (the PVT/P2T recipe with mmseg's standard test).
_base_ = ['../_base_/recipes/fpn_cmt_8xb2-80k_ade20k-512x512.py', '../_base_/models/cmt-b.py']
model = dict(backbone=dict(_delete_=True, **_base_.cmt_dense_backbone), neck=dict(in_channels=_base_.cmt_channels))
