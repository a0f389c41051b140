"""How far TF32 in the Hessian-vector products moves the eigenvalue against float64 (docs/performance.md).

DARTS at the paper's sizes (or smaller, with the options) trains in float32 on CIFAR-10; at a few
points of that training, on a few search-valid batches of the reference's Hessian size (40
images), the Hessian's top eigenvalue is computed three times on the same batch and state:

* float64: a float64 copy of the model and the alphas, Lanczos at a tolerance of 1e-10;
* float32: the harness's default (full fp32 products, Lanczos at its default 1e-4);
* TF32: the same with `tf32=True` (`RunConfig.hessian_tf32`).

Prints each eigenvalue, its relative difference to float64, the products and the time, and
whether float32 or TF32 changed the order of any two of the (state, batch) eigenvalues.

    PYTHONPATH=. python docs/measurements/hessian_tf32.py --data DIR [--space 1] [--channels 16]
        [--cells 9] [--states 0,30,90] [--batches 2] [--device cuda]
"""

from __future__ import annotations

import argparse
import copy
import itertools
import time

import torch

import optimizers
from benchmarks.nasbench1shot1 import get_search_space
from harness.bench import endless_pairs
from harness.components import build_model, search_data
from harness.config import make_config, optimizer_config
from harness.data import ensure_cifar10, read_cifar10_train
from harness.hessian import architecture_eigenpair, dominant_eigenvalue

HESSIAN_IMAGES = 40


def eigenvalue(optimizer, batch, tf32: bool, tolerance: float, graphs: bool) -> tuple[float, int, float]:
    """(reported eigenvalue, products, seconds) of `optimizer`'s Hessian on `batch`."""
    device = batch[0].device
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    started = time.perf_counter()
    objective = optimizer.architecture_objective(batch)
    pair = architecture_eigenpair(
        optimizer.model, [objective], optimizer.arch_parameters(), "lanczos", graphs, tolerance, tf32
    )
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    value = dominant_eigenvalue(pair, optimizer.config.arch_weight_decay)
    return value, pair.products, time.perf_counter() - started


def float64_copy(optimizer, space, options):
    """The optimizer's model and alphas in float64 (a new DARTS on a copy of the model)."""
    model = copy.deepcopy(optimizer.model).double()
    default = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    try:
        twin = type(optimizer)(space, model, options)
    finally:
        torch.set_default_dtype(default)
    with torch.no_grad():
        for mine, theirs in zip(twin.arch_parameters(), optimizer.arch_parameters(), strict=True):
            mine.copy_(theirs)
    return twin


def main(args: argparse.Namespace) -> None:
    device = torch.device(args.device)
    config = make_config("darts", args.space, channels=args.channels, cells=args.cells, device=args.device)
    darts = optimizers.get("darts")
    options = optimizer_config(config, darts.Config)
    images, labels = read_cifar10_train(ensure_cifar10(args.data))
    torch.manual_seed(0)
    space = get_search_space(args.space)
    data = search_data(config, options.batch_size, device, images[: args.images], labels[: args.images])
    model = build_model(config, darts, device)
    optimizer = darts(space, model, options)
    optimizer.new_epoch(0, 50)
    pairs = endless_pairs(data)
    graphs = device.type == "cuda"
    name = torch.cuda.get_device_name(device) if graphs else "CPU"
    print(f"space {args.space}, {args.channels} channels, {args.cells} cells, {name}, torch {torch.__version__}")
    results = {"float64": [], "float32": [], "tf32": []}
    done = 0
    for state in sorted(int(s) for s in args.states.split(",")):
        for _ in range(state - done):
            optimizer.step(*next(pairs))
        done = state
        twin = float64_copy(optimizer, space, options)
        for b in range(args.batches):
            valid_images, valid_labels = next(pairs)[1]
            batch = (valid_images[:HESSIAN_IMAGES], valid_labels[:HESSIAN_IMAGES])
            exact, products64, seconds64 = eigenvalue(twin, (batch[0].double(), batch[1]), False, 1e-10, False)
            results["float64"].append(exact)
            line = [f"after {state} steps, batch {b}: float64 {exact:.8g} ({products64} products, {seconds64:.2f} s)"]
            for label, tf32 in (("float32", False), ("tf32", True)):
                eigenvalue(optimizer, batch, tf32, 1e-4, graphs)  # captures the products' graph
                value, products, seconds = eigenvalue(optimizer, batch, tf32, 1e-4, graphs)
                results[label].append(value)
                line.append(
                    f"{label} {value:.8g} (relative difference {abs(value - exact) / exact:.1e}, "
                    f"{products} products, {seconds * 1e3:.0f} ms)"
                )
            print("; ".join(line), flush=True)
    exact = results["float64"]
    for label in ("float32", "tf32"):
        values = results[label]
        worst = max(abs(v - e) / e for v, e in zip(values, exact))
        flips = sum((a < b) != (x < y) for (a, x), (b, y) in itertools.combinations(zip(values, exact), 2))
        print(f"{label}: largest relative difference to float64 {worst:.1e}; pairs whose order changed: {flips}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", required=True, help="folder holding cifar-10-batches-py/")
    parser.add_argument("--space", type=int, default=1)
    parser.add_argument("--channels", type=int, default=16)
    parser.add_argument("--cells", type=int, default=9)
    parser.add_argument("--states", default="0,30,90", help="training steps before each measurement")
    parser.add_argument("--batches", type=int, default=2, help="search-valid batches per state")
    parser.add_argument("--images", type=int, default=10000, help="CIFAR-10 training images used")
    parser.add_argument("--device", default="cuda")
    main(parser.parse_args())
