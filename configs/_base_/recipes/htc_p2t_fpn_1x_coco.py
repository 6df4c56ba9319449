# HTC with the semantic branch, COCO 1x; needs data/coco/stuffthingmaps (docs/dataset_prepare.md). The official P2T
# repo has no HTC recipe: P2T's detection recipe (AdamW 1e-4, wd 1e-4) on mmdet's HTC 1x. Everything but the
# backbone, which each configs/p2t/htc_p2t-*_fpn_1x_coco.py takes from its arch base (../models/p2t-*.py).
_base_ = 'mmdet::htc/htc_r50_fpn_1x_coco.py'
optim_wrapper = dict(optimizer=dict(_delete_=True, type='AdamW', lr=0.0001, weight_decay=0.0001))
