_base_ = './mask-rcnn_p2t-t_fpn_1x_coco.py'
checkpoint = 'checkpoints/p2t_small.pth'
model = dict(
    backbone=dict(arch='small', drop_path_rate=0.1, init_cfg=dict(checkpoint=checkpoint)),
    neck=dict(in_channels=[64, 128, 320, 512]))
