"""The Triton kernels of the weighted sums and the max-pool (`benchmarks.nasbench1shot1.kernels`)
against PyTorch's: on the CPU in Triton's interpreter, on CUDA compiled. The max-pool is equal to
the bit (values, gradients, second derivatives, with ties and NaNs); the sums and a model's
gradients and Hessian-vector products equal to rounding (float64: 1e-10)."""

from __future__ import annotations

import os

import pytest
import torch
import torch.nn.functional as F

from benchmarks.nasbench1shot1 import kernels
from benchmarks.nasbench1shot1.kernels import triton_kernels, use_triton
from harness.bench import OpCounter, dispatched_ops

PRODUCTS = {"mm", "addmm_", "bmm"}  # PyTorch's products of the weighted sums
POOLS = {"max_pool2d_with_indices", "max_pool3d_with_indices"}
DEVICES = ["cpu", pytest.param("cuda", marks=pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA"))]


@pytest.fixture(params=DEVICES)
def device(request, monkeypatch) -> str:
    """The device the kernels run on: "cpu" in Triton's interpreter (conftest.py chooses it for a
    session on a machine without CUDA), "cuda" compiled."""
    pytest.importorskip("triton")
    if request.param == "cpu":
        if os.environ.get("TRITON_INTERPRET") != "1":
            pytest.skip("Triton's interpreter runs only in a session begun with TRITON_INTERPRET=1")
        monkeypatch.setattr(kernels, "KERNEL_DEVICES", ("cuda", "cpu"))
    return request.param


def _relative(got: torch.Tensor, want: torch.Tensor) -> float:
    return ((got - want).abs().max() / want.abs().max().clamp_min(1e-300)).item()


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_the_sums_kernels_are_torchs_products(device, dtype):
    """`combine` (into a new tensor, and added into rows of a larger one) and `contract` on a
    cell's shapes (k x G = 1 x 13 to 25 x 5), N not a multiple of any block."""
    from benchmarks.nasbench1shot1.triton_sums import combine, contract

    generator = torch.Generator().manual_seed(0)
    n = 3 * 4 * 8 * 8 + 5
    tolerance = 1e-12 if dtype == torch.float64 else 1e-5
    for k, g in ((1, 13), (4, 20), (5, 25), (20, 4), (25, 5)):
        a, b = (torch.randn(shape, generator=generator, dtype=dtype).to(device) for shape in ((k, g), (g, n)))
        storage, grad = (torch.randn(k + 2, n, generator=generator, dtype=dtype).to(device) for _ in range(2))
        expected_rows = storage[1 : k + 1] + a @ b
        combine(a, b, out=storage[1 : k + 1], accumulate=True)
        results = [
            (combine(a, b), a @ b),
            (storage[1 : k + 1], expected_rows),
            (contract(grad[:k], b), grad[:k] @ b.T),
            (combine(a.T, grad[:k]), a.T @ grad[:k]),  # a strided left factor, as in a backward pass
        ]
        for got, want in results:
            assert _relative(got, want) < tolerance, (k, g)


def _pool_with_ties(pool, device: str, dtype: torch.dtype) -> list[torch.Tensor]:
    """A max-pool of a channels-last batch with many ties, an image border of every kind and a
    NaN: values, the input's gradient, and that gradient's derivative with respect to the output
    gradient."""
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(2, 3, 6, 7, generator=generator, dtype=dtype).relu().round(decimals=1)
    x[0, 1, 2, 3] = float("nan")
    x = x.to(device).contiguous(memory_format=torch.channels_last).requires_grad_()
    weights, direction = (torch.randn(2, 3, 6, 7, generator=generator, dtype=dtype).to(device) for _ in range(2))
    weights.requires_grad_()
    out = pool(x)
    (grad,) = torch.autograd.grad((out * weights).sum(), x, create_graph=True)
    (second,) = torch.autograd.grad((grad * direction).sum(), weights)
    assert out.is_contiguous(memory_format=torch.channels_last)
    return [out.detach(), grad.detach(), second]


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_the_max_pool_kernels_are_max_pool2d_to_the_bit(device, dtype):
    from benchmarks.nasbench1shot1.ops import max_pool

    def plain(x: torch.Tensor) -> torch.Tensor:
        return F.max_pool2d(x, 3, stride=1, padding=1)

    results: list[list[torch.Tensor]] = []
    counter = dispatched_ops(lambda: results.append(_pool_with_ties(max_pool, device, dtype)))
    assert not POOLS & set(counter.counts)  # the kernels, not PyTorch's max-pools
    for got, want in zip(results[0], _pool_with_ties(plain, device, dtype)):
        assert torch.equal(got.isnan(), want.isnan())
        assert torch.equal(got.nan_to_num(), want.nan_to_num())


def test_the_validation_forward_on_the_kernels_computes_what_it_computes_without_them(device):
    """The folded eval-mode network (channels-last, float64) with the Triton sums and max-pool
    (`max_pool_into`, into the cell's buffer: no max_pool2d in a cell) against PyTorch's kernels."""
    from benchmarks.nasbench1shot1.inference import FoldedNetwork
    from tests.test_inference import random_mixing, trained_model

    model = trained_model(1, channels=2).to(device, memory_format=torch.channels_last)
    mixing = random_mixing(model.space, torch.Generator().manual_seed(1))
    mixing = type(mixing).from_weights([w.to(device) for w in mixing.weights()])
    images = torch.randn(2, 3, 32, 32, dtype=torch.float64).to(device).contiguous(memory_format=torch.channels_last)
    with torch.no_grad():
        on = dispatched_ops(lambda: FoldedNetwork(model, mixing)(images))
        got = FoldedNetwork(model, mixing)(images)
        with triton_kernels(False):
            off = dispatched_ops(lambda: FoldedNetwork(model, mixing)(images))
            want = FoldedNetwork(model, mixing)(images)
    node_pools = len(model.cells) * model.space.num_choice_nodes  # the rest: the reductions' max-pools
    assert off.counts["max_pool2d_with_indices"] - on.counts["max_pool2d_with_indices"] == node_pools
    assert on.counts["mm"] == 0 < off.counts["mm"]
    assert _relative(got, want) < 1e-10


def _darts_gradients(device: str, layout: torch.memory_format) -> tuple[list[torch.Tensor], OpCounter]:
    """A tiny DARTS model in float64: the architecture gradient, a Hessian-vector product of it
    (the weighted sums' and the max-pool's double backward), a training step's weight gradients
    (the in-place stack gradient), and the exact architecture Hessian by batched reverse-over-
    reverse products (which the kernels leave to PyTorch); the ATen operators of all but the
    last."""
    import optimizers
    from benchmarks.nasbench1shot1 import OneShotModel, get_search_space
    from harness.hessian import hessian

    torch.manual_seed(0)
    space = get_search_space(1)
    network = OneShotModel(space, channels=4, cells=3).to(device, torch.float64, memory_format=layout)
    darts = optimizers.get("darts")
    optimizer = darts(space, network, darts.Config())
    alphas = [(a.detach().to(device, torch.float64) * 30).requires_grad_() for a in optimizer.alphas]
    images = torch.randn(4, 3, 8, 8, dtype=torch.float64).to(device).contiguous(memory_format=layout)
    labels = torch.randint(0, 10, (4,)).to(device)
    objective = optimizer.architecture_objective((images, labels))
    with OpCounter() as counter:
        gradients = torch.autograd.grad(objective(alphas), alphas, create_graph=True)
        architecture = torch.cat([g.flatten() for g in gradients])
        product = torch.autograd.grad(architecture, alphas, torch.randn_like(architecture))
        weights = torch.autograd.grad(objective([a.detach() for a in alphas]), list(network.parameters()))
    results = [architecture.detach(), *product, *weights]
    if layout == torch.channels_last:  # PyTorch's batched backward pass needs NCHW
        return results, counter
    return [*results, hessian(objective, [a.detach() for a in alphas], "reverse-over-reverse")], counter


@pytest.mark.parametrize("layout", [torch.contiguous_format, torch.channels_last], ids=["nchw", "channels-last"])
def test_a_model_on_the_kernels_computes_what_it_computes_without_them(device, layout, monkeypatch):
    decisions: dict[bool, list[bool]] = {True: [], False: []}  # switched on or off -> use_triton's answers

    def recorded(*tensors, **sizes) -> bool:
        answer = use_triton(*tensors, **sizes)
        if not any(torch._C._functorch.is_legacy_batchedtensor(t) for t in tensors):  # those are PyTorch's
            decisions[kernels._enabled].append(answer)
        return answer

    monkeypatch.setattr(kernels, "use_triton", recorded)
    on, on_ops = _darts_gradients(device, layout)
    with triton_kernels(False):
        off, off_ops = _darts_gradients(device, layout)
    # every weighted sum and (channels-last) max-pool asked, and ran on the kernels when switched on
    assert len(decisions[True]) > 100 and all(decisions[True]) and not any(decisions[False])
    assert on_ops.counts["addmm_"] == on_ops.counts["bmm"] == 0 < off_ops.counts["addmm_"]
    assert on_ops.counts["mm"] < off_ops.counts["mm"]  # those left: the classifier's
    if layout == torch.channels_last:
        assert on_ops.counts["max_pool3d_with_indices"] == 0 < off_ops.counts["max_pool3d_with_indices"]
    assert len(on) == len(off)
    for got, want in zip(on, off):
        assert _relative(got, want) < 1e-10


def test_the_kernels_run_only_where_they_can():
    """One CUDA device and one float32/64 type (CPU tensors here), 1 to MAX_ELEMENTS elements
    in and out, never under torch.func transforms, on batched gradients, or switched off; the
    switch is restored after its block."""
    cpu = torch.ones(3)
    assert not use_triton(cpu)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(kernels, "KERNEL_DEVICES", ("cuda", "cpu"))
        patch.setattr(kernels, "triton_works", lambda device: True)
        assert use_triton(cpu, cpu)
        assert not use_triton(cpu, cpu.double())
        assert not use_triton(cpu.half())
        assert not use_triton(cpu.long())
        assert not use_triton(cpu, torch.ones(0))
        assert not use_triton(cpu, output_elements=kernels.MAX_ELEMENTS + 1)
        with triton_kernels(False):
            assert not use_triton(cpu)
            with triton_kernels(True):
                assert use_triton(cpu)
            assert not use_triton(cpu)
        assert use_triton(cpu)
        assert not any(torch.func.vmap(lambda row: torch.tensor(use_triton(row)))(torch.ones(2, 3)))
        seen = []

        class Probe(torch.autograd.Function):
            @staticmethod
            def forward(ctx, x):
                return x.clone()

            @staticmethod
            def backward(ctx, grad):
                seen.append(use_triton(grad))
                return grad

        x = torch.ones(3, requires_grad=True)
        torch.autograd.grad(Probe.apply(x), x, torch.eye(3), is_grads_batched=True)
        torch.autograd.grad(Probe.apply(x), x, torch.ones(3))
        assert seen == [False, True]
        patch.setattr(kernels, "MAX_ELEMENTS", 2)
        assert not use_triton(cpu)


def test_a_gpu_where_triton_fails_warns_and_runs_pytorchs_kernels(monkeypatch):
    pytest.importorskip("triton")
    from benchmarks.nasbench1shot1 import triton_sums

    def failing(*args, **kwargs):
        raise RuntimeError("ptxas not found\nand more")

    monkeypatch.setattr(triton_sums, "combine", failing)
    monkeypatch.setattr(kernels, "_works", {})
    with pytest.warns(UserWarning, match=r"the Triton kernels do not run on cuda .*PyTorch's kernels run instead"):
        assert not kernels.triton_works(torch.device("cuda"))
    assert not kernels.triton_works(torch.device("cuda"))  # kept: one warning
    monkeypatch.setattr(kernels, "_works", {})
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "is_current_stream_capturing", lambda: True)
    assert not kernels.triton_works(torch.device("cuda")) and kernels._works == {}  # asked again after the capture


def test_batched_gradients_through_the_max_pool_are_pytorchs(device):
    """is_grads_batched gradients (reverse-over-reverse Hessians) through the channels-last
    max-pool, first and second order, with the kernels on equal those with them off."""
    from benchmarks.nasbench1shot1.ops import max_pool

    def batched_gradients() -> list[torch.Tensor]:
        pooled: list[torch.Tensor] = []
        generator = torch.Generator().manual_seed(1)
        x = torch.randn(2, 3, 5, 4, generator=generator, dtype=torch.float64).round(decimals=1)
        x = x.to(device).contiguous(memory_format=torch.channels_last).requires_grad_()
        weights = torch.randn(2, 3, 5, 4, generator=generator, dtype=torch.float64).to(device).requires_grad_()
        counter = dispatched_ops(lambda: pooled.append(max_pool(x)))
        assert bool(POOLS & set(counter.counts)) == (not kernels._enabled)
        out = pooled[0] * weights
        basis = torch.eye(out.numel(), dtype=torch.float64, device=device)[:7].view(7, *out.shape)
        (first,) = torch.autograd.grad(out, x, basis, is_grads_batched=True, retain_graph=True)
        (grad,) = torch.autograd.grad(out.sum(), x, create_graph=True)
        directions = torch.eye(grad.numel(), dtype=torch.float64, device=device)[::9].view(-1, *grad.shape)
        (second,) = torch.autograd.grad(grad, weights, directions, is_grads_batched=True)
        return [first, second]

    on = batched_gradients()
    with triton_kernels(False):
        off = batched_gradients()
    for got, want in zip(on, off):
        assert torch.equal(got, want)
