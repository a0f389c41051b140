"""Wall-clock times on the CPU of DARTS steps and architecture Hessian-vector products (the paper's
model, synthetic images, one thread, NCHW): the median of `--repeats` calls of each after one
untimed call, and every call. Run it from two checkouts in turn to compare them.

    NAS_HARNESS_CACHE=... PYTHONPATH=. python docs/measurements/cpu_step_and_product.py [--space 1] [--batch 16]
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import torch

import optimizers
from benchmarks.nasbench1shot1 import get_search_space
from harness.bench import endless_pairs, random_images
from harness.components import build_model, search_data
from harness.config import make_config, optimizer_config
from harness.hessian import HessianVectorProducts, hessian_mode


def timed(call: Callable[[], object], repeats: int) -> str:
    call()
    seconds = []
    for _ in range(repeats):
        started = time.perf_counter()
        call()
        seconds.append(time.perf_counter() - started)
    every = ", ".join(f"{s * 1e3:.0f}" for s in seconds)
    return f"{statistics.median(seconds) * 1e3:.0f} ms ({every})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--space", type=int, default=1)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--repeats", type=int, default=4)
    args = parser.parse_args()
    torch.set_num_threads(1)
    device = torch.device("cpu")
    config = make_config(
        "darts", args.space, device="cpu", benchmark="synthetic", optimizer_options={"batch_size": args.batch}
    )
    darts = optimizers.get("darts")
    options = optimizer_config(config, darts.Config)
    images, labels = random_images(2 * args.batch * 4, seed=0)
    model = build_model(config, darts, device)
    optimizer = darts(get_search_space(args.space), model, options)
    optimizer.new_epoch(0, config.epochs)
    pairs = endless_pairs(search_data(config, args.batch, device, images, labels))
    step = timed(lambda: optimizer.step(*next(pairs)), args.repeats)
    objective = optimizer.architecture_objective(next(pairs)[1])
    with hessian_mode(model):
        products = HessianVectorProducts(objective, optimizer.arch_parameters(), graphs=False)
        direction = torch.ones_like(products.theta)
        product = timed(lambda: products(direction), args.repeats)
    print(f"space {args.space}, batch {args.batch}: step {step}; Hessian-vector product {product}")


if __name__ == "__main__":
    main()
