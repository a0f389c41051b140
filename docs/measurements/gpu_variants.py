"""A harness command (`bench`, `run`) with kernel-level alternatives switched on: an A/B on one
GPU, each variant in its own process (the switches are process-wide).

Variants (join several with '+', e.g. "cudnn-benchmark+pool-2d"):

* "now": the code as it is;
* "plain-mm": the weighted sums' coefficient gradient as the plain matrix product grad @ groups.T
  (one reduction over all B*C*H*W elements) instead of `groups.chunked_products`;
* "plain-conv": the model's convolutions as `F.conv2d`, whose double backward also computes every
  layer's weight gradient (`benchmarks.nasbench1shot1.conv` computes only what is asked for);
* "cudnn-benchmark": `torch.backends.cudnn.benchmark = True`, for trees older than the
  `cudnn_benchmark` setting (which a run applies itself; `--set cudnn_benchmark=false` turns it off);
* "pool-nchw": the 3x3 max-pool of a channels-last group run on an NCHW copy (the NHWC kernels
  of max_pool2d and its backward are slow for few channels); same values;
* "pool-2d": the 3x3 max-pool of a channels-last group through max_pool2d's NHWC kernels, as
  before round 4 (`ops.max_pool` runs it as Triton kernels since round 8, else as a (3, 3, 1)
  max_pool3d of the dense (B, 1, H, W, C) storage; the round-4 figures of that form came from
  this script's variant "pool-3d", the same function);
* "cat-stack": a cell's growing group tensor as a `torch.cat` of all groups so far at every node
  and its gradients summed by autograd, as before round 5 (`groups.GroupStack` writes each group
  once into one storage, and a training step's gradients in place into another);

(Rounds 7 and 8's Triton kernels are in the model since round 8: `--set triton_kernels=false` on
the harness command runs PyTorch's kernels instead. "pool-2d" and "pool-nchw" replace the Triton
max-pool of the training step too (not the validation forward's); "plain-mm" only the sums of
`groups._GroupSums`, so compare it with the kernels off.)

    PYTHONPATH=. python docs/measurements/gpu_variants.py VARIANT [--top N] VERB ARGUMENTS...

e.g. `... gpu_variants.py pool-2d bench --optimizer darts --space 1 --steps 30 --warmup 5
--hessian-methods=lanczos --profile`: `python -m harness VERB ARGUMENTS` after the variant is
switched on; --top N lists N kernels per profile of `bench --profile` (default 15).
"""

from __future__ import annotations

import sys
from functools import partial

import torch
import torch.nn.functional as F
from torch import Tensor

import harness.bench
from benchmarks.nasbench1shot1 import conv, groups, model, ops
from harness.cli import main as main_cli


class _PlainProduct:
    """Stands in for `groups._GroupSums`: coefficients @ matrix with torch.mm's own gradients."""

    @staticmethod
    def apply(coefficients: Tensor, matrix: Tensor) -> Tensor:
        return torch.mm(coefficients, matrix)


def pool_nchw(x: Tensor) -> Tensor:
    return F.max_pool2d(x.contiguous(), 3, stride=1, padding=1)


def pool_2d(x: Tensor) -> Tensor:
    return F.max_pool2d(x, 3, stride=1, padding=1)


class ConcatenatedStack:
    """Stands in for `groups.GroupStack` as before round 5: each append a torch.cat of the groups
    so far and the parts, the sums `combine_groups` with autograd's gradients."""

    def __init__(self, capacity: int):
        self.stacked: Tensor | None = None

    def append(self, parts: list[Tensor]) -> Tensor:
        self.stacked = torch.cat([self.stacked, *parts]) if self.stacked is not None else torch.cat(parts)
        return self.stacked

    def sums(self, coefficients: Tensor) -> Tensor:
        return groups.combine_groups(coefficients, self.stacked)

    def group(self, index: int) -> Tensor:
        return self.stacked[index]


def switch_on(variant: str) -> None:
    for part in variant.split("+"):
        if part == "plain-mm":
            groups._GroupSums = _PlainProduct
        elif part == "plain-conv":
            conv._Conv2d.apply = staticmethod(lambda x, weight, padding: F.conv2d(x, weight, padding=padding))
        elif part == "cudnn-benchmark":
            torch.backends.cudnn.benchmark = True
        elif part == "pool-nchw":
            ops.max_pool = model.max_pool = pool_nchw
        elif part == "pool-2d":
            ops.max_pool = model.max_pool = pool_2d
        elif part == "cat-stack":
            model.GroupStack = ConcatenatedStack
        elif part != "now":
            raise SystemExit(f"unknown variant part {part!r}")


def main() -> int:
    variant, *rest = sys.argv[1:] or ["--help"]
    if variant in ("-h", "--help"):
        print(__doc__)
        return 0
    top = 15
    if rest[:1] == ["--top"]:
        top, rest = int(rest[1]), rest[2:]
    switch_on(variant)
    harness.bench.kernel_profile = partial(harness.bench.kernel_profile, top=top)
    print(f"variant {variant}", flush=True)
    return main_cli(rest)


if __name__ == "__main__":
    sys.exit(main())
