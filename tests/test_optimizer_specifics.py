"""What sets each optimizer apart (SPEC §5): GDAS's sampling and temperature, NASP's binarized
and clipped alphas, PC-DARTS's partial channels, ENAS's controller, random-WS's sampling and the
end-of-epoch selection ENAS shares with it."""

from __future__ import annotations

import itertools
import math
from collections import Counter

import pytest
import torch
import torch.nn.functional as F

from benchmarks.nasbench1shot1 import Mixing, OneShotModel, get_search_space
from benchmarks.nasbench1shot1.model import Cell
from benchmarks.nasbench1shot1.ops import NodeOps
from optimizers.enas import ENAS, ENASConfig
from optimizers.gdas import gumbel_noise, gumbel_temperature
from optimizers.random_ws import RandomWS, complete_epochs, random_choice
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


def test_gdas_temperature_is_the_references_10_to_1_09():
    """tau = 10 - 9 e / E in epoch e, accumulated as the reference does (optimizers/gdas/train_search.py)."""
    optimizer = build("gdas")
    taus = []
    for epoch in (0, 50, 99):
        optimizer.new_epoch(epoch, 100)
        taus.append(optimizer.tau)
    assert taus == pytest.approx([10.0, 5.5, 1.09], abs=1e-12)
    reference, step = [10.0], (1.0 - 10.0) / 100
    for _ in range(99):
        reference.append(reference[-1] + step)
    assert [gumbel_temperature(e, 100, 10.0, 1.0) for e in range(100)] == reference  # bit for bit
    assert gumbel_temperature(0, 1, 10.0, 1.0) == 10.0


def test_gdas_samples_one_op_per_node_with_fresh_noise_per_cell_and_forward(cifar_batches):
    """As the reference's GDASNetwork.forward: a Gumbel sample per cell of every forward pass."""
    optimizer = build("gdas")
    optimizer.new_epoch(0, 2)
    seen = spy_on_mixing(optimizer.model)
    optimizer.step(*cifar_batches[0])
    arch_mixings, weight_mixings = seen
    cells = len(optimizer.model.cells)
    for mixings in seen:
        assert len(mixings) == cells
        for mixing in mixings:
            assert_one_hot_ops(mixing)
            assert_soft_edges(mixing)
        outputs = [mixing.output.detach() for mixing in mixings]
        assert all(not torch.equal(a, b) for a, b in itertools.pairwise(outputs))  # a fresh sample per cell
    assert not torch.equal(arch_mixings[0].output, weight_mixings[0].output)


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


def test_gdas_op_gradient_passes_through_the_chosen_op_only_as_in_the_reference(cifar_batches, monkeypatch):
    """The reference's MixedOpGDAS sums only the op that runs, so the op alphas of a node get
    g_c * d probs_c / d alpha (c: the chosen op, g_c the gradient of its weight)."""
    monkeypatch.setattr("optimizers.gdas.gumbel_noise", torch.zeros_like)  # probs = softmax(log_softmax(alpha) / tau)
    grads = {}
    for mode in ("reference", "all"):
        optimizer = build("gdas", straight_through=mode)
        optimizer.new_epoch(0, 2)
        alphas = [alpha.detach().clone().requires_grad_() for alpha in optimizer.alphas]
        grad = grads[mode] = torch.autograd.grad(optimizer.architecture_objective(cifar_batches[0][1])(alphas), alphas)[
            0
        ]
        parallel = []
        for node, row in enumerate(alphas[0]):
            probs = F.softmax(F.log_softmax(row, dim=-1) / optimizer.tau, dim=-1)
            direction = torch.autograd.grad(probs[row.argmax()], row, retain_graph=True)[0]
            parallel.append(float(F.cosine_similarity(grad[node], direction, dim=0).abs()))
        assert parallel == pytest.approx([1.0] * 4, abs=1e-5)
    # Dong's GDAS adds the other ops' zero weights as constants: the same direction (their
    # gradients are equal, and softmax is blind to a common shift), another size
    assert not torch.allclose(grads["reference"], grads["all"])


def test_gdas_evaluates_the_argmax_ops():
    optimizer = build("gdas")
    mixing = optimizer.eval_mixing()
    assert_one_hot_ops(mixing)
    assert list(mixing.op_choice) == optimizer.alphas[0].argmax(dim=-1).tolist()
    assert_soft_edges(mixing)


def test_nasp_mixing_is_the_softmax_of_the_binarized_op_alphas_with_all_ops_running(cifar_batches):
    """The reference: softmax(one-hot(argmax)) = 0.576 / 0.212 / 0.212, every op runs, in both
    steps and validation; gradients reach the alphas through that softmax; every alpha starts
    near 0.5 and is clipped to [0, 1] after the weight step."""
    optimizer = build("nasp", arch_lr=0.3)  # large steps, so the clip has work to do
    assert all(((alpha - 0.5).abs() < 0.01).all() for alpha in optimizer.alphas)
    assert optimizer.capturable
    optimizer.new_epoch(0, 2)
    seen = spy_on_mixing(optimizer.model)
    clipped = False
    for train_batch, valid_batch in cifar_batches:
        before = [alpha.detach().clone() for alpha in optimizer.alphas]
        optimizer.step(train_batch, valid_batch)
        arch_mixing, weight_mixing = seen[-2:]
        expected = F.softmax(F.one_hot(before[0].argmax(dim=-1), 3).float(), dim=-1)
        assert torch.equal(arch_mixing.ops.detach(), expected)
        assert arch_mixing.op_choice is None and weight_mixing.op_choice is None  # all ops run
        torch.testing.assert_close(
            arch_mixing.ops[0].detach().sort().values, torch.tensor([0.2119, 0.2119, 0.5761]), atol=1e-4, rtol=0
        )
        for weights, alpha in zip(arch_mixing.weights()[1:], before[1:], strict=True):
            torch.testing.assert_close(weights.detach(), F.softmax(alpha, dim=-1))
        assert_soft_edges(weight_mixing)
        for alpha in optimizer.alphas:
            assert ((alpha >= 0) & (alpha <= 1)).all()
            clipped |= bool(((alpha == 0) | (alpha == 1)).any())
    assert clipped
    assert optimizer.eval_mixing().op_choice is None


def test_nasp_gradient_flows_through_the_softmax_of_the_one_hot(cifar_batches):
    optimizer = build("nasp")
    images, labels = cifar_batches[0][1]
    alphas = [alpha.detach().clone().requires_grad_() for alpha in optimizer.alphas]
    grads = torch.autograd.grad(optimizer.architecture_objective((images, labels))(alphas), alphas)
    one_hot = F.one_hot(alphas[0].detach().argmax(dim=-1), 3).float().requires_grad_()
    expected = [one_hot, *[a.detach().clone().requires_grad_() for a in alphas[1:]]]
    loss = F.cross_entropy(
        optimizer.model(images, Mixing.from_weights([F.softmax(a, dim=-1) for a in expected])), labels
    )
    for grad, want in zip(grads, torch.autograd.grad(loss, expected), strict=True):
        torch.testing.assert_close(grad, want)


def test_nasp_clips_after_the_weight_step_and_binarizes_the_weight_step_unclipped(cifar_batches):
    optimizer = build("nasp")
    with torch.no_grad():
        optimizer.alphas[0].copy_(torch.tensor([[1.2, 1.5, 0.0]] * 4))  # argmax 1; clipped first it would be 0
    seen = spy_on_mixing(optimizer.model)
    optimizer.arch_updates = False
    optimizer.step(*cifar_batches[0])
    assert torch.equal(seen[-1].ops.detach().argmax(dim=-1), torch.ones(4, dtype=torch.long))
    assert (optimizer.alphas[0].detach()[:, :2] == 1).all()


def test_nasp_one_hot_mixing_runs_only_the_chosen_op(cifar_batches):
    optimizer = build("nasp", mixing="one-hot", arch_lr=0.3)
    assert not optimizer.capturable
    optimizer.new_epoch(0, 2)
    seen = spy_on_mixing(optimizer.model)
    for train_batch, valid_batch in cifar_batches[:2]:
        before = optimizer.alphas[0].detach().argmax(dim=-1).tolist()
        optimizer.step(train_batch, valid_batch)
        arch_mixing, weight_mixing = seen[-2:]
        assert list(arch_mixing.op_choice) == before
        for mixing in (arch_mixing, weight_mixing):
            assert_one_hot_ops(mixing)
            assert_soft_edges(mixing)
    with pytest.raises(ValueError, match="mixing"):
        build("nasp", mixing="softmax")


def test_nasp_epsilon_greedy_draws_random_ops_in_training_only(cifar_batches):
    optimizer = build("nasp", epsilon_greedy=1.0)
    assert not optimizer.capturable
    argmax = optimizer.alphas[0].detach().argmax(dim=-1)
    draws = [optimizer.op_one_hot(optimizer.alphas, explore=True).argmax(dim=-1) for _ in range(20)]
    assert any(not torch.equal(d, argmax) for d in draws)
    assert torch.equal(optimizer.op_one_hot(optimizer.alphas).argmax(dim=-1), argmax)
    assert build("nasp").config.epsilon_greedy == 0


def test_pcdarts_sends_a_quarter_of_the_channels_through_the_ops(cifar_batches, monkeypatch):
    optimizer = build("pcdarts", channels=8)
    widths: list[tuple[int, int]] = []  # (channels entering a mixed op, channels entering its convolutions)
    entering: list[int] = []
    mixed_op, convolutions = Cell._mixed_op, NodeOps.convolutions

    def record_mixed(cell, x, *args):
        entering.append(x.shape[1])
        return mixed_op(cell, x, *args)

    def record_convolutions(nodes, x, *args):
        widths.append((entering[-1], x.shape[1]))
        return convolutions(nodes, x, *args)

    monkeypatch.setattr(Cell, "_mixed_op", record_mixed)
    monkeypatch.setattr(NodeOps, "convolutions", record_convolutions)
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


def test_enas_weight_steps_use_the_per_batch_cosine_and_dense_one_hot_samples(cifar_batches):
    """The reference steps CosineAnnealingLR(T_max=epochs) once per batch: batch k (over the run)
    uses 0.001 + 0.024 (1 + cos(pi k / epochs)) / 2, a cycle of 2 x epochs batches; the steps
    train the weights only (every op runs, weighted 0 or 1) and leave the controller alone."""
    optimizer = build("enas")
    controller_before = [p.detach().clone() for p in optimizer.controller.parameters()]
    seen = spy_on_mixing(optimizer.model)
    lrs = []
    for epoch in range(2):
        optimizer.new_epoch(epoch, 3)
        for pair in cifar_batches:
            optimizer.step(*pair)
            lrs.append(optimizer.weights.optimizer.param_groups[0]["lr"])
    assert lrs == pytest.approx([0.001 + 0.024 * (1 + math.cos(math.pi * k / 3)) / 2 for k in range(8)], abs=1e-15)
    assert lrs[3] == pytest.approx(0.001) and lrs[6] == pytest.approx(0.025)
    for mixing in seen:
        assert mixing.op_choice is None
        for rows in mixing.weights():
            assert ((rows == 0) | (rows == 1)).all()
        assert (mixing.ops.sum(dim=-1) == 1).all()
    assert all(torch.equal(a, b) for a, b in zip(controller_before, optimizer.controller.parameters(), strict=True))
    assert optimizer.baseline == 0 and optimizer.arch_parameters() == []
    assert build("enas", per_batch_lr=False).config.per_batch_lr is False


def test_enas_has_the_reference_settings_and_controller():
    config = ENASConfig()
    assert (config.batch_size, config.grad_clip, config.weight_decay, config.train_portion) == (64, 0.25, 1e-4, 0.9)
    assert (config.normalization, config.controller_steps, config.score_batches, config.score_mode) == (
        "enas",
        300,
        1,
        "eval",
    )
    assert (config.controller_lr, config.entropy_weight, config.baseline_decay) == (3.5e-4, 1e-4, 0.99)
    controller = build("enas").controller
    assert controller.b_soft.tolist() == [[10.0, 10.0, 0.0]] and controller.b_soft.requires_grad
    assert controller.b_soft_fixed.tolist() == [[0.25, 0.25, -0.25]]
    assert {name for name, _ in controller.named_parameters()} >= {
        "w_attn_1.weight",
        "w_attn_2.weight",
        "v_attn.weight",
    }
    # node L's parents, then the op of node L - 1 (space 1: node 2 takes both of its two candidates)
    assert controller.decisions == [
        (2, "parent"), (2, "parent"), (1, "op"),
        (3, "parent"), (3, "parent"), (2, "op"),
        (4, "parent"), (4, "parent"), (3, "op"),
        (5, "parent"), (5, "parent"), (4, "op"),
    ]  # fmt: skip


def test_enas_end_epoch_runs_the_controller_on_consecutive_valid_batches_then_selects(monkeypatch):
    optimizer = build("enas", controller_steps=5, eval_samples=3, eval_top=1)
    calls = []

    def correct(choice, batch):
        calls.append((optimizer.model.training, batch[0]))
        return torch.tensor(4)

    monkeypatch.setattr(optimizer, "correct", correct)
    before = [p.detach().clone() for p in optimizer.controller.parameters()]
    optimizer.new_epoch(0, 2)
    optimizer.end_epoch(MarkedValidation())
    controller, samples, finalist = ["b0", "b1", "b2", "b0", "b1"], ["b0", "b1", "b2"], ["b0", "b1", "b2"]
    assert [marker for _, marker in calls] == [*controller, *samples, *finalist]
    assert not any(training for training, _ in calls) and optimizer.model.training  # eval mode, then back
    assert any(not torch.equal(a, b) for a, b in zip(before, optimizer.controller.parameters(), strict=True))
    assert 0 < float(optimizer.baseline) < 50  # rewards of 50 % (+ entropy bonus), from a baseline of 0
    calls.clear()
    optimizer.end_epoch(MarkedValidation())
    assert [marker for _, marker in calls[:5]] == ["b2", "b0", "b1", "b2", "b0"]  # the controller's stream goes on
    assert optimizer.reward_position == 10


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
    """Three marker batches ('b0', 8 labels), ('b1', ...), ('b2', ...) in `batches()`."""

    def batch(self):
        raise AssertionError("the selection uses batches()")

    def batches(self):
        return iter([(f"b{i}", torch.zeros(8)) for i in range(3)])


@pytest.mark.parametrize("name", ["random-ws", "enas"])
def test_end_epoch_scores_each_sample_on_its_own_batches_and_keeps_the_best_finalist(name, monkeypatch):
    settings = {"controller_steps": 0} if name == "enas" else {}
    optimizer: RandomWS = build(name, eval_samples=6, eval_top=2, score_batches=2, **settings)
    candidates = list(dict.fromkeys(random_choice(optimizer.space) for _ in range(50)))[:5]
    drawn = [*candidates, candidates[1]]  # a duplicate is scored again, on its own batches
    sampled = dict(zip(candidates, [9, 3, 9, 8, 1], strict=True))  # top 2: 0 and 2 (tie: draw order)
    overall = dict(zip(candidates, [4, 9, 6, 1, 9], strict=True))  # 4 would win, but is no finalist
    calls: list[tuple[bool, str]] = []

    def correct(choice, batch):
        calls.append((optimizer.model.training, batch[0]))
        return torch.tensor(sampled[choice] if len(calls) <= 12 else overall[choice])

    monkeypatch.setattr(optimizer, "sample", lambda count: drawn[:count])
    monkeypatch.setattr(optimizer, "correct", correct)
    monkeypatch.setattr(optimizer, "refresh_statistics", lambda batch: calls.append((True, "refresh")))
    optimizer.end_epoch(MarkedValidation())
    assert [marker for _, marker in calls[:12]] == [f"b{k % 3}" for k in range(12)]  # sample i: batches 2i, 2i + 1
    assert [marker for _, marker in calls[12:]] == ["b0", "b1", "b2"] * 2  # the finalists: all batches
    assert not any(training for training, _ in calls) and optimizer.model.training  # eval mode, no refresh
    assert optimizer.best == candidates[2]
    assert optimizer.discretize() == optimizer.space.to_spec(candidates[2])
    records = optimizer.epoch_records()
    assert [(r["stage"], r["sample"], r["batches"]) for r in records] == [
        *[("sample", i, 2) for i in range(6)],
        ("finalist", 0, 3),
        ("finalist", 2, 3),
    ]
    assert records[5]["arch_hash"] == optimizer.space.to_spec(candidates[1]).hash()
    assert [r["score"] for r in records] == pytest.approx([9 / 8, 3 / 8, 9 / 8, 1, 1 / 8, 3 / 8, 0.5, 0.75])
    assert optimizer.epoch_records() == []  # once per row


def test_random_ws_scores_in_train_mode_on_request_and_then_refreshes_statistics(monkeypatch):
    optimizer = build("random-ws", eval_samples=2, eval_top=1, score_batches=1, score_mode="train")
    calls = []
    monkeypatch.setattr(
        optimizer, "correct", lambda choice, batch: (calls.append(optimizer.model.training), torch.tensor(1))[1]
    )
    monkeypatch.setattr(optimizer, "refresh_statistics", lambda batch: calls.append(batch[0]))
    optimizer.end_epoch(MarkedValidation())
    assert calls == [True] * 5 + ["b0"]


def test_random_ws_trains_every_op_densely_unless_asked_for_the_sampled_ones_only(cifar_batches):
    """The reference passes one-hot weights densely (`discrete=True`): ops not drawn run and get a
    zero gradient (so weight decay and momentum); `sampled_ops_only` runs the drawn op only."""
    for sampled_only in (False, True):
        optimizer = build("random-ws", sampled_ops_only=sampled_only)
        optimizer.new_epoch(0, 2)
        choice = optimizer.sample(1)[0]
        seen = spy_on_mixing(optimizer.model)
        optimizer.weight_step(choice, cifar_batches[0][0])
        assert (seen[0].op_choice is None) != sampled_only
        assert torch.equal(seen[0].ops, F.one_hot(torch.tensor(choice.ops), 3).float())
        nodes, op = optimizer.model.cells[0].nodes, 2 if choice.ops[0] != 2 else 1  # node 1's conv not drawn
        c = nodes.channels
        kernel = (nodes.conv3x3 if op == 1 else nodes.conv1x1).grad  # node 1's kernel: rows 0..c-1
        bn, half = nodes.bns[0], slice((op - 1) * c, op * c)  # BatchNorm channels: conv3x3's, then conv1x1's
        grads = [
            None if kernel is None else kernel[:c],
            *(p.grad if p.grad is None else p.grad[half] for p in bn.parameters()),
        ]
        # per-cell tensors are shared with the other nodes' ops: an op not drawn gets a zero gradient,
        # or none when nothing sharing its tensor ran
        assert all(g is None or not g.any() for g in grads)
        if not sampled_only:
            assert all(g is not None for g in grads)


def test_random_ws_stops_after_the_complete_epochs_of_the_references_step_budget(monkeypatch):
    """int(100 x 25,000 / 64) = 39,062 steps of 391 per epoch: 99 complete epochs."""
    assert complete_epochs(100, 25_000, 64, 391) == 99
    for budget in (True, False):
        optimizer = build("random-ws", step_budget=budget)
        monkeypatch.setattr(optimizer, "select", lambda *args: None)
        optimizer.new_epoch(0, 100)
        for size in [64] * 390 + [40]:
            optimizer.count_step((None, torch.zeros(size)))
        optimizer.end_epoch(MarkedValidation())
        optimizer.observe({"epoch": 98})
        assert optimizer.should_stop() is None
        optimizer.observe({"epoch": 99})
        stop = optimizer.should_stop()
        assert (stop is not None) == budget
        if budget:
            assert "99 complete epochs" in stop.reason
    assert not build("enas").config.step_budget


@pytest.mark.parametrize("name", ["darts", "sdarts-adv", "gdas", "nasp"])
def test_output_weights_off_mixes_the_cell_output_unweighted_and_leaves_its_alphas(name, cifar_batches):
    """The reference option `--output_weights` off: concatenation and input projection weighted 1;
    the output alphas get no gradient and no Adam step (weight decay included)."""
    optimizer = (
        build(name, output_weights=False, attack_steps=1) if name == "sdarts-adv" else build(name, output_weights=False)
    )
    output_before, ops_before = optimizer.alphas[1].detach().clone(), optimizer.alphas[0].detach().clone()
    optimizer.new_epoch(0, 2)
    seen = spy_on_mixing(optimizer.model)
    optimizer.step(*cifar_batches[0])
    mixings = [m for mixing in seen for m in optimizer.model.per_cell(mixing)]
    assert mixings and all(torch.equal(m.output.detach(), torch.ones_like(m.output)) for m in mixings)
    assert torch.equal(optimizer.eval_mixing().output, torch.ones(1, 5))
    if name == "nasp":  # NASP clips every alpha, the output ones included
        output_before = output_before.clamp(0, 1)
    assert torch.equal(optimizer.alphas[1].detach(), output_before)
    assert not torch.equal(optimizer.alphas[0].detach(), ops_before)
    objective = optimizer.architecture_objective(cifar_batches[1][1])
    assert not torch.autograd.grad(objective(optimizer.alphas), optimizer.alphas[1])[0].any()
