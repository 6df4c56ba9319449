# UperNet + CMT-Small, ADE20K 512x512, 160k iterations (mmseg's Swin UperNet recipe).
_base_ = ['../_base_/recipes/upernet_cmt_8xb2-160k_ade20k-512x512.py', '../_base_/models/cmt-s.py']
model = dict(
    backbone=dict(_delete_=True, **_base_.cmt_dense_backbone),
    decode_head=dict(in_channels=_base_.cmt_channels),
    auxiliary_head=dict(in_channels=_base_.cmt_channels[2]))  # in_index=2
