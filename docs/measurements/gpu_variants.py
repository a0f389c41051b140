"""A harness command (`bench`, `run`) with kernel-level alternatives switched on: an A/B on one
GPU, each variant in its own process (the switches are process-wide).

Variants (join several with '+', e.g. "cudnn-benchmark+pool-2d"):

* "now": the code as it is;
* "plain-mm": the weighted sums' coefficient gradient as the plain matrix product grad @ groups.T
  (one reduction over all B*C*H*W elements) instead of `groups.chunked_products`;
* "plain-conv": the model's convolutions as `F.conv2d`, whose double backward also computes every
  layer's weight gradient (`benchmarks.nasbench1shot1.conv` computes only what is asked for);
* "cudnn-benchmark": `torch.backends.cudnn.benchmark = True`, for trees older than the
  `cudnn_benchmark` setting (which a run applies itself; `--set cudnn_benchmark=false` turns it off);
* "pool-nchw": the 3x3 max-pool of a channels-last group run on an NCHW copy (the NHWC kernels
  of max_pool2d and its backward are slow for few channels); same values;
* "pool-2d": the 3x3 max-pool of a channels-last group through max_pool2d's NHWC kernels, as
  before round 4 (`ops.max_pool` now runs it as a (3, 3, 1) max_pool3d of the dense
  (B, 1, H, W, C) storage; the round-4 figures of that form came from this script's variant
  "pool-3d", the same function);
* "cat-stack": a cell's growing group tensor as a `torch.cat` of all groups so far at every node
  and its gradients summed by autograd, as before round 5 (`groups.GroupStack` writes each group
  once into one storage, and a training step's gradients in place into another);
* "triton-pool": the 3x3 max-pool of a channels-last group as the Triton kernels of
  `triton_pool.py` (byte positions, a deterministic gathering backward);
* "triton-sums": the weighted sums' products (`groups.group_products`, `add_group_products_`,
  `coefficient_products`) as the Triton kernels of `triton_sums.py` instead of cuBLAS's.

    PYTHONPATH=. python docs/measurements/gpu_variants.py VARIANT [--top N] VERB ARGUMENTS...
    PYTHONPATH=. python docs/measurements/gpu_variants.py check-pool-3d [DEVICE]
    PYTHONPATH=. python docs/measurements/gpu_variants.py check-triton-sums [DEVICE]
    PYTHONPATH=. python docs/measurements/gpu_variants.py check-triton-pool [DEVICE]

(the Triton checks on the CPU need TRITON_INTERPRET=1: Triton's interpreter.)

e.g. `... gpu_variants.py pool-2d bench --optimizer darts --space 1 --steps 30 --warmup 5
--hessian-methods=lanczos --profile`: `python -m harness VERB ARGUMENTS` after the variant is
switched on; --top N lists N kernels per profile of `bench --profile` (default 15).
"""

from __future__ import annotations

import importlib
import sys
from functools import partial
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor

import harness.bench
from benchmarks.nasbench1shot1 import conv, groups, model, ops
from harness.cli import main as main_cli


class _PlainProduct:
    """Stands in for `groups._GroupSums`: coefficients @ matrix with torch.mm's own gradients."""

    @staticmethod
    def apply(coefficients: Tensor, matrix: Tensor) -> Tensor:
        return torch.mm(coefficients, matrix)


def pool_nchw(x: Tensor) -> Tensor:
    return F.max_pool2d(x.contiguous(), 3, stride=1, padding=1)


def pool_2d(x: Tensor) -> Tensor:
    return F.max_pool2d(x, 3, stride=1, padding=1)


class ConcatenatedStack:
    """Stands in for `groups.GroupStack` as before round 5: each append a torch.cat of the groups
    so far and the parts, the sums `combine_groups` with autograd's gradients."""

    def __init__(self, capacity: int):
        self.stacked: Tensor | None = None

    def append(self, parts: list[Tensor]) -> Tensor:
        self.stacked = torch.cat([self.stacked, *parts]) if self.stacked is not None else torch.cat(parts)
        return self.stacked

    def sums(self, coefficients: Tensor) -> Tensor:
        return groups.combine_groups(coefficients, self.stacked)

    def group(self, index: int) -> Tensor:
        return self.stacked[index]


def switch_on(variant: str) -> None:
    for part in variant.split("+"):
        if part == "plain-mm":
            groups._GroupSums = _PlainProduct
        elif part == "plain-conv":
            conv._Conv2d.apply = staticmethod(lambda x, weight, padding: F.conv2d(x, weight, padding=padding))
        elif part == "cudnn-benchmark":
            torch.backends.cudnn.benchmark = True
        elif part == "pool-nchw":
            ops.max_pool = model.max_pool = pool_nchw
        elif part == "pool-2d":
            ops.max_pool = model.max_pool = pool_2d
        elif part == "cat-stack":
            model.GroupStack = ConcatenatedStack
        elif part == "triton-sums":
            use_products(_triton_products())
        elif part == "triton-pool":
            ops.max_pool = model.max_pool = _triton_module("triton_pool").max_pool
        elif part != "now":
            raise SystemExit(f"unknown variant part {part!r}")


def _pooled_with_ties(pool, device: str, dtype: torch.dtype = torch.float32) -> tuple[Tensor, Tensor, Tensor]:
    """A max-pool on a channels-last batch with many ties (and a NaN): values, the input's
    gradient, and that gradient's derivative with respect to the output gradient."""
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(8, 16, 32, 32, generator=generator, dtype=dtype).relu().round(decimals=1)
    x[0, 0, 5, 5] = float("nan")
    x = x.to(device).contiguous(memory_format=torch.channels_last).requires_grad_()
    weights, direction = (torch.randn(8, 16, 32, 32, generator=generator, dtype=dtype).to(device) for _ in range(2))
    weights.requires_grad_()
    out = pool(x)
    (grad,) = torch.autograd.grad((out * weights).sum(), x, create_graph=True)
    (second,) = torch.autograd.grad((grad * direction).sum(), weights)
    return out.detach(), grad.detach(), second


def _largest_differences(pool, device: str, dtype: torch.dtype = torch.float32) -> str:
    plain, other = (_pooled_with_ties(p, device, dtype) for p in (pool_2d, pool))
    differences = [(a - b).nan_to_num().abs().max().item() for a, b in zip(plain, other)]
    same_nans = all(torch.equal(a.isnan(), b.isnan()) for a, b in zip(plain, other))
    return "values, gradients, second derivatives differ by {:.3g}, {:.3g}, {:.3g}; NaNs {}".format(
        *differences, "in the same places" if same_nans else "in other places"
    )


def check_pool_3d(device: str) -> str:
    """`ops.max_pool` (a max_pool3d for channels-last inputs) against max_pool2d: the largest
    differences (`_pooled_with_ties`)."""
    return f"pool-3d on {device}: {_largest_differences(ops.max_pool, device)}"


def check_triton_pool(device: str) -> str:
    """`triton_pool.max_pool` against max_pool2d, in float32 and float64: the largest
    differences (`_pooled_with_ties`)."""
    pool, plain = _triton_module("triton_pool").max_pool, ops.max_pool
    lines = []
    for dtype in (torch.float32, torch.float64):
        lines.append(f"triton-pool on {device}, {dtype}: {_largest_differences(pool, device, dtype)}")
        results = []
        for function in (plain, pool):
            ops.max_pool = model.max_pool = function
            results.append(_darts_gradients(device, dtype, torch.channels_last))
        ops.max_pool = model.max_pool = plain
        lines.append(f"  channels-last model, {dtype}: {_model_differences(*results)}")
    return "\n".join(lines)


def _model_differences(plain: list[Tensor], other: list[Tensor]) -> str:
    worst = max(((x - y).abs().max() / y.abs().max().clamp_min(1e-30)).item() for x, y in zip(plain, other))
    return f"gradients and a Hessian-vector product differ by at most {worst:.3g} relative"


PRODUCTS = ("group_products", "add_group_products_", "coefficient_products")


def _triton_module(name: str):
    """One of the Triton modules beside this script (imported only when a variant needs it)."""
    sys.path.insert(0, str(Path(__file__).parent))
    return importlib.import_module(name)


def _triton_products() -> dict:
    triton_sums = _triton_module("triton_sums")
    return {name: getattr(triton_sums, name) for name in PRODUCTS}


def use_products(products: dict) -> None:
    """Point `groups` at these weighted-sum products (name -> function)."""
    for name, function in products.items():
        setattr(groups, name, function)


def _darts_gradients(device: str, dtype: torch.dtype, layout: torch.memory_format = torch.contiguous_format):
    """A tiny DARTS model's gradients through the weighted sums' three backward forms: the
    architecture gradient, a training step's weight gradients (the in-place stack gradient) and
    one Hessian-vector product (the gradient graph's double backward); a list of tensors."""
    import optimizers
    from benchmarks.nasbench1shot1 import OneShotModel, get_search_space

    torch.manual_seed(0)
    space = get_search_space(1)
    network = OneShotModel(space, channels=4, cells=3).to(device, dtype, memory_format=layout)
    darts = optimizers.get("darts")
    optimizer = darts(space, network, darts.Config())
    alphas = [(a.detach().to(device, dtype) * 30).requires_grad_() for a in optimizer.alphas]
    images = torch.randn(4, 3, 8, 8, device=device, dtype=dtype).contiguous(memory_format=layout)
    labels = torch.randint(0, 10, (4,), device=device)
    objective = optimizer.architecture_objective((images, labels))
    architecture = torch.cat([g.flatten() for g in torch.autograd.grad(objective(alphas), alphas, create_graph=True)])
    direction = torch.randn_like(architecture)
    product = torch.autograd.grad(architecture, alphas, direction)
    loss = objective([a.detach() for a in alphas])
    weights = torch.autograd.grad(loss, list(network.parameters()))
    return [architecture.detach(), *product, *weights]


def check_triton_sums(device: str) -> str:
    """The Triton products against torch.mm on their shapes in a cell (in float64 where the device
    has it, and float32), then a tiny model's gradients with either (`_darts_gradients`): the
    largest differences relative to each result's largest entry."""
    generator = torch.Generator().manual_seed(0)
    n = 96 * 16 * 32 * 32 if device == "cuda" else 3 * 4 * 8 * 8 + 5
    plain = {name: getattr(groups, name) for name in PRODUCTS}
    triton = _triton_products()
    lines = []
    for dtype in (torch.float64, torch.float32):
        worst = 0.0
        for k, g in ((1, 13), (4, 20), (5, 25), (20, 4), (25, 5)):
            a, b = (torch.randn(shape, generator=generator, dtype=dtype).to(device) for shape in ((k, g), (g, n)))
            out, grad = (torch.randn(k, n, generator=generator, dtype=dtype).to(device) for _ in range(2))
            expected = [a @ b, out + a @ b, grad @ b.T, a.T.contiguous() @ grad]
            added = out.clone()
            triton["add_group_products_"](added, a, b)
            got = [triton["group_products"](a, b), added, triton["coefficient_products"](grad, b),
                   triton["group_products"](a.T, grad)]  # fmt: skip
            worst = max(worst, *(((x - y).abs().max() / y.abs().max()).item() for x, y in zip(got, expected)))
        lines.append(f"products, {dtype}: largest relative difference {worst:.3g}")
        results = []
        for products in (plain, triton):
            use_products(products)
            results.append(_darts_gradients(device, dtype))
        use_products(plain)
        lines.append(f"model, {dtype}: {_model_differences(*results)}")
    return f"triton-sums on {device}:\n" + "\n".join(lines)


def main() -> int:
    variant, *rest = sys.argv[1:] or ["--help"]
    if variant in ("-h", "--help"):
        print(__doc__)
        return 0
    checks = {
        "check-pool-3d": check_pool_3d,
        "check-triton-sums": check_triton_sums,
        "check-triton-pool": check_triton_pool,
    }
    if variant in checks:
        print(checks[variant](rest[0] if rest else "cuda"))
        return 0
    top = 15
    if rest[:1] == ["--top"]:
        top, rest = int(rest[1]), rest[2:]
    switch_on(variant)
    harness.bench.kernel_profile = partial(harness.bench.kernel_profile, top=top)
    print(f"variant {variant}", flush=True)
    return main_cli(rest)


if __name__ == "__main__":
    sys.exit(main())
