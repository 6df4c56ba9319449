# Semantic FPN (FPN neck + FPNHead, mmseg) on P2T-Tiny, the official P2T segmentation model.
_base_ = ['mmseg::_base_/models/fpn_r50.py', './p2t-t.py']
model = dict(
    pretrained=None,
    backbone=dict(_delete_=True, **_base_.p2t_backbone),
    neck=dict(in_channels=_base_.p2t_channels, out_channels=256, num_outs=4),
    decode_head=dict(num_classes=150))
