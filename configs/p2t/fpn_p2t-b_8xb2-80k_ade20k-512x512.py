# Semantic FPN + P2T-Base, ADE20K 512x512, 80k iterations (official P2T recipe).
_base_ = ['../_base_/recipes/fpn_p2t_8xb2-80k_ade20k-512x512.py', '../_base_/models/p2t-b.py']
model = dict(backbone=dict(_delete_=True, **_base_.p2t_backbone), neck=dict(in_channels=_base_.p2t_channels))
optim_wrapper = dict(clip_grad=dict(_delete_=True, max_norm=35, norm_type=2))
