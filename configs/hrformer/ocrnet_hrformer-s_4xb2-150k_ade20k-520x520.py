# OCRNet + HRFormer-Small, ADE20K 520x520, 150k iterations (the paper's recipe; see the recipe base).
_base_ = ['../_base_/recipes/ocrnet_hrformer_4xb2-150k_ade20k-520x520.py', '../_base_/models/hrformer-s.py']
model = dict(
    backbone=dict(_delete_=True, **_base_.hrformer_dense_backbone),
    decode_head=[dict(head, in_channels=_base_.hrformer_channels) for head in _base_.ocr_heads])
