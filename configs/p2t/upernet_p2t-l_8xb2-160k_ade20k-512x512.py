_base_ = './upernet_p2t-t_8xb2-160k_ade20k-512x512.py'
checkpoint = 'checkpoints/p2t_large.pth'
model = dict(
    backbone=dict(arch='large', drop_path_rate=0.3, init_cfg=dict(checkpoint=checkpoint)),
    decode_head=dict(in_channels=[64, 128, 320, 640]),
    auxiliary_head=dict(in_channels=320))
