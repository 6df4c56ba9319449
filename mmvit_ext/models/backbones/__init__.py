"""Backbones. Importing this package registers the families that need only torch/mmcv/mmengine.

``expedite`` (hourglass wrappers of mmseg's/mmdet's ViT and Swin) imports the host libraries, so it is not
imported here: the registry's ``locations`` import it when a ``type='mmvit_ext.Hourglass*'`` is first built, and
``import mmvit_ext`` stays free of mmdet/mmseg/mmpretrain (and torchvision).
"""
from .base import BaseViTBackbone  # noqa: F401
from .p2t import P2T  # noqa: F401
