# UperNet + HRFormer-Small, ADE20K 512x512, 160k iterations (mmseg's Swin UperNet recipe).
_base_ = ['../_base_/recipes/upernet_hrformer_8xb2-160k_ade20k-512x512.py', '../_base_/models/hrformer-s.py']
model = dict(
    backbone=dict(_delete_=True, **_base_.hrformer_dense_backbone),
    decode_head=dict(in_channels=_base_.hrformer_channels),
    auxiliary_head=dict(in_channels=_base_.hrformer_channels[2]))  # in_index=2
