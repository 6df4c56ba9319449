# OCRNet, ADE20K, 520x520 crops, 150k iterations, batch 8 (4 GPUs x 2), the paper's HRFormer segmentation recipe
# (openseg seg/scripts/ade20k/hrt/*.sh): mmseg's OCRNet (CascadeEncoderDecoder) and ADE20K dataset with the crop and
# resize range of openseg (random scale 0.5-2.0 of 520, crop 520, flip), single-scale test at 2080x520.
# Heads, optimizer and schedule: ocrnet_hrformer_common.py. Everything but the backbone and the heads' input
# channels, which each configs/hrformer/ocrnet_hrformer-*.py sets.
_base_ = ['mmseg::ocrnet/ocrnet_hr18_4xb4-160k_ade20k-512x512.py', './ocrnet_hrformer_common.py']
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
ocr_heads = [dict(head, num_classes=num_classes) for head in _base_.ocr_head_templates]
optim_wrapper = dict(_delete_=True, **_base_.ocr_optim_wrapper)
param_scheduler = [_base_.ocr_warmup, dict(_base_.ocr_poly, end=max_iters)]
train_cfg = dict(type='IterBasedTrainLoop', max_iters=max_iters, val_interval=max_iters // 10)
default_hooks = dict(checkpoint=dict(by_epoch=False, interval=max_iters // 10))
model = dict(data_preprocessor=data_preprocessor, pretrained=None, decode_head=ocr_heads)
