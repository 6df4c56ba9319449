"""Mixed precision without a GPU.

MMEngine's ``AmpOptimWrapper`` asserts a CUDA/NPU/MLU/MUSA device (it needs a ``GradScaler`` for float16).
bfloat16 has float32's exponent range, so it needs no loss scaling: :class:`AutocastOptimWrapper` only runs the
forward pass under ``torch.autocast``. ``tools/train.py --amp`` selects it on machines without CUDA and keeps
``AmpOptimWrapper`` (float16 + dynamic loss scale) where CUDA is present.
"""
from contextlib import contextmanager

import torch
from mmengine.optim import OptimWrapper

from mmvit_ext.registry import OPTIM_WRAPPERS


@OPTIM_WRAPPERS.register_module()
class AutocastOptimWrapper(OptimWrapper):
    """``OptimWrapper`` whose ``optim_context`` autocasts to ``dtype`` (no loss scaler).

    Args:
        dtype (str): ``'bfloat16'`` (default) or ``'float16'``; float16 without loss scaling is only safe for
            short runs, so prefer bfloat16.
        device_type (str, optional): device for ``torch.autocast``; defaults to ``'cuda'`` if available, else
            ``'cpu'``.
        **kwargs: passed to :class:`mmengine.optim.OptimWrapper`.
    """

    def __init__(self, *, dtype: str = 'bfloat16', device_type=None, **kwargs):
        super().__init__(**kwargs)
        if dtype not in ('bfloat16', 'float16'):
            raise ValueError(f"AutocastOptimWrapper: dtype must be 'bfloat16' or 'float16', got {dtype!r}")
        self.cast_dtype = getattr(torch, dtype)
        self.device_type = device_type or ('cuda' if torch.cuda.is_available() else 'cpu')

    @contextmanager
    def optim_context(self, model):
        with super().optim_context(model), torch.autocast(device_type=self.device_type, dtype=self.cast_dtype):
            yield
