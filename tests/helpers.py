"""Helpers shared by the optimizer tests: a tiny optimizer on space 1, and a spy on the mixing
weights each forward pass of the one-shot model sees."""

from __future__ import annotations

import torch

import optimizers
from benchmarks.nasbench1shot1 import Mixing, OneShotModel, get_search_space


def build(name: str, seed: int = 0, space_number: int = 1, channels: int = 4, **settings):
    """Optimizer `name` on a `channels`-channel, 3-cell one-shot model of space `space_number`,
    everything initialised from `seed`; `settings` override its Config defaults."""
    cls = optimizers.get(name)
    torch.manual_seed(seed)
    space = get_search_space(space_number)
    model = OneShotModel(space, channels=channels, cells=3, **cls.model_options)
    return cls(space, model, cls.Config(**settings))


def spy_on_mixing(model) -> list[Mixing | tuple[Mixing, ...]]:
    """Record the mixing of every forward pass of `model` (one Mixing, or one per cell)."""
    seen, forward = [], model.forward

    def recording(images, mixing):
        seen.append(mixing)
        return forward(images, mixing)

    model.forward = recording
    return seen
