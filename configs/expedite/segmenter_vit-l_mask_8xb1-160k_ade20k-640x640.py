# Segmenter ViT-L/16 (mask transformer head), ADE20K 640x640, 160k: the plain baseline of the Expedite pair, mmseg's
# config unchanged. (mmseg names it "-512x512", but it trains on 640x640 crops and tests with 640x640 sliding windows,
# stride 608.) Weights: mmseg's trained model loads as published, e.g.
#   python tools/test.py configs/expedite/segmenter_vit-l_mask_8xb1-160k_ade20k-640x640.py \
#       segmenter_vit-l_mask_8x1_512x512_160k_ade20k_20220105_162750-7ef345be.pth
# (see README.md for the URL); `model.pretrained` (the ImageNet-21k ViT-L/16 384 weights) is only used for training.
_base_ = 'mmseg::segmenter/segmenter_vit-l_mask_8xb1-160k_ade20k-512x512.py'
