# CMT-Base for the configs of configs/cmt/: the backbone and the channels of its four outputs (strides 4, 8, 16, 32)
# for the neck or head that reads them. A task config lists this file among its bases and wires it in, e.g.
#   model = dict(backbone=dict(_delete_=True, **_base_.cmt_dense_backbone), neck=dict(in_channels=_base_.cmt_channels))
# ImageNet classification, which trains the weights, takes `cmt_arch`: the same backbone without init_cfg, with
# plain BN, trained and tested at `cmt_img_size` (the official resolution of this variant).
custom_imports = dict(imports=['mmvit_ext'], allow_failed_imports=False)
cmt_arch = dict(type='mmvit_ext.CMT', arch='base', drop_path_rate=0.25)
cmt_channels = [76, 152, 304, 608]
# The backbone's default pretrain_img_size is this resolution, so the official relative-position tables load as they
# are; other input sizes resize them on the fly (see mmvit_ext/models/backbones/cmt.py).
cmt_img_size = 256
# Official ImageNet-1K weights, used as released (converted on load); see configs/cmt/README.md.
checkpoint = 'checkpoints/cmt_base.pth'
cmt_backbone = dict(**cmt_arch, init_cfg=dict(type='Pretrained', checkpoint=checkpoint))
# Detection / segmentation: every BatchNorm of the backbone (stem, key/value reductions, IRFFNs) synchronised across
# GPUs, as mmdet's EfficientNet configs do for a BN backbone at 2 images per GPU; the tools turn SyncBN into BN on a
# CPU or in a single process.
cmt_dense_backbone = dict(**cmt_backbone, norm_cfg=dict(type='SyncBN', requires_grad=True))
