# P2T-Base, ImageNet-1K 224x224, 300 epochs (official P2T recipe).
_base_ = ['../_base_/recipes/p2t_8xb128_in1k.py', '../_base_/models/p2t-b.py']
model = dict(backbone=dict(**_base_.p2t_arch, out_indices=(3, )), head=dict(in_channels=_base_.p2t_channels[-1]))
