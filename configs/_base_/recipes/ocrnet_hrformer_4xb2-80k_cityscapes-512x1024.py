# OCRNet, Cityscapes, 512x1024 crops, 80k iterations, batch 8 (4 GPUs x 2), the paper's HRFormer segmentation recipe
# (openseg seg/scripts/cityscapes/hrt/*.sh): mmseg's OCRNet (CascadeEncoderDecoder) and Cityscapes dataset
# (random scale 0.5-2.0, crop 512x1024, flip; whole-image test at 1024x2048). Not reproduced: openseg's per-class
# loss weights and brightness shift. Heads, optimizer and schedule: ocrnet_hrformer_common.py. Everything but the
# backbone and the heads' input channels.
_base_ = ['mmseg::ocrnet/ocrnet_hr18_4xb2-80k_cityscapes-512x1024.py', './ocrnet_hrformer_common.py']
num_classes = 19
max_iters = 80000
ocr_heads = [dict(head, num_classes=num_classes) for head in _base_.ocr_head_templates]
optim_wrapper = dict(_delete_=True, **_base_.ocr_optim_wrapper)
param_scheduler = [_base_.ocr_warmup, dict(_base_.ocr_poly, end=max_iters)]
train_cfg = dict(type='IterBasedTrainLoop', max_iters=max_iters, val_interval=max_iters // 10)
default_hooks = dict(checkpoint=dict(by_epoch=False, interval=max_iters // 10))
model = dict(pretrained=None, decode_head=ocr_heads)
