# Expedite (hourglass) HTC + Swin-L, COCO, with Expedit-Mask2Former's COCO instance segmentation settings (Swin-L,
# CLUSTERING_LOCATION 12: alpha=12, 8x8 clusters per 12x12 window, kappa=5, lambda=11, tau=0.01, k=60); see
# mask-rcnn_swin-l-p4-w12-hourglass-a12-8x8_fpn_1x_coco.py for what they mean.
# The backbone adds no parameters: the plain config's checkpoints load unchanged.
_base_ = './htc_swin-l-p4-w12_fpn_1x_coco.py'
custom_imports = dict(imports=['mmvit_ext'], allow_failed_imports=False)
model = dict(
    backbone=dict(
        type='mmvit_ext.HourglassSwinDet',
        expedite=dict(
            alpha=12, cluster_shape=8, window=11, iters=5, tau=0.01, k=60, mask_padding=True, legacy_shift_mask=False)))
