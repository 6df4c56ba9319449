"""mmvit_ext: vision-transformer backbones for OpenMMLab 2.0 dense prediction.

Importing the package
  * registers ``mmvit_ext::`` for cross-repository ``_base_`` configs (see ``utils/config.py``);
  * makes MMEngine's checkpoint loading work on torch >= 2.6 with ``weights_only=True`` kept
    (see ``utils/checkpoint.py``);
  * registers the models in ``mmvit_ext.registry.MODELS``.
"""
import warnings

# MMEngine 0.10.7 imports (and reloads) pkg_resources for every ``pkg::`` base; its deprecation warning is noise.
warnings.filterwarnings('ignore', message='pkg_resources is deprecated', category=UserWarning)

from .utils.checkpoint import install_safe_checkpoint_loader  # noqa: E402
from .utils.config import register_mim_package  # noqa: E402
from .version import __version__  # noqa: E402

register_mim_package()
install_safe_checkpoint_loader()

from . import models  # noqa: E402,F401  (registration)

__all__ = ['__version__']
