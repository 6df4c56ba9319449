"""Wrappers of host-library models (mmdet, mmseg, mmpretrain): importing this package imports those libraries.

Nothing in ``mmvit_ext`` imports it eagerly. The registry (:class:`mmvit_ext.registry.HostAwareRegistry`) imports
the module that defines a wrapper the first time that wrapper's name is looked up, so
``type='mmvit_ext.HourglassViT'`` works from every config while building a native backbone such as
``type='mmvit_ext.P2T'`` imports only torch, mmcv and mmengine.
"""
from .expedite import HourglassSwin, HourglassSwinDet, HourglassViT  # noqa: F401

__all__ = ['HourglassViT', 'HourglassSwin', 'HourglassSwinDet']
