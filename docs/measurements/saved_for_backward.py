"""The bytes autograd keeps for the backward pass of one training forward of the one-shot model
(DARTS's mixing, paper size, synthetic images), counted on the CPU: the distinct storages that
the forward's autograd nodes save, each once (a view counts its whole storage). About the
activation memory a step holds at its peak on a GPU, before the backward frees it.

    PYTHONPATH=. python docs/measurements/saved_for_backward.py [--space 1] [--batch 96]
"""

from __future__ import annotations

import argparse

import torch
import torch.nn.functional as F

import optimizers
from benchmarks.nasbench1shot1 import OneShotModel, get_search_space
from harness.bench import random_images


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--space", type=int, default=1)
    parser.add_argument("--batch", type=int, default=96)
    args = parser.parse_args()
    torch.set_num_threads(1)
    torch.manual_seed(0)
    space = get_search_space(args.space)
    model = OneShotModel(space, channels=16, cells=9)
    darts = optimizers.get("darts")
    optimizer = darts(space, model, darts.Config())
    pixels, classes = random_images(args.batch, seed=0)
    images, labels = torch.from_numpy(pixels).float() / 255, torch.from_numpy(classes)
    storages: dict[int, int] = {}

    def keep(tensor: torch.Tensor) -> torch.Tensor:
        storage = tensor.untyped_storage()
        storages[storage.data_ptr()] = storage.nbytes()
        return tensor

    with torch.autograd.graph.saved_tensors_hooks(keep, lambda tensor: tensor):
        loss = F.cross_entropy(model(images, optimizer.mixing(optimizer.arch_parameters())), labels)
    loss.backward()
    print(
        f"space {args.space}, batch {args.batch}: {sum(storages.values()) / 1e9:.2f} GB saved for the backward "
        f"pass in {len(storages)} storages"
    )


if __name__ == "__main__":
    main()
