# UperNet, ADE20K 512x512, 160k iterations, for CMT. CMT has no official segmentation recipe or results, so this is
# upernet_p2t_8xb2-160k_ade20k-512x512.py unchanged: mmseg's Swin/PVT UperNet recipe (AdamW 6e-5, wd 0.01 without
# decay on norms, 1500-iter warm-up, poly 1.0) with mmseg's standard ADE20K pipelines. Everything but the backbone
# and the head input channels, which each configs/cmt/upernet_cmt-*_8xb2-160k_ade20k-512x512.py takes from its arch
# base (../models/cmt-*.py).
_base_ = './upernet_p2t_8xb2-160k_ade20k-512x512.py'
