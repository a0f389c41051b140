"""The weight and architecture training of SPEC §5: the cosine learning rate and the reference's
one-epoch shift, the SGD and Adam hyperparameters DARTS builds, and the gradient-norm clip at 5."""

from __future__ import annotations

import itertools
import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import optimizers
from benchmarks.nasbench1shot1 import OneShotModel, get_search_space
from optimizers.base import SearchConfig
from optimizers.weights import WeightTrainer, cosine_lr

LR, LR_MIN = 0.025, 0.001


def test_cosine_lr_runs_from_lr_to_lr_min():
    assert cosine_lr(0, 100, LR, LR_MIN) == pytest.approx(LR, rel=1e-12)
    assert cosine_lr(100, 100, LR, LR_MIN) == pytest.approx(LR_MIN, rel=1e-12)
    assert cosine_lr(50, 100, LR, LR_MIN) == pytest.approx((LR + LR_MIN) / 2, rel=1e-12)
    assert cosine_lr(25, 100, LR, LR_MIN) == pytest.approx(LR_MIN + (LR - LR_MIN) * (1 + math.sqrt(0.5)) / 2)
    values = [cosine_lr(epoch, 100, LR, LR_MIN) for epoch in range(101)]
    assert all(a > b for a, b in itertools.pairwise(values)), "not strictly decreasing"
    assert all(LR_MIN <= v <= LR for v in values)


def trainer(**settings) -> WeightTrainer:
    return WeightTrainer(nn.Linear(4, 3), SearchConfig(**settings))


@pytest.mark.parametrize("epochs", [1, 3, 100])
def test_set_epoch_sets_and_returns_the_cosine_lr(epochs):
    weights = trainer()
    assert [group["lr"] for group in weights.optimizer.param_groups] == [LR]  # before any epoch
    for epoch in range(epochs):
        lr = weights.set_epoch(epoch, epochs)
        assert lr == cosine_lr(epoch, epochs, LR, LR_MIN)
        assert [group["lr"] for group in weights.optimizer.param_groups] == [lr]
    assert weights.set_epoch(0, epochs) == LR  # epoch 0 runs at the full rate


@pytest.mark.parametrize("epochs", [1, 3, 100])
def test_reference_lr_schedule_runs_one_epoch_ahead_and_stops_at_lr_min(epochs):
    shifted, plain = trainer(reference_lr_schedule=True), trainer()
    lrs = [shifted.set_epoch(epoch, epochs) for epoch in range(epochs)]
    assert lrs == [plain.set_epoch(epoch + 1, epochs) for epoch in range(epochs)]
    assert lrs[0] == cosine_lr(1, epochs, LR, LR_MIN) < LR  # epoch 0 already at the second value
    assert lrs[-1] == pytest.approx(LR_MIN, rel=1e-12)  # the last epoch reaches lr_min
    assert shifted.set_epoch(epochs, epochs) == pytest.approx(LR_MIN, rel=1e-12)  # never past it
    assert shifted.optimizer.param_groups[0]["lr"] == pytest.approx(LR_MIN, rel=1e-12)


def build_darts(**settings):
    cls = optimizers.get("darts")
    torch.manual_seed(0)
    space = get_search_space(1)
    return cls(space, OneShotModel(space, channels=2, cells=3), cls.Config(**settings))


def test_darts_optimizers_have_the_spec_hyperparameters():
    optimizer = build_darts()
    (adam_group,) = optimizer.arch_optimizer.param_groups
    assert isinstance(optimizer.arch_optimizer, torch.optim.Adam)
    assert (adam_group["lr"], adam_group["betas"], adam_group["weight_decay"]) == (3e-4, (0.5, 0.999), 1e-3)
    assert adam_group["params"] == optimizer.alphas
    sgd = optimizer.weights.optimizer
    assert isinstance(sgd, torch.optim.SGD)
    (sgd_group,) = sgd.param_groups
    assert (sgd_group["lr"], sgd_group["momentum"], sgd_group["weight_decay"]) == (0.025, 0.9, 3e-4)
    assert not sgd_group["nesterov"] and sgd_group["dampening"] == 0
    assert sgd_group["params"] == list(optimizer.model.parameters())
    assert optimizer.config.grad_clip == 5.0
    assert (optimizer.config.weight_lr_min, optimizer.config.batch_size) == (0.001, 96)
    assert not optimizer.config.unrolled and not optimizer.config.reference_lr_schedule
    optimizer.new_epoch(99, 100)
    assert sgd_group["lr"] == pytest.approx(cosine_lr(99, 100, 0.025, 0.001))


def test_weight_step_clips_the_gradient_norm_at_5():
    """A loss scaled by 1e6 has a gradient norm far above 5; the step clips it to 5 before SGD
    (the update is -lr * (clipped gradient + wd * w), the momentum buffer being empty)."""
    optimizer = build_darts()
    optimizer.model.train()
    optimizer.new_epoch(0, 10)
    generator = torch.Generator().manual_seed(0)
    images, labels = torch.randn(8, 3, 8, 8, generator=generator), torch.randint(0, 10, (8,), generator=generator)
    params = optimizer.weights.parameters
    mixing = optimizer.eval_mixing()
    unclipped = torch.autograd.grad(1e6 * F.cross_entropy(optimizer.model(images, mixing), labels), params)
    assert torch.cat([g.flatten() for g in unclipped]).norm() > 1e3

    before = [p.detach().clone() for p in params]
    optimizer.weights.step(1e6 * F.cross_entropy(optimizer.model(images, mixing), labels))
    clipped = torch.cat([p.grad.flatten() for p in params])
    assert clipped.norm() <= 5 + 1e-4
    assert clipped.norm() == pytest.approx(5, rel=1e-4)
    for g, g_unclipped in zip((p.grad for p in params), unclipped, strict=True):  # same direction, scaled
        torch.testing.assert_close(g, g_unclipped * (5 / torch.cat([u.flatten() for u in unclipped]).norm()))
    for p, w in zip(params, before, strict=True):
        torch.testing.assert_close(p.detach(), w - 0.025 * (p.grad + 3e-4 * w))


def test_weight_step_leaves_a_gradient_below_5_alone():
    layer = nn.Linear(4, 3)
    weights = WeightTrainer(layer, SearchConfig())
    weights.step(1e-3 * layer(torch.ones(2, 4)).sum())
    torch.testing.assert_close(layer.weight.grad, torch.full((3, 4), 2e-3))  # norm 0.008: not clipped
    torch.testing.assert_close(layer.bias.grad, torch.full((3,), 2e-3))


ARCHITECTURE_OPTIMIZERS = ["darts", "pcdarts", "sdarts-rs", "gdas", "nasp"]


@pytest.mark.parametrize("name", ARCHITECTURE_OPTIMIZERS)
def test_warm_start_epochs_train_only_the_weights(name, cifar_batches):
    """The reference option `--warm_start_epochs N`: no architecture step in epochs 0..N-1."""
    from tests.helpers import build

    optimizer = build(name, warm_start_epochs=1)
    assert optimizer.Config().warm_start_epochs == 0
    alphas = [alpha.detach().clone() for alpha in optimizer.alphas]
    weights = [p.detach().clone() for p in optimizer.model.parameters()]
    optimizer.new_epoch(0, 3)
    optimizer.step(*cifar_batches[0])
    assert all(torch.equal(a, b) for a, b in zip(alphas, optimizer.alphas, strict=True))
    assert any(not torch.equal(a, b) for a, b in zip(weights, optimizer.model.parameters(), strict=True))
    optimizer.new_epoch(1, 3)
    optimizer.step(*cifar_batches[1])
    assert any(not torch.equal(a, b) for a, b in zip(alphas, optimizer.alphas, strict=True))
