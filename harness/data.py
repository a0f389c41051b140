"""CIFAR-10 for the search: the "python version" files, the 50/50 split, GPU-resident batches.

The whole split lives on the run's device as uint8; batches are gathered and augmented there
(random crop 32 with 4 pixels of zero padding, horizontal flip, normalisation), deterministic
for a (seed, epoch) pair, so a resumed run sees the same batches.
"""

from __future__ import annotations

import os
import pickle
import tarfile
import tempfile
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from benchmarks.errors import DataFileError, HarnessError, MissingFileError

CIFAR10_URL = "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz"
CIFAR10_MD5 = "c58f30108f718f92721af3b95e74349a"
CIFAR10_BYTES = 170_498_071
CIFAR10_FOLDER = "cifar-10-batches-py"
TRAIN_FILES = [f"data_batch_{i}" for i in range(1, 6)]
CIFAR10_MEAN = (0.49139968, 0.48215827, 0.44653124)
CIFAR10_STD = (0.24703233, 0.24348505, 0.26158768)
PADDING = 4


def ensure_cifar10(root: str | Path) -> Path:
    """The `cifar-10-batches-py` folder under `root`, downloaded and unpacked there if missing.

    An existing folder is used as is (no checksum: pre-extracted copies may differ from the
    official archive); the downloaded archive is checked for size and MD5, and unpacked into a
    temporary folder that is renamed into place, so an interrupted unpacking leaves nothing.
    """
    folder = Path(root) / CIFAR10_FOLDER
    if folder.is_dir():
        return folder
    from harness.download import download as fetch

    archive = fetch(CIFAR10_URL, Path(root) / "cifar-10-python.tar.gz", expected_size=CIFAR10_BYTES, md5=CIFAR10_MD5)
    with tempfile.TemporaryDirectory(dir=root, prefix=".cifar-10-unpacking-") as tmp:
        with tarfile.open(archive, "r:gz") as tar:
            members = [m for m in tar.getmembers() if m.isfile() and Path(m.name).parent.name == CIFAR10_FOLDER]
            for member in members:
                member.name = f"{CIFAR10_FOLDER}/{Path(member.name).name}"
            tar.extractall(tmp, members=members)
        os.replace(Path(tmp) / CIFAR10_FOLDER, folder)
    return folder


def read_cifar10_train(folder: str | Path) -> tuple[np.ndarray, np.ndarray]:
    """The 50,000 training images (N, 3, 32, 32) uint8 and labels (N,) int64 of a
    `cifar-10-batches-py` folder, in file order."""
    folder = Path(folder)
    images, labels = [], []
    for name in TRAIN_FILES:
        path = folder / name
        if not path.is_file():
            raise MissingFileError(f"CIFAR-10 file {path} is missing: delete {folder} and download CIFAR-10 again")
        try:
            with open(path, "rb") as f:
                batch = pickle.load(f, encoding="latin1")
            data = np.asarray(batch["data"], dtype=np.uint8).reshape(-1, 3, 32, 32)
            batch_labels = np.asarray(batch["labels"], dtype=np.int64)
        except Exception as err:  # a damaged pickle can fail in any way: all mean the same to the user
            raise DataFileError(
                f"CIFAR-10 file {path} is corrupt or truncated ({err!r}): delete {folder} and download it again"
            ) from err
        if len(data) != len(batch_labels):
            raise DataFileError(f"CIFAR-10 file {path} has {len(data)} images but {len(batch_labels)} labels")
        images.append(data)
        labels.append(batch_labels)
    return np.concatenate(images), np.concatenate(labels)


def search_split(num_images: int) -> tuple[np.ndarray, np.ndarray]:
    """Indices of search-train (the first half) and search-valid (the rest), as the reference."""
    split = num_images // 2
    return np.arange(split), np.arange(split, num_images)


class ImageSplit:
    """One split on a device, as zero-padded uint8 (N, 3, 40, 40) images and (N,) labels."""

    def __init__(
        self,
        images: np.ndarray,
        labels: np.ndarray,
        device: torch.device | str,
        memory_format: torch.memory_format = torch.contiguous_format,
    ):
        self.memory_format = memory_format
        padded = np.pad(images, ((0, 0), (0, 0), (PADDING, PADDING), (PADDING, PADDING)))
        self.images = torch.from_numpy(padded).to(device)
        self.labels = torch.from_numpy(labels).to(device)
        self.device = self.images.device
        self._mean = torch.tensor(CIFAR10_MEAN, device=self.device).view(1, 3, 1, 1)
        self._std = torch.tensor(CIFAR10_STD, device=self.device).view(1, 3, 1, 1)

    def __len__(self) -> int:
        return len(self.labels)

    def batch(self, indices: Tensor, generator: torch.Generator | None) -> tuple[Tensor, Tensor]:
        """Images (B, 3, 32, 32) float32 normalised, labels (B,); augmented when a generator is given."""
        size = 32
        count = len(indices)
        arange = torch.arange(size, device=self.device)
        if generator is None:
            offsets = torch.full((count, 2), PADDING, device=self.device)
            flips = torch.zeros(count, dtype=torch.bool, device=self.device)
        else:
            offsets = torch.randint(0, 2 * PADDING + 1, (count, 2), generator=generator, device=self.device)
            flips = torch.rand(count, generator=generator, device=self.device) < 0.5
        rows = offsets[:, :1] + arange
        cols = offsets[:, 1:] + torch.where(flips[:, None], arange.flip(0), arange)
        crops = self.images[
            indices[:, None, None, None],
            torch.arange(3, device=self.device)[None, :, None, None],
            rows[:, None, :, None],
            cols[:, None, None, :],
        ]
        images = ((crops.float().div_(255) - self._mean) / self._std).contiguous(memory_format=self.memory_format)
        return images, self.labels[indices]


class SearchData:
    """Search-train and search-valid splits with per-epoch shuffled, augmented batches."""

    def __init__(
        self,
        images: np.ndarray,
        labels: np.ndarray,
        batch_size: int,
        seed: int,
        device: torch.device | str,
        memory_format: torch.memory_format = torch.contiguous_format,
    ):
        """memory_format: layout of the batches (channels_last for NHWC models)."""
        train_idx, valid_idx = search_split(len(images))
        if len(train_idx) < batch_size:
            raise HarnessError(
                f"{len(images)} images are too few for search-train and search-valid batches of {batch_size}: "
                f"use at least {2 * batch_size} images (data_limit) or a smaller batch_size"
            )
        self.train = ImageSplit(images[train_idx], labels[train_idx], device, memory_format)
        self.valid = ImageSplit(images[valid_idx], labels[valid_idx], device, memory_format)
        self.batch_size = batch_size
        self.seed = seed
        self.device = self.train.device

    @property
    def steps_per_epoch(self) -> int:
        """Batches per epoch: ceil(len(search-train) / batch_size), the last one possibly smaller."""
        return -(-len(self.train) // self.batch_size)

    def _generator(self, epoch: int, stream: int) -> torch.Generator:
        generator = torch.Generator(device=self.device)
        generator.manual_seed((self.seed * 1_000_003 + epoch) * 4 + stream)
        return generator

    def epoch(self, epoch: int) -> Iterator[tuple[tuple[Tensor, Tensor], tuple[Tensor, Tensor]]]:
        """The (search-train batch, search-valid batch) pairs of epoch `epoch`, augmented."""
        shuffle, augment = self._generator(epoch, 0), self._generator(epoch, 1)
        train_order = torch.randperm(len(self.train), generator=shuffle, device=self.device)
        valid_order = torch.randperm(len(self.valid), generator=shuffle, device=self.device)
        for step in range(self.steps_per_epoch):
            chunk = slice(step * self.batch_size, (step + 1) * self.batch_size)
            yield self.train.batch(train_order[chunk], augment), self.valid.batch(valid_order[chunk], augment)

    def valid_batches(self, batch_size: int | None = None) -> Iterator[tuple[Tensor, Tensor]]:
        """All of search-valid in order, without augmentation."""
        size = batch_size or self.batch_size
        for start in range(0, len(self.valid), size):
            yield self.valid.batch(torch.arange(start, min(start + size, len(self.valid)), device=self.device), None)

    def fixed_valid_batches(self, epoch: int, count: int = 1) -> list[tuple[Tensor, Tensor]]:
        """`count` distinct augmented search-valid batches drawn for `epoch` (the Hessian's, and
        the one ENAS scores its samples on); the same for the same (seed, epoch)."""
        size = self.batch_size
        if not 1 <= count <= len(self.valid) // size:
            raise HarnessError(
                f"{count} search-valid batches of {size} asked for, but search-valid holds {len(self.valid) // size}"
            )
        generator = self._generator(epoch, 2)
        order = torch.randperm(len(self.valid), generator=generator, device=self.device)
        return [self.valid.batch(order[i * size : (i + 1) * size], generator) for i in range(count)]
