"""The first losses of DARTS and SDARTS-ADV on CUDA, eager twice and graphed twice, to tell
run-to-run nondeterminism from a difference the CUDA graph makes (`tests/test_fast_paths.py`'s
`_losses`: the small model, 256 CIFAR-10 images, four steps, channels-last).

    PYTHONPATH=. python docs/measurements/graphed_losses.py CIFAR_ROOT [--deterministic]

CIFAR_ROOT holds cifar-10-batches-py/ (`prepare_cifar10.py CIFAR_ROOT --limit 2000`, as the
tests' copy); --deterministic switches on `torch.use_deterministic_algorithms`.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

import torch

from harness.data import read_cifar10_train
from tests.test_fast_paths import _losses


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("cifar_root", type=Path)
    parser.add_argument("--deterministic", action="store_true")
    args = parser.parse_args()
    if args.deterministic:
        os.environ["CUBLAS_WORKSPACE_CONFIG"] = ":4096:8"
        torch.use_deterministic_algorithms(True)
    images, labels = read_cifar10_train(args.cifar_root / "cifar-10-batches-py")
    images, labels = images[:256], labels[:256]
    for name in ("sdarts-adv", "darts"):
        for graphed in (False, False, True, True):
            losses = _losses(name, images, labels, "cuda", torch.channels_last, graphed=graphed)
            print(name, "graphed" if graphed else "eager", losses, flush=True)


if __name__ == "__main__":
    main()
