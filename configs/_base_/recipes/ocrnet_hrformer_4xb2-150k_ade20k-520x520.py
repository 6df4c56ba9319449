# OCRNet, ADE20K, 520x520 crops, 150k iterations, batch 8 (4 GPUs x 2), the paper's HRFormer segmentation recipe
# (openseg seg/scripts/ade20k/hrt/*.sh): mmseg's OCRNet (CascadeEncoderDecoder) and ADE20K dataset with the crop and
# resize range of openseg (random scale 0.5-2.0 of 520, crop 520, flip), single-scale test at 2080x520.
# Everything but the backbone and the heads' input channels, which each configs/hrformer/ocrnet_hrformer-*.py sets.
_base_ = ['mmseg::ocrnet/ocrnet_hr18_4xb4-160k_ade20k-512x512.py']
crop_size = (520, 520)
data_preprocessor = dict(size=crop_size)
train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations', reduce_zero_label=True),
    dict(type='RandomResize', scale=(2080, 520), ratio_range=(0.5, 2.0), keep_ratio=True),
    dict(type='RandomCrop', crop_size=crop_size, cat_max_ratio=0.75),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PhotoMetricDistortion'),
    dict(type='PackSegInputs')
]
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=(2080, 520), keep_ratio=True),
    dict(type='LoadAnnotations', reduce_zero_label=True),
    dict(type='PackSegInputs')
]
train_dataloader = dict(batch_size=2, dataset=dict(pipeline=train_pipeline))
val_dataloader = dict(dataset=dict(pipeline=test_pipeline))
test_dataloader = val_dataloader
num_classes = 150
max_iters = 150000

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
model = dict(data_preprocessor=data_preprocessor, pretrained=None, decode_head=ocr_heads)
