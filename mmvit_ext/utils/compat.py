"""Version checks in front of the code that relies on other packages' internals.

Importing :mod:`mmvit_ext` patches MMEngine (``utils/config.py``: ``MODULE2PACKAGE``, ``get_installed_path`` and
``Config._get_cfg_path``; ``utils/checkpoint.py``: the local and HTTP(S) loaders of ``CheckpointLoader``), and the
Expedite wrappers re-implement the forward of mmseg/mmdet backbones. These were written against one release series
each (:data:`SUPPORTED`). On another version a private function may have changed or moved, and a patch could then
fail silently (e.g. ``mmvit_ext::`` bases no longer found, or checkpoints loaded by MMEngine's unpatched loader), so
:func:`check_version` is called right before each patch is installed and stops with
:class:`IncompatibleVersionError`, naming the installed and the supported versions.

Escape hatch: ``MMVIT_EXT_SKIP_VERSION_CHECK=1`` turns the error into a warning, for trying a newer release at
your own risk (the tests then say whether the patches still work).
"""
import importlib
import os
import re
import warnings
from typing import Tuple

__all__ = ['IncompatibleVersionError', 'SUPPORTED', 'SKIP_ENV', 'check_version', 'version_matches']

#: Release series each patch was written for (and the release it was written against).
SUPPORTED = {
    'mmengine': '0.10.x',  # written for 0.10.7
    'mmseg': '1.2.x',  # written for 1.2.2
    'mmdet': '3.3.x',  # written for 3.3.0
}

#: Environment variable that turns the version error into a warning.
SKIP_ENV = 'MMVIT_EXT_SKIP_VERSION_CHECK'

_PIP_NAMES = {'mmseg': 'mmsegmentation'}


class IncompatibleVersionError(ImportError):
    """An installed package is not of the release series that mmvit_ext's patches of its internals were written
    for."""


def _release(version: str) -> Tuple[int, ...]:
    """Leading numeric components: ``'0.10.7'`` -> ``(0, 10, 7)``, ``'1.2.2rc1'`` -> ``(1, 2, 2)``."""
    match = re.match(r'\d+(?:\.\d+)*', version.strip())
    if match is None:
        raise ValueError(f'not a version: {version!r}')
    return tuple(int(x) for x in match.group(0).split('.'))


def version_matches(version: str, supported_spec: str) -> bool:
    """Whether ``version`` is in ``supported_spec``: a series ``'0.10.x'`` (or ``'0.10.*'``), or one release
    ``'0.10.7'``.

    Example:
        >>> version_matches('0.10.7', '0.10.x'), version_matches('0.11.0', '0.10.x')
        (True, False)
    """
    parts = supported_spec.strip().split('.')
    if parts[-1] in ('x', '*'):
        prefix = _release('.'.join(parts[:-1]))
        return _release(version)[:len(prefix)] == prefix
    spec = _release(supported_spec)
    release = _release(version)
    return release + (0, ) * (len(spec) - len(release)) == spec + (0, ) * (len(release) - len(spec))


def check_version(package: str, supported_spec: str, what_is_patched: str) -> None:
    """Stop before patching ``package`` when its installed version is not ``supported_spec``.

    The version is the imported module's ``__version__`` (the patches act on that module).

    Args:
        package (str): Import name, e.g. ``'mmengine'``, ``'mmseg'``.
        supported_spec (str): Release series, e.g. ``'0.10.x'`` (see :func:`version_matches`).
        what_is_patched (str): What relies on the internals, for the message, e.g.
            ``'Config._get_cfg_path (mmvit_ext:: config bases)'``.

    Raises:
        IncompatibleVersionError: The version does not match and ``MMVIT_EXT_SKIP_VERSION_CHECK`` is not ``1``
            (with it set, a ``RuntimeWarning`` is issued instead).
    """
    module = importlib.import_module(package)
    installed = str(getattr(module, '__version__', 'unknown'))
    try:
        ok = version_matches(installed, supported_spec)
    except ValueError:
        ok = False
    if ok:
        return
    pip_name = _PIP_NAMES.get(package, package)
    pin = supported_spec.replace('.x', '.*')
    message = (f"{package} {installed} is installed, but mmvit_ext's patch of {what_is_patched} was written for "
               f'{package} {supported_spec} and may silently misbehave on other versions. Install a supported version '
               f'(pip install "{pip_name}=={pin}"), or set {SKIP_ENV}=1 to go on at your own risk.')
    if os.environ.get(SKIP_ENV) == '1':
        warnings.warn(f'{message} ({SKIP_ENV}=1: going on anyway)', RuntimeWarning, stacklevel=2)
        return
    raise IncompatibleVersionError(message)
