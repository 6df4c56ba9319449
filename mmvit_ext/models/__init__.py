from . import backbones, necks  # noqa: F401
