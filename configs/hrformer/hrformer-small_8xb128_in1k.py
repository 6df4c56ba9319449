# HRFormer-Small, ImageNet-1K 224x224, 300 epochs, 8 GPUs x 128 (the official cls/ recipe).
_base_ = ['../_base_/recipes/hrformer_8xb128_in1k.py', '../_base_/models/hrformer-s.py']
model = dict(
    backbone=_base_.hrformer_arch,
    neck=[
        dict(type='mmvit_ext.HRFuseScalesDW', in_channels=_base_.hrformer_channels, planes=(32, 64, 128, 256)),
        dict(type='mmvit_ext.ConvPoolNeck', in_channels=1024, out_channels=2048, act_cfg=dict(type='ReLU'))
    ])
