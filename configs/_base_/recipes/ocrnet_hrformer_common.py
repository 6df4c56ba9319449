# What the two OCRNet recipes of HRFormer share (openseg HRT_*_OCR_V2 mapped to mmseg), under names of their own:
# a recipe inherits this next to an mmseg OCRNet config, and mmengine refuses keys that two bases both define.
# Each recipe sets its classes and length: ocr_heads = [dict(h, num_classes=...) for h in _base_.ocr_head_templates],
# param_scheduler = [_base_.ocr_warmup, dict(_base_.ocr_poly, end=max_iters)].
ocr_norm_cfg = dict(type='SyncBN', requires_grad=True)
# An FCN auxiliary head (3x3 conv to 512) on the concatenated branches, then the OCR head; align_corners=True and
# OHEM as openseg. A model config sets their in_channels, e.g.
# decode_head=[dict(head, in_channels=...) for head in _base_.ocr_heads].
ocr_head_templates = [
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
        num_classes=None,
        norm_cfg=ocr_norm_cfg,
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
        num_classes=None,
        norm_cfg=ocr_norm_cfg,
        align_corners=True,
        sampler=dict(type='OHEMPixelSampler', thresh=0.9, min_kept=100000),
        loss_decode=dict(type='CrossEntropyLoss', use_sigmoid=False, loss_weight=1.0)),
]
# AdamW 1e-4, wd 0.01 without decay on biases, norms and bias tables; 1500 linear warm-up iterations from 1e-6, then
# poly (power 0.9) to the end.
ocr_optim_wrapper = dict(
    type='OptimWrapper',
    optimizer=dict(type='AdamW', lr=1e-4, betas=(0.9, 0.999), weight_decay=0.01),
    paramwise_cfg=dict(
        norm_decay_mult=0., bias_decay_mult=0., custom_keys={'.relative_position_bias_table': dict(decay_mult=0.)}))
ocr_warmup = dict(type='LinearLR', start_factor=1e-6, by_epoch=False, begin=0, end=1500)
ocr_poly = dict(type='PolyLR', power=0.9, eta_min=0., by_epoch=False, begin=1500, end=None)
