"""The inference-only form (`FoldedNetwork`): BatchNorm folded into the convolutions, outputs
written into one buffer per cell. Equal to the module in eval mode (float64, 1e-10), in both
memory formats, and cheaper in dispatched operators."""

from __future__ import annotations

import pytest
import torch
from torch.utils._python_dispatch import TorchDispatchMode

from benchmarks.nasbench1shot1 import Mixing, OneShotModel, get_search_space
from benchmarks.nasbench1shot1.inference import FoldedNetwork, fold_batch_norm
from harness.bench import dispatched_ops
from harness.components import inference


def trained_model(space_id: int, cells: int = 3, channels: int = 4, seed: int = 0) -> OneShotModel:
    """A float64 model whose BatchNorm layers have non-trivial affine parameters and running
    statistics (a few train-mode passes), in eval mode."""
    torch.manual_seed(seed)
    space = get_search_space(space_id)
    model = OneShotModel(space, channels=channels, cells=cells, bn_momentum=0.5).double()
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, torch.nn.modules.batchnorm._BatchNorm) and module.affine:
                module.weight.uniform_(0.5, 1.5)
                module.bias.uniform_(-0.5, 0.5)
        for _ in range(3):
            model(torch.randn(6, 3, 32, 32, dtype=torch.float64) * 2 + 0.3, random_mixing(space))
    return model.eval()


def random_mixing(space, generator: torch.Generator | None = None) -> Mixing:
    weights = [torch.rand(shape, dtype=torch.float64, generator=generator) for shape in space.alpha_shapes]
    return Mixing.from_weights(weights)


@pytest.fixture
def nan_filled_allocations():
    """Fresh allocations (torch.empty) filled with NaN, so that reading unwritten memory shows."""
    import torch.utils.deterministic

    before = torch.are_deterministic_algorithms_enabled(), torch.utils.deterministic.fill_uninitialized_memory
    torch.use_deterministic_algorithms(True)
    torch.utils.deterministic.fill_uninitialized_memory = True
    yield
    torch.use_deterministic_algorithms(before[0])
    torch.utils.deterministic.fill_uninitialized_memory = before[1]


class _OutTargets(TorchDispatchMode):
    """Records, for every max_pool2d_with_indices.out call, whether its outputs are contiguous in
    the input's layout (CUDA's kernel writes through the outputs' data pointers as if they were)."""

    def __init__(self) -> None:
        super().__init__()
        self.checked: list[bool] = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if func is torch.ops.aten.max_pool2d_with_indices.out:
            x = args[0]
            last = x.is_contiguous(memory_format=torch.channels_last) and not x.is_contiguous()
            layout = torch.channels_last if last else torch.contiguous_format
            self.checked.append(all(kwargs[name].is_contiguous(memory_format=layout) for name in ("out", "indices")))
        return func(*args, **kwargs)


@pytest.mark.parametrize("space_id", [1, 2, 3])
@pytest.mark.parametrize("memory_format", [torch.contiguous_format, torch.channels_last])
def test_folded_network_equals_the_model_in_eval_mode(space_id, memory_format, nan_filled_allocations):
    model = trained_model(space_id).to(memory_format=memory_format)
    mixing = random_mixing(model.space, torch.Generator().manual_seed(space_id))
    images = torch.randn(5, 3, 32, 32, dtype=torch.float64).contiguous(memory_format=memory_format)
    with torch.no_grad():
        want = model(images, mixing)
        with _OutTargets() as targets:
            got = FoldedNetwork(model, mixing)(images)
    assert got.shape == want.shape == (5, 10)
    torch.testing.assert_close(got, want, atol=1e-10, rtol=1e-10)
    assert len(targets.checked) == 3 * model.space.num_choice_nodes and all(targets.checked)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.parametrize("memory_format", [torch.contiguous_format, torch.channels_last])
@pytest.mark.parametrize("graphs", [False, True])
def test_folded_network_equals_the_model_on_cuda(memory_format, graphs):
    """In full fp32: with TF32 (cuDNN's default) the channels-last convolutions of the two differ
    by up to 3e-4 (seen on an H200), which is rounding, not folding."""
    model = trained_model(1).float().cuda().to(memory_format=memory_format)
    mixing = random_mixing(model.space, torch.Generator().manual_seed(1))
    mixing = Mixing.from_weights([w.float().cuda() for w in mixing.weights()])
    images = torch.randn(5, 3, 32, 32, device="cuda").contiguous(memory_format=memory_format)
    full_fp32 = torch.backends.cudnn.flags(enabled=True, benchmark=False, deterministic=False, allow_tf32=False)
    with torch.no_grad(), full_fp32:
        want = model(images, mixing)
        forward = inference(model, mixing, graphs=graphs)
        for _ in range(3):  # eager warm-up, capture, replay
            got = forward(images)
    torch.testing.assert_close(got, want, atol=1e-4, rtol=1e-4)


def test_fold_batch_norm_is_the_convolution_then_the_layer():
    torch.manual_seed(0)
    conv = torch.nn.Conv2d(3, 4, 3, padding=1, bias=False).double()
    bn = torch.nn.BatchNorm2d(4).double()
    with torch.no_grad():
        bn.running_mean.uniform_(-1, 1)
        bn.running_var.uniform_(0.5, 2)
        bn.weight.uniform_(-2, 2)
        bn.bias.uniform_(-1, 1)
    bn.eval()
    x = torch.randn(2, 3, 6, 6, dtype=torch.float64)
    kernel, bias = fold_batch_norm(conv.weight, bn)
    torch.testing.assert_close(torch.nn.functional.conv2d(x, kernel, bias, padding=1), bn(conv(x)), atol=1e-12, rtol=0)


def test_inference_falls_back_to_the_model_where_folding_does_not_apply():
    model = trained_model(1)
    space = model.space
    images = torch.randn(2, 3, 32, 32, dtype=torch.float64)
    weights = [torch.rand(shape, dtype=torch.float64) for shape in space.alpha_shapes]
    chosen = Mixing.from_weights(weights, op_choice=[1, 0, 2, 1])
    assert not FoldedNetwork.supports(model, chosen)
    with torch.no_grad():
        torch.testing.assert_close(inference(model, chosen, graphs=False)(images), model(images, chosen))
    assert FoldedNetwork.supports(model, Mixing.from_weights(weights))


def test_a_validation_forward_of_the_paper_model_dispatches_at_most_200_ops():
    """Issue #15's proxy target (space 1, 9 cells; the count does not depend on the channels)."""
    model = OneShotModel(get_search_space(1), channels=2, cells=9).eval()
    mixing = random_mixing(model.space)
    forward = inference(model, mixing, graphs=False)
    images = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        counts = dispatched_ops(lambda: forward(images))
        plain = dispatched_ops(lambda: model(images, mixing))
    assert counts.counts.total() <= 200 < plain.counts.total()
