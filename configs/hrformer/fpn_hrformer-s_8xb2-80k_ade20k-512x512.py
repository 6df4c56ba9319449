# Semantic FPN + HRFormer-Small, ADE20K 512x512, 80k iterations.
_base_ = ['../_base_/recipes/fpn_hrformer_8xb2-80k_ade20k-512x512.py', '../_base_/models/hrformer-s.py']
model = dict(
    backbone=dict(_delete_=True, **_base_.hrformer_dense_backbone), neck=dict(in_channels=_base_.hrformer_channels))
