_base_ = './htc_p2t-t_fpn_1x_coco.py'
checkpoint = 'checkpoints/p2t_base.pth'
model = dict(
    backbone=dict(arch='base', drop_path_rate=0.3, init_cfg=dict(checkpoint=checkpoint)),
    neck=dict(in_channels=[64, 128, 320, 512]))
optim_wrapper = dict(clip_grad=dict(max_norm=10, norm_type=2))
