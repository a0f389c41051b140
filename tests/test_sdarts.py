"""SDARTS (SPEC §5): the perturbation radius, random smoothing, the adversarial attack and its
sign, and a weight step that sees perturbed weights while the alphas stay put."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from benchmarks.nasbench1shot1 import Mixing, get_search_space
from optimizers import sdarts
from optimizers.sdarts import adversarial_attack, clip_rows, perturbation_radius, random_smoothing
from tests.helpers import build, spy_on_mixing


def assert_on_simplex(rows: torch.Tensor) -> None:
    assert (rows >= 0).all() and (rows <= 1).all()
    torch.testing.assert_close(rows.sum(dim=-1), torch.ones(rows.shape[:-1]))


def simplex_weights(seed: int = 0) -> list[torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    return [F.softmax(torch.randn(shape, generator=generator), dim=-1) for shape in get_search_space(3).alpha_shapes]


def test_perturbation_radius_schedule():
    radii = [perturbation_radius(epoch, 100, 0.03, 0.3) for epoch in (0, 50, 99)]
    assert radii == pytest.approx([0.03, 0.165, 0.2973])
    optimizer = build("sdarts-rs")
    optimizer.new_epoch(50, 100)
    assert optimizer.epsilon == pytest.approx(0.165)


def test_random_smoothing_draws_noise_uniformly_from_the_epsilon_ball(monkeypatch):
    weights = simplex_weights()
    monkeypatch.setattr(sdarts, "clip_rows", lambda rows: rows)
    torch.manual_seed(0)
    noise = torch.cat(
        [
            (perturbed - clean).flatten()
            for _ in range(50)
            for perturbed, clean in zip(random_smoothing(weights, 0.2), weights, strict=True)
        ]
    )
    assert noise.abs().max() <= 0.2 + 1e-6
    assert noise.min() < -0.18 and noise.max() > 0.18
    assert abs(float(noise.mean())) < 0.02


@pytest.mark.parametrize("epsilon", [0.03, 0.3, 3.0])
def test_random_smoothing_keeps_rows_on_the_simplex(epsilon):
    torch.manual_seed(0)
    for _ in range(20):
        for rows in random_smoothing(simplex_weights(), epsilon):
            assert_on_simplex(rows)


def test_clip_rows_makes_an_all_clipped_row_one_hot_at_its_argmax():
    rows = torch.tensor([[-0.3, -0.1, -0.2], [0.5, -0.5, 1.5]])
    torch.testing.assert_close(clip_rows(rows), torch.tensor([[0.0, 1.0, 0.0], [1 / 3, 0.0, 2 / 3]]))


def test_the_attack_raises_the_loss_and_beats_a_descent_perturbation(cifar_batches):
    """The attack must ascend (a published port minimised): the attacked loss exceeds the clean
    loss and the loss after a step of the same size against the gradient. Train mode, where the
    tiny model's loss depends clearly on the mixing weights (the margins are about 0.05)."""
    optimizer = build("sdarts-adv")
    model = optimizer.model.train()
    images, labels = cifar_batches[0][0]
    clean = [F.softmax(alpha.detach(), dim=-1) for alpha in optimizer.alphas]

    def loss_fn(weights):
        return F.cross_entropy(model(images, Mixing.from_weights(weights)), labels)

    epsilon = 0.3
    attacked = adversarial_attack(clean, epsilon, loss_fn, steps=7)
    probes = [w.clone().requires_grad_() for w in clean]
    gradients = torch.autograd.grad(loss_fn(probes), probes)
    descent = [clip_rows(w - epsilon * g.sign()) for w, g in zip(clean, gradients, strict=True)]
    with torch.no_grad():
        clean_loss, attacked_loss, descent_loss = (loss_fn(w) for w in (clean, attacked, descent))
    assert attacked_loss > clean_loss > descent_loss
    for rows in attacked:
        assert_on_simplex(rows)


@pytest.mark.parametrize("name", ["sdarts-rs", "sdarts-adv"])
def test_weight_step_runs_on_perturbed_weights_and_leaves_the_alphas(name, cifar_batches):
    optimizer = build(name)
    optimizer.new_epoch(50, 100)
    (train_batch, valid_batch) = cifar_batches[0]
    seen = spy_on_mixing(optimizer.model)
    optimizer.model.train()

    before = [alpha.detach().clone() for alpha in optimizer.alphas]
    optimizer.arch_step(valid_batch, train_batch)
    for weights, alpha in zip(seen[0].weights(), before, strict=True):
        torch.testing.assert_close(weights, F.softmax(alpha, dim=-1))  # the arch step is clean DARTS
    after_arch = [alpha.detach().clone() for alpha in optimizer.alphas]
    assert any(not torch.equal(a, b) for a, b in zip(after_arch, before, strict=True))

    optimizer.weight_step(train_batch)
    assert all(torch.equal(alpha, saved) for alpha, saved in zip(optimizer.alphas, after_arch, strict=True))
    assert optimizer.model.training
    perturbed = seen[-1].weights()
    clean = [F.softmax(alpha, dim=-1) for alpha in after_arch]
    assert all((p - c).abs().max() > 1e-3 for p, c in zip(perturbed, clean, strict=True))
    for rows in perturbed:
        assert_on_simplex(rows)
