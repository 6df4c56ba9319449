_base_ = './fpn_p2t-t_8xb2-80k_ade20k-512x512.py'
checkpoint = 'checkpoints/p2t_large.pth'
model = dict(
    backbone=dict(arch='large', drop_path_rate=0.3, init_cfg=dict(checkpoint=checkpoint)),
    neck=dict(in_channels=[64, 128, 320, 640]))
optim_wrapper = dict(clip_grad=dict(_delete_=True, max_norm=35, norm_type=2))
