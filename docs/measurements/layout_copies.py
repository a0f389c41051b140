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

With --sources, the channels-last step again, each copying operator (`SOURCED`) attributed to
where it was made: the model's line that ran it, or in a backward pass the autograd node and the
forward line that made that node (recorded in anomaly mode); with the bytes each moves (round 8).

It needs `harness.bench.OpCounter` (round 3 on). For an older tree, run the version of commit
82a5884, which carries its own counter: `git show 82a5884:docs/measurements/layout_copies.py >
/tmp/layout_copies.py`, then `PYTHONPATH=OLD_TREE python /tmp/layout_copies.py` (the round-2
figures in docs/performance.md came from it).

    PYTHONPATH=. python docs/measurements/layout_copies.py [--optimizer darts] [--space 1]
        [--channels 16] [--batch 8] [--sources]
"""

from __future__ import annotations

import argparse
import collections
import re
import traceback
import warnings
from contextlib import nullcontext
from pathlib import Path

import torch

import optimizers
from benchmarks.nasbench1shot1 import get_search_space
from harness.bench import OpCounter, endless_pairs, random_images
from harness.components import build_model, search_data
from harness.config import make_config, optimizer_config

COPIES = frozenset(("clone", "copy_", "_to_copy"))
SOURCED = COPIES | {"cat", "select_backward", "slice_backward"}
REPO = str(Path(__file__).resolve().parents[2]) + "/"
FRAME = re.compile(r'File "([^"]+)", line (\d+), in (\S+)')


def _project_frames(frames: list[tuple[str, int, str]]) -> str:
    """The two innermost of (file, line, function) frames in the repository's code, but this
    script's, as 'path:line (function) <- path:line (function)'."""
    mine = [(f, n, fn) for f, n, fn in frames if f.startswith(REPO) and "/.venv/" not in f and f != __file__]
    return " <- ".join(f"{f[len(REPO) :]}:{n} ({fn})" for f, n, fn in reversed(mine[-2:])) or "?"


class CopySources(OpCounter):
    """`OpCounter` that also adds the bytes of each `SOURCED` operator to `sources`, by (operator,
    origin): the innermost repository frame that ran it, or in a backward pass its autograd node
    and the innermost repository frame of the forward pass that made the node."""

    def __init__(self) -> None:
        super().__init__()
        self.sources: collections.Counter[tuple[str, str]] = collections.Counter()
        self.calls: collections.Counter[tuple[str, str]] = collections.Counter()

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        name = func.overloadpacket.__name__
        before = self.bytes[name]
        result = super().__torch_dispatch__(func, types, args, kwargs)
        if name in SOURCED:
            node = torch._C._current_autograd_node()
            if node is None:
                origin = _project_frames([(f.filename, f.lineno, f.name) for f in traceback.extract_stack()])
            else:
                made = FRAME.findall("".join(node.metadata.get("traceback_", [])))
                origin = f"backward of {node.name()} made at {_project_frames([(f, int(n), fn) for f, n, fn in made])}"
            self.sources[name, origin] += self.bytes[name] - before
            self.calls[name, origin] += 1
        return result


def count_step(args: argparse.Namespace, layout: torch.memory_format, counter: OpCounter | None = None) -> OpCounter:
    """Counts of the second step (the first allocates optimizer state) in `layout`, into
    `counter` (a new `OpCounter` by default; a `CopySources` runs the step in anomaly mode)."""
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
    counter = counter or OpCounter()
    sourced = isinstance(counter, CopySources)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", "Anomaly Detection has been enabled")
        with counter, torch.autograd.detect_anomaly(check_nan=False) if sourced else nullcontext():
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
    if args.sources:
        counter = count_step(args, torch.channels_last, CopySources())
        print(f"  channels-last, the copying operators by origin (GB read and written at batch {args.batch}):")
        for (name, origin), moved in counter.sources.most_common():
            print(f"    {moved / 1e9:7.3f} GB {counter.calls[name, origin]:4d}x {name}: {origin}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--optimizer", default="darts")
    parser.add_argument("--space", type=int, default=1)
    parser.add_argument("--channels", type=int, default=16)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--sources", action="store_true", help="the channels-last copies by origin")
    main(parser.parse_args())
