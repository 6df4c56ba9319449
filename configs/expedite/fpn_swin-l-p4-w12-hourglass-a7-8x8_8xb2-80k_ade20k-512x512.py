# Expedite (hourglass) Semantic FPN + Swin-L, ADE20K 512x512, with Expedit-Mask2Former's ADE20K semantic
# segmentation settings (Swin-L, CLUSTERING_LOCATION 7: alpha=7, 8x8 clusters per 12x12 window, kappa=5, lambda=5,
# tau=0.01, k=10); see upernet_swin-b-p4-w12-hourglass-a7-8x8_8xb2-160k_ade20k-512x512.py for what they mean.
# The backbone adds no parameters: the plain config's checkpoints load unchanged.
_base_ = './fpn_swin-l-p4-w12_8xb2-80k_ade20k-512x512.py'
custom_imports = dict(imports=['mmvit_ext'], allow_failed_imports=False)
model = dict(
    backbone=dict(
        type='mmvit_ext.HourglassSwin',
        expedite=dict(
            alpha=7, cluster_shape=8, window=5, iters=5, tau=0.01, k=10, mask_padding=True, legacy_shift_mask=False)))
