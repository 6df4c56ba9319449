# Mask R-CNN + Swin-L (window 12, official ImageNet-22k 384 weights), COCO 1x: the plain baseline of the Expedite
# pair. mmdet's Swin Mask R-CNN 1x config with the Swin-L backbone as mmdet's Swin-L configs (DINO, Mask2Former)
# set it up; mmdet publishes no trained Swin-L Mask R-CNN. The init_cfg takes the official Swin checkpoint
# (converted on load, `convert_weights=True`).
_base_ = 'mmdet::swin/mask-rcnn_swin-t-p4-w7_fpn_1x_coco.py'
pretrained = 'https://github.com/SwinTransformer/storage/releases/download/v1.0.0/swin_large_patch4_window12_384_22k.pth'  # noqa
model = dict(
    backbone=dict(
        pretrain_img_size=384,
        embed_dims=192,
        depths=[2, 2, 18, 2],
        num_heads=[6, 12, 24, 48],
        window_size=12,
        drop_path_rate=0.3,
        init_cfg=dict(type='Pretrained', checkpoint=pretrained)),
    neck=dict(in_channels=[192, 384, 768, 1536]))
