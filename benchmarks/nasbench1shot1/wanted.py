"""Which input gradients the running backward pass will use, for this package's autograd Functions.

`ctx.needs_input_grad` says which inputs require a gradient, not which ones the backward pass in
progress asked for: the architecture step's `autograd.grad(loss, alphas)` needs no gradient of the
network weights, yet a Function that trusted `needs_input_grad` computed one per convolution
(PyTorch's own operators skip them; on an H200, a DARTS step of the paper's model ran 59 more
weight-gradient kernels and took 1.5 ms longer, SDARTS-ADV's 12 ms; docs/performance.md, round
6). The engine knows which nodes it will run; this asks it.
"""

from __future__ import annotations

from typing import Any

import torch


def wanted_gradients(ctx: Any, count: int) -> tuple[bool, ...]:
    """Whether this backward pass will use the gradient of each of the first `count` inputs of the
    Function whose backward is running (False wherever `ctx.needs_input_grad` is). Those inputs
    must be tensors: the engine's edges (`ctx.next_functions`) skip other arguments."""
    needs = ctx.needs_input_grad[:count]
    if torch.compiler.is_compiling():  # traced ahead of time: no running backward pass to ask
        return tuple(needs)
    return tuple(needed and _will_run(node) for needed, (node, _) in zip(needs, ctx.next_functions[:count]))


def _will_run(node: Any) -> bool:
    try:
        return torch._C._will_engine_execute_node(node)
    except RuntimeError:  # refused for a leaf that autograd.grad was asked for: that gradient is used
        return True
