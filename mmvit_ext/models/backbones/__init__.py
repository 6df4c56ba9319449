"""Native backbones: importing this package registers the families, which need only torch, mmcv and mmengine.

Wrappers of host-library backbones live in :mod:`mmvit_ext.models.hosts` and are imported on their first lookup
(see :mod:`mmvit_ext.registry`), so ``import mmvit_ext`` and building a native backbone stay free of
mmdet/mmseg/mmpretrain (and torchvision).
"""
from .base import BaseViTBackbone  # noqa: F401
from .cmt import CMT  # noqa: F401
from .hrformer import HRFormer  # noqa: F401
from .p2t import P2T  # noqa: F401
