"""The copies one eager search step makes, in both memory layouts, counted on the CPU.

A GPU runs the step channels-last; the CPU runs it in NCHW (`harness.components.memory_format`).
This script runs one optimizer step of the paper's model in each layout on the CPU and counts,
as a proxy for the copy kernels a GPU launches:

* ATen ops: every dispatched operator but views and allocations (as `bench --profile`);
* explicit copies: `clone`, `copy_`, `_to_copy`;
* strided arguments: tensors of 4 or more dimensions, dense in neither layout, passed to a
  convolution, max-pool, BatchNorm or matrix product (forward or backward): CUDA's kernels for
  those copy such an argument into a dense layout first (a copy the operator count does not
  show; `harness.bench.OpCounter`).

It needs `harness.bench.OpCounter` (round 3 on). For an older tree, run the version of commit
82a5884, which carries its own counter: `git show 82a5884:docs/measurements/layout_copies.py >
/tmp/layout_copies.py`, then `PYTHONPATH=OLD_TREE python /tmp/layout_copies.py` (the round-2
figures in docs/performance.md came from it).

    PYTHONPATH=. python docs/measurements/layout_copies.py [--optimizer darts] [--space 1]
        [--channels 16] [--batch 8]
"""

from __future__ import annotations

import argparse

import torch

import optimizers
from benchmarks.nasbench1shot1 import get_search_space
from harness.bench import OpCounter, endless_pairs, random_images
from harness.components import build_model, search_data
from harness.config import make_config, optimizer_config

COPIES = frozenset(("clone", "copy_", "_to_copy"))


def count_step(args: argparse.Namespace, layout: torch.memory_format) -> OpCounter:
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
    with OpCounter() as counter:
        step()
    return counter


def main(args: argparse.Namespace) -> None:
    torch.set_num_threads(1)
    print(f"{args.optimizer}, space {args.space}, {args.channels} channels, batch {args.batch}, one eager step:")
    for name, layout in (("NCHW", torch.contiguous_format), ("channels-last", torch.channels_last)):
        counter = count_step(args, layout)
        copies = sum(counter.counts[name] for name in COPIES)
        detail = ", ".join(f"{op} {n}" for op, n in counter.strided.most_common() if n)
        print(
            f"  {name}: {sum(counter.counts.values())} ATen ops, {copies} explicit copies, "
            f"{sum(counter.strided.values())} strided arguments of copying kernels ({detail or 'none'})"
        )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--optimizer", default="darts")
    parser.add_argument("--space", type=int, default=1)
    parser.add_argument("--channels", type=int, default=16)
    parser.add_argument("--batch", type=int, default=8)
    main(parser.parse_args())
