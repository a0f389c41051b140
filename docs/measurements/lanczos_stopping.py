"""Lanczos's stopping rule at the paper's model size (docs/performance.md).

For DARTS after 3 steps on synthetic images (batch 96, 16 channels, 9 cells), per space: the time
of the full Hessian ("rows") and of Lanczos, their top eigenvalues, and the products Lanczos
needs now and with the previous rule (residual alone <= 1e-7 relative), run on the full Hessian.

    PYTHONPATH=. python docs/measurements/lanczos_stopping.py [--device cpu] [--spaces 1,3]
"""

from __future__ import annotations

import argparse
import time

import torch

import optimizers
from benchmarks.nasbench1shot1 import get_search_space
from harness.bench import endless_pairs, random_images
from harness.components import build_model, resolve_device, search_data
from harness.config import make_config, optimizer_config
from harness.hessian import architecture_eigenpair, architecture_hessian, lanczos_top_eigenpair


def previous_rule_products(matrix: torch.Tensor) -> int:
    """Products that Lanczos takes on `matrix` with the previous rule: the residual alone."""
    return lanczos_top_eigenpair(lambda v: matrix @ v, len(matrix), matrix[0], gap_estimate=False).products


def measure(space: int, device: torch.device) -> str:
    config = make_config("darts", space, device=str(device), benchmark="synthetic")
    optimizer_class = optimizers.get("darts")
    options = optimizer_config(config, optimizer_class.Config)
    torch.manual_seed(0)
    images, labels = random_images(options.batch_size * 16, 0)
    data = search_data(config, options.batch_size, device, images, labels)
    model = build_model(config, optimizer_class, device)
    optimizer = optimizer_class(get_search_space(space), model, options)
    optimizer.new_epoch(0, config.epochs)
    pairs = endless_pairs(data)
    for _ in range(3):
        optimizer.step(*next(pairs))
    objective = optimizer.architecture_objective(next(pairs)[1])
    params = optimizer.arch_parameters()
    started = time.perf_counter()
    matrix = architecture_hessian(model, [objective], params, "rows").double().cpu()
    rows_seconds = time.perf_counter() - started
    started = time.perf_counter()
    pair = architecture_eigenpair(model, [objective], params, "lanczos")
    lanczos_seconds = time.perf_counter() - started
    exact = float(torch.linalg.eigvalsh(matrix)[-1])
    return (
        f"space {space}: n={len(matrix)}; rows {rows_seconds:.1f} s, eigenvalue {exact:.8g}; "
        f"lanczos {pair.products} products, {lanczos_seconds:.1f} s, eigenvalue {pair.value:.8g} "
        f"(relative difference {abs(pair.value - exact) / abs(exact):.1e}); "
        f"previous rule: {previous_rule_products(matrix)} products"
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="auto")
    parser.add_argument("--spaces", default="1,3")
    args = parser.parse_args()
    for number in (int(s) for s in args.spaces.split(",")):
        print(measure(number, resolve_device(args.device)), flush=True)
