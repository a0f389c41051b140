"""Which kernels the one-shot model's weighted sums and 3x3 max-pool run on: the Triton kernels of
`triton_sums` and `triton_pool`, or PyTorch's (cuBLAS's products, max_pool2d/max_pool3d).

The Triton kernels compute the same values (the max-pool bitwise; the sums up to the order of
their floating-point additions) with fewer bytes moved, and deterministically. They run on CUDA
tensors of float32 or float64 where the `triton` package imports (PyTorch's CUDA wheels bring it),
and nowhere else: not on the CPU, not under torch.func transforms or `torch.compile` (which fuses
for itself), not on the batched gradients of `autograd.grad(..., is_grads_batched=True)`, not on
tensors of 2**31 elements or more. `triton_kernels(False)` (`--set triton_kernels=false` for a
run) turns them off in this process.
"""

from __future__ import annotations

import functools
from collections.abc import Iterator
from contextlib import contextmanager

import torch
from torch import Tensor

KERNEL_DEVICES = ("cuda",)  # the tests add "cpu", for Triton's interpreter
KERNEL_DTYPES = (torch.float32, torch.float64)
MAX_ELEMENTS = 2**31 - 1  # the kernels index in 32-bit integers
_enabled = True


@functools.cache
def triton_available() -> bool:
    """Whether the `triton` package imports here."""
    try:
        import triton  # noqa: F401
    except ImportError:
        return False
    return True


@contextmanager
def triton_kernels(enabled: bool) -> Iterator[None]:
    """Within: the Triton kernels on (where `use_triton` allows them) or off, process-wide; on
    exit the previous setting again."""
    global _enabled
    previous, _enabled = _enabled, enabled
    try:
        yield
    finally:
        _enabled = previous


def use_triton(*tensors: Tensor) -> bool:
    """Whether an operation on `tensors` runs the Triton kernels: switched on, outside torch.func
    transforms and `torch.compile`, none of them batched, all of them on a `KERNEL_DEVICES`
    device, of a `KERNEL_DTYPES` type and with at most `MAX_ELEMENTS` elements, and `triton`
    importable."""
    return (
        _enabled
        and not torch._C._are_functorch_transforms_active()
        and not torch.compiler.is_compiling()
        and not any(torch._C._functorch.is_legacy_batchedtensor(t) for t in tensors)
        and all(t.device.type in KERNEL_DEVICES and t.dtype in KERNEL_DTYPES for t in tensors)
        and all(t.numel() <= MAX_ELEMENTS for t in tensors)
        and triton_available()
    )
