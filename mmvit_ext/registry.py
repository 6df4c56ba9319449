"""The mmvit_ext registries.

``MODELS`` is a child of MMEngine's root ``MODELS`` with scope ``mmvit_ext``. Configs of mmdet, mmseg and
mmpretrain (each with its own ``default_scope``) reach our modules as ``type='mmvit_ext.P2T'``: MMEngine
then imports ``mmvit_ext.registry`` and the ``locations`` below on demand. ``OPTIM_WRAPPERS`` holds the CPU
autocast wrapper that ``tools/train.py --amp`` selects when no GPU is present. ``TRANSFORMS`` holds data
transforms (``type='mmvit_ext.AlignResize'`` in an mmseg pipeline: mmseg's registry goes to the root, which finds
this child by its scope).

Wrappers of host-library models (``mmvit_ext.models.hosts``) import mmdet/mmseg, so they are not among the
``locations``: :class:`HostAwareRegistry` imports a wrapper's module when its name is first looked up. Building a
native backbone therefore imports only torch, mmcv and mmengine.
"""
from importlib import import_module
from typing import Dict, Optional, Type

from mmengine.registry import MODELS as MMENGINE_MODELS
from mmengine.registry import OPTIM_WRAPPERS as MMENGINE_OPTIM_WRAPPERS
from mmengine.registry import TRANSFORMS as MMENGINE_TRANSFORMS
from mmengine.registry import Registry

__all__ = ['MODELS', 'OPTIM_WRAPPERS', 'TRANSFORMS', 'HOST_MODULES', 'HostAwareRegistry']

#: Name of each host wrapper -> the module that registers it (and imports its host library).
#: ``tests/test_registry.py`` checks that this is exactly what ``mmvit_ext.models.hosts`` registers.
HOST_MODULES: Dict[str, str] = {
    'HourglassViT': 'mmvit_ext.models.hosts.expedite',
    'HourglassSwin': 'mmvit_ext.models.hosts.expedite',
    'HourglassSwinDet': 'mmvit_ext.models.hosts.expedite',
}


class HostAwareRegistry(Registry):
    """A registry that imports the module of a host wrapper the first time the wrapper's name is looked up.

    Args:
        host_modules (dict[str, str]): Registered name -> module path.
        **kwargs: Arguments of :class:`mmengine.registry.Registry`.
    """

    def __init__(self, *args, host_modules: Dict[str, str], **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.host_modules = dict(host_modules)

    def get(self, key: str) -> Optional[Type]:
        if isinstance(key, str):
            scope, name = self.split_scope_key(key)
            if scope in (None, self.scope) and name in self.host_modules and name not in self._module_dict:
                import_module(self.host_modules[name])
        return super().get(key)

    def import_hosts(self) -> None:
        """Import every host wrapper (for listings that must show them, e.g. the test battery)."""
        for module in sorted(set(self.host_modules.values())):
            import_module(module)


MODELS = HostAwareRegistry(
    'model', parent=MMENGINE_MODELS, scope='mmvit_ext', locations=['mmvit_ext.models'], host_modules=HOST_MODULES)
OPTIM_WRAPPERS = Registry(
    'optim_wrapper', parent=MMENGINE_OPTIM_WRAPPERS, scope='mmvit_ext', locations=['mmvit_ext.engine'])
TRANSFORMS = Registry(
    'transform', parent=MMENGINE_TRANSFORMS, scope='mmvit_ext', locations=['mmvit_ext.datasets.transforms'])
