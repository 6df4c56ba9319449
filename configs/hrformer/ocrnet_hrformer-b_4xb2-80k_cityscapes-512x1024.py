# OCRNet + HRFormer-Base, Cityscapes 512x1024, 80k iterations (the paper's recipe; see the recipe base).
_base_ = ['../_base_/recipes/ocrnet_hrformer_4xb2-80k_cityscapes-512x1024.py', '../_base_/models/hrformer-b.py']
model = dict(
    backbone=dict(_delete_=True, **_base_.hrformer_dense_backbone),
    decode_head=[dict(head, in_channels=_base_.hrformer_channels) for head in _base_.ocr_heads])
