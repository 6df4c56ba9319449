# Semantic FPN + P2T-Tiny, ADE20K 512x512, 80k iterations (official P2T recipe).
_base_ = ['../_base_/recipes/fpn_p2t_8xb2-80k_ade20k-512x512.py', '../_base_/models/p2t-t.py']
model = dict(backbone=dict(_delete_=True, **_base_.p2t_backbone), neck=dict(in_channels=_base_.p2t_channels))
