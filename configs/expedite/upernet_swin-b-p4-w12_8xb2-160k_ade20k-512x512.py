# UperNet + Swin-B (window 12, ImageNet-22k 384 pre-training), ADE20K 512x512, 160k: the plain baseline of the
# Expedite pair, mmseg's config unchanged. Its trained model (README.md) loads as published; the backbone's init_cfg
# (ImageNet-22k weights) is only used for training.
_base_ = 'mmseg::swin/swin-base-patch4-window12-in22k-384x384-pre_upernet_8xb2-160k_ade20k-512x512.py'
