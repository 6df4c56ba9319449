"""Necks that the host libraries lack; importing this package registers them (torch, mmcv and mmengine only)."""
from .conv_pool import ConvPoolNeck  # noqa: F401
from .hr_fuse import HRFuseScalesDW  # noqa: F401
