"""What sets each optimizer apart (SPEC §5): GDAS's sampling and temperature, NASP's binarized
and clipped alphas, PC-DARTS's partial channels, ENAS's controller, random-WS's sampling and the
end-of-epoch selection ENAS shares with it."""

from __future__ import annotations

from collections import Counter

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from benchmarks.nasbench1shot1 import Mixing, OneShotModel, get_search_space
from benchmarks.nasbench1shot1.ops import MixedOp
from optimizers.enas import ENAS, ENASConfig
from optimizers.gdas import gumbel_noise, gumbel_temperature
from optimizers.random_ws import RandomWS, random_choice
from tests.helpers import build, spy_on_mixing


def assert_one_hot_ops(mixing: Mixing) -> None:
    """Op weights exactly one-hot, at the op that runs (`op_choice`)."""
    assert mixing.op_choice is not None
    expected = F.one_hot(torch.tensor(mixing.op_choice), mixing.ops.shape[-1]).to(mixing.ops.dtype)
    assert torch.equal(mixing.ops.detach(), expected)


def assert_soft_edges(mixing: Mixing) -> None:
    for rows in (mixing.output, *mixing.inputs):
        assert (rows > 0).all()
        torch.testing.assert_close(rows.detach().sum(dim=-1), torch.ones(rows.shape[0]))


def test_gdas_temperature_falls_linearly_from_10_to_1():
    optimizer = build("gdas")
    taus = []
    for epoch in (0, 50, 99):
        optimizer.new_epoch(epoch, 100)
        taus.append(optimizer.tau)
    assert taus == pytest.approx([10.0, 10.0 - 9.0 * 50 / 99, 1.0])
    assert gumbel_temperature(0, 1, 10.0, 1.0) == 10.0


def test_gdas_samples_one_op_per_node_with_fresh_noise_per_forward(cifar_batches):
    optimizer = build("gdas")
    optimizer.new_epoch(0, 2)
    seen = spy_on_mixing(optimizer.model)
    optimizer.step(*cifar_batches[0])
    arch_mixing, weight_mixing = seen
    for mixing in seen:
        assert_one_hot_ops(mixing)
        assert_soft_edges(mixing)
    assert not torch.equal(arch_mixing.output, weight_mixing.output)


def test_gdas_gumbel_noise_stays_finite_when_the_exponential_draw_is_zero(monkeypatch):
    monkeypatch.setattr(torch.Tensor, "exponential_", lambda self: self.zero_())
    assert gumbel_noise(torch.zeros(3, 3)).isfinite().all()


def test_gdas_objective_passes_gradients_to_the_ops_that_did_not_run(cifar_batches):
    optimizer = build("gdas")
    optimizer.new_epoch(0, 2)
    objective = optimizer.architecture_objective(cifar_batches[0][1])
    alphas = [alpha.detach().clone().requires_grad_() for alpha in optimizer.alphas]
    op_grad = torch.autograd.grad(objective(alphas), alphas[0])[0]
    assert (op_grad != 0).all()


def test_gdas_evaluates_the_argmax_ops():
    optimizer = build("gdas")
    mixing = optimizer.eval_mixing()
    assert_one_hot_ops(mixing)
    assert list(mixing.op_choice) == optimizer.alphas[0].argmax(dim=-1).tolist()
    assert_soft_edges(mixing)


def test_nasp_runs_both_steps_on_one_hot_ops_and_clips_its_op_alphas(cifar_batches):
    optimizer = build("nasp", arch_lr=0.3)  # large steps, so the clip has work to do
    assert ((optimizer.alphas[0] - 0.5).abs() < 0.01).all()
    optimizer.new_epoch(0, 2)
    seen = spy_on_mixing(optimizer.model)
    for train_batch, valid_batch in cifar_batches:
        before = optimizer.alphas[0].detach().argmax(dim=-1).tolist()
        optimizer.step(train_batch, valid_batch)
        arch_mixing, weight_mixing = seen[-2:]
        assert list(arch_mixing.op_choice) == before
        assert list(weight_mixing.op_choice) == optimizer.alphas[0].argmax(dim=-1).tolist()
        for mixing in (arch_mixing, weight_mixing):
            assert_one_hot_ops(mixing)
            assert_soft_edges(mixing)
        op_alphas = optimizer.alphas[0].detach()
        assert ((op_alphas >= 0) & (op_alphas <= 1)).all()
    assert ((op_alphas == 0) | (op_alphas == 1)).any()


def test_pcdarts_sends_a_quarter_of_the_channels_through_the_ops(cifar_batches):
    optimizer = build("pcdarts", channels=8)
    widths: list[tuple[int, int]] = []
    for module in optimizer.model.modules():
        if isinstance(module, MixedOp):
            channels = []
            module.register_forward_pre_hook(lambda _, args, channels=channels: channels.append(args[0].shape[1]))
            for op in module.ops:
                convs = [m for m in op.modules() if isinstance(m, nn.Conv2d)]
                for conv in convs:
                    conv.register_forward_pre_hook(
                        lambda _, args, channels=channels: widths.append((channels[-1], args[0].shape[1]))
                    )
    optimizer.new_epoch(0, 2)
    optimizer.step(*cifar_batches[0])
    assert widths and all(mixed == 4 * op for mixed, op in widths)


@pytest.mark.parametrize("space_number", [1, 2, 3])
def test_enas_controller_samples_valid_architectures(space_number):
    optimizer = build("enas", space_number=space_number)
    space = optimizer.space
    decisions, log_prob, entropy = optimizer.controller(64)
    choices = optimizer.controller.decode(decisions)
    for choice in choices:
        space.to_spec(choice)  # raises for parents outside the node's candidates
        assert all(len(set(parents)) == len(parents) for parents in (*choice.parents, choice.output_parents))
        assert all(choice.parents[node - 1] == fixed for node, fixed in space.fixed_parents.items())
    assert len(set(choices)) > 1
    assert (log_prob < 0).all() and (entropy > 0).all()


def test_enas_reinforce_raises_a_toy_reward():
    """Reward = fraction of nodes choosing op 1 (conv3x3), no network; the ENAS logit squashing
    caps that op's probability at 0.58, from 1/3 at the start."""
    torch.manual_seed(0)
    space = get_search_space(3)
    optimizer = ENAS(space, OneShotModel(space, channels=4, cells=3), ENASConfig(controller_lr=0.01))
    rewards = []
    for _ in range(150):
        decisions, log_prob, entropy = optimizer.controller(8)
        choices = optimizer.controller.decode(decisions)
        reward = torch.tensor([sum(op == 1 for op in choice.ops) / len(choice.ops) for choice in choices])
        optimizer.reinforce(log_prob, entropy, reward)
        rewards.append(float(reward.mean()))
    assert sum(rewards[-20:]) / 20 > sum(rewards[:20]) / 20 + 0.1


def test_enas_step_trains_sampled_one_hot_architectures(cifar_batches):
    optimizer = build("enas")
    optimizer.new_epoch(0, 2)
    controller_before = [p.detach().clone() for p in optimizer.controller.parameters()]
    seen = spy_on_mixing(optimizer.model)
    optimizer.step(*cifar_batches[0])
    for mixing in seen:
        assert_one_hot_ops(mixing)
        for rows in mixing.weights():
            assert ((rows == 0) | (rows == 1)).all()
    assert any(not torch.equal(a, b) for a, b in zip(controller_before, optimizer.controller.parameters(), strict=True))
    assert optimizer.baseline != 0
    assert optimizer.arch_parameters() == []


def test_random_choice_is_uniform_over_ops_and_parent_sets():
    space = get_search_space(2)
    torch.manual_seed(0)
    choices = [random_choice(space) for _ in range(3000)]
    for choice in choices[:100]:
        space.to_spec(choice)
    ops = Counter(op for choice in choices for op in choice.ops)
    assert all(abs(count / (3000 * space.num_choice_nodes) - 1 / 3) < 0.02 for count in ops.values())
    output = Counter(choice.output_parents for choice in choices)
    assert len(output) == len(space.parent_choices(space.num_choice_nodes + 1))
    assert all(abs(count / 3000 - 1 / len(output)) < 0.03 for count in output.values())


class MarkedValidation:
    """Batches that are only markers: 'one' for `batch()`, 'all-0' and 'all-1' for `batches()`."""

    def batch(self):
        return "one"

    def batches(self):
        return iter(["all-0", "all-1"])


@pytest.mark.parametrize("name", ["random-ws", "enas"])
def test_end_epoch_fully_validates_the_best_on_one_batch_and_keeps_the_best_of_those(name, monkeypatch):
    optimizer: RandomWS = build(name, eval_samples=6, eval_top=2)
    candidates = list(dict.fromkeys(random_choice(optimizer.space) for _ in range(50)))[:5]
    one_batch = dict(zip(candidates, [9, 3, 9, 8, 1], strict=True))  # top 2 on one batch: 0 and 2 (tie, draw order)
    all_batches = dict(zip(candidates, [4, 9, 6, 1, 9], strict=True))  # 4 is best overall but never fully validated
    calls: list[str] = []

    def correct(choice, batch):
        calls.append(batch)
        return torch.tensor(one_batch[choice] if batch == "one" else all_batches[choice])

    monkeypatch.setattr(optimizer, "sample", lambda count: [*candidates, candidates[1]][:count])
    monkeypatch.setattr(optimizer, "correct", correct)
    monkeypatch.setattr(optimizer, "refresh_statistics", lambda batch: calls.append(f"refresh {batch}"))
    optimizer.end_epoch(MarkedValidation())
    assert optimizer.best == candidates[2]
    assert calls.count("one") == 5  # each distinct sample scored once
    assert calls[-1] == "refresh one"  # BatchNorm statistics refreshed for the reported architecture
    assert optimizer.discretize() == optimizer.space.to_spec(candidates[2])
