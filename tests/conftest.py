"""Fixtures shared by the test suite: the offline data in ../shared, a private cache folder,
a few batches of real CIFAR-10, and the synthetic NAS-Bench-101 table."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"

if "TRITON_INTERPRET" not in os.environ:
    import torch

    # Where there is no CUDA, the Triton kernels run in Triton's interpreter (tests/test_triton_kernels.py),
    # which must be chosen before triton is first imported.
    os.environ["TRITON_INTERPRET"] = "0" if torch.cuda.is_available() else "1"


@pytest.fixture(scope="session", autouse=True)
def private_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Point NAS_HARNESS_CACHE at a folder of this test session, so tests never touch ~/.cache."""
    folder = tmp_path_factory.mktemp("nas-harness-cache")
    previous = os.environ.get("NAS_HARNESS_CACHE")
    os.environ["NAS_HARNESS_CACHE"] = str(folder)
    yield folder
    if previous is None:
        os.environ.pop("NAS_HARNESS_CACHE", None)
    else:
        os.environ["NAS_HARNESS_CACHE"] = previous


@pytest.fixture(scope="session", autouse=True)
def one_thread() -> None:
    """One intra-op thread: on the tiny tensors of these tests, thread hand-offs cost more than
    they save (5 to 10 times slower with two threads on two busy cores)."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="session")
def shared_dir() -> Path:
    """../shared beside the repository (the offline stand-ins for the downloads)."""
    if not (SHARED / "data").is_dir():
        pytest.skip(f"{SHARED}/data is not there: these tests need the offline data beside the repository")
    return SHARED


@pytest.fixture(scope="session")
def cifar_root(shared_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder holding cifar-10-batches-py/ with 2,000 real CIFAR-10 training images."""
    root = tmp_path_factory.mktemp("cifar")
    subprocess.run(
        [sys.executable, str(shared_dir / "tools" / "prepare_cifar10.py"), str(root), "--limit", "2000"],
        check=True,
        capture_output=True,
    )
    return root


@pytest.fixture(scope="session")
def cifar_arrays(cifar_root: Path):
    """(images (2000, 3, 32, 32) uint8, labels (2000,) int64) of the small CIFAR-10 copy."""
    from harness.data import read_cifar10_train

    return read_cifar10_train(cifar_root / "cifar-10-batches-py")


@pytest.fixture
def cifar_batches(cifar_arrays):
    """Four (search-train batch, search-valid batch) pairs of 16 augmented images, on the CPU."""
    from harness.data import SearchData

    images, labels = cifar_arrays
    data = SearchData(images[:128], labels[:128], batch_size=16, seed=0, device="cpu")
    return list(data.epoch(0))


@pytest.fixture(scope="session")
def synthetic_table() -> None:
    """The synthetic table (and the spaces' model lists), built once per test session in this
    process, before any sweep worker could race to build it."""
    from benchmarks.nasbench101.synthetic import synthetic_table

    synthetic_table()
