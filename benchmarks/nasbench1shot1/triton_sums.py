"""The weighted sums over a cell's channel groups as Triton kernels, for the products
`groups.group_products`, `groups.add_group_products_` and `groups.coefficient_products` run on
CUDA (`kernels.use_triton` decides).

Their shapes are far from what cuBLAS is tuned for: a few coefficient rows (k <= 5) over a few
groups (G <= 25) of N = B*C*H*W elements, about 1.5 million at the paper's size. Each is a
bandwidth-bound pass over the groups (round 6 measured 6.8 ms of a 25-ms step in cuBLAS's
products, on about 11 GB, about 35% of an H200's bandwidth; docs/performance.md). Here:

* `combine`: out (R, N) (+)= a (R, I) @ b (I, N), one block of columns per program, reading each
  row of b once and writing (or reading and writing) each row of out once;
* `contract`: a (R, N) @ b (I, N).T -> (R, I), each program reducing its share of the columns of
  both into an (R, I) partial result, then one sum over the programs (deterministic: no atomics).

Tested against torch.mm in tests/test_triton_kernels.py (on the CPU in Triton's interpreter).
"""

from __future__ import annotations

import functools

import torch
import triton
import triton.language as tl
from torch import Tensor

from benchmarks.nasbench1shot1.kernels import on_device

ELEMENTS_PER_PROGRAM = 8192  # accumulators of one program: rows x columns (64 per thread at 4 warps)
MAX_COLUMNS = 2048
PROGRAMS_PER_SM = 4  # `contract`'s programs


@triton.jit
def _combine_kernel(
    out_ptr, a_ptr, b_ptr, rows, inner, n, a_row_stride, a_inner_stride, b_stride, out_stride,
    ROWS: tl.constexpr, COLUMNS: tl.constexpr, ACCUMULATE: tl.constexpr,
):  # fmt: skip
    # out[r, j] (+)= sum_i a[r, i] * b[i, j] for r < rows and this program's columns j
    columns = tl.program_id(0) * COLUMNS + tl.arange(0, COLUMNS)
    in_columns = columns < n
    r = tl.arange(0, ROWS)
    in_rows = r < rows
    total = tl.zeros((ROWS, COLUMNS), dtype=out_ptr.dtype.element_ty)
    for i in range(inner):
        b = tl.load(b_ptr + i * b_stride + columns, mask=in_columns, other=0.0)
        a = tl.load(a_ptr + r * a_row_stride + i * a_inner_stride, mask=in_rows, other=0.0)
        total += a[:, None] * b[None, :]
    offsets = r[:, None] * out_stride + columns[None, :]
    mask = in_rows[:, None] & in_columns[None, :]
    if ACCUMULATE:
        total += tl.load(out_ptr + offsets, mask=mask, other=0.0)
    tl.store(out_ptr + offsets, total, mask=mask)


@triton.jit
def _contract_kernel(
    partial_ptr, a_ptr, b_ptr, rows, inner, n, a_stride, b_stride, programs,
    ROWS: tl.constexpr, INNER: tl.constexpr, COLUMNS: tl.constexpr,
):  # fmt: skip
    # partial[p, r, i] = sum over program p's columns j of a[r, j] * b[i, j]
    program = tl.program_id(0)
    r = tl.arange(0, ROWS)
    in_rows = r < rows
    i_range = tl.arange(0, INNER)
    total = tl.zeros((ROWS, INNER), dtype=partial_ptr.dtype.element_ty)
    for start in range(program * COLUMNS, n, programs * COLUMNS):
        columns = start + tl.arange(0, COLUMNS)
        in_columns = columns < n
        mask = in_rows[:, None] & in_columns[None, :]
        a = tl.load(a_ptr + r[:, None] * a_stride + columns[None, :], mask=mask, other=0.0)
        for i in range(inner):
            b = tl.load(b_ptr + i * b_stride + columns, mask=in_columns, other=0.0)
            total += tl.where(i_range[None, :] == i, tl.sum(a * b[None, :], axis=1)[:, None], 0.0)
    offsets = program * rows * inner + r[:, None] * inner + i_range[None, :]
    tl.store(partial_ptr + offsets, total, mask=in_rows[:, None] & (i_range[None, :] < inner))


def _dense_rows(matrix: Tensor) -> Tensor:
    """A 2-d tensor whose rows are dense (last stride 1), copied only if they are not."""
    return matrix if matrix.stride(1) == 1 else matrix.contiguous()


def _columns(rows: int) -> int:
    """The columns of a block: `ELEMENTS_PER_PROGRAM` accumulators over the rows (padded to a
    power of two), 16 to `MAX_COLUMNS`."""
    return max(16, min(MAX_COLUMNS, ELEMENTS_PER_PROGRAM // triton.next_power_of_2(rows)))


def combine(a: Tensor, b: Tensor, out: Tensor | None = None, accumulate: bool = False) -> Tensor:
    """a (R, I) @ b (I, N) -> (R, N), into `out` (its rows dense) when given, added to it with
    `accumulate`."""
    rows, inner = a.shape
    b = _dense_rows(b)
    n = b.shape[1]
    if out is None:
        out = torch.empty(rows, n, dtype=b.dtype, device=b.device)
    if out.stride(1) != 1:
        raise ValueError("combine writes rows with unit stride")
    columns = _columns(rows)
    with on_device(b):
        _combine_kernel[(triton.cdiv(n, columns),)](
            out, a, b, rows, inner, n, a.stride(0), a.stride(1), b.stride(0), out.stride(0),
            ROWS=triton.next_power_of_2(rows), COLUMNS=columns, ACCUMULATE=accumulate,
        )  # fmt: skip
    return out


@functools.cache
def _processors(device: torch.device) -> int:
    """The multiprocessors of a CUDA device (4 elsewhere: Triton's interpreter)."""
    return torch.cuda.get_device_properties(device).multi_processor_count if device.type == "cuda" else 4


def contract(a: Tensor, b: Tensor) -> Tensor:
    """a (R, N) @ b (I, N).T -> (R, I), reduced over N in two stages."""
    a, b = _dense_rows(a), _dense_rows(b)
    (rows, n), inner = a.shape, b.shape[0]
    columns = _columns(rows)
    programs = max(1, min(PROGRAMS_PER_SM * _processors(a.device), triton.cdiv(n, columns)))
    partial = torch.empty(programs, rows, inner, dtype=a.dtype, device=a.device)
    with on_device(a):
        _contract_kernel[(programs,)](
            partial, a, b, rows, inner, n, a.stride(0), b.stride(0), programs,
            ROWS=triton.next_power_of_2(rows), INNER=triton.next_power_of_2(inner), COLUMNS=columns,
        )  # fmt: skip
    return partial.sum(0)
