"""The mmvit_ext registries.

``MODELS`` is a child of MMEngine's root ``MODELS`` with scope ``mmvit_ext``. Configs of mmdet, mmseg and
mmpretrain (each with its own ``default_scope``) reach our modules as ``type='mmvit_ext.P2T'``: MMEngine
then imports ``mmvit_ext.registry`` and the ``locations`` below on demand. ``OPTIM_WRAPPERS`` holds the CPU
autocast wrapper that ``tools/train.py --amp`` selects when no GPU is present. ``TRANSFORMS`` holds data
transforms (``type='mmvit_ext.AlignResize'`` in an mmseg pipeline: mmseg's registry goes to the root, which finds
this child by its scope).
"""
from mmengine.registry import MODELS as MMENGINE_MODELS
from mmengine.registry import OPTIM_WRAPPERS as MMENGINE_OPTIM_WRAPPERS
from mmengine.registry import TRANSFORMS as MMENGINE_TRANSFORMS
from mmengine.registry import Registry

# ``expedite`` imports mmseg/mmdet, so it is registered lazily (on the first lookup) rather than on import.
MODELS = Registry(
    'model', parent=MMENGINE_MODELS, scope='mmvit_ext',
    locations=['mmvit_ext.models', 'mmvit_ext.models.backbones.expedite'])
OPTIM_WRAPPERS = Registry(
    'optim_wrapper', parent=MMENGINE_OPTIM_WRAPPERS, scope='mmvit_ext', locations=['mmvit_ext.engine'])
TRANSFORMS = Registry(
    'transform', parent=MMENGINE_TRANSFORMS, scope='mmvit_ext', locations=['mmvit_ext.datasets.transforms'])

__all__ = ['MODELS', 'OPTIM_WRAPPERS', 'TRANSFORMS']
