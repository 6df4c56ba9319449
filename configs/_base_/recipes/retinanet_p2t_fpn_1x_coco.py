# RetinaNet, COCO 1x, with the official P2T recipe (AdamW 1e-4, wd 1e-4, 8 GPUs x 2 images): everything but the
# backbone, which each configs/p2t/retinanet_p2t-*_fpn_1x_coco.py takes from its arch base (../models/p2t-*.py).
# The FPN keeps the base's start_level=1 and add_extra_convs='on_input', as the official configs do (stage 1 unused).
_base_ = [
    'mmdet::_base_/models/retinanet_r50_fpn.py', 'mmdet::_base_/datasets/coco_detection.py',
    'mmdet::_base_/schedules/schedule_1x.py', 'mmdet::_base_/default_runtime.py'
]
optim_wrapper = dict(optimizer=dict(_delete_=True, type='AdamW', lr=0.0001, weight_decay=0.0001))
