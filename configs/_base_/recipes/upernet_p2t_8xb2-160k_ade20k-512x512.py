# UperNet, ADE20K 512x512, 160k iterations. The official P2T repo has no UperNet recipe; this follows the Swin/PVT
# UperNet recipe of mmseg (AdamW 6e-5, wd 0.01 without decay on norms, 1500-iter warm-up, poly 1.0). Everything but
# the backbone and the head input channels, which each configs/p2t/upernet_p2t-*_8xb2-160k_ade20k-512x512.py takes
# from its arch base (../models/p2t-*.py).
_base_ = [
    'mmseg::_base_/models/upernet_swin.py', 'mmseg::_base_/datasets/ade20k.py', 'mmseg::_base_/default_runtime.py',
    'mmseg::_base_/schedules/schedule_160k.py'
]
crop_size = (512, 512)
model = dict(
    data_preprocessor=dict(size=crop_size), decode_head=dict(num_classes=150), auxiliary_head=dict(num_classes=150))
optim_wrapper = dict(
    _delete_=True,
    type='OptimWrapper',
    optimizer=dict(type='AdamW', lr=0.00006, betas=(0.9, 0.999), weight_decay=0.01),
    paramwise_cfg=dict(custom_keys={'norm': dict(decay_mult=0.)}))
param_scheduler = [
    dict(type='LinearLR', start_factor=1e-6, by_epoch=False, begin=0, end=1500),
    dict(type='PolyLR', eta_min=0.0, power=1.0, begin=1500, end=160000, by_epoch=False)
]
train_dataloader = dict(batch_size=2)
val_dataloader = dict(batch_size=1)
test_dataloader = val_dataloader
