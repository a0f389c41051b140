"""Which kernels the one-shot model's weighted sums and 3x3 max-pool run on: the Triton kernels of
`triton_sums` and `triton_pool`, or PyTorch's (cuBLAS's products, max_pool2d/max_pool3d).

The Triton kernels compute the same values (the max-pool bitwise; the sums up to the order of
their floating-point additions) with fewer bytes moved, and deterministically. They run on CUDA
tensors of float32 or float64 where the `triton` package imports (PyTorch's CUDA wheels bring it),
and nowhere else: not on the CPU, not under torch.func transforms or `torch.compile` (which fuses
for itself), not on the batched gradients of `autograd.grad(..., is_grads_batched=True)`, not on
tensors of more than 2**30 elements, not on a GPU where Triton fails (`triton_works`).
`triton_kernels(False)` (`--set triton_kernels=false` for a run) turns them off in this process.
The sums' `contract` splits its reduction by the GPU's number of multiprocessors: its results are
reproducible on one kind of GPU, not across kinds.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext

import torch
from torch import Tensor

from benchmarks.errors import brief

KERNEL_DEVICES = ("cuda",)  # the tests add "cpu", for Triton's interpreter
KERNEL_DTYPES = (torch.float32, torch.float64)
MAX_ELEMENTS = 2**30  # the kernels index in 32-bit integers: room for a block past the end
_enabled = True  # `triton_kernels`
_works: dict[torch.device, bool] = {}  # `triton_works`' answers


def triton_works(device: torch.device) -> bool:
    """Whether the Triton kernels run on `device`: `triton` imports and, on CUDA, a first launch
    of one of them (which compiles it) succeeds. Where it fails (a GPU Triton does not support,
    no C compiler, no ptxas), a warning says why, and PyTorch's kernels run instead. Asked first
    while a CUDA graph is being captured, where no kernel may be compiled: no (PyTorch's kernels
    in that graph), and it is asked again later. The answer is kept per device."""
    if device not in _works:
        if device.type == "cuda" and torch.cuda.is_available() and torch.cuda.is_current_stream_capturing():
            return False
        _works[device] = _first_launch_works(device)
    return _works[device]


def _first_launch_works(device: torch.device) -> bool:
    try:
        from benchmarks.nasbench1shot1.triton_sums import combine
    except ImportError:
        return False
    if device.type != "cuda":
        return True
    try:
        combine(torch.ones(1, 1, device=device), torch.ones(1, 16, device=device))
    except Exception as error:  # whatever Triton's compiler or driver raises
        warnings.warn(
            f"the Triton kernels do not run on {device} ({brief(error)}); PyTorch's kernels run instead "
            "(--set triton_kernels=false silences this)",
            stacklevel=3,
        )
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


def use_triton(*tensors: Tensor, output_elements: int = 0) -> bool:
    """Whether an operation on `tensors` (and an output of `output_elements` it allocates) runs
    the Triton kernels: switched on; all of them on one `KERNEL_DEVICES` device, of one
    `KERNEL_DTYPES` type, with 1 to `MAX_ELEMENTS` elements, none batched; outside torch.func
    transforms and `torch.compile`; and `triton_works` there. The cheap checks come first: this
    runs for every weighted sum."""
    if not _enabled:
        return False
    device, dtype = tensors[0].device, tensors[0].dtype
    return (
        device.type in KERNEL_DEVICES
        and dtype in KERNEL_DTYPES
        and all(t.device == device and t.dtype == dtype and 0 < t.numel() <= MAX_ELEMENTS for t in tensors)
        and output_elements <= MAX_ELEMENTS
        and not torch._C._are_functorch_transforms_active()
        and not torch.compiler.is_compiling()
        and not any(torch._C._functorch.is_legacy_batchedtensor(t) for t in tensors)
        and triton_works(device)
    )


def on_device(tensor: Tensor) -> AbstractContextManager:
    """Within: `tensor`'s CUDA device the current one (Triton launches on the current device)."""
    return torch.cuda.device(tensor.device) if tensor.is_cuda else nullcontext()
