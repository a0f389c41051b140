"""Building what a run (or a benchmark) needs: device, model, batches, inference."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager

import numpy as np
import torch
from torch import Tensor

from benchmarks.errors import HarnessError, UnknownNameError
from benchmarks.nasbench1shot1 import Mixing, OneShotModel, get_search_space
from benchmarks.nasbench1shot1.inference import FoldedNetwork
from benchmarks.nasbench1shot1.kernels import triton_kernels
from harness.config import RunConfig
from harness.cuda_graphs import GraphedCall
from harness.data import SearchData
from harness.hessian import NCHW_ONLY_METHODS


def resolve_device(name: str) -> torch.device:
    """'auto' -> cuda if available, else cpu; a CUDA or MPS device where there is none is an error."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise HarnessError(f"--device {name} was asked for, but PyTorch sees no CUDA device here; use --device cpu")
    if name == "mps" and not torch.backends.mps.is_available():
        raise HarnessError("--device mps was asked for, but PyTorch has no Apple GPU (MPS) here; use --device cpu")
    return torch.device(name)


@contextmanager
def backend_settings(config: RunConfig, device: torch.device) -> Iterator[None]:
    """Within: on CUDA, cuDNN's autotuner on or off as `config.cudnn_benchmark` says, and the
    Triton kernels as `config.triton_kernels` says; on exit the process's previous settings again
    (a library caller's own choice survives a run)."""
    if device.type != "cuda":
        yield
        return
    previous = torch.backends.cudnn.benchmark
    torch.backends.cudnn.benchmark = config.cudnn_benchmark
    try:
        with triton_kernels(config.triton_kernels):
            yield
    finally:
        torch.backends.cudnn.benchmark = previous


def memory_format(config: RunConfig, device: torch.device) -> torch.memory_format:
    """channels_last on CUDA when asked for (faster cuDNN kernels), else the default layout; also
    the default layout for a Hessian method in `NCHW_ONLY_METHODS`."""
    channels_last = config.channels_last and config.hessian_method not in NCHW_ONLY_METHODS
    return torch.channels_last if device.type == "cuda" and channels_last else torch.contiguous_format


def use_cuda_graphs(config: RunConfig, device: torch.device) -> bool:
    return device.type == "cuda" and config.cuda_graphs


def build_model(config: RunConfig, optimizer_class: type, device: torch.device) -> OneShotModel:
    """The run's one-shot model on `device`, in the run's memory layout."""
    model = OneShotModel(
        get_search_space(config.space),
        channels=config.channels,
        cells=config.cells,
        bn_momentum=config.bn_momentum,
        **optimizer_class.model_options,
    )
    return model.to(device=device, memory_format=memory_format(config, device))


def search_data(
    config: RunConfig, batch_size: int, device: torch.device, images: np.ndarray, labels: np.ndarray
) -> SearchData:
    """The run's search-train/search-valid batches from CIFAR-10 arrays (N, 3, 32, 32) uint8, (N,).

    The split and the normalisation are the optimizer's (`train_portion`, `normalization` of its
    Config: ENAS's differ); cutout is the run's (`cutout`, `cutout_length`, `cutout_prob`)."""
    options = _optimizer_options(config)
    return SearchData(
        images,
        labels,
        batch_size,
        config.seed,
        device,
        memory_format=memory_format(config, device),
        train_portion=getattr(options, "train_portion", 0.5),
        normalization=getattr(options, "normalization", "cifar10"),
        cutout_length=config.cutout_length if config.cutout else 0,
        cutout_prob=config.cutout_prob,
        epochs=config.epochs,
    )


def _optimizer_options(config: RunConfig) -> object | None:
    """The run's optimizer Config (None if the optimizer is not registered)."""
    import optimizers
    from harness.config import optimizer_config

    try:
        optimizer_class = optimizers.get(config.optimizer)
    except UnknownNameError:  # the runner reports it; the data take the defaults
        return None
    return optimizer_config(config, optimizer_class.Config)


def inference(model: OneShotModel, mixing: Mixing, graphs: bool) -> Callable[[Tensor], Tensor]:
    """images (B, 3, 32, 32) -> logits (B, 10) with fixed mixing weights, replayed as a CUDA graph
    when `graphs`; call it in eval mode under torch.no_grad(), and make a new one after the
    weights change. Dense mixing runs the BatchNorm-folded `FoldedNetwork`, other mixing the model.
    """
    if FoldedNetwork.supports(model, mixing):
        forward = FoldedNetwork(model, mixing)
    else:

        def forward(images: Tensor) -> Tensor:
            return model(images, mixing)

    return GraphedCall(forward, "the validation forward pass") if graphs else forward
