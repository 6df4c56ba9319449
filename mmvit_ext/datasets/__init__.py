"""Dataset helpers of mmvit_ext.

The datasets themselves are those of the host libraries (mmdet ``CocoDataset``, mmseg ``BaseSegDataset`` /
``ADE20KDataset``, mmpretrain ``ImageNet``); this package holds :mod:`mmvit_ext.datasets.demo_data`, the
generator of the small synthetic COCO / ADE20K / ImageNet-format data sets used by the demo configs and the tests,
and :mod:`mmvit_ext.datasets.transforms` (``AlignResize``), registered in ``mmvit_ext.registry.TRANSFORMS``.
Nothing here imports mmdet, mmseg or mmpretrain. The transforms module imports mmcv (and so torch); it is loaded
on first use (``type='mmvit_ext.AlignResize'`` in a pipeline, or ``from mmvit_ext.datasets import AlignResize``)
so that the demo-data generator stays light.
"""
from .demo_data import DEMO_CLASSES, DEMO_PALETTE, make_demo_data

__all__ = ['DEMO_CLASSES', 'DEMO_PALETTE', 'make_demo_data', 'AlignResize']


def __getattr__(name):
    if name == 'AlignResize':
        from .transforms import AlignResize
        return AlignResize
    raise AttributeError(f'module {__name__!r} has no attribute {name!r}')
