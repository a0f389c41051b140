"""The architecture Hessian: exact against a full autograd Hessian and a known quadratic."""

from __future__ import annotations

import pytest
import torch

import optimizers
from benchmarks.nasbench1shot1 import OneShotModel, get_search_space
from harness.hessian import (
    FULL_HESSIAN_METHODS,
    LANCZOS_TOLERANCE,
    architecture_eigenpair,
    architecture_hessian,
    batch_statistics_only,
    dominant_eigenvalue,
    hessian,
    hessian_mode,
    lanczos_top_eigenpair,
    top_eigenpair,
)


def _quadratic(seed: int = 0) -> tuple[torch.Tensor, torch.Tensor, list[torch.Tensor]]:
    """A random symmetric matrix with a known spectrum, and parameters shaped like alphas."""
    generator = torch.Generator().manual_seed(seed)
    eigenvalues = torch.linspace(-2.0, 3.5, 12, dtype=torch.float64)
    basis, _ = torch.linalg.qr(torch.randn(12, 12, generator=generator, dtype=torch.float64))
    matrix = basis @ torch.diag(eigenvalues) @ basis.T
    params = [
        torch.randn(2, 3, generator=generator, dtype=torch.float64),
        torch.randn(1, 6, generator=generator, dtype=torch.float64),
    ]
    return matrix, eigenvalues, params


@pytest.mark.parametrize("method", FULL_HESSIAN_METHODS)
def test_quadratic_hessian_and_spectrum(method):
    matrix, eigenvalues, params = _quadratic()
    linear = torch.arange(12, dtype=torch.float64)

    def objective(ps):
        x = torch.cat([p.reshape(-1) for p in ps])
        return 0.5 * x @ matrix @ x + linear @ x

    result = hessian(objective, params, method)
    torch.testing.assert_close(result, matrix, rtol=1e-12, atol=1e-12)
    pair = top_eigenpair(result)
    assert pair.value == pytest.approx(float(eigenvalues.max()), rel=1e-10)
    torch.testing.assert_close(matrix @ pair.vector, pair.value * pair.vector, rtol=0, atol=1e-10)
    assert dominant_eigenvalue(pair, weight_decay=1e-3) == pytest.approx(3.501, rel=1e-10)


def test_chunked_products_agree():
    matrix, _, params = _quadratic(1)

    def objective(ps):
        x = torch.cat([p.reshape(-1) for p in ps])
        return (x @ matrix @ x).sin()

    full = hessian(objective, params)
    for method in FULL_HESSIAN_METHODS[1:]:
        torch.testing.assert_close(hessian(objective, params, method, chunk_size=5), full, rtol=1e-10, atol=1e-10)


def _tiny_darts(space_number: int):
    torch.manual_seed(space_number)
    space = get_search_space(space_number)
    model = OneShotModel(space, channels=2, cells=3).double()
    darts = optimizers.get("darts")
    optimizer = darts(space, model, darts.Config())
    with torch.no_grad():
        optimizer.alphas[:] = [(a.double() * 300).requires_grad_() for a in optimizer.alphas]
    images = torch.randn(6, 3, 8, 8, dtype=torch.float64)
    labels = torch.randint(0, 10, (6,))
    return model, optimizer, (images, labels)


def _autograd_hessian(objective, params) -> torch.Tensor:
    blocks = torch.autograd.functional.hessian(lambda *ps: objective(list(ps)), tuple(p.detach() for p in params))
    sizes = [p.numel() for p in params]
    return torch.cat(
        [torch.cat([blocks[i][j].reshape(sizes[i], sizes[j]) for j in range(len(sizes))], 1) for i in range(len(sizes))]
    )


@pytest.mark.parametrize(
    ("space_number", "method"), [(1, "rows"), (1, "forward-over-reverse"), (1, "reverse-over-reverse"), (3, "rows")]
)
def test_architecture_hessian_matches_full_autograd(space_number, method):
    model, optimizer, batch = _tiny_darts(space_number)
    objective = optimizer.architecture_objective(batch)
    with batch_statistics_only(model):
        reference = _autograd_hessian(objective, optimizer.alphas)
    result = architecture_hessian(model, [objective], optimizer.alphas, method)
    assert result.shape == (get_search_space(space_number).num_alphas,) * 2
    assert ((result - reference).norm() / reference.norm()) < 1e-5
    assert torch.isfinite(result).all() and reference.abs().max() > 0


def test_running_statistics_untouched_and_batches_averaged():
    model, optimizer, batch = _tiny_darts(2)
    model.train()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    images, labels = batch
    objectives = [
        optimizer.architecture_objective((images[:3], labels[:3])),
        optimizer.architecture_objective((images[3:], labels[3:])),
    ]
    averaged = architecture_hessian(model, objectives, optimizer.alphas)
    single = [architecture_hessian(model, [f], optimizer.alphas) for f in objectives]
    torch.testing.assert_close(averaged, (single[0] + single[1]) / 2)
    for key, value in model.state_dict().items():
        assert torch.equal(value, before[key]), key
    assert model.training


def _known_spectrum(top_value: float, size: int = 12) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(3)
    basis, _ = torch.linalg.qr(torch.randn(size, size, generator=generator, dtype=torch.float64))
    eigenvalues = torch.cat([torch.linspace(-2.0, 3.0, size - 1, dtype=torch.float64), torch.tensor([top_value])])
    return basis @ torch.diag(eigenvalues) @ basis.T, basis[:, -1]


@pytest.mark.parametrize("top_value", [3.5, 40.0])
def test_lanczos_finds_the_top_of_a_known_spectrum(top_value):
    matrix, top_vector = _known_spectrum(top_value)
    pair = lanczos_top_eigenpair(lambda v: matrix @ v, 12, torch.zeros(12, dtype=torch.float64), tolerance=1e-10)
    assert pair.value == pytest.approx(top_value, rel=1e-9)
    assert abs(float(pair.vector @ top_vector)) == pytest.approx(1.0, abs=1e-6)
    if top_value > 10:
        assert pair.products < 12, "a well-separated top eigenvalue converges before the full basis is built"


def test_lanczos_estimate_is_within_its_tolerance_and_saves_products():
    """The stopping rule's error estimate (r^2 / gap once r < gap) holds on a clustered spectrum,
    where the residual alone needs more products for the same tolerance."""
    matrix, _ = _known_spectrum(3.2, size=30)
    exact = float(torch.linalg.eigvalsh(matrix)[-1])
    for tolerance in (1e-4, 1e-7, 1e-10):
        pair = lanczos_top_eigenpair(lambda v: matrix @ v, 30, matrix[0], tolerance=tolerance)
        residual_only = lanczos_top_eigenpair(lambda v: matrix @ v, 30, matrix[0], tolerance, gap_estimate=False)
        assert 0 <= exact - pair.value <= tolerance * exact
        assert pair.products < residual_only.products


@pytest.mark.parametrize("space_number", [1, 3])
def test_lanczos_eigenvalue_matches_the_full_hessian(space_number):
    model, optimizer, batch = _tiny_darts(space_number)
    objective = optimizer.architecture_objective(batch)
    exact = top_eigenpair(architecture_hessian(model, [objective], optimizer.alphas))
    fast = architecture_eigenpair(model, [objective], optimizer.alphas, "lanczos", tolerance=1e-7)
    assert fast.value == pytest.approx(exact.value, rel=1e-6)
    assert fast.products < exact.products
    default = architecture_eigenpair(model, [objective], optimizer.alphas, "lanczos")
    assert default.value == pytest.approx(exact.value, rel=LANCZOS_TOLERANCE)
    assert default.products <= fast.products
    assert abs(float(fast.vector @ exact.vector)) == pytest.approx(1.0, abs=1e-3)
    rows = architecture_eigenpair(model, [objective], optimizer.alphas, "rows")
    assert rows.value == pytest.approx(exact.value, rel=1e-9)
    assert dominant_eigenvalue(rows, 1e-3) == pytest.approx(abs(exact.value + 1e-3), rel=1e-9)


def test_the_default_tolerance_keeps_the_order_of_eigenvalues():
    """Lanczos at the default tolerance orders the eigenvalues of different batches and states as
    the exact Hessians do (the tolerance is far below their spread)."""
    model, optimizer, (images, labels) = _tiny_darts(1)
    exact, fast = [], []
    for scale in (1.0, 0.5, 3.0):  # alphas x1, x0.5, x1.5
        with torch.no_grad():
            for alpha in optimizer.alphas:
                alpha.mul_(scale)
        for part in (slice(0, 3), slice(3, 6), slice(0, 6)):
            objective = optimizer.architecture_objective((images[part], labels[part]))
            exact.append(top_eigenpair(architecture_hessian(model, [objective], optimizer.alphas)).value)
            fast.append(architecture_eigenpair(model, [objective], optimizer.alphas).value)
    assert len(set(exact)) == len(exact)
    assert sorted(range(len(exact)), key=exact.__getitem__) == sorted(range(len(fast)), key=fast.__getitem__)
    assert all(abs(f - e) <= LANCZOS_TOLERANCE * abs(e) for f, e in zip(fast, exact))


def test_hessian_mode_sets_tf32_only_inside_and_restores_it_also_after_an_error():
    model = OneShotModel(get_search_space(1), channels=2, cells=3).eval()
    state = lambda: (torch.get_float32_matmul_precision(), torch.backends.cudnn.allow_tf32)  # noqa: E731
    before = state()
    for tf32 in (False, True):
        with hessian_mode(model, tf32):
            assert state() == ("high" if tf32 else "highest", tf32) and model.training
        assert state() == before and not model.training
    with pytest.raises(RuntimeError, match="inside"), hessian_mode(model, True):
        raise RuntimeError("inside")
    assert state() == before and not model.training


def test_the_channels_last_layout_gives_the_vmapped_hessians_and_reverse_over_reverse_runs_nchw():
    """On CUDA the model runs channels-last, where PyTorch's batched backward pass (the
    "reverse-over-reverse" method) raises, so that method keeps the default layout; the other
    methods give the same Hessian in both layouts."""
    from benchmarks.nasbench1shot1 import Mixing
    from harness.components import memory_format
    from harness.config import make_config

    cuda = torch.device("cuda")
    assert memory_format(make_config("darts", 1), cuda) == torch.channels_last
    nchw = make_config("darts", 1, hessian_method="reverse-over-reverse")
    assert memory_format(nchw, cuda) == torch.contiguous_format
    torch.manual_seed(0)
    space = get_search_space(1)
    model = OneShotModel(space, channels=2, cells=3).double()
    images, labels = torch.randn(2, 3, 8, 8, dtype=torch.float64), torch.tensor([1, 2])
    alphas = [1e-3 * torch.randn(shape, dtype=torch.float64) for shape in space.alpha_shapes]

    def objective(a):
        mixing = Mixing.from_weights([t.softmax(dim=-1) for t in a])
        return torch.nn.functional.cross_entropy(model(images.contiguous(memory_format=layout), mixing), labels)

    hessians = []
    for layout, method in [
        (torch.contiguous_format, "reverse-over-reverse"),
        (torch.channels_last, "forward-over-reverse"),
        (torch.channels_last, "rows"),
    ]:
        model.to(memory_format=layout)
        with hessian_mode(model):
            hessians.append(hessian(objective, alphas, method, graphs=False))
    for other in hessians[1:]:
        torch.testing.assert_close(other, hessians[0], atol=1e-10, rtol=1e-10)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_the_hessian_on_cuda_in_fp32_channels_last_equals_float64_on_the_cpu():
    """The GPU's Hessian path (channels-last, fp32, `hessian_mode`: full fp32, graphed products,
    the closed-form BatchNorm double backward, `_GroupSums`) against float64 on the CPU."""
    from benchmarks.nasbench1shot1 import Mixing

    torch.manual_seed(0)
    space = get_search_space(1)
    reference = OneShotModel(space, channels=8, cells=3).double()
    images, labels = torch.randn(8, 3, 16, 16, dtype=torch.float64), torch.arange(8)
    alphas = [0.5 * torch.randn(shape, dtype=torch.float64) for shape in space.alpha_shapes]
    hessians = []
    for device, dtype, layout, graphs in [
        ("cpu", torch.float64, torch.contiguous_format, False),
        ("cuda", torch.float32, torch.channels_last, True),
    ]:
        model = OneShotModel(space, channels=8, cells=3)
        model.load_state_dict(reference.state_dict())
        model = model.to(device=device, dtype=dtype, memory_format=layout)
        x = images.to(device, dtype).contiguous(memory_format=layout)

        def objective(a, model=model, x=x, device=device):
            mixing = Mixing.from_weights([t.softmax(dim=-1) for t in a])
            return torch.nn.functional.cross_entropy(model(x, mixing), labels.to(device))

        with hessian_mode(model):
            params = [a.to(device, dtype) for a in alphas]
            hessians.append(hessian(objective, params, "rows", graphs=graphs).cpu().double())
    cpu, cuda = hessians  # fp32 on the CPU: within 2e-6; cuDNN's fp32 kernels round differently
    assert ((cuda - cpu).norm() / cpu.norm()) < 2e-3
