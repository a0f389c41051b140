"""Second-order DARTS (`unrolled=True`): `_unrolled_gradients` against an exact differentiation
through the virtual SGD step (DARTS eq. 6-8), before and after the momentum buffer exists.

The exact gradient is d/d alpha of L_val(w', alpha) with
w' = w - xi * (momentum * buf + grad_w L_train(w, alpha) + wd * w), differentiated through w'
with create_graph. The implementation estimates the implicit (second-order) term by central
finite differences of grad_alpha L_train at w +- r v, v = grad_w' L_val, r = scale / |v|. On a
ReLU/MaxPool network that estimate is only as good as the distance to the nearest kink: with the
DARTS paper's scale 0.01 the tiny model here crosses kinks and the estimate is off by about 3
times the term's own size, so the comparison shrinks the scale (float64 keeps the difference quotient exact to
about 1e-9) to check the formula itself: the virtual step, momentum, weight decay, sign, xi.
"""

from __future__ import annotations

from collections.abc import Sequence

import pytest
import torch
import torch.nn.functional as F
from torch import Tensor
from torch.func import functional_call

import optimizers
from benchmarks.nasbench1shot1 import OneShotModel, get_search_space
from optimizers import darts
from optimizers.darts import DARTS

TOLERANCE = 1e-6
"""Relative error allowed between the implementation's unrolled gradient and the exact one (they
agree to about 5e-9 here; leaving out the weight decay of the virtual step alone costs 2e-5)."""
SMALL_SCALE = 1e-7
"""Finite-difference scale for the comparison (float64, 8x8 images: well inside the kinks)."""


def build(seed: int, weight_lr: float = 0.1) -> DARTS:
    """Second-order DARTS on a float64 2-channel, 3-cell model of space 1, in train mode.

    A weight learning rate above the default 0.025 makes the implicit term a larger share of
    the gradient (about a quarter here), so dropping or mis-signing it is plainly visible."""
    previous = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)  # float64 alphas from init_alphas
    try:
        torch.manual_seed(seed)
        space = get_search_space(1)
        cls = optimizers.get("darts")
        model = OneShotModel(space, channels=2, cells=3).double()
        optimizer = cls(space, model, cls.Config(unrolled=True, weight_lr=weight_lr))
    finally:
        torch.set_default_dtype(previous)
    assert all(alpha.dtype == torch.float64 for alpha in optimizer.alphas)
    optimizer.model.train()
    optimizer.new_epoch(0, 10)  # lr = weight_lr at epoch 0
    return optimizer


def batches(seed: int, count: int) -> list[tuple[Tensor, Tensor]]:
    """`count` batches of 8 random float64 8x8 images with labels."""
    generator = torch.Generator().manual_seed(seed)
    return [
        (
            torch.randn(8, 3, 8, 8, generator=generator, dtype=torch.float64),
            torch.randint(0, 10, (8,), generator=generator),
        )
        for _ in range(count)
    ]


def exact_unrolled(optimizer: DARTS, valid_batch, train_batch, through_virtual_step: bool = True) -> Tensor:
    """d/d alpha of L_val(w', alpha), flattened, differentiating through w' (create_graph).

    through_virtual_step=False: only the direct term, grad_alpha L_val at the fixed w'."""
    model = optimizer.model
    names, weights = zip(*[(n, p) for n, p in model.named_parameters() if p.requires_grad])
    sgd = optimizer.weights.optimizer
    lr = sgd.param_groups[0]["lr"]
    momentum, decay = optimizer.config.weight_momentum, optimizer.config.weight_decay
    alphas = [alpha.detach().clone().requires_grad_() for alpha in optimizer.alphas]

    def loss(params: Sequence[Tensor], batch) -> Tensor:
        buffers = {n: b.clone() for n, b in model.named_buffers()}
        images, labels = batch
        logits = functional_call(model, {**dict(zip(names, params)), **buffers}, (images, optimizer.mixing(alphas)))
        return F.cross_entropy(logits, labels)

    train_grads = torch.autograd.grad(loss(weights, train_batch), weights, create_graph=through_virtual_step)
    virtual = []
    for w, g in zip(weights, train_grads):
        direction = g + decay * w
        buffer = sgd.state.get(w, {}).get("momentum_buffer")
        if buffer is not None:
            direction = direction + momentum * buffer
        virtual.append(w - lr * direction)
    if not through_virtual_step:
        virtual = [v.detach() for v in virtual]
    return flat(torch.autograd.grad(loss(virtual, valid_batch), alphas))


def flat(tensors: Sequence[Tensor]) -> Tensor:
    return torch.cat([t.flatten() for t in tensors])


def relative(a: Tensor, b: Tensor) -> float:
    return float((a - b).norm() / b.norm())


def snapshot(optimizer: DARTS) -> dict[str, Tensor]:
    """Copies of the model's parameters and buffers, the alphas and the SGD momentum buffers."""
    state = {f"model.{k}": v.detach().clone() for k, v in optimizer.model.state_dict().items()}
    state |= {f"alpha.{i}": a.detach().clone() for i, a in enumerate(optimizer.alphas)}
    sgd_state = optimizer.weights.optimizer.state
    for i, p in enumerate(optimizer.model.parameters()):
        if sgd_state.get(p, {}).get("momentum_buffer") is not None:
            state[f"momentum.{i}"] = sgd_state[p]["momentum_buffer"].clone()
    return state


def assert_same(before: dict[str, Tensor], after: dict[str, Tensor]) -> None:
    assert before.keys() == after.keys()
    changed = [k for k in before if not torch.equal(before[k], after[k])]
    assert not changed, f"changed: {changed}"


def has_momentum(optimizer: DARTS) -> bool:
    state = optimizer.weights.optimizer.state
    return all(state.get(p, {}).get("momentum_buffer") is not None for p in optimizer.weights.parameters)


@pytest.mark.parametrize("seed", [0, 1])
def test_unrolled_gradient_matches_the_exact_one_with_and_without_momentum(seed, monkeypatch):
    monkeypatch.setattr(darts, "FINITE_DIFFERENCE_SCALE", SMALL_SCALE)
    optimizer = build(seed)
    data = batches(seed, 4)
    for step, (train_batch, valid_batch) in enumerate(zip(data[::2], data[1::2])):
        assert has_momentum(optimizer) == (step == 1)  # first: no buffer yet; then after one real step
        exact = exact_unrolled(optimizer, valid_batch, train_batch)
        before = snapshot(optimizer)
        unrolled = flat(optimizer._unrolled_gradients(valid_batch, train_batch))
        assert_same(before, snapshot(optimizer))  # nothing real moved: weights, BN buffers, alphas, momentum
        assert relative(unrolled, exact) < TOLERANCE, (step, relative(unrolled, exact))

        # The tolerance is meaningful: the first-order gradient, and the unrolled one without its
        # implicit term, are far further from the exact gradient.
        first_order = flat(
            torch.autograd.grad(optimizer.architecture_objective(valid_batch)(optimizer.alphas), optimizer.alphas)
        )
        direct_only = exact_unrolled(optimizer, valid_batch, train_batch, through_virtual_step=False)
        assert relative(first_order, exact) > 0.1
        assert relative(direct_only, exact) > 0.1

        optimizer.weight_step(train_batch)  # a real step: fills the momentum buffers, moves BN stats
        assert any(not torch.equal(before[k], v) for k, v in snapshot(optimizer).items() if ".running_" in k)

    assert has_momentum(optimizer)


@pytest.mark.parametrize("setting", ["weight_momentum", "weight_decay"])
def test_the_comparison_sees_the_momentum_and_weight_decay_terms(setting, monkeypatch):
    """After a real step, leaving `momentum * buf` or `wd * w` out of the exact virtual step
    moves the exact gradient by more than the tolerance, so the comparison checks those terms."""
    monkeypatch.setattr(darts, "FINITE_DIFFERENCE_SCALE", SMALL_SCALE)
    optimizer = build(0)
    train_0, train_1, valid_1 = batches(0, 3)
    optimizer.weight_step(train_0)
    exact = exact_unrolled(optimizer, valid_1, train_1)
    assert relative(flat(optimizer._unrolled_gradients(valid_1, train_1)), exact) < TOLERANCE
    monkeypatch.setattr(optimizer.config, setting, 0.0)
    assert relative(exact_unrolled(optimizer, valid_1, train_1), exact) > 10 * TOLERANCE


def test_arch_step_uses_the_unrolled_gradient():
    """`arch_step` with unrolled=True hands `_unrolled_gradients` to Adam, and leaves the weights."""
    optimizer = build(0)
    train_batch, valid_batch = batches(0, 2)
    expected = [g.clone() for g in optimizer._unrolled_gradients(valid_batch, train_batch)]
    weights = [p.detach().clone() for p in optimizer.model.parameters()]
    optimizer.arch_step(valid_batch, train_batch)
    for alpha, grad in zip(optimizer.alphas, expected, strict=True):
        torch.testing.assert_close(alpha.grad, grad, rtol=1e-12, atol=0)
    assert all(torch.equal(a, b) for a, b in zip(weights, optimizer.model.parameters(), strict=True))
    assert not optimizer.capturable
    assert darts.FINITE_DIFFERENCE_SCALE == 0.01  # the DARTS paper's epsilon = 0.01 / |v|
