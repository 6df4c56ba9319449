# Expedite (hourglass) Mask R-CNN + Swin-L, COCO. The settings are Expedit-Mask2Former's COCO instance
# segmentation ones (Swin-L, CLUSTERING_LOCATION 12): blocks 0-11 at full resolution, then every 12x12 window of
# stage 3 is clustered to 8x8 tokens (kappa=5, lambda=11, tau=0.01) for the remaining 10 blocks of the stage and
# reconstructed with top-60 weights before the patch merging; stage 4 runs at full resolution. No official Mask R-CNN
# result exists for these settings. The two switches keep mmvit_ext's corrections; set both the other way to
# reproduce the released Swin code numerically. The backbone adds no parameters: the plain config's checkpoints load
# unchanged (init_cfg kept for training).
_base_ = './mask-rcnn_swin-l-p4-w12_fpn_1x_coco.py'
custom_imports = dict(imports=['mmvit_ext'], allow_failed_imports=False)
model = dict(
    backbone=dict(
        type='mmvit_ext.HourglassSwinDet',
        expedite=dict(
            alpha=12, cluster_shape=8, window=11, iters=5, tau=0.01, k=60, mask_padding=True, legacy_shift_mask=False)))
