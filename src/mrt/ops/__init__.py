"""Numeric kernels in plain PyTorch (``mrt.ops.biwkv``)."""
