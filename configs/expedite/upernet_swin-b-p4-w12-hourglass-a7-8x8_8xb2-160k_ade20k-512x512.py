# Expedite (hourglass) UperNet + Swin-B, ADE20K 512x512. The settings are Expedit-Mask2Former's ADE20K semantic
# segmentation ones (Swin-L, CLUSTERING_LOCATION 7): blocks 0-6 at full resolution, then every 12x12 window of
# stage 3 is clustered to 8x8 tokens (kappa=5, lambda=5, tau=0.01) for the remaining 15 blocks of the stage and
# reconstructed with top-10 weights before the patch merging; stage 4 runs at full resolution. No official UperNet
# result exists for these settings. The two switches keep mmvit_ext's corrections (padding kept out of the clusters,
# shift mask matching the k // 2 roll); set both the other way to reproduce the released Swin code numerically.
# The backbone adds no parameters: the plain config's checkpoints load unchanged.
_base_ = './upernet_swin-b-p4-w12_8xb2-160k_ade20k-512x512.py'
custom_imports = dict(imports=['mmvit_ext'], allow_failed_imports=False)
model = dict(
    backbone=dict(
        type='mmvit_ext.HourglassSwin',
        expedite=dict(
            alpha=7, cluster_shape=8, window=5, iters=5, tau=0.01, k=10, mask_padding=True, legacy_shift_mask=False)))
