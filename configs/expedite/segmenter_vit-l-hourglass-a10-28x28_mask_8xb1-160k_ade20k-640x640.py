# Expedite (hourglass) Segmenter ViT-L/16, ADE20K 640x640: the paper's main row (Expedit-Segmenter
# `location=9` -> alpha=10 layers at full resolution, 40x40 patch tokens clustered to 28x28, kappa=5 iterations,
# lambda=5, tau=0.02, top-20 reconstruction). The backbone adds no parameters: the checkpoints of the plain config
# load unchanged (same keys), and `model.pretrained` is kept for training. Reconstruction happens at the backbone
# output, so the decode head runs at full resolution (the released code runs it at 28x28; docs/models/expedite.md).
_base_ = './segmenter_vit-l_mask_8xb1-160k_ade20k-640x640.py'
custom_imports = dict(imports=['mmvit_ext'], allow_failed_imports=False)
model = dict(
    backbone=dict(
        type='mmvit_ext.HourglassViT',
        expedite=dict(alpha=10, cluster_shape=(28, 28), window=5, iters=5, tau=0.02, k=20)))
