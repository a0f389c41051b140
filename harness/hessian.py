"""The Hessian of an architecture objective w.r.t. the architecture parameters, and its
dominant eigenvalue (SPEC §6).

Methods (all exact up to float rounding; n = 24 / 26 / 35):
- "rows": the gradient graph is built once; each of the n Hessian-vector products is one
  double backward through it (on CUDA replayed as a captured CUDA graph);
- "lanczos": the top eigenvalue directly, by Lanczos with full reorthogonalisation on those
  products, stopped when the estimated error of the top Ritz value falls below `tolerance`
  relative (default `LANCZOS_TOLERANCE`, set by the eigenvalue's batch-to-batch noise);
- "forward-over-reverse" / "reverse-over-reverse": all n products in one vmapped pass
  (`torch.func.jvp` of `torch.func.grad`, or a double backward with batched grad outputs); fast
  for small models, memory-hungry at paper scale.
BatchNorm layers use batch statistics, as in train mode, but their running statistics are left
untouched, so computing the Hessian does not change the run.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Literal

import torch
from torch import Tensor, nn
from torch.func import grad, jvp, vmap

Method = Literal["rows", "lanczos", "forward-over-reverse", "reverse-over-reverse"]
METHODS: tuple[str, ...] = ("rows", "lanczos", "forward-over-reverse", "reverse-over-reverse")
FULL_HESSIAN_METHODS: tuple[str, ...] = ("rows", "forward-over-reverse", "reverse-over-reverse")
NCHW_ONLY_METHODS: tuple[str, ...] = ("reverse-over-reverse",)
"""Methods whose batched backward pass PyTorch cannot run on channels-last tensors ("NYI:
querying is_contiguous inside of vmap"): a model they run on keeps the default layout."""
LANCZOS_TOLERANCE = 1e-4
"""Lanczos's relative accuracy, set by the noise of what it measures: the single-batch eigenvalue
varies by about 17% (96 images) to 35% (40, the reference's batch) from one search-valid batch to
the next (SPEC §6), so an error of 1e-4 relative is more than 1,000 times below that spread.
Measured (docs/performance.md, `docs/measurements/hessian_tolerance.py`): 20% fewer products
than 1e-7, errors of at most 2.3e-5 relative, no change in the order of 6 batches' eigenvalues;
pass 1e-7 for the float32 limit."""


@contextlib.contextmanager
def batch_statistics_only(model: nn.Module) -> Iterator[None]:
    """Inside, BatchNorm layers normalise with batch statistics and do not update running ones."""
    saved = []
    for module in model.modules():
        if isinstance(module, nn.modules.batchnorm._BatchNorm):
            saved.append(
                (
                    module,
                    module.running_mean,
                    module.running_var,
                    module.num_batches_tracked,
                    module.track_running_stats,
                )
            )
            module.running_mean = module.running_var = module.num_batches_tracked = None
            module.track_running_stats = False
    try:
        yield
    finally:
        for module, mean, var, tracked, track in saved:
            module.running_mean, module.running_var, module.num_batches_tracked = mean, var, tracked
            module.track_running_stats = track


def _flat(objective: Callable[[Sequence[Tensor]], Tensor], params: Sequence[Tensor]) -> tuple[Callable, Tensor]:
    shapes = [p.shape for p in params]
    sizes = [p.numel() for p in params]

    def flat_objective(theta: Tensor) -> Tensor:
        return objective([chunk.view(shape) for chunk, shape in zip(theta.split(sizes), shapes)])

    return flat_objective, torch.cat([p.detach().reshape(-1) for p in params])


class HessianVectorProducts:
    """v -> H v for the Hessian H (n, n) of `objective` at `params`, the gradient graph built once.

    On CUDA, everything runs on one side stream: the gradient graph is built there, so that the
    double backward (whose kernels run on the stream of the forward they differentiate) can be
    captured there as a CUDA graph after its first, eager call, and replayed for the others.
    """

    def __init__(self, objective: Callable[[Sequence[Tensor]], Tensor], params: Sequence[Tensor], graphs: bool = True):
        flat_objective, theta = _flat(objective, params)
        self.size = theta.numel()
        self.stream = torch.cuda.Stream(theta.device) if theta.is_cuda else None
        with self._on_stream():
            self.theta = theta.requires_grad_()
            (self.gradient,) = torch.autograd.grad(flat_objective(self.theta), self.theta, create_graph=True)
        self.use_graphs = graphs and self.stream is not None
        self.graph: torch.cuda.CUDAGraph | None = None
        self.static_direction: Tensor | None = None

    @contextlib.contextmanager
    def _on_stream(self) -> Iterator[None]:
        if self.stream is None:
            yield
            return
        self.stream.wait_stream(torch.cuda.current_stream(self.stream.device))
        with torch.cuda.stream(self.stream):
            yield
        torch.cuda.current_stream(self.stream.device).wait_stream(self.stream)

    def _product(self, direction: Tensor) -> Tensor:
        return torch.autograd.grad(self.gradient, self.theta, direction, retain_graph=True)[0]

    def __call__(self, direction: Tensor) -> Tensor:
        """H @ direction for a direction (n,) on the parameters' device; returns (n,)."""
        if self.use_graphs and self.graph is None and self.static_direction is not None:
            graph = torch.cuda.CUDAGraph()
            with torch.cuda.graph(graph, stream=self.stream):
                self.static_product = self._product(self.static_direction)
            self.graph = graph
        if self.graph is not None:
            self.static_direction.copy_(direction)
            self.graph.replay()
            return self.static_product.clone()
        with self._on_stream():
            product = self._product(direction)
            self.static_direction = direction.clone()
        return product


@dataclass(frozen=True)
class TopEigenpair:
    """The largest eigenvalue of a symmetric operator, a unit eigenvector (n,) float64 on the CPU
    (its Ritz vector for Lanczos), and the number of operator products it took."""

    value: float
    vector: Tensor
    products: int


def lanczos_top_eigenpair(
    products: Callable[[Tensor], Tensor],
    size: int,
    like: Tensor,
    tolerance: float = LANCZOS_TOLERANCE,
    gap_estimate: bool = True,
) -> TopEigenpair:
    """The largest eigenvalue of a symmetric operator (n, n) given by its products (float64
    bookkeeping, full reorthogonalisation).

    Stops when the error estimate of the top Ritz value theta is <= tolerance * |theta|: the
    residual r = |beta_k s_k| while r is not below the gap g to the next Ritz value, then
    r^2 / g (Kato-Temple's bound with the Ritz gap g for the unknown spectral gap, which g can
    overstate: an estimate, not a bound); or after n products, when the Ritz values are the
    spectrum. gap_estimate=False stops on the residual alone (a bound; more products). The
    start vector is fixed, so results repeat.
    """
    basis = torch.zeros(size, size + 1, dtype=torch.float64)
    start = torch.linspace(1.0, 2.0, size, dtype=torch.float64)
    basis[:, 0] = start / start.norm()
    diagonal: list[float] = []
    off_diagonal: list[float] = []
    k = 0
    while True:
        w = products(basis[:, k].to(like)).double().cpu()
        diagonal.append(float(basis[:, k] @ w))
        for _ in range(2):
            w -= basis[:, : k + 1] @ (basis[:, : k + 1].T @ w)
        beta = float(w.norm())
        values, vectors = torch.linalg.eigh(_tridiagonal(diagonal, off_diagonal))
        top = float(values[-1])
        residual = beta * abs(float(vectors[-1, -1]))
        gap = top - float(values[-2]) if k else 0.0
        error = residual * residual / gap if gap_estimate and residual < gap else residual
        k += 1
        if error <= tolerance * max(abs(top), 1e-30) or beta == 0.0 or k == size:
            return TopEigenpair(top, basis[:, :k] @ vectors[:, -1], k)
        off_diagonal.append(beta)
        basis[:, k] = w / beta


def _tridiagonal(diagonal: list[float], off_diagonal: list[float]) -> Tensor:
    matrix = torch.diag(torch.tensor(diagonal, dtype=torch.float64))
    if off_diagonal:
        off = torch.tensor(off_diagonal, dtype=torch.float64)
        matrix += torch.diag(off, 1) + torch.diag(off, -1)
    return matrix


def hessian(
    objective: Callable[[Sequence[Tensor]], Tensor],
    params: Sequence[Tensor],
    method: Method = "rows",
    chunk_size: int | None = None,
    graphs: bool = True,
) -> Tensor:
    """The exact Hessian (n, n) of a scalar `objective(params)` at `params`, n = total numel.

    chunk_size: products evaluated at once by the vmapped methods (None = all n; smaller saves
    memory); graphs: replay the products of "rows" as a CUDA graph on CUDA.
    """
    if method == "rows":
        products = HessianVectorProducts(objective, params, graphs)
        basis = torch.eye(products.size, dtype=products.theta.dtype, device=products.theta.device)
        rows = torch.stack([products(direction) for direction in basis])
        return (rows + rows.T) / 2
    flat_objective, theta = _flat(objective, params)
    basis = torch.eye(theta.numel(), dtype=theta.dtype, device=theta.device)
    if method == "forward-over-reverse":
        gradient = grad(flat_objective)

        def hvp(direction: Tensor) -> Tensor:
            return jvp(gradient, (theta,), (direction,))[1]

        rows = vmap(hvp, chunk_size=chunk_size)(basis)
    elif method == "reverse-over-reverse":
        theta = theta.requires_grad_()
        (gradient,) = torch.autograd.grad(flat_objective(theta), theta, create_graph=True)
        chunks = basis.split(chunk_size or len(basis))
        rows = torch.cat(
            [
                torch.autograd.grad(gradient, theta, chunk, retain_graph=True, is_grads_batched=True)[0]
                for chunk in chunks
            ]
        )
    else:
        raise ValueError(f"unknown full-Hessian method {method!r}; choose one of {', '.join(FULL_HESSIAN_METHODS)}")
    return (rows + rows.T) / 2


def top_eigenpair(matrix: Tensor) -> TopEigenpair:
    """The largest eigenvalue and its unit eigenvector of the symmetric `matrix` (n, n), in float64."""
    values, vectors = torch.linalg.eigh(matrix.detach().double().cpu())
    return TopEigenpair(float(values[-1]), vectors[:, -1], len(matrix))


@contextlib.contextmanager
def hessian_mode(model: nn.Module, tf32: bool = False) -> Iterator[None]:
    """The reference's setting: train mode (batch statistics), running statistics untouched, and
    full fp32 convolutions and matrix products, as on the paper's GTX 1080 Ti, unless `tf32`
    (TF32 tensor cores on GPUs that have them).
    TF32 stays off by default: on an H200 it moved the eigenvalue by 2.7e-3 to 1.4e-2 relative
    against float64 on the same batch (fp32: at most 5.1e-4), over the 1e-3 allowed
    (docs/performance.md, docs/measurements/hessian_tf32.py)."""
    was_training = model.training
    matmul_precision = torch.get_float32_matmul_precision()
    model.train()
    try:
        torch.set_float32_matmul_precision("high" if tf32 else "highest")
        with (
            batch_statistics_only(model),
            torch.backends.cudnn.flags(
                enabled=torch.backends.cudnn.enabled,
                benchmark=torch.backends.cudnn.benchmark,
                deterministic=torch.backends.cudnn.deterministic,
                allow_tf32=tf32,
            ),
        ):
            yield
    finally:
        torch.set_float32_matmul_precision(matmul_precision)
        model.train(was_training)


def architecture_hessian(
    model: nn.Module,
    objectives: Sequence[Callable[[Sequence[Tensor]], Tensor]],
    params: Sequence[Tensor],
    method: Method = "rows",
    graphs: bool = True,
    tf32: bool = False,
) -> Tensor:
    """Mean Hessian (n, n) over one or more objectives (e.g. one per search-valid batch), in
    `hessian_mode`."""
    with hessian_mode(model, tf32):
        total = sum(hessian(objective, params, method, graphs=graphs) for objective in objectives)
    return total / len(objectives)


def architecture_eigenpair(
    model: nn.Module,
    objectives: Sequence[Callable[[Sequence[Tensor]], Tensor]],
    params: Sequence[Tensor],
    method: Method = "lanczos",
    graphs: bool = True,
    tolerance: float = LANCZOS_TOLERANCE,
    tf32: bool = False,
) -> TopEigenpair:
    """The largest eigenvalue of the mean Hessian over `objectives`, its eigenvector and the
    number of products with that mean Hessian (n for the full-Hessian methods).

    graphs: on CUDA, replay the Hessian-vector products as CUDA graphs; tolerance: Lanczos's
    relative error (estimated) at which it stops; tf32: allow TF32 in the products (`hessian_mode`)."""
    if method != "lanczos":
        return top_eigenpair(architecture_hessian(model, objectives, params, method, graphs, tf32))
    with hessian_mode(model, tf32):
        product_sets = [HessianVectorProducts(objective, params, graphs) for objective in objectives]
        size, like = product_sets[0].size, product_sets[0].theta.detach()

        def mean_product(direction: Tensor) -> Tensor:
            return sum(products(direction) for products in product_sets) / len(product_sets)

        return lanczos_top_eigenpair(mean_product, size, like, tolerance)


def dominant_eigenvalue(pair: TopEigenpair, weight_decay: float) -> float:
    """The reported figure (SPEC §6): |largest eigenvalue of the Hessian + weight_decay * I|."""
    return abs(pair.value + weight_decay)
