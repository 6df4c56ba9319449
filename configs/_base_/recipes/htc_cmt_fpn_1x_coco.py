# HTC with the semantic branch, COCO 1x, for CMT; needs data/coco/stuffthingmaps (docs/dataset_prepare.md). CMT has
# no official detection recipe, so this is htc_p2t_fpn_1x_coco.py unchanged (the PVT/P2T detection optimizer, AdamW
# 1e-4, wd 1e-4, on mmdet's HTC 1x). Everything but the backbone, which each configs/cmt/htc_cmt-*_fpn_1x_coco.py
# takes from its arch base (../models/cmt-*.py).
_base_ = './htc_p2t_fpn_1x_coco.py'
