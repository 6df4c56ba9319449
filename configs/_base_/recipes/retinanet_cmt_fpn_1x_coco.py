# RetinaNet, COCO 1x, for CMT. CMT has no official detection recipe or code (the paper reports CMT-S RetinaNet 1x
# without its settings), so this is the PVT/P2T recipe of retinanet_p2t_fpn_1x_coco.py unchanged (AdamW 1e-4, wd 1e-4,
# 8 GPUs x 2 images; FPN start_level=1, add_extra_convs='on_input'). Everything but the backbone, which each
# configs/cmt/retinanet_cmt-*_fpn_1x_coco.py takes from its arch base (../models/cmt-*.py).
_base_ = './retinanet_p2t_fpn_1x_coco.py'
