"""Lanczos's tolerance against the eigenvalue's batch-to-batch noise (docs/performance.md).

DARTS, float64, trained for a few steps on CIFAR-10; then, for several search-valid batches of the
reference's size (40 images), the exact Hessian ("rows") and its top eigenvalue; on each matrix,
Lanczos (the harness's code, on the matrix's products) at several tolerances: products and error.
Prints the spread of the exact eigenvalue over the batches, and whether the tolerance changed the
order of any two batches' eigenvalues.

    PYTHONPATH=. python docs/measurements/hessian_tolerance.py --data DIR [--space 1] [--channels 8]
        [--cells 9] [--batches 6] [--steps 30]
"""

from __future__ import annotations

import argparse
import itertools
import statistics

import torch

import optimizers
from benchmarks.nasbench1shot1 import get_search_space
from harness.bench import endless_pairs
from harness.components import build_model, search_data
from harness.config import make_config, optimizer_config
from harness.data import ensure_cifar10, read_cifar10_train
from harness.hessian import architecture_hessian, lanczos_top_eigenpair

TOLERANCES = (1e-7, 1e-4, 1e-3)


def main(args: argparse.Namespace) -> None:
    torch.set_num_threads(1)
    torch.set_default_dtype(torch.float64)
    config = make_config("darts", args.space, channels=args.channels, cells=args.cells, device="cpu")
    darts = optimizers.get("darts")
    options = optimizer_config(config, darts.Config)
    options.batch_size = 40
    images, labels = read_cifar10_train(ensure_cifar10(args.data))
    torch.manual_seed(0)
    data = search_data(config, options.batch_size, torch.device("cpu"), images[:5000], labels[:5000])
    model = build_model(config, darts, torch.device("cpu")).double()
    optimizer = darts(get_search_space(args.space), model, options)
    optimizer.new_epoch(0, 10)
    pairs = endless_pairs(data)
    for _ in range(args.steps):
        train, valid = next(pairs)
        optimizer.step((train[0].double(), train[1]), (valid[0].double(), valid[1]))
    exact, found = [], {t: [] for t in TOLERANCES}
    for _ in range(args.batches):
        images_, labels_ = next(pairs)[1]
        objective = optimizer.architecture_objective((images_.double(), labels_))
        matrix = architecture_hessian(model, [objective], optimizer.arch_parameters(), "rows")
        value = float(torch.linalg.eigvalsh(matrix)[-1])
        exact.append(value)
        line = [f"batch: eigenvalue {value:.8g}"]
        for tolerance in TOLERANCES:
            pair = lanczos_top_eigenpair(lambda v, m=matrix: m @ v, len(matrix), matrix[0], tolerance)
            found[tolerance].append(pair.value)
            line.append(f"tol {tolerance:g}: {pair.products} products, error {abs(pair.value - value) / value:.1e}")
        print("; ".join(line), flush=True)
    spread = statistics.stdev(exact) / statistics.mean(exact)
    print(f"batch-to-batch spread of the eigenvalue (std / mean over {len(exact)} batches): {spread:.1%}")
    for tolerance, values in found.items():
        flips = sum((a < b) != (x < y) for (a, x), (b, y) in itertools.combinations(zip(values, exact), 2))
        print(f"tol {tolerance:g}: pairs of batches whose order changed: {flips}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", required=True, help="folder holding cifar-10-batches-py/")
    parser.add_argument("--space", type=int, default=1)
    parser.add_argument("--channels", type=int, default=8)
    parser.add_argument("--cells", type=int, default=9)
    parser.add_argument("--batches", type=int, default=6)
    parser.add_argument("--steps", type=int, default=30)
    main(parser.parse_args())
