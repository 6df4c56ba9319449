# Mask R-CNN, COCO 1x, for CMT. CMT has no official detection recipe or code, so this is the PVT/P2T recipe of
# mask-rcnn_p2t_fpn_1x_coco.py unchanged (AdamW 1e-4, wd 1e-4, 8 GPUs x 2 images). Everything but the backbone,
# which each configs/cmt/mask-rcnn_cmt-*_fpn_1x_coco.py takes from its arch base (../models/cmt-*.py).
_base_ = './mask-rcnn_p2t_fpn_1x_coco.py'
