"""The regularisation baselines: explicit Hessian regularisation, DARTS-ES, R-DARTS(L2) and (DP)."""

from __future__ import annotations

import dataclasses
import io
import math

import pytest
import torch

import optimizers
from benchmarks.nasbench1shot1 import OneShotModel, get_search_space
from harness.cli import main
from harness.config import SettingError
from optimizers.base import softmax_mixing
from optimizers.darts_es import DARTSESConfig, EigenvalueEarlyStop
from optimizers.hessian_reg import curvature_penalty, finite_difference_hvp, unit_rademacher
from optimizers.rdarts import drop_path_probability
from optimizers.variants import methods
from tests import helpers

JUMP_ROW = 16
"""Synthetic eigenvalues: 1 up to row 15, 2 from row 16 on."""


def rows(count: int, jump: int = JUMP_ROW) -> list[dict]:
    return [{"epoch": k, "hessian_eigenvalue": 1.0 if k < jump else 2.0} for k in range(count)]


def feed(stopper: EigenvalueEarlyStop, observed: list[dict]) -> list:
    """should-stop answers after each row."""
    answers = []
    for row in observed:
        stopper.observe(row)
        answers.append(stopper.stop)
    return answers


def test_finite_difference_agrees_with_the_exact_hessian_vector_product_in_float64():
    torch.manual_seed(0)
    space = get_search_space(1)
    model = OneShotModel(space, channels=2, cells=3).double()
    images, labels = torch.randn(2, 3, 8, 8, dtype=torch.float64), torch.tensor([1, 7])
    alphas = [(1e-3 * torch.randn(shape, dtype=torch.float64)).requires_grad_() for shape in space.alpha_shapes]

    def objective(a):
        return torch.nn.functional.cross_entropy(model(images, softmax_mixing(a)), labels)

    grads = torch.autograd.grad(objective(alphas), alphas, create_graph=True)
    direction = unit_rademacher(alphas)
    exact = torch.cat([h.flatten() for h in torch.autograd.grad(grads, alphas, grad_outputs=direction)])
    estimate = torch.cat([h.flatten() for h in finite_difference_hvp(objective, alphas, grads, direction, 1e-7)])
    assert exact.norm() > 1e-3
    torch.testing.assert_close(estimate, exact, rtol=1e-4, atol=1e-6)


def test_the_penalty_estimates_the_squared_frobenius_norm_of_the_hessian():
    torch.manual_seed(0)
    shapes = get_search_space(1).alpha_shapes
    n = sum(math.prod(s) for s in shapes)
    matrix = torch.randn(n, n, dtype=torch.float64)
    matrix = matrix + matrix.T

    def objective(parts):
        flat = torch.cat([p.flatten() for p in parts])
        return 0.5 * flat @ matrix @ flat

    alphas = [torch.randn(s, dtype=torch.float64, requires_grad=True) for s in shapes]
    grads = torch.autograd.grad(objective(alphas), alphas, create_graph=True)
    penalty = curvature_penalty(objective, alphas, grads, directions=500, step=0.1)
    assert float(penalty.detach()) == pytest.approx(float((matrix**2).sum()), rel=0.05)
    assert all(g.isfinite().all() for g in torch.autograd.grad(penalty, alphas))


def batch(seed: int = 0, size: int = 8) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    return torch.randn(size, 3, 32, 32, generator=generator), torch.randint(0, 10, (size,), generator=generator)


def test_hessian_reg_without_penalty_steps_like_darts_and_with_it_differently():
    train, valid = batch(0), batch(1)
    after = {}
    for name, settings in (("darts", {}), ("hessian-reg", {"hessian_penalty": 0.0}), ("hessian-reg", {})):
        optimizer = helpers.build(name, seed=0, **settings)
        optimizer.arch_step(valid, train)
        after[(name, bool(settings))] = torch.cat([a.detach().flatten() for a in optimizer.alphas])
    torch.testing.assert_close(after[("hessian-reg", True)], after[("darts", False)], rtol=1e-5, atol=1e-9)
    assert not torch.allclose(after[("hessian-reg", False)], after[("darts", False)])


def test_darts_es_uses_a_centred_window_cut_at_the_first_row():
    stopper = EigenvalueEarlyStop(DARTSESConfig())
    feed(stopper, [{"epoch": k, "hessian_eigenvalue": float(k)} for k in range(8)])
    assert stopper.local_average(1) == pytest.approx((1 + 2 + 3) / 3)  # row 0 is before training
    assert stopper.local_average(2) == pytest.approx((1 + 2 + 3 + 4) / 4)
    assert stopper.local_average(5) == pytest.approx(5.0)


def test_darts_es_stops_when_the_local_average_jumps_and_reports_k_rows_back():
    answers = feed(EigenvalueEarlyStop(DARTSESConfig()), rows(25))
    # avg(15) = 1.4 first beats 1 / 0.75, at row 17, but would report row 10 < es_min_report_epoch
    assert answers[:18] == [None] * 18
    assert answers[18].report_epoch == 11
    assert "row 16" in answers[18].reason

    early = feed(EigenvalueEarlyStop(DARTSESConfig(es_min_report_epoch=1)), rows(25))
    assert early[16] is None and early[17].report_epoch == 10


def test_a_flat_eigenvalue_never_stops():
    assert feed(EigenvalueEarlyStop(DARTSESConfig()), rows(40, jump=40))[-1] is None


def test_darts_es_decision_and_history_survive_a_state_dict_round_trip():
    def reloaded(optimizer):
        buffer = io.BytesIO()
        torch.save(optimizer.state_dict(), buffer)
        fresh = helpers.build("darts-es", seed=1)
        fresh.load_state_dict(torch.load(io.BytesIO(buffer.getvalue()), weights_only=True))
        return fresh

    series = rows(25)
    optimizer = helpers.build("darts-es", seed=0)
    for row in series[:17]:
        optimizer.observe(row)
    resumed = reloaded(optimizer)  # mid-series: the history must carry the decision at row 18
    resumed.observe(series[17])
    assert resumed.should_stop() is None
    resumed.observe(series[18])
    assert resumed.should_stop().report_epoch == 11
    assert reloaded(resumed).should_stop() == resumed.should_stop()


def test_darts_es_without_the_hessian_is_a_setting_error():
    stopper = EigenvalueEarlyStop(DARTSESConfig())
    with pytest.raises(SettingError, match="hessian=false"):
        stopper.observe({"epoch": 0, "hessian_eigenvalue": math.nan})


def test_drop_path_probability_rises_linearly_to_its_maximum_in_the_last_epoch():
    assert [drop_path_probability(e, 5, 0.6) for e in range(5)] == pytest.approx([0, 0.15, 0.3, 0.45, 0.6])
    assert drop_path_probability(0, 1, 0.6) == 0


def test_darts_dp_sets_the_schedule_each_epoch_and_the_hessian_objective_sees_no_drop_path():
    torch.manual_seed(0)
    space = get_search_space(1)
    model = OneShotModel(space, channels=2, cells=3)
    if not hasattr(model, "drop_path_prob"):  # until ScheduledDropPath lands: the wiring alone
        model.drop_path_prob = 0.0
    optimizer = optimizers.get("darts-dp")(space, model, optimizers.get("darts-dp").Config(drop_path_max=0.6))
    seen = []
    objective = optimizer.architecture_objective(batch())
    model.forward = lambda images, mixing, forward=model.forward: (
        seen.append(model.drop_path_prob) or forward(images, mixing)
    )
    for epoch in range(5):
        optimizer.new_epoch(epoch, 5)
        assert model.drop_path_prob == pytest.approx(0.15 * epoch)
    model.train()
    assert torch.equal(objective(optimizer.alphas), objective(optimizer.alphas))
    assert seen == [0.0, 0.0] and model.drop_path_prob == pytest.approx(0.6)


@pytest.mark.parametrize(
    ("method", "setting", "values"),
    [("R-DARTS(L2)", "weight_decay", {3e-4, 9e-4, 27e-4, 81e-4}), ("R-DARTS(DP)", "drop_path_max", {0, 0.2, 0.4, 0.6})],
)
def test_the_r_darts_grids_are_registered_variants_with_valid_settings(method, setting, values):
    grid = methods()[method]
    assert {v.settings[setting] for v in grid} == values
    for variant in grid:
        fields = {f.name for f in dataclasses.fields(optimizers.get(variant.optimizer).Config)}
        assert set(variant.settings) <= fields


def test_list_shows_the_baselines_and_the_variants_by_method(monkeypatch, capsys):
    monkeypatch.setattr("benchmarks.nasbench1shot1.spaces.SEARCH_SPACES", {})  # their sizes take minutes to count
    assert main(["list"]) == 0
    out = capsys.readouterr().out
    for name in ("darts-es", "hessian-reg", "darts-dp", "R-DARTS(L2):", "rdarts-l2-81e-4", "rdarts-dp-0.6"):
        assert f"  {name}" in out


def test_darts_es_settings_are_checked():
    with pytest.raises(ValueError, match="es_window=4 must be odd"):
        DARTSESConfig(es_window=4)
    with pytest.raises(ValueError, match="es_ratio"):
        DARTSESConfig(es_ratio=0)
