# Semantic FPN, ADE20K 512x512, 80k iterations, for HRFormer: the recipe of the CMT configs (the PVT/P2T recipe with
# mmseg's standard ADE20K test pipelines), unchanged. Everything but the backbone and the neck's input channels.
_base_ = './fpn_cmt_8xb2-80k_ade20k-512x512.py'
