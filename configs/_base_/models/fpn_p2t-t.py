# Semantic FPN (FPN neck + FPNHead, mmseg) on P2T-Tiny, the official P2T segmentation model.
_base_ = 'mmseg::_base_/models/fpn_r50.py'
custom_imports = dict(imports=['mmvit_ext'], allow_failed_imports=False)
# Official ImageNet-1K weights, used as released (converted on load); see docs/models/p2t.md.
checkpoint = 'checkpoints/p2t_tiny.pth'
model = dict(
    pretrained=None,
    backbone=dict(
        _delete_=True,
        type='mmvit_ext.P2T',
        arch='tiny',
        drop_path_rate=0.1,
        init_cfg=dict(type='Pretrained', checkpoint=checkpoint)),
    neck=dict(in_channels=[48, 96, 240, 384], out_channels=256, num_outs=4),
    decode_head=dict(num_classes=150))
