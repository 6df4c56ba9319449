# HRFormer-Tiny for the configs of configs/hrformer/: the backbone and the channels of its four outputs (the
# branches at strides 4, 8, 16, 32) for the neck or head that reads them. A task config lists this file among its
# bases and wires it in, e.g.
#   model = dict(backbone=dict(_delete_=True, **_base_.hrformer_dense_backbone),
#                neck=dict(in_channels=_base_.hrformer_channels))
# ImageNet classification, which trains the weights, takes `hrformer_arch`: the backbone without init_cfg, plain BN,
# the official ImageNet drop-path rate (0.0).
custom_imports = dict(imports=['mmvit_ext'], allow_failed_imports=False)
hrformer_arch = dict(type='mmvit_ext.HRFormer', arch='tiny', drop_path_rate=0.0)
hrformer_channels = [18, 36, 72, 144]
# Official ImageNet-1K weights (github HRNet/HRFormer releases), used as released (converted on load); see
# configs/hrformer/README.md.
checkpoint = 'checkpoints/hrformer_tiny.pth'
# Dense tasks: every BatchNorm synchronised across GPUs (the openseg copy hard-codes SyncBN; the tools turn it into BN
# on a CPU or in one process) and drop-path 0.1 (the official segmentation value; tiny has none, 0.1 here).
hrformer_dense_backbone = dict(
    hrformer_arch,
    drop_path_rate=0.1,
    norm_cfg=dict(type='SyncBN', requires_grad=True),
    init_cfg=dict(type='Pretrained', checkpoint=checkpoint))
