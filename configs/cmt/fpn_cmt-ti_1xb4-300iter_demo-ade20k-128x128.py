# Semantic FPN + CMT-Ti trained from scratch for 300 iterations on the synthetic ADE20K-format demo data
# (python tools/misc/make_demo_data.py data/demo), 128x128 crops, CPU-friendly: the `make demo` recipe of
# configs/p2t/fpn_p2t-t_1xb4-300iter_demo-ade20k-128x128.py with the CMT-Ti backbone (its bias tables, made for
# 160 px, are resized to the 128 px crops and 160 px test images).
_base_ = '../p2t/fpn_p2t-t_1xb4-300iter_demo-ade20k-128x128.py'
model = dict(
    backbone=dict(_delete_=True, type='mmvit_ext.CMT', arch='tiny', drop_path_rate=0.0),
    neck=dict(in_channels=[46, 92, 184, 368]))
