"""The fast paths compute what the plain paths compute: same losses to 1e-5 for a few steps.

On the CPU the comparison runs in float64: in float32, rounding differences of 1e-7 grow by an
order of magnitude per step (Adam turns tiny gradient differences on near-zero alphas into full
steps), which would hide a real difference in what is computed.
"""

from __future__ import annotations

import itertools

import pytest
import torch

import optimizers
from benchmarks.nasbench1shot1 import OneShotModel, get_search_space
from harness.data import SearchData

STEPS = 4


def _losses(
    name: str, images, labels, device: str, memory_format, graphed: bool = False, dtype=torch.float32
) -> list[float]:
    from harness.cuda_graphs import GraphedStep

    cls = optimizers.get(name)
    torch.manual_seed(0)
    torch.set_default_dtype(dtype)
    space = get_search_space(1)
    model = OneShotModel(space, channels=4, cells=3, **cls.model_options).to(device=device, memory_format=memory_format)
    optimizer = cls(
        space, model, cls.Config(batch_size=32, attack_steps=2) if "adv" in name else cls.Config(batch_size=32)
    )
    optimizer.new_epoch(0, 10)
    data = SearchData(images, labels, 32, seed=0, device=device, memory_format=memory_format)
    step = GraphedStep(optimizer, warmup=1) if graphed else optimizer.step
    try:
        return [
            float(step((train[0].to(dtype), train[1]), (valid[0].to(dtype), valid[1]))["loss"])
            for train, valid in itertools.islice(data.epoch(0), STEPS)
        ]
    finally:
        torch.set_default_dtype(torch.float32)


@pytest.mark.parametrize("name", ["darts", "sdarts-adv", "pcdarts"])
def test_channels_last_gives_the_same_losses(cifar_arrays, name):
    images, labels = cifar_arrays[0][:256], cifar_arrays[1][:256]
    plain = _losses(name, images, labels, "cpu", torch.contiguous_format, dtype=torch.float64)
    fast = _losses(name, images, labels, "cpu", torch.channels_last, dtype=torch.float64)
    assert plain == pytest.approx(fast, abs=1e-5)
    assert len(set(plain)) == STEPS


@pytest.fixture
def deterministic(monkeypatch):
    """CUDA's deterministic kernels. The default ones add with atomics in places (the max-pool's
    backward, some of cuDNN's), so two eager runs differ by rounding, and Adam's first step,
    lr * sign(gradient), turns that into different second losses (SDARTS-ADV on an H200: 2.27932
    in some runs, 2.27822 in others): only deterministic kernels can show that a graph replays
    what the eager step computes."""
    previous = torch.are_deterministic_algorithms_enabled(), torch.is_deterministic_algorithms_warn_only_enabled()
    monkeypatch.setenv("CUBLAS_WORKSPACE_CONFIG", ":4096:8")  # without it, cuBLAS calls raise in this mode
    torch.use_deterministic_algorithms(True)
    yield
    torch.use_deterministic_algorithms(previous[0], warn_only=previous[1])


@pytest.mark.skipif(not torch.cuda.is_available(), reason="CUDA graphs need a CUDA device")
@pytest.mark.parametrize("name", ["darts", "sdarts-adv"])
def test_graphed_steps_give_the_same_losses(cifar_arrays, name, deterministic):
    """A replayed graph runs the eager step's kernels: with deterministic ones, the same losses
    to the bit (seen on an H200 for both optimizers, all four steps)."""
    images, labels = cifar_arrays[0][:256], cifar_arrays[1][:256]
    eager = _losses(name, images, labels, "cuda", torch.channels_last)
    graphed = _losses(name, images, labels, "cuda", torch.channels_last, graphed=True)
    assert graphed == eager and len(set(eager)) == STEPS
