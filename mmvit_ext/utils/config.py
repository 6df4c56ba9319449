"""Make ``_base_ = 'mmvit_ext::<family>/<file>.py'`` work in MMEngine 0.10.7.

MMEngine resolves ``pkg::path`` bases only for the packages in ``mmengine.config.utils.MODULE2PACKAGE`` and finds
their files under ``<installed path>/.mim/``. Importing :mod:`mmvit_ext` calls :func:`register_mim_package`, which

* adds ``mmvit_ext`` to that table, and
* makes MMEngine's ``get_installed_path('mmvit_ext')`` return the imported package's directory. MMEngine derives
  the path from the distribution's location, which is wrong for editable (PEP 660) installs, whose
  ``dist-info`` sits in site-packages while the code stays in the source tree.

* keeps the types of an ``mmvit_ext::`` base in the config's own ``default_scope``. Our configs are mmdet / mmseg /
  mmpretrain configs; MMEngine would stamp ``_scope_='mmvit_ext'`` on every typed dict they define (hooks, datasets,
  schedulers...), and host-only types such as ``SegVisualizationHook`` would then not be found. Inheriting
  ``mmvit_ext::x.py`` thus behaves exactly like using ``x.py`` directly.

A downstream repository therefore needs one line before it parses a config: ``import mmvit_ext`` (our tools do it;
in a host repo's ``tools/train.py`` or via ``python -c``).
"""
import functools
import os.path as osp

PACKAGE = 'mmvit_ext'
PACKAGE_DIR = osp.dirname(osp.dirname(osp.abspath(__file__)))


def mim_dir() -> str:
    """``mmvit_ext/.mim``: holds ``configs/`` and ``model-index.yml`` after installation."""
    return osp.join(PACKAGE_DIR, '.mim')


def _patch_installed_path(module) -> None:
    original = getattr(module, 'get_installed_path', None)
    if original is None or getattr(original, '_mmvit_ext_patched', False):
        return

    @functools.wraps(original)
    def get_installed_path(package: str) -> str:
        if package == PACKAGE:
            return PACKAGE_DIR
        return original(package)

    get_installed_path._mmvit_ext_patched = True
    module.get_installed_path = get_installed_path


def register_mim_package() -> None:
    """Register ``mmvit_ext::`` as a config-base prefix (idempotent).

    Raises:
        IncompatibleVersionError: MMEngine is not of the series these patches were written for (see
            :mod:`mmvit_ext.utils.compat`).
    """
    from mmvit_ext.utils.compat import SUPPORTED, check_version
    check_version('mmengine', SUPPORTED['mmengine'],
                  'MODULE2PACKAGE, get_installed_path and Config._get_cfg_path (mmvit_ext:: config bases)')
    import mmengine.config.config as config_module
    import mmengine.config.utils as config_utils
    import mmengine.utils as mmengine_utils
    import mmengine.utils.package_utils as package_utils

    config_utils.MODULE2PACKAGE.setdefault(PACKAGE, PACKAGE)
    for module in (package_utils, mmengine_utils, config_module):
        _patch_installed_path(module)
    _patch_base_scope(config_module.Config)


def _patch_base_scope(config_cls) -> None:
    original = config_cls._get_cfg_path
    if getattr(original, '_mmvit_ext_patched', False):
        return

    def _get_cfg_path(cfg_path: str, filename: str):
        path, scope = original(cfg_path, filename)
        return path, (None if scope == PACKAGE else scope)

    _get_cfg_path._mmvit_ext_patched = True
    config_cls._get_cfg_path = staticmethod(_get_cfg_path)
