# P2T-Base for the configs of configs/p2t/: the backbone and the channels of its four outputs (strides 4, 8, 16, 32)
# for the neck or head that reads them. A task config lists this file among its bases and wires it in, e.g.
#   model = dict(backbone=dict(_delete_=True, **_base_.p2t_backbone), neck=dict(in_channels=_base_.p2t_channels))
# ImageNet classification, which trains the weights, takes `p2t_arch`: the same backbone without init_cfg.
custom_imports = dict(imports=['mmvit_ext'], allow_failed_imports=False)
p2t_arch = dict(type='mmvit_ext.P2T', arch='base', drop_path_rate=0.3)
p2t_channels = [64, 128, 320, 512]
# Official ImageNet-1K weights, used as released (converted on load); see docs/models/p2t.md.
checkpoint = 'checkpoints/p2t_base.pth'
p2t_backbone = dict(**p2t_arch, init_cfg=dict(type='Pretrained', checkpoint=checkpoint))
