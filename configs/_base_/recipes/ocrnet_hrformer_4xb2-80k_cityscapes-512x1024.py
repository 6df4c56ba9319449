# OCRNet, Cityscapes, 512x1024 crops, 80k iterations, batch 8 (4 GPUs x 2), the paper's HRFormer segmentation recipe
# (openseg seg/scripts/cityscapes/hrt/*.sh): mmseg's OCRNet (CascadeEncoderDecoder) and Cityscapes dataset
# (random scale 0.5-2.0, crop 512x1024, flip; whole-image test at 1024x2048). Not reproduced: openseg's per-class
# loss weights and brightness shift. Everything but the backbone and the heads' input channels.
_base_ = ['mmseg::ocrnet/ocrnet_hr18_4xb2-80k_cityscapes-512x1024.py']
num_classes = 19
max_iters = 80000

norm_cfg = dict(type='SyncBN', requires_grad=True)
# The two heads of the paper's OCRNet (openseg HRT_*_OCR_V2 mapped to mmseg): an FCN auxiliary head (3x3 conv to 512)
# on the concatenated branches, then the OCR head; align_corners=True and OHEM as openseg. A config sets their
# in_channels, e.g. decode_head=[dict(head, in_channels=...) for head in _base_.ocr_heads].
ocr_heads = [
    dict(
        type='FCNHead',
        in_channels=None,
        channels=512,
        in_index=(0, 1, 2, 3),
        input_transform='resize_concat',
        kernel_size=3,
        num_convs=1,
        concat_input=False,
        dropout_ratio=-1,
        num_classes=num_classes,
        norm_cfg=norm_cfg,
        align_corners=True,
        sampler=dict(type='OHEMPixelSampler', thresh=0.9, min_kept=100000),
        loss_decode=dict(type='CrossEntropyLoss', use_sigmoid=False, loss_weight=0.4)),
    dict(
        type='OCRHead',
        in_channels=None,
        in_index=(0, 1, 2, 3),
        input_transform='resize_concat',
        channels=512,
        ocr_channels=256,
        dropout_ratio=0.05,
        num_classes=num_classes,
        norm_cfg=norm_cfg,
        align_corners=True,
        sampler=dict(type='OHEMPixelSampler', thresh=0.9, min_kept=100000),
        loss_decode=dict(type='CrossEntropyLoss', use_sigmoid=False, loss_weight=1.0)),
]
# AdamW 1e-4, wd 0.01 without decay on biases, norms and bias tables; 1500 linear warm-up iterations from 1e-6, then
# poly (power 0.9) to the end.
optim_wrapper = dict(
    _delete_=True,
    type='OptimWrapper',
    optimizer=dict(type='AdamW', lr=1e-4, betas=(0.9, 0.999), weight_decay=0.01),
    paramwise_cfg=dict(
        norm_decay_mult=0., bias_decay_mult=0., custom_keys={'.relative_position_bias_table': dict(decay_mult=0.)}))
param_scheduler = [
    dict(type='LinearLR', start_factor=1e-6, by_epoch=False, begin=0, end=1500),
    dict(type='PolyLR', power=0.9, eta_min=0., by_epoch=False, begin=1500, end=max_iters)
]
train_cfg = dict(type='IterBasedTrainLoop', max_iters=max_iters, val_interval=max_iters // 10)
default_hooks = dict(checkpoint=dict(by_epoch=False, interval=max_iters // 10))
model = dict(pretrained=None, decode_head=ocr_heads)
