# UperNet + Swin-L (window 12, ImageNet-22k 384 pre-training), ADE20K 512x512, 160k: the plain baseline of the
# Expedite pair, mmseg's config unchanged. mmseg publishes no trained model for it; the backbone's init_cfg
# (ImageNet-22k weights) is used for training.
_base_ = 'mmseg::swin/swin-large-patch4-window12-in22k-384x384-pre_upernet_8xb2-160k_ade20k-512x512.py'
