"""Channel groups stored group-major, and their weighted sums as one matrix product.

A cell's dense path forms every weighted sum over the same channel groups of C channels each
(`coefficients`). Stored group-major, (G, B, C, H, W), or (G, B, H, W, C) in the channels-last
layout, every group is a dense tensor in the layout of the activations, and so is the gradient
of each group (a slice of a concatenation along the leading dimension): the convolutions and
max-pools that read a group, and their backward passes, need no copy into a dense layout first
(a channel slice of a (B, G * C, H, W) tensor is dense in neither layout, and CUDA's kernels copy
it). The sums over the first G groups, for k coefficient rows, are then one (k, G) x (G, B*C*H*W)
matrix product in either layout. The groups grow node by node in one preallocated storage
(`GroupStack`), each written once, and a training step's gradients of them go in place into
another.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from benchmarks.nasbench1shot1 import kernels


def is_channels_last(tensor: Tensor) -> bool:
    """Whether a 4-d tensor is stored channels-last (and not also NCHW-contiguous, as one with a
    single channel or a 1x1 image is)."""
    return tensor.is_contiguous(memory_format=torch.channels_last) and not tensor.is_contiguous()


class GroupLayout:
    """How a (B, C, H, W) group is stored: (B, C, H, W) or, channels-last, (B, H, W, C); the
    views between images and stored groups, and the copy back into one image tensor."""

    def __init__(self, batch: int, channels: int, height: int, width: int, channels_last: bool):
        self.channels_last = channels_last
        self.batch, self.channels, self.height, self.width = batch, channels, height, width
        inner = (height, width, channels) if channels_last else (channels, height, width)
        self.group_shape = (batch, *inner)

    @classmethod
    def of(cls, images: Tensor, channels: int) -> GroupLayout:
        """The layout of groups of `channels` channels for activations like `images` (B, k * C,
        H, W): channels-last where `images` is (and not also NCHW-contiguous)."""
        batch, _, height, width = images.shape
        return cls(batch, channels, height, width, is_channels_last(images))

    def as_images(self, group: Tensor) -> Tensor:
        """A stored group (B, *inner) as a (B, C, H, W) tensor (a view)."""
        return group.permute(0, 3, 1, 2) if self.channels_last else group

    def as_stored(self, images: Tensor) -> Tensor:
        """A (B, C, H, W) tensor as a stored group (B, *inner) (a view; dense for a tensor dense
        in the layout)."""
        return images.permute(0, 2, 3, 1) if self.channels_last else images

    def as_groups(self, images: Tensor, k: int) -> Tensor:
        """A (B, k * C, H, W) tensor dense in the layout as k stored groups (k, B, *inner) (a view)."""
        batch, channels, height, width = self.batch, self.channels, self.height, self.width
        if self.channels_last:
            pixels = images.permute(0, 2, 3, 1).reshape(batch, height, width, k, channels)
            return pixels.permute(3, 0, 1, 2, 4)
        return images.reshape(batch, k, channels, height, width).transpose(0, 1)

    def concatenated(self, *parts: Tensor) -> Tensor:
        """Stored groups, parts of (k_j, B, *inner) each, as one (B, sum_j k_j * C, H, W) tensor
        in the layout, in one copy (one torch.cat of the parts' views in the images' order)."""
        if self.channels_last:
            pixels = torch.cat([part.permute(1, 2, 3, 0, 4) for part in parts], dim=3)  # (B, H, W, k, C)
            return pixels.reshape(self.batch, self.height, self.width, -1).permute(0, 3, 1, 2)
        images = torch.cat([part.transpose(0, 1) for part in parts], dim=1)  # (B, k, C, H, W)
        return images.reshape(self.batch, -1, self.height, self.width)

    def split_groups(self, images: Tensor, k: int) -> tuple[Tensor, Tensor]:
        """A (B, 2k * C, H, W) tensor dense in the layout as its first and its last k stored
        groups, (k, B, *inner) each (views). Their gradients reach `images` in one copy
        (`_ImagesSplit`), where autograd's would concatenate them and then copy the result into
        the images' layout."""
        if torch._C._are_functorch_transforms_active() or torch.compiler.is_compiling():
            return tuple(self.as_groups(images, 2 * k).split(k))
        return _ImagesSplit.apply(images, self, k)


def combine_groups(coefficients: Tensor, groups: Tensor) -> Tensor:
    """sum_g coefficients[k, g] * groups[g] for every row k, as one matrix product.

    coefficients: (k, G); groups: (G', B, *inner) dense, G <= G' (the first G are summed);
    returns (k, B, *inner). Under torch.func transforms (vmap, jvp) the product is a plain
    `torch.mm`, elsewhere `_GroupSums` (same values and derivatives, faster coefficient gradient)."""
    count = coefficients.shape[1]
    matrix = groups.view(groups.shape[0], -1)
    matrix = matrix if count == matrix.shape[0] else matrix[:count]
    if torch._C._are_functorch_transforms_active():
        sums = torch.mm(coefficients, matrix)
    else:
        sums = _GroupSums.apply(coefficients, matrix)
    return sums.view(coefficients.shape[0], *groups.shape[1:])


def _triton_sums():
    """The module of the Triton products (imported on first use: it imports triton)."""
    from benchmarks.nasbench1shot1 import triton_sums

    return triton_sums


def group_products(coefficients: Tensor, matrix: Tensor) -> Tensor:
    """coefficients (k, G) @ matrix (G, N) -> (k, N): the weighted sums over groups and their
    gradients with respect to the groups. This and the next two functions are the products every
    weighted sum's forward and backward pass run, inside this module's autograd Functions (they
    have no derivatives of their own): Triton's `triton_sums` where `kernels.use_triton` allows
    them, else PyTorch's."""
    if kernels.use_triton(coefficients, matrix, output_elements=coefficients.shape[0] * matrix.shape[1]):
        return _triton_sums().combine(coefficients, matrix)
    return torch.mm(coefficients, matrix)


def add_group_products_(out: Tensor, coefficients: Tensor, matrix: Tensor) -> None:
    """out (k, N) += coefficients (k, G) @ matrix (G, N), in place (out's rows dense)."""
    if kernels.use_triton(out, coefficients, matrix):
        _triton_sums().combine(coefficients, matrix, out=out, accumulate=True)
        torch.autograd.graph.increment_version(out)  # as an in-place PyTorch operator does
    else:
        out.addmm_(coefficients, matrix)


def coefficient_products(grad: Tensor, matrix: Tensor) -> Tensor:
    """grad (k, N) @ matrix (G, N).T -> (k, G), the coefficients' gradient: Triton's `contract`
    where allowed, else `chunked_products` for k > 1 and one matrix-vector product for k = 1
    (see `_CoefficientGradient`)."""
    if kernels.use_triton(grad, matrix):
        return _triton_sums().contract(grad, matrix)
    return chunked_products(grad, matrix) if grad.shape[0] > 1 else torch.mm(grad, matrix.t())


class GroupStack:
    """A cell's growing group tensor (G, B, *inner), stored in one preallocated storage, with
    the weighted sums over it and their gradients.

    Each `append` returns the groups so far followed by the new parts, as `torch.cat` would (same
    values and derivatives), but writes only the new parts: the earlier groups are already in
    place, so building a cell's 5n groups node by node writes each group once instead of copying
    the growing tensor at every node, and the tensors the weighted sums keep for their backward
    are prefixes of one storage instead of n + 1 copies. Rows once written are never written
    again, so the earlier prefixes (and what autograd saved of them) stay valid.

    `sums` and `group` read the groups so far. In a backward pass that is neither differentiated
    nor batched (a training step's), their gradients go in place into one gradient storage
    (`_StackGradient`), each sum's matrix gradient added with one `addmm_`, and each append's
    parts get views of their rows, where autograd would add each sum's (G, B, *inner) gradient to
    that of the next append. In other backward passes (a Hessian's gradient graph and its
    products) the gradients are autograd's, each append's a view per part whose own gradient is one
    concatenation (`_GroupsSplit`), where torch.cat's narrow views would each materialise a zero
    tensor of the whole concatenation and add them up. Under torch.func transforms or
    torch.compile an append is a plain `torch.cat` and a sum `combine_groups`."""

    def __init__(self, capacity: int):
        self.capacity = capacity
        self.storage: Tensor | None = None
        self.stacked: Tensor | None = None
        self.gradient = _StackGradient(capacity)

    def append(self, parts: list[Tensor]) -> Tensor:
        """The groups so far followed by `parts` ((g_j, B, *inner) each): (G + sum g_j, B, *inner)."""
        everything = [self.stacked, *parts] if self.stacked is not None else parts
        if self._plain():
            self.stacked = torch.cat(everything)
        else:
            self.stacked = _GroupsAppended.apply(self, *everything)
        return self.stacked

    def sums(self, coefficients: Tensor) -> Tensor:
        """sum_g coefficients[k, g] * groups[g] over the G groups so far, for every row k of
        coefficients (k, G): (k, B, *inner). A sum over all `capacity` groups (a cell's output)
        begins a backward pass's gradient storage."""
        stacked = self.stacked
        if coefficients.shape[1] != stacked.shape[0]:
            raise ValueError(f"{coefficients.shape[1]} coefficients per sum for {stacked.shape[0]} groups")
        if self._plain():
            return combine_groups(coefficients, stacked)
        return _StackSums.apply(self.gradient, coefficients, stacked).view(coefficients.shape[0], *stacked.shape[1:])

    def group(self, index: int) -> Tensor:
        """Group `index` of the groups so far: (B, *inner), a view."""
        if self._plain():
            return self.stacked[index]
        return _StackGroup.apply(self.gradient, index, self.stacked)

    @staticmethod
    def _plain() -> bool:
        return torch._C._are_functorch_transforms_active() or torch.compiler.is_compiling()

    def _write(self, everything: tuple[Tensor, ...]) -> Tensor:
        """Write the new parts of `everything` (the stack's latest result, if any, then the
        parts) after the rows filled so far; return a tensor of all rows so far (not a view to
        autograd: later writes go beyond it)."""
        parts = everything if self.stacked is None else everything[1:]
        if self.stacked is not None and everything[0] is not self.stacked:
            raise ValueError("only a group stack's latest result can be extended (its rows are written once)")
        filled = 0 if self.stacked is None else self.stacked.shape[0]
        rows = sum(part.shape[0] for part in parts)
        if filled + rows > self.capacity:
            raise ValueError(f"a group stack of {self.capacity} groups cannot append {rows} to {filled} groups")
        if self.storage is None:
            first = parts[0]
            self.storage = torch.empty((self.capacity, *first.shape[1:]), dtype=first.dtype, device=first.device)
        torch.cat(parts, out=self._rows(filled, rows))
        return self._rows(0, filled + rows)

    def _rows(self, start: int, count: int) -> Tensor:
        """Rows start to start + count of the storage, as a tensor of its own (own version counter)."""
        storage = self.storage
        alias = storage.new_empty(0)
        return alias.set_(
            storage.untyped_storage(), start * storage.stride(0), (count, *storage.shape[1:]), storage.stride()
        )


class _StackGradient:
    """The gradient of a `GroupStack`'s groups in a backward pass that is neither differentiated
    nor batched (a training step's): a (capacity, N) storage, N = B * C * H * W, into which the
    sums and groups add theirs in place and of which the appends hand out views. A sum over all
    groups (the cell's output, the first of the stack's nodes a pass reaches) begins the pass;
    the storage belongs to that pass alone (autograd's graph task), any other pass through the
    stack takes autograd's gradients. Holds no tensor of the forward pass (autograd's nodes hold
    this object: no reference cycle through them)."""

    def __init__(self, capacity: int):
        self.capacity = capacity
        self.storage: Tensor | None = None
        self.task: int | None = None  # the graph task of the pass that owns the storage

    def in_place(self) -> bool:
        """Whether the running backward pass puts its gradients in the storage."""
        return self.task is not None and self.task == torch._C._current_graph_task_id()

    def begin(self, left: Tensor, right: Tensor) -> bool:
        """The gradient left (capacity, k) @ right (k, N) of a sum over all groups: the first of
        a pass begins the storage, if the pass is neither differentiated nor batched; whether
        the pass goes in place (else autograd sums the gradients)."""
        if self.in_place():
            self.add_product(left, right)
            return True
        batched = torch._C._are_functorch_transforms_active() or torch._C._functorch.is_legacy_batchedtensor(right)
        in_place = not torch.is_grad_enabled() and not batched
        self.storage = group_products(left, right) if in_place else None
        self.task = torch._C._current_graph_task_id() if in_place else None
        return in_place

    def add_product(self, left: Tensor, right: Tensor) -> None:
        """Rows 0 to G of the gradient += left (G, k) @ right (k, N)."""
        add_group_products_(self.storage[: left.shape[0]], left, right)

    def add_rows(self, start: int, grad: Tensor) -> None:
        """Rows start to start + g of the gradient += grad (g, B, *inner)."""
        self.storage[start : start + grad.shape[0]].add_(grad.reshape(grad.shape[0], -1))

    def rows(self, start: int, count: int, inner: torch.Size) -> Tensor:
        """Rows start to start + count of the gradient as (count, *inner) (a view)."""
        return self.storage[start : start + count].view(count, *inner)

    def end(self) -> None:
        """The pass's last node of the stack has run: drop the storage (its views keep what the
        parts' gradients need)."""
        self.storage, self.task = None, None


class _GroupsAppended(torch.autograd.Function):
    """`GroupStack`'s append as cat(latest result, *parts), writing only the parts. Backward:
    the parts' rows of the `_StackGradient` (views) in a pass that goes in place, else the
    gradient split into views (`_GroupsSplit`)."""

    @staticmethod
    def forward(ctx, stack: GroupStack, *everything: Tensor) -> Tensor:
        ctx.set_materialize_grads(False)
        ctx.sizes = [part.shape[0] for part in everything]
        ctx.prefix = stack.stacked is not None
        ctx.gradient, ctx.inner = stack.gradient, everything[0].shape[1:]
        return stack._write(everything)

    @staticmethod
    def backward(ctx, grad: Tensor | None) -> tuple[Tensor | None, ...]:
        gradient = ctx.gradient
        if not gradient.in_place():
            return (None, *(_GroupsSplit.apply(grad, *ctx.sizes) if grad is not None else [None] * len(ctx.sizes)))
        if grad is not None:  # from a consumer other than the stack's sums and groups
            gradient.add_rows(0, grad)
        sizes, start = (ctx.sizes[1:], ctx.sizes[0]) if ctx.prefix else (ctx.sizes, 0)
        parts = gradient.rows(start, sum(sizes), ctx.inner).split(sizes)
        if not ctx.prefix:
            gradient.end()
        return (None, *([None] if ctx.prefix else []), *parts)


class _StackSums(torch.autograd.Function):
    """`GroupStack.sums`: coefficients (k, G) @ groups (G, N) -> (k, N). Backward: the
    coefficient gradient as `_GroupSums`'s; the groups' gradient added in place into the
    `_StackGradient` in a pass that goes in place, else `_GroupSums`."""

    @staticmethod
    def forward(ctx, gradient: _StackGradient, coefficients: Tensor, stacked: Tensor) -> Tensor:
        ctx.set_materialize_grads(False)
        ctx.gradient = gradient
        ctx.save_for_backward(coefficients, stacked)
        return group_products(coefficients, stacked.view(stacked.shape[0], -1))

    @staticmethod
    def backward(ctx, grad: Tensor | None) -> tuple[Tensor | None, ...]:
        if grad is None:
            return None, None, None
        coefficients, stacked = ctx.saved_tensors
        matrix, gradient = stacked.view(stacked.shape[0], -1), ctx.gradient
        needs_coefficients, needs_groups = ctx.needs_input_grad[1:3]
        coefficient_gradient = _CoefficientGradient.apply(grad, matrix) if needs_coefficients else None
        if not needs_groups:
            return None, coefficient_gradient, None
        if stacked.shape[0] == gradient.capacity:
            in_place = gradient.begin(coefficients.t(), grad)
        elif in_place := gradient.in_place():
            gradient.add_product(coefficients.t(), grad)
        if in_place:
            return None, coefficient_gradient, None
        return None, coefficient_gradient, _GroupSums.apply(coefficients.t(), grad).view(stacked.shape)


class _StackGroup(torch.autograd.Function):
    """`GroupStack.group`: one group of the stack (a view). Backward: added in place into its
    row of the `_StackGradient` in a pass that goes in place, else a zero stack but for that
    row (`select_backward`, differentiable)."""

    @staticmethod
    def forward(ctx, gradient: _StackGradient, index: int, stacked: Tensor) -> Tensor:
        ctx.gradient, ctx.index, ctx.shape = gradient, index, stacked.shape
        return stacked[index]

    @staticmethod
    def backward(ctx, grad: Tensor) -> tuple[Tensor | None, ...]:
        if not ctx.gradient.in_place():
            return None, None, torch.ops.aten.select_backward(grad, list(ctx.shape), 0, ctx.index)
        ctx.gradient.add_rows(ctx.index, grad[None])
        return None, None, None


class _ImagesSplit(torch.autograd.Function):
    """`GroupLayout.split_groups`: images -> (first k groups, last k groups), views (where
    `_GroupsSplit` splits stored groups). Backward: the two gradients as one tensor in the images'
    layout (`GroupLayout.concatenated`, differentiable, so a double backward goes through it)."""

    @staticmethod
    def forward(ctx, images: Tensor, layout: GroupLayout, k: int) -> tuple[Tensor, Tensor]:
        ctx.layout = layout
        return tuple(layout.as_groups(images, 2 * k).split(k))

    @staticmethod
    def backward(ctx, first: Tensor, last: Tensor) -> tuple[Tensor, None, None]:
        return ctx.layout.concatenated(first, last), None, None


class _GroupsSplit(torch.autograd.Function):
    """A tensor split along dimension 0 into parts of the given sizes (views), whose backward is
    one concatenation (zeros only for the parts without a gradient)."""

    @staticmethod
    def forward(ctx, whole: Tensor, *sizes: int) -> tuple[Tensor, ...]:
        ctx.set_materialize_grads(False)
        ctx.sizes, ctx.inner = sizes, whole.shape[1:]
        return whole.split(list(sizes))

    @staticmethod
    def backward(ctx, *grads: Tensor | None) -> tuple[Tensor | None, ...]:
        unused = [None] * len(ctx.sizes)
        present = next((g for g in grads if g is not None), None)
        if present is None:
            return (None, *unused)
        parts = [g if g is not None else present.new_zeros((size, *ctx.inner)) for g, size in zip(grads, ctx.sizes)]
        return (torch.cat(parts), *unused)


REDUCTION_CHUNK = 4096  # elements of N per batch entry in the coefficient gradient's reduction
MIN_CHUNK = 256  # smaller chunks: more memory for the batched product than the reduction saves


def chunked_products(left: Tensor, right: Tensor) -> Tensor:
    """left @ right.T for left (k, N), right (G, N): (k, G), as a batched product over chunks of N
    followed by a sum over the chunks.

    The plain product reduces over all N (B*C*H*W, about 1.5 million at the paper's size) for a
    k x G result (4 x 20 in spaces 1 and 2, 5 x 25 in space 3); cuBLAS runs such a product on a
    few thread blocks (about 0.2 ms on an H200). Cut into N / q chunks of q <= `REDUCTION_CHUNK`
    elements, the chunks' products run in parallel and the sum over them is small. Where N has
    no factor q of at least `MIN_CHUNK` (an odd batch of odd channels), the plain product."""
    k, n = left.shape
    chunk = math.gcd(n, REDUCTION_CHUNK)
    if chunk < MIN_CHUNK:
        return torch.mm(left, right.t())
    chunks = n // chunk
    by_chunk = left.reshape(k, chunks, chunk).transpose(0, 1)  # (n / q, k, q)
    other = right.reshape(right.shape[0], chunks, chunk).permute(1, 2, 0)  # (n / q, q, G)
    return torch.bmm(by_chunk, other).sum(0)


class _CoefficientGradient(torch.autograd.Function):
    """grad (k, N) @ matrix.T -> (k, G): `chunked_products` for k > 1 (on an H200 the plain
    product took 0.22 ms per cell's output sums, the chunked one 0.04 ms), one matrix-vector
    product for k = 1 (a node's input), which cuBLAS already spreads over the reduction. Its own
    derivatives are `_GroupSums` in the tensors' natural layouts (g @ matrix, g.T @ grad), where
    autograd's, through the chunked views or a transpose, would come back strided and be copied."""

    @staticmethod
    def forward(ctx, grad: Tensor, matrix: Tensor) -> Tensor:
        ctx.save_for_backward(grad, matrix)
        return coefficient_products(grad, matrix)

    @staticmethod
    def backward(ctx, g: Tensor) -> tuple[Tensor | None, Tensor | None]:
        grad, matrix = ctx.saved_tensors
        needs_grad, needs_matrix = ctx.needs_input_grad[:2]
        return (
            _GroupSums.apply(g, matrix) if needs_grad else None,
            _GroupSums.apply(g.t(), grad) if needs_matrix else None,
        )


class _GroupSums(torch.autograd.Function):
    """coefficients (k, G) @ matrix (G, N) -> (k, N), whose coefficient gradient is
    `_CoefficientGradient`; the matrix gradient, coefficients.T @ grad, is again this function, so
    a double backward takes the same kernels. (No forward-mode rule: torch.compile cannot trace a
    Function that has one, and `combine_groups` does not use this one under torch.func.)"""

    @staticmethod
    def forward(ctx, coefficients: Tensor, matrix: Tensor) -> Tensor:
        ctx.save_for_backward(coefficients, matrix)
        return group_products(coefficients, matrix)

    @staticmethod
    def backward(ctx, grad: Tensor) -> tuple[Tensor | None, Tensor | None]:
        coefficients, matrix = ctx.saved_tensors
        needs_coefficients, needs_matrix = ctx.needs_input_grad[:2]
        return (
            _CoefficientGradient.apply(grad, matrix) if needs_coefficients else None,
            _GroupSums.apply(coefficients.t(), grad) if needs_matrix else None,
        )
