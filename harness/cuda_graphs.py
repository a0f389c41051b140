"""Replaying hot calls as CUDA graphs: an optimizer's whole step, the validation forward pass.

The reference is bound by Python and kernel launches (SPEC §7); a graph replay launches a
call's thousands of small kernels at once. Valid only for calls that make no host
synchronisation and keep their shapes (`SearchOptimizer.capturable`): what they compute is
unchanged, only how the kernels are launched. Python-side constants of a call (a learning rate,
a perturbation radius, the mixing weights) are baked into the graph: `reset` after they change.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor

from benchmarks.errors import HarnessError
from optimizers.base import Batch, SearchOptimizer, StepStats


class GraphedCall:
    """`fn(*tensors)` replayed from a CUDA graph; eager for the first `warmup` calls and for
    inputs of other shapes (an epoch's last batch). A failed capture is an error: the call was
    declared capturable, and its Python-side state may now refer to the discarded graph."""

    def __init__(self, fn: Callable[..., Any], name: str, warmup: int = 1):
        self.fn, self.name, self.warmup = fn, name, warmup
        self.graph: torch.cuda.CUDAGraph | None = None

    def reset(self) -> None:
        """Drop the graph; the next call (after warm-up) captures a new one."""
        self.graph = None

    def __call__(self, *tensors: Tensor) -> Any:
        shapes = [t.shape for t in tensors]
        if self.warmup > 0 or (self.graph is not None and shapes != self.shapes):
            self.warmup -= 1
            return self._eager(tensors)
        if self.graph is None:
            self._capture(tensors)
        for static, tensor in zip(self.static_inputs, tensors):
            static.copy_(tensor)
        self.graph.replay()
        return self.static_output

    def _eager(self, tensors: tuple[Tensor, ...]) -> Any:
        """A plain call on a side stream, so that lazily created state is not tied to the
        stream that captures."""
        side = torch.cuda.Stream()
        side.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(side):
            output = self.fn(*tensors)
        torch.cuda.current_stream().wait_stream(side)
        return output

    def _capture(self, tensors: tuple[Tensor, ...]) -> None:
        self.static_inputs = [t.clone() for t in tensors]
        self.shapes = [t.shape for t in tensors]
        graph = torch.cuda.CUDAGraph()
        try:
            with torch.cuda.graph(graph):
                self.static_output = self.fn(*self.static_inputs)
        except RuntimeError as err:
            raise HarnessError(
                f"{self.name} cannot be captured as a CUDA graph ({err}). Run with --set cuda_graphs=false; "
                "if it is an optimizer's step, its `capturable` property should be False."
            ) from err
        self.graph = graph


class GraphedStep:
    """`optimizer.step` replayed as a CUDA graph (its `capturable` must be True); `reset` after
    each `new_epoch`."""

    def __init__(self, optimizer: SearchOptimizer, warmup: int = 2):
        def step(train_x: Tensor, train_y: Tensor, valid_x: Tensor, valid_y: Tensor) -> StepStats:
            return optimizer.step((train_x, train_y), (valid_x, valid_y))

        self.call = GraphedCall(step, f"the step of {optimizer.name}", warmup)

    def reset(self) -> None:
        self.call.reset()

    def __call__(self, train_batch: Batch, valid_batch: Batch) -> StepStats:
        return self.call(*train_batch, *valid_batch)
