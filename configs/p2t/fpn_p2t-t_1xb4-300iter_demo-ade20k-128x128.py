# The `make demo` job: Semantic FPN + P2T-Tiny trained from scratch for 300 iterations on the synthetic
# ADE20K-format demo data (python tools/misc/make_demo_data.py data/demo), 128x128 crops, CPU-friendly.
_base_ = ['../_base_/models/fpn_p2t-t.py', '../_base_/datasets/demo_ade20k.py', 'mmseg::_base_/default_runtime.py']
model = dict(
    data_preprocessor=dict(size=(128, 128)),
    backbone=dict(drop_path_rate=0.0, init_cfg=None),  # no ImageNet weights needed for the demo
    decode_head=dict(num_classes=3))
optim_wrapper = dict(type='OptimWrapper', optimizer=dict(type='AdamW', lr=1e-3, weight_decay=1e-4))
param_scheduler = [
    dict(type='LinearLR', start_factor=0.1, by_epoch=False, begin=0, end=30),
    dict(type='PolyLR', power=0.9, eta_min=1e-5, begin=30, end=300, by_epoch=False)
]
train_cfg = dict(type='IterBasedTrainLoop', max_iters=300, val_interval=300)
val_cfg = dict(type='ValLoop')
test_cfg = dict(type='TestLoop')
default_hooks = dict(
    logger=dict(type='LoggerHook', interval=25, log_metric_by_epoch=False),
    checkpoint=dict(type='CheckpointHook', by_epoch=False, interval=300, max_keep_ckpts=1),
    visualization=dict(type='SegVisualizationHook'))
randomness = dict(seed=0)
