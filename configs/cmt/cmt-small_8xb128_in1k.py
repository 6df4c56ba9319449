# CMT-Small, ImageNet-1K 224x224, 300 epochs, 8 GPUs x 128: the official README command for cmt_s (base lr 5e-4 scaled
# by the total batch / 512, wd 0.05, warm-up lr 1e-7, min-lr 1e-5, EMA decay 0.99996, head dropout 0.1; drop-path in
# ../_base_/models/cmt-s.py). Official top-1: 83.5. These are the recipe's own values (train.py's defaults), so only
# the backbone and the neck's input channels are set here.
_base_ = ['../_base_/recipes/cmt_8xb128_in1k.py', '../_base_/models/cmt-s.py']
model = dict(backbone=dict(**_base_.cmt_arch, out_indices=(3, )), neck=dict(in_channels=_base_.cmt_channels[-1]))
