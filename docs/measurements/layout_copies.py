"""The copies one eager search step makes, in both memory layouts, counted on the CPU.

A GPU runs the step channels-last; the CPU runs it in NCHW (`harness.components.memory_format`).
This script runs one optimizer step of the paper's model in each layout on the CPU and counts,
as a proxy for the copy kernels a GPU launches:

* ATen ops: every dispatched operator but views and allocations (as `bench --profile`);
* explicit copies: `clone`, `copy_`, `_to_copy`;
* strided arguments: tensors of 4 or more dimensions, dense in neither layout, passed to a
  convolution, max-pool or BatchNorm (forward or backward): CUDA's kernels for those copy such
  an argument into a dense layout first (a copy the operator count does not show).

    PYTHONPATH=. python docs/measurements/layout_copies.py [--optimizer darts] [--space 1]
        [--channels 16] [--batch 8]
"""

from __future__ import annotations

import argparse
import collections

import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_leaves

import optimizers
from benchmarks.nasbench1shot1 import get_search_space
from harness import bench
from harness.bench import endless_pairs, random_images
from harness.components import build_model, search_data
from harness.config import make_config, optimizer_config

NO_KERNEL_OPS = getattr(bench, "NO_KERNEL_OPS", None) or bench._NO_KERNEL  # the name before round 3
COPIES = frozenset(("clone", "copy_", "_to_copy"))
COPYING_KERNELS = frozenset(
    (
        *("convolution", "convolution_backward", "max_pool2d_with_indices", "max_pool2d_with_indices_backward"),
        *("native_batch_norm", "native_batch_norm_backward"),
    )
)


def strided(tensor: object) -> bool:
    """A tensor of 4 or more dimensions that is dense in neither NCHW nor channels-last."""
    return (
        isinstance(tensor, torch.Tensor)
        and tensor.dim() >= 4
        and not tensor.is_contiguous()
        and not (tensor.dim() == 4 and tensor.is_contiguous(memory_format=torch.channels_last))
    )


class CopyCounter(TorchDispatchMode):
    """Counts ATen ops, explicit copies and strided arguments of copying kernels, by operator."""

    def __init__(self) -> None:
        super().__init__()
        self.ops: collections.Counter[str] = collections.Counter()
        self.strided: collections.Counter[str] = collections.Counter()

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        name = func.overloadpacket.__name__
        if name not in NO_KERNEL_OPS:
            self.ops[name] += 1
        if name in COPYING_KERNELS:
            self.strided[name] += sum(strided(t) for t in tree_leaves((args, kwargs)))
        return func(*args, **(kwargs or {}))


def count_step(args: argparse.Namespace, layout: torch.memory_format) -> CopyCounter:
    """Counts of the second step (the first allocates optimizer state) in `layout`."""
    torch.manual_seed(0)
    config = make_config(args.optimizer, args.space, channels=args.channels, device="cpu")
    optimizer_class = optimizers.get(args.optimizer)
    options = optimizer_config(config, optimizer_class.Config)
    options.batch_size = args.batch
    images, labels = random_images(16 * args.batch, seed=0)
    pairs = endless_pairs(search_data(config, args.batch, torch.device("cpu"), images, labels))
    model = build_model(config, optimizer_class, torch.device("cpu")).to(memory_format=layout)
    optimizer = optimizer_class(get_search_space(args.space), model, options)
    optimizer.new_epoch(0, config.epochs)

    def step() -> None:
        train, valid = next(pairs)
        optimizer.step(*((x.contiguous(memory_format=layout), y) for x, y in (train, valid)))

    step()
    with CopyCounter() as counter:
        step()
    return counter


def main(args: argparse.Namespace) -> None:
    torch.set_num_threads(1)
    print(f"{args.optimizer}, space {args.space}, {args.channels} channels, batch {args.batch}, one eager step:")
    for name, layout in (("NCHW", torch.contiguous_format), ("channels-last", torch.channels_last)):
        counter = count_step(args, layout)
        copies = sum(counter.ops[name] for name in COPIES)
        detail = ", ".join(f"{op} {n}" for op, n in counter.strided.most_common() if n)
        print(
            f"  {name}: {sum(counter.ops.values())} ATen ops, {copies} explicit copies, "
            f"{sum(counter.strided.values())} strided arguments of copying kernels ({detail or 'none'})"
        )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--optimizer", default="darts")
    parser.add_argument("--space", type=int, default=1)
    parser.add_argument("--channels", type=int, default=16)
    parser.add_argument("--batch", type=int, default=8)
    main(parser.parse_args())
