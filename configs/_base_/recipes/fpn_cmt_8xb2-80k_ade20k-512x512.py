# Semantic FPN, ADE20K 512x512, 80k iterations, for CMT. CMT has no official segmentation recipe or results, so this
# is the PVT/P2T recipe of fpn_p2t_8xb2-80k_ade20k-512x512.py (AdamW 1e-4, wd 1e-4 on all parameters, poly 0.9 to
# 1e-6, 8 GPUs x 2 images) with one P2T-specific choice undone: P2T's official test transform (mmvit_ext.AlignResize)
# is replaced by mmseg's standard ADE20K test and TTA pipelines (mmseg::_base_/datasets/ade20k.py), as PVT and the
# UperNet recipe use. CMT takes any input size (ceil-mode downsampling, relative-position bias resized per size).
# Everything but the backbone, which each configs/cmt/fpn_cmt-*_8xb2-80k_ade20k-512x512.py takes from its arch base
# (../models/cmt-*.py).
_base_ = './fpn_p2t_8xb2-80k_ade20k-512x512.py'
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=(2048, 512), keep_ratio=True),
    # annotations are loaded after Resize: the prediction is compared with the original label map
    dict(type='LoadAnnotations', reduce_zero_label=True),
    dict(type='PackSegInputs')
]
val_dataloader = dict(dataset=dict(pipeline=test_pipeline))
test_dataloader = val_dataloader
img_ratios = [0.5, 0.75, 1.0, 1.25, 1.5, 1.75]
tta_pipeline = [
    dict(type='LoadImageFromFile', backend_args=None),
    dict(
        type='TestTimeAug',
        transforms=[[dict(type='Resize', scale_factor=r, keep_ratio=True) for r in img_ratios],
                    [
                        dict(type='RandomFlip', prob=0., direction='horizontal'),
                        dict(type='RandomFlip', prob=1., direction='horizontal')
                    ], [dict(type='LoadAnnotations')], [dict(type='PackSegInputs')]])
]
