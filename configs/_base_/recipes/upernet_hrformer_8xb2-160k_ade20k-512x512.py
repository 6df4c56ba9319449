# UperNet, ADE20K 512x512, 160k iterations, for HRFormer: mmseg's Swin/PVT UperNet recipe (AdamW 6e-5, wd 0.01
# without decay on norms, 1500-iter warm-up, poly 1.0), unchanged. Everything but the backbone and the heads' input
# channels.
_base_ = './upernet_p2t_8xb2-160k_ade20k-512x512.py'
