"""The convolutions of one architecture Hessian-vector product, counted on the CPU by operator,
autograd node and operand layout (the GPU's channels-last model, batch 8, paper size).

--plain runs the model's convolutions as `F.conv2d` (PyTorch's double backward, which also
computes every layer's weight gradient) instead of `benchmarks.nasbench1shot1.conv.conv2d`.

    PYTHONPATH=. python docs/measurements/hvp_convolutions.py [--plain] [--space 1]
"""

from __future__ import annotations

import argparse
import collections

import torch
import torch.nn.functional as F
from torch.utils._python_dispatch import TorchDispatchMode

import optimizers
from benchmarks.nasbench1shot1 import OneShotModel, conv, get_search_space
from harness.bench import random_images
from harness.hessian import HessianVectorProducts, hessian_mode


def layout(tensor: object) -> str:
    if not isinstance(tensor, torch.Tensor) or tensor.dim() != 4:
        return "-"
    if tensor.is_contiguous(memory_format=torch.channels_last):
        return "both" if tensor.is_contiguous() else "channels-last"
    return "NCHW" if tensor.is_contiguous() else "strided"


class ConvolutionCounter(TorchDispatchMode):
    def __init__(self) -> None:
        super().__init__()
        self.counts: collections.Counter = collections.Counter()

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        name = func.overloadpacket.__name__
        if name in ("convolution", "convolution_backward"):
            node = torch._C._current_autograd_node()
            self.counts[(name, None if node is None else node.name(), *map(layout, args[:2]))] += 1
        return func(*args, **(kwargs or {}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--plain", action="store_true")
    parser.add_argument("--space", type=int, default=1)
    args = parser.parse_args()
    if args.plain:
        conv._Conv2d.apply = staticmethod(lambda x, weight, padding: F.conv2d(x, weight, padding=padding))
    torch.manual_seed(0)
    space = get_search_space(args.space)
    model = OneShotModel(space, channels=16, cells=9).to(memory_format=torch.channels_last)
    darts = optimizers.get("darts")
    optimizer = darts(space, model, darts.Config())
    images, labels = random_images(8, 0)
    images = torch.from_numpy(images).float().div(255).contiguous(memory_format=torch.channels_last)
    objective = optimizer.architecture_objective((images, torch.from_numpy(labels)))
    with hessian_mode(model):
        products = HessianVectorProducts(objective, optimizer.arch_parameters(), graphs=False)
        with ConvolutionCounter() as counter:
            products(torch.ones_like(products.theta))
    print(f"one Hessian-vector product: {sum(counter.counts.values())} convolution operators")
    for (name, node, first, second), count in counter.counts.most_common():
        print(f"  {count:3d}  {name} in {node}, operands {first} / {second}")


if __name__ == "__main__":
    main()
