from .base import BaseViTBackbone  # noqa: F401
from .p2t import P2T  # noqa: F401
