# Mask R-CNN, COCO 1x, for HRFormer. HRFormer has no official detection code or results, so this is the PVT/P2T
# mask-rcnn_p2t_fpn_1x_coco.py unchanged (AdamW 1e-4, wd 1e-4, 8 GPUs x 2 images, FPN on the four branches). Everything
# but the backbone and the neck's input channels, which each configs/hrformer/mask-rcnn_hrformer-*_fpn_1x_coco.py takes
# from its arch base (../models/hrformer-*.py).
_base_ = './mask-rcnn_p2t_fpn_1x_coco.py'
