"""The fused building blocks equal their plain computations (float64, 1e-10): BatchNorm's
closed-form double backward, the grouped weighted sums, drop-path masks, the foreach weight step."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from benchmarks.nasbench1shot1 import Mixing, OneShotModel, get_search_space
from benchmarks.nasbench1shot1.batchnorm import BatchNorm2d
from benchmarks.nasbench1shot1.groups import GroupLayout, combine_groups
from benchmarks.nasbench1shot1.ops import drop_path_mask
from optimizers.base import SearchConfig
from optimizers.weights import WeightTrainer

TOLERANCE = 1e-10


def assert_close(got: torch.Tensor, want: torch.Tensor) -> None:
    torch.testing.assert_close(got, want, atol=TOLERANCE, rtol=TOLERANCE)


@pytest.mark.parametrize("affine", [True, False])
def test_batch_norm_double_backward_equals_pytorchs(affine):
    torch.manual_seed(0)
    bn = BatchNorm2d(3, affine=affine).double()
    if affine:
        with torch.no_grad():
            bn.weight.uniform_(-2, 2)
            bn.bias.uniform_(-1, 1)
    x = torch.randn(4, 3, 5, 5, dtype=torch.float64, requires_grad=True)
    weights = torch.randn(4, 3, 5, 5, dtype=torch.float64)
    params = [x, *([bn.weight, bn.bias] if affine else [])]
    direction = [torch.randn_like(p) for p in params]
    results = []
    for layer in (bn, lambda x: F.batch_norm(x, None, None, bn.weight, bn.bias, True, 0.0, bn.eps)):
        grads = torch.autograd.grad((torch.tanh(layer(x)) * weights).sum(), params, create_graph=True)
        products = torch.autograd.grad(sum((g * d).sum() for g, d in zip(grads, direction)), params)
        results.append([*grads, *products])
    for got, want in zip(*results):
        assert_close(got, want)


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
