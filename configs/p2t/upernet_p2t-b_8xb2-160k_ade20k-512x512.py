# UperNet + P2T-Base, ADE20K 512x512, 160k iterations (mmseg's Swin UperNet recipe).
_base_ = ['../_base_/recipes/upernet_p2t_8xb2-160k_ade20k-512x512.py', '../_base_/models/p2t-b.py']
model = dict(
    backbone=dict(_delete_=True, **_base_.p2t_backbone),
    decode_head=dict(in_channels=_base_.p2t_channels),
    auxiliary_head=dict(in_channels=_base_.p2t_channels[2]))  # in_index=2
