"""The fused building blocks equal their plain computations (float64, 1e-10): BatchNorm's
closed-form double backward, the grouped weighted sums, drop-path masks, the foreach weight step."""

from __future__ import annotations

import collections
from functools import partial

import pytest
import torch
import torch.nn.functional as F
from torch.func import grad, jvp, vmap
from torch.utils._python_dispatch import TorchDispatchMode

from benchmarks.nasbench1shot1 import Mixing, OneShotModel, get_search_space
from benchmarks.nasbench1shot1.batchnorm import BatchNorm2d
from benchmarks.nasbench1shot1.conv import conv2d
from benchmarks.nasbench1shot1.groups import (
    GroupLayout,
    GroupStack,
    _GroupsAppended,
    chunked_products,
    combine_groups,
)
from benchmarks.nasbench1shot1.ops import drop_path_mask, max_pool
from optimizers.base import SearchConfig
from optimizers.weights import WeightTrainer

TOLERANCE = 1e-10


def assert_close(got: torch.Tensor, want: torch.Tensor) -> None:
    torch.testing.assert_close(got, want, atol=TOLERANCE, rtol=TOLERANCE)


@pytest.mark.parametrize("memory_format", [torch.contiguous_format, torch.channels_last])
@pytest.mark.parametrize(
    ("affine", "first", "second"),
    [
        (True, "x,weight,bias", "x,weight,bias"),  # every incoming gradient of the double backward
        (False, "x", "x"),
        (True, "x", "x,weight"),  # a Hessian of the inputs only: no gradient for weight and bias
        (True, "weight", "x,weight"),  # no gradient for x
        (True, "x,bias", "x"),
    ],
)
def test_batch_norm_double_backward_equals_pytorchs(affine, first, second, memory_format):
    """Gradients w.r.t. `first`, their product with a direction differentiated w.r.t. `second`."""
    torch.manual_seed(0)
    bn = BatchNorm2d(3, affine=affine).double()
    if affine:
        with torch.no_grad():
            bn.weight.uniform_(-2, 2)
            bn.bias.uniform_(-1, 1)
    x = torch.randn(4, 3, 5, 5, dtype=torch.float64).to(memory_format=memory_format).requires_grad_()
    weights = torch.randn(4, 3, 5, 5, dtype=torch.float64)
    named = {"x": x, **({"weight": bn.weight, "bias": bn.bias} if affine else {})}
    firsts, seconds = [named[n] for n in first.split(",")], [named[n] for n in second.split(",")]
    direction = [torch.randn_like(p) for p in firsts]
    results = []
    for layer in (bn, lambda x: F.batch_norm(x, None, None, bn.weight, bn.bias, True, 0.0, bn.eps)):
        grads = torch.autograd.grad((torch.tanh(layer(x)) * weights).sum(), firsts, create_graph=True)
        products = torch.autograd.grad(sum((g * d).sum() for g, d in zip(grads, direction)), seconds)
        results.append([*grads, *products])
    for got, want in zip(*results, strict=True):
        assert_close(got, want)


def test_batch_norm_double_backward_skips_the_weights_terms_without_their_gradients():
    """An architecture Hessian differentiates the input gradients only: an affine layer then runs
    the operators of a layer without weights (no zero gradients for weight and bias to pass over
    the activations with), and the one per-channel product of its own weight gradient."""
    from harness.bench import OpCounter

    counts = []
    for affine in (True, False):
        torch.manual_seed(0)
        bn = BatchNorm2d(3, affine=affine).double()
        x = torch.randn(4, 3, 5, 5, dtype=torch.float64, requires_grad=True)
        (gx,) = torch.autograd.grad(torch.tanh(bn(x)).sum(), x, create_graph=True)
        with OpCounter() as counter:
            torch.autograd.grad((gx * torch.ones_like(gx)).sum(), x)
        counts.append(counter.counts)
    assert counts[0] - counts[1] == collections.Counter(mul=1) and not counts[1] - counts[0]


def test_batch_norm_module_keeps_pytorchs_running_statistics():
    torch.manual_seed(1)
    ours, plain = BatchNorm2d(5, momentum=0.997).double(), torch.nn.BatchNorm2d(5, momentum=0.997).double()
    x = torch.randn(3, 5, 4, 4, dtype=torch.float64)
    for module in (ours, plain):
        module(x)
        module(2 * x + 1)
    for name, value in plain.state_dict().items():
        torch.testing.assert_close(ours.state_dict()[name], value, atol=0, rtol=0)
    ours.eval()
    plain.eval()
    torch.testing.assert_close(ours(x), plain(x), atol=0, rtol=0)


@pytest.mark.parametrize("memory_format", [torch.contiguous_format, torch.channels_last])
def test_group_major_groups_are_dense_and_their_sums_are_the_weighted_sums(memory_format):
    generator = torch.Generator().manual_seed(0)
    images = torch.randn(2, 5 * 3, 4, 6, generator=generator, dtype=torch.float64).to(memory_format=memory_format)
    coefficients = torch.randn(2, 4, generator=generator, dtype=torch.float64)
    layout = GroupLayout.of(images, 3)
    stored = layout.as_groups(images, 5).contiguous()
    groups = images.split(3, dim=1)
    for g, group in enumerate(groups):
        assert torch.equal(layout.as_images(stored[g]), group)
        assert layout.as_images(stored[g]).is_contiguous(memory_format=memory_format)
        assert torch.equal(layout.as_stored(group.contiguous(memory_format=memory_format)), stored[g])
    sums = combine_groups(coefficients, stored)  # the first 4 of the 5 groups
    want = torch.cat([sum(c * g for c, g in zip(row, groups)) for row in coefficients], dim=1)
    got = layout.concatenated(sums)
    assert_close(got, want)
    assert got.is_contiguous(memory_format=memory_format)


@pytest.mark.parametrize("memory_format", [torch.contiguous_format, torch.channels_last])
def test_split_groups_are_as_groups_split_and_their_gradients_take_one_copy(memory_format):
    """`GroupLayout.split_groups` against the plain views: the same groups, the same first and
    second derivatives (float64), and the images' gradient in one copy (a cat, no clone)."""
    from harness.bench import OpCounter

    generator = torch.Generator().manual_seed(1)
    images = torch.randn(2, 6 * 3, 4, 5, generator=generator, dtype=torch.float64).to(memory_format=memory_format)
    layout = GroupLayout.of(images, 3)
    weights = [torch.randn(3, *layout.group_shape, generator=generator, dtype=torch.float64) for _ in range(2)]
    direction = torch.randn(images.shape, generator=generator, dtype=torch.float64)
    results = []
    for split in (layout.split_groups, lambda x, k: layout.as_groups(x, 2 * k).split(k)):
        x = images.clone().requires_grad_()
        first, last = split(x, 3)
        with OpCounter() as counter:
            (grad,) = torch.autograd.grad((first * weights[0] + last**2 * weights[1]).sum(), x, create_graph=True)
        (second,) = torch.autograd.grad((grad * direction).sum(), x)
        results.append(([first.detach(), last.detach(), grad.detach(), second], counter.counts))
    (got, counts), (want, plain_counts) = results
    for a, b in zip(got, want):
        assert_close(a, b)
    assert got[2].is_contiguous(memory_format=memory_format)
    assert counts["cat"] == 1 and counts["clone"] == 0
    assert plain_counts["cat"] + plain_counts["clone"] == 2  # what it saves: one copy


@pytest.mark.parametrize("elements", [4096 * 3, 256 * 5, 96 * 7, 11])  # chunks of 4096, 256; plain products
def test_chunked_products_are_the_matrix_product(elements):
    generator = torch.Generator().manual_seed(1)
    left = torch.randn(3, elements, generator=generator, dtype=torch.float64)
    right = torch.randn(5, elements, generator=generator, dtype=torch.float64)
    assert_close(chunked_products(left, right), left @ right.T)


@pytest.mark.parametrize("rows", [1, 2])  # a node's input (k = 1), a cell's output (k > 1: chunked)
def test_weighted_sums_have_the_matrix_products_derivatives_of_every_order(rows):
    """The first and second derivatives of the sums (`_GroupSums` and `_CoefficientGradient`):
    reverse mode, double backward with batched and plain gradients (as the rows, Lanczos and
    reverse-over-reverse Hessians take them), against those of a plain product; and that the
    forward-over-reverse Hessian's torch.func transforms run (there the sums are a plain product)."""
    generator = torch.Generator().manual_seed(2)
    coefficients = torch.randn(rows, 4, generator=generator, dtype=torch.float64)
    groups = torch.randn(5, 3, 2, 4, 4, generator=generator, dtype=torch.float64)  # the first 4 are summed
    directions = torch.randn(3, rows, 4, generator=generator, dtype=torch.float64)

    def loss(sums):  # not quadratic, so that the Hessian depends on the point
        return torch.sin(sums).square().sum()

    ours = lambda c, x: loss(combine_groups(c, x))  # noqa: E731
    plain = lambda c, x: loss((c @ x[:4].reshape(4, -1)).reshape(rows, *x.shape[1:]))  # noqa: E731

    def first_order(f):
        c, x = coefficients.clone().requires_grad_(), groups.clone().requires_grad_()
        return torch.autograd.grad(f(c, x), (c, x))

    for got, want in zip(first_order(ours), first_order(plain), strict=True):
        assert_close(got, want)

    def forward_over_reverse(f, direction):
        return jvp(lambda c: grad(f)(c, groups), (coefficients,), (direction,))[1]

    assert_close(
        vmap(partial(forward_over_reverse, ours))(directions), vmap(partial(forward_over_reverse, plain))(directions)
    )

    def reverse_over_reverse(f):
        c = coefficients.clone().requires_grad_()
        x = groups.clone().requires_grad_()
        (gradient,) = torch.autograd.grad(f(c, x), c, create_graph=True)
        by_coefficients = torch.autograd.grad(gradient, c, directions, retain_graph=True, is_grads_batched=True)[0]
        mixed = torch.autograd.grad(gradient, x, directions[0])[0]  # through the groups' gradient as well
        return by_coefficients, mixed

    for got, want in zip(reverse_over_reverse(ours), reverse_over_reverse(plain), strict=True):
        assert_close(got, want)
    c, x = coefficients.clone().requires_grad_(), groups[:4].reshape(4, -1).clone().requires_grad_()
    sums = lambda c, x: combine_groups(c, x.view(4, 3, 2, 4, 4))  # noqa: E731
    assert torch.autograd.gradcheck(sums, (c, x))
    assert torch.autograd.gradgradcheck(sums, (c, x))


class _ConcatenatedStack:
    """What `GroupStack` replaces: each append a torch.cat of the groups so far and the parts."""

    def __init__(self) -> None:
        self.stacked: torch.Tensor | None = None

    def append(self, parts: list[torch.Tensor]) -> torch.Tensor:
        self.stacked = torch.cat(parts if self.stacked is None else [self.stacked, *parts])
        return self.stacked

    def sums(self, coefficients: torch.Tensor) -> torch.Tensor:
        stacked = self.stacked
        return (coefficients @ stacked.reshape(stacked.shape[0], -1)).view(-1, *stacked.shape[1:])

    def group(self, index: int) -> torch.Tensor:
        return self.stacked[index]


def _leaf(generator: torch.Generator, *shape: int) -> torch.Tensor:
    return torch.randn(*shape, generator=generator, dtype=torch.float64, requires_grad=True)


def _grown_stack(append, start, *pieces):
    """A cell's pattern: sum the groups so far, then append pieces made from the sum."""
    stacked = append([start])
    for k, piece in enumerate(pieces):
        total = combine_groups(torch.ones(1, stacked.shape[0], dtype=stacked.dtype) / (k + 2), stacked)
        constant = torch.full_like(piece, float(k))  # no gradient: zeros in the second order
        stacked = append([torch.tanh(total) * piece, constant, piece.flip(0)])
    return stacked


def test_a_group_stack_grows_like_torch_cat_with_the_same_derivatives_of_both_orders():
    """Values, gradients and Hessian-vector products (plain and batched, as the rows and Lanczos
    Hessians take them) of a stack built node by node equal those of torch.cat."""
    generator = torch.Generator().manual_seed(7)
    start = torch.randn(2, 3, 4, 5, generator=generator, dtype=torch.float64, requires_grad=True)
    pieces = [torch.randn(1, 3, 4, 5, generator=generator, dtype=torch.float64, requires_grad=True) for _ in range(3)]
    weights = torch.randn(11, 3, 4, 5, generator=generator, dtype=torch.float64)
    directions = [torch.randn(2, *p.shape, generator=generator, dtype=torch.float64) for p in (start, *pieces)]
    results = []
    for stack in (GroupStack(11), _ConcatenatedStack()):
        stacked = _grown_stack(stack.append, start, *pieces)
        gradients = torch.autograd.grad((torch.sin(stacked) * weights).sum(), (start, *pieces), create_graph=True)
        batched = torch.autograd.grad(gradients, (start, *pieces), directions, True, is_grads_batched=True)
        plain = torch.autograd.grad(gradients, (start, *pieces), [d[0] for d in directions])
        results.append([stacked, *gradients, *batched, *plain])
    for got, want in zip(*results, strict=True):
        assert_close(got, want)


def _cell_pattern(stack, start, pieces, node_rows, output_rows):
    """A cell's use of its stack: node k's input is projection 0 alone (k = 0) or a weighted sum
    of the groups so far; its outputs are appended; the cell's output sums every group."""
    stack.append([start])
    for k, piece in enumerate(pieces):
        x = stack.group(0) if k == 0 else stack.sums(node_rows[k]).squeeze(0)
        stack.append([torch.tanh(x)[None] * piece, piece.flip(0)])
    return stack.sums(output_rows)


def test_a_group_stacks_sums_and_groups_have_the_derivatives_of_the_plain_computation():
    """Training steps' gradients (in place into one gradient storage), Hessian-vector products
    (plain and batched; the gradient graph's own derivatives), and two backward passes through
    one graph, against torch.cat, a plain product and indexing, in float64."""
    generator = torch.Generator().manual_seed(8)
    tensor = partial(_leaf, generator)
    start, pieces = tensor(2, 3, 4, 5), [tensor(1, 3, 4, 5) for _ in range(3)]
    node_rows = [None, *(tensor(1, 2 + 2 * k) for k in (1, 2))]
    output_rows = tensor(2, 8)
    leaves = (start, *pieces, *node_rows[1:], output_rows)
    weights = torch.randn(2, 3, 4, 5, generator=generator, dtype=torch.float64)
    directions = [torch.randn(2, *leaf.shape, generator=generator, dtype=torch.float64) for leaf in leaves]

    results = []
    for stack in (GroupStack(8), _ConcatenatedStack()):
        loss = (torch.sin(_cell_pattern(stack, start, pieces, node_rows, output_rows)) * weights).sum()
        first = torch.autograd.grad(loss, leaves, retain_graph=True)
        kept = [g.clone() for g in first]
        again = torch.autograd.grad(loss, leaves, retain_graph=True)  # a second pass, same graph
        assert all(torch.equal(g, k) for g, k in zip(first, kept))  # the second left the first's alone
        gradients = torch.autograd.grad(loss, leaves, create_graph=True)
        batched = torch.autograd.grad(gradients, leaves, directions, retain_graph=True, is_grads_batched=True)
        plain = torch.autograd.grad(gradients, leaves, [d[0] for d in directions])
        results.append([loss, *first, *again, *gradients, *batched, *plain])
    for got, want in zip(*results, strict=True):
        assert_close(got, want)


def test_a_group_stacks_gradient_storage_belongs_to_one_backward_pass():
    """A pass that went in place (architecture gradients only: the first appends do not run)
    leaves nothing to a later pass that begins elsewhere (at an appended result, plain or
    batched); two sums over all groups in one pass both count."""
    generator = torch.Generator().manual_seed(9)
    tensor = partial(_leaf, generator)
    start, pieces = tensor(2, 3, 4, 5), [tensor(1, 3, 4, 5) for _ in range(3)]
    node_rows, output_rows = [None, tensor(1, 4), tensor(1, 6)], tensor(2, 8)
    direction = torch.randn(2, 2, 3, 4, 5, generator=generator, dtype=torch.float64)
    results = []
    for stack in (GroupStack(8), _ConcatenatedStack()):
        loss = torch.sin(_cell_pattern(stack, start, pieces, node_rows, output_rows)).sum()
        loss = loss + stack.sums(output_rows.flip(0)).cos().sum()  # a second sum over all groups
        architecture = torch.autograd.grad(loss, [output_rows, *node_rows[1:]], retain_graph=True)
        middle = stack.stacked
        later = torch.autograd.grad((middle[:4] ** 2).sum(), [start, pieces[0]], retain_graph=True)
        batched = torch.autograd.grad(middle[:2], [start], direction, retain_graph=True, is_grads_batched=True)
        everything = torch.autograd.grad(loss, [start, *pieces])
        results.append([*architecture, *later, *batched, *everything])
    for got, want in zip(*results, strict=True):
        assert_close(got, want)


def test_a_group_stack_writes_each_group_once_and_keeps_what_it_wrote():
    """Every result is a prefix of one storage; later appends leave earlier prefixes (which the
    weighted sums keep for their backward) as they were; a Hessian-vector product through the
    appends concatenates second-order gradients once per append instead of materialising a zero
    tensor of the whole stack per part."""
    from harness.bench import OpCounter

    stack = GroupStack(5)
    first = stack.append([torch.ones(2, 3)])
    kept = first.clone()
    second = stack.append([torch.full((1, 3), 2.0), torch.full((2, 3), 3.0)])
    assert first.data_ptr() == second.data_ptr() and torch.equal(first, kept) and second.shape == (5, 3)
    assert second[:, 0].tolist() == [1, 1, 2, 3, 3]
    with pytest.raises(ValueError, match="5 groups cannot append 1 to 5"):
        stack.append([torch.zeros(1, 3)])
    with pytest.raises(ValueError, match="only a group stack's latest result can be extended"):
        _GroupsAppended.apply(stack, first, torch.zeros(1, 3))  # would overwrite second's rows
    assert torch.equal(second[:, 0], torch.tensor([1.0, 1, 2, 3, 3]))
    theta = torch.randn(3, dtype=torch.float64, requires_grad=True)
    start = torch.randn(2, 3, 4, 5, dtype=torch.float64)
    pieces = [torch.randn(1, 3, 4, 5, dtype=torch.float64) * theta[k] for k in range(3)]
    counts = []
    for stack in (GroupStack(11), _ConcatenatedStack()):
        (gradient,) = torch.autograd.grad(
            torch.sin(_grown_stack(stack.append, start, *pieces)).sum(), theta, create_graph=True
        )
        with OpCounter() as counter:
            torch.autograd.grad(gradient, theta, torch.ones(3, dtype=torch.float64), retain_graph=True)
        counts.append(counter.counts)
    assert counts[0]["slice_backward"] == 0 < counts[1]["slice_backward"]
    assert counts[0].total() < counts[1].total()


@pytest.mark.parametrize("deterministic", [False, True])
def test_channels_last_max_pool_is_max_pool2d_ties_included(deterministic):
    """Channels-last inputs pool as a max_pool3d of their storage, unless deterministic
    algorithms are on (its CUDA backward uses atomics): the same values and gradients."""
    from harness.bench import OpCounter

    generator = torch.Generator().manual_seed(4)
    x = torch.randn(3, 5, 7, 6, generator=generator, dtype=torch.float64).relu().round(decimals=1)  # ties
    weights = torch.randn(3, 5, 7, 6, generator=generator, dtype=torch.float64)
    results = []
    for layout in (torch.contiguous_format, torch.channels_last):
        inputs = x.contiguous(memory_format=layout).requires_grad_()
        before = torch.are_deterministic_algorithms_enabled()
        torch.use_deterministic_algorithms(deterministic)
        try:
            with OpCounter() as counter:
                pooled = max_pool(inputs)
                results.append((pooled, torch.autograd.grad((pooled * weights).sum(), inputs)[0]))
        finally:
            torch.use_deterministic_algorithms(before)
        assert pooled.is_contiguous(memory_format=layout)
        three_d = layout == torch.channels_last and not deterministic
        assert counter.counts["max_pool3d_with_indices"] == three_d
        assert counter.counts["max_pool2d_with_indices"] == (not three_d)
    (want, want_grad), (got, got_grad) = results
    assert torch.equal(got, want) and torch.equal(got_grad, want_grad)


@pytest.mark.parametrize(("kernel_size", "padding"), [(3, 1), (1, 0)])
@pytest.mark.parametrize("memory_format", [torch.contiguous_format, torch.channels_last])
def test_convolution_derivatives_of_both_orders_equal_pytorchs(kernel_size, padding, memory_format):
    generator = torch.Generator().manual_seed(5)
    x = torch.randn(2, 3, 6, 5, generator=generator, dtype=torch.float64).to(memory_format=memory_format)
    weight = torch.randn(4, 3, kernel_size, kernel_size, generator=generator, dtype=torch.float64)
    x.requires_grad_(), weight.requires_grad_()
    ours = lambda x, w: conv2d(x, w, padding)  # noqa: E731
    assert torch.autograd.gradcheck(ours, (x, weight))
    assert torch.autograd.gradgradcheck(ours, (x, weight))
    outputs = torch.randn(2, 4, 6, 5, generator=generator, dtype=torch.float64)
    direction = torch.randn_like(x)
    results = []
    for conv in (ours, lambda x, w: F.conv2d(x, w, padding=padding)):
        (gx,) = torch.autograd.grad((torch.tanh(conv(x, weight)) * outputs).sum(), x, create_graph=True)
        results.append([gx, *torch.autograd.grad((gx * direction).sum(), (x, weight))])
    for got, want in zip(*results, strict=True):
        assert_close(got, want)


def test_a_hessian_vector_product_computes_no_weight_gradient_it_does_not_need():
    """PyTorch's convolution double backward computes the weight's gradient, a convolution with
    the transposed input and output gradient as operands, even where nothing needs it."""
    from harness.bench import OpCounter

    generator = torch.Generator().manual_seed(6)
    theta = torch.randn(3, generator=generator, dtype=torch.float64, requires_grad=True)
    x = torch.randn(2, 4, 8, 8, generator=generator, dtype=torch.float64)
    weight = torch.randn(4, 4, 3, 3, generator=generator, dtype=torch.float64, requires_grad=True)
    counts = []
    for conv in (lambda x: conv2d(x, weight, 1), lambda x: F.conv2d(x, weight, padding=1)):
        loss = (torch.tanh(conv(x * theta.sum())) * theta[0]).sum()
        (gradient,) = torch.autograd.grad(loss, theta, create_graph=True)
        with OpCounter() as counter:
            torch.autograd.grad(gradient, theta, torch.ones(3, dtype=torch.float64))
        counts.append(counter.counts["convolution"] + counter.counts["convolution_backward"])
    assert counts == [2, 3]  # ours: d/d x of the backward pass, and the forward's backward


class _OutputMasks(TorchDispatchMode):
    """The output masks of the convolution and BatchNorm backward operators dispatched."""

    def __init__(self) -> None:
        super().__init__()
        self.masks: list[tuple[str, tuple[bool, ...]]] = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        name = func.overloadpacket.__name__
        if name in ("convolution_backward", "native_batch_norm_backward"):
            self.masks.append((name, tuple(args[-1])))
        return func(*args, **(kwargs or {}))


@pytest.mark.filterwarnings("ignore:Using backward\\(\\) with create_graph")
@pytest.mark.parametrize("affine", [True, False])
@pytest.mark.parametrize("create_graph", [False, True])
@pytest.mark.parametrize("asked", ["theta", "inputs=theta", "activations", "theta,weights", "everything"])
def test_a_backward_pass_computes_only_the_gradients_it_was_asked_for(asked, create_graph, affine):
    """An architecture step (`autograd.grad` of the loss w.r.t. the architecture alone) needs no
    gradient of the network's weights; PyTorch's own operators skip it, and so do ours, also for
    `backward(inputs=...)` and a gradient w.r.t. activations. Asked for (`autograd.grad` w.r.t.
    the weights, leaves it captures, or `backward()`), the weights' gradients are computed. Every
    gradient equals PyTorch's; without create_graph, so do the backward operators' output masks."""
    generator = torch.Generator().manual_seed(7)
    theta = torch.randn(3, generator=generator, dtype=torch.float64, requires_grad=True)
    x = torch.randn(2, 4, 6, 6, generator=generator, dtype=torch.float64)
    weight = torch.randn(4, 4, 3, 3, generator=generator, dtype=torch.float64, requires_grad=True)
    layers = {
        "ours": (lambda x: conv2d(x, weight, 1), BatchNorm2d(4, affine=affine).double()),
        "PyTorch's": (lambda x: F.conv2d(x, weight, padding=1), torch.nn.BatchNorm2d(4, affine=affine).double()),
    }
    gradients, masks = {}, {}
    for name, (conv, norm) in layers.items():
        leaves = [theta, weight, *norm.parameters()]
        activations = x * theta.sum()
        loss = (torch.tanh(norm(conv(activations))) * theta[0]).sum()
        with _OutputMasks() as recorder:
            if asked in ("everything", "inputs=theta"):
                loss.backward(inputs=[theta] if asked == "inputs=theta" else None, create_graph=create_graph)
                gradients[name] = [leaf.grad for leaf in leaves]
                for leaf in leaves:
                    leaf.grad = None
            else:
                wanted = {"theta": [theta], "activations": [activations], "theta,weights": leaves[:3]}[asked]
                gradients[name] = torch.autograd.grad(loss, wanted, create_graph=create_graph)
        masks[name] = recorder.masks
    for got, want in zip(gradients["ours"], gradients["PyTorch's"], strict=True):
        if want is None:
            assert got is None
        else:
            assert_close(got, want)
    if not create_graph:  # the double-backward forms are other operators (counted elsewhere)
        assert masks["ours"] == masks["PyTorch's"]
    convolution_weight = [mask[1] for name, mask in masks["ours"] if name == "convolution_backward"]
    if asked in ("theta,weights", "everything"):
        assert convolution_weight and all(convolution_weight)
    else:
        assert not any(convolution_weight)


def test_drop_path_masks_keep_each_sample_with_probability_one_minus_p():
    torch.manual_seed(0)
    like = torch.zeros(20_000, 3, 2, 2, dtype=torch.float64)
    mask = drop_path_mask(like, 0.3)
    assert mask.shape == (20_000, 1, 1, 1) and mask.dtype == torch.float64
    assert mask.unique().tolist() == [0.0, pytest.approx(1 / 0.7, rel=1e-15)]
    kept = (mask > 0).double().mean().item()
    assert kept == pytest.approx(0.7, abs=0.015)  # 4.6 standard deviations
    assert mask.mean().item() == pytest.approx(1.0, abs=0.02)


def test_foreach_weight_step_equals_the_per_parameter_step():
    """SGD (momentum, weight decay) and norm clipping as multi-tensor ops, against the
    per-parameter loops, over three steps of which the last two clip."""
    space = get_search_space(1)
    torch.manual_seed(0)
    model = OneShotModel(space, channels=3, cells=3).double()
    plain = OneShotModel(space, channels=3, cells=3).double()
    plain.load_state_dict(model.state_dict())
    config = SearchConfig(grad_clip=0.5)
    trainer = WeightTrainer(model, config)
    parameters = list(plain.parameters())
    sgd = torch.optim.SGD(parameters, lr=config.weight_lr, momentum=0.9, weight_decay=3e-4, foreach=False)
    mixing = lambda: Mixing.from_weights([torch.full(s, 1.0 / s[1], dtype=torch.float64) for s in space.alpha_shapes])  # noqa: E731
    generator = torch.Generator().manual_seed(1)
    for scale in (1e-3, 1.0, 10.0):
        x = scale * torch.randn(4, 3, 8, 8, generator=generator, dtype=torch.float64)
        labels = torch.arange(4)
        trainer.step(F.cross_entropy(model(x, mixing()), labels))
        sgd.zero_grad(set_to_none=True)
        F.cross_entropy(plain(x, mixing()), labels).backward()
        norm = torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(p.grad) for p in parameters]))
        for p in parameters:
            p.grad.mul_(torch.clamp(config.grad_clip / (norm + 1e-6), max=1.0))
        sgd.step()
    for got, want in zip(model.parameters(), parameters):
        assert_close(got, want)


def test_a_weight_the_loss_does_not_reach_still_gets_weight_decay_and_momentum():
    """As the reference under PyTorch 1.x (zeroed, not dropped, gradients): an op that did not run
    (a host-side op choice) still decays."""
    torch.manual_seed(0)
    used, unused = torch.nn.Linear(3, 2).double(), torch.nn.Linear(3, 2).double()
    module = torch.nn.ModuleList([used, unused])
    config = SearchConfig()
    trainer = WeightTrainer(module, config)
    before = [p.detach().clone() for p in unused.parameters()]
    for _ in range(2):
        trainer.step(used(torch.randn(4, 3, dtype=torch.float64)).square().mean())
    decay = 1 - config.weight_lr * config.weight_decay
    for got, start in zip(unused.parameters(), before):
        # two steps of SGD with momentum m on gradient wd * p: p1 = p0 d, p2 = p1 - lr (m wd p0 + wd p1)
        want = start * decay - config.weight_lr * config.weight_decay * (config.weight_momentum * start + start * decay)
        assert_close(got, want)
