"""CIFAR-10 for the search: the "python version" files, the 50/50 split, GPU-resident batches.

The whole split lives on the run's device as uint8; batches are gathered and augmented there
(random crop 32 with 4 pixels of zero padding, horizontal flip, normalisation), deterministic
for a (seed, epoch) pair, so a resumed run sees the same batches.
"""

from __future__ import annotations

import os
import tarfile
import tempfile
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from benchmarks.errors import DataFileError, HarnessError, MissingFileError
from harness.cifar10_files import check_counts, images_per_file, read_batch

CIFAR10_URL = "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz"
CIFAR10_MD5 = "c58f30108f718f92721af3b95e74349a"
CIFAR10_BYTES = 170_498_071
CIFAR10_FOLDER = "cifar-10-batches-py"
TRAIN_FILES = [f"data_batch_{i}" for i in range(1, 6)]
CIFAR10_MEAN = (0.49139968, 0.48215827, 0.44653124)
CIFAR10_STD = (0.24703233, 0.24348505, 0.26158768)
PADDING = 4


def ensure_cifar10(root: str | Path) -> Path:
    """The `cifar-10-batches-py` folder under `root` (or `root` itself when it holds the batch
    files), downloaded and unpacked there if missing.

    An existing folder is used as is (no checksum: pre-extracted copies may differ from the
    official archive); the downloaded archive is checked for size and MD5, and unpacked into a
    temporary folder that is renamed into place, so an interrupted unpacking leaves nothing.
    """
    if (Path(root) / TRAIN_FILES[0]).is_file():  # --data named the batches folder itself
        return Path(root)
    folder = Path(root) / CIFAR10_FOLDER
    if folder.is_dir():
        return folder
    if folder.exists():
        raise DataFileError(
            f"{folder} is a file, not a folder: move it away (CIFAR-10 is then downloaded there) or give --data "
            f"a folder holding the {CIFAR10_FOLDER}/ folder"
        )
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


CIFAR10_TRAIN_IMAGES = 50_000
"""The training images of the official CIFAR-10 files."""


def read_cifar10_train(folder: str | Path) -> tuple[np.ndarray, np.ndarray]:
    """The training images (N, 3, 32, 32) uint8 and labels (N,) int64 of a `cifar-10-batches-py`
    folder, in file order (N = `CIFAR10_TRAIN_IMAGES` for the official files).

    Each file is unpickled without running any code and checked (see `harness.cifar10_files`);
    raises `MissingFileError` or `DataFileError` naming the file.
    """
    folder = Path(folder)
    paths = [folder / name for name in TRAIN_FILES]
    batches = []
    for path in paths:
        if not path.is_file():
            raise MissingFileError(f"CIFAR-10 file {path} is missing: delete {folder} and download CIFAR-10 again")
        batches.append(read_batch(path))
    check_counts(paths, [len(labels) for _, labels in batches], images_per_file(folder / "batches.meta"))
    return np.concatenate([images for images, _ in batches]), np.concatenate([labels for _, labels in batches])


ENAS_MEAN = (0.4914, 0.4822, 0.4465)
ENAS_STD = (0.2023, 0.1994, 0.2010)
"""The normalisation of NAS-Bench-1Shot1's ENAS (optimizers/enas/data.py)."""
NORMALIZATIONS = {"cifar10": (CIFAR10_MEAN, CIFAR10_STD), "enas": (ENAS_MEAN, ENAS_STD)}
"""name -> (mean, std) per channel: "cifar10" is DARTS's (every other reference optimizer)."""


def search_split(num_images: int, train_portion: float = 0.5) -> tuple[np.ndarray, np.ndarray]:
    """Indices of search-train (the first floor(train_portion * N) images) and search-valid (the
    rest), as the reference (`--train_portion` 0.5; ENAS: the last 5,000 of 50,000, i.e. 0.9)."""
    split = int(np.floor(train_portion * num_images))
    return np.arange(split), np.arange(split, num_images)


def cutout_probability(epoch: int, epochs: int, prob: float) -> float:
    """The reference's cutout probability in epoch `epoch` (0-based): rising linearly from 0 to
    `prob` in the last epoch (`args.cutout_prob * epoch / (args.epochs - 1)`)."""
    return prob * epoch / max(epochs - 1, 1)


class ImageSplit:
    """One split on a device, as zero-padded uint8 (N, 3, 40, 40) images and (N,) labels."""

    def __init__(
        self,
        images: np.ndarray,
        labels: np.ndarray,
        device: torch.device | str,
        memory_format: torch.memory_format = torch.contiguous_format,
        normalization: str = "cifar10",
    ):
        """normalization: a key of `NORMALIZATIONS`."""
        self.memory_format = memory_format
        padded = np.pad(images, ((0, 0), (0, 0), (PADDING, PADDING), (PADDING, PADDING)))
        self.images = torch.from_numpy(padded).to(device)
        self.labels = torch.from_numpy(labels).to(device)
        self.device = self.images.device
        mean, std = NORMALIZATIONS[normalization]
        self._mean = torch.tensor(mean, device=self.device).view(1, 3, 1, 1)
        self._std = torch.tensor(std, device=self.device).view(1, 3, 1, 1)

    def __len__(self) -> int:
        return len(self.labels)

    def batch(
        self,
        indices: Tensor,
        generator: torch.Generator | None,
        cutout: tuple[int, float] | None = None,
        cutout_generator: torch.Generator | None = None,
    ) -> tuple[Tensor, Tensor]:
        """Images (B, 3, 32, 32) float32 normalised, labels (B,); augmented when a generator is given.

        cutout: (length, probability): with that probability per image, a length x length square
        centred at a uniformly random pixel (clipped at the borders) is set to 0 after
        normalisation, as the reference's `Cutout` (optimizers/darts/utils.py) does, drawn from
        `cutout_generator` (so the crops and flips are those without cutout).
        """
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
        images = (crops.float().div_(255) - self._mean) / self._std
        if cutout is not None and cutout_generator is not None:
            images = images * cutout_mask(count, size, cutout[0], cutout[1], cutout_generator, self.device)
        return images.contiguous(memory_format=self.memory_format), self.labels[indices]


def cutout_mask(
    count: int, size: int, length: int, probability: float, generator: torch.Generator, device: torch.device
) -> Tensor:
    """(count, 1, size, size) float mask: 0 inside each image's cutout square, 1 elsewhere."""
    applied = torch.rand(count, generator=generator, device=device) < probability
    centres = torch.randint(0, size, (count, 2), generator=generator, device=device)
    low, high = (centres - length // 2).clamp(0, size), (centres + length // 2).clamp(0, size)
    pixels = torch.arange(size, device=device)
    inside = (pixels >= low[:, :, None]) & (pixels < high[:, :, None])  # (count, 2, size): rows, cols
    square = inside[:, 0, :, None] & inside[:, 1, None, :] & applied[:, None, None]
    return (~square).float()[:, None]


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
        train_portion: float = 0.5,
        normalization: str = "cifar10",
        cutout_length: int = 0,
        cutout_prob: float = 1.0,
        epochs: int = 1,
    ):
        """memory_format: layout of the batches (channels_last for NHWC models); train_portion:
        see `search_split`; normalization: a key of `NORMALIZATIONS`; cutout_length > 0: cutout
        on every augmented batch (both splits, as the reference), with probability
        `cutout_probability(epoch, epochs, cutout_prob)`."""
        train_idx, valid_idx = search_split(len(images), train_portion)
        if len(train_idx) < batch_size:
            raise HarnessError(
                f"{len(images)} images are too few for search-train and search-valid batches of {batch_size}: "
                f"use at least {2 * batch_size} images (data_limit) or a smaller batch_size"
            )
        if len(valid_idx) == 0:
            raise HarnessError(f"train_portion={train_portion} leaves no search-valid images of {len(images)}")
        self.train = ImageSplit(images[train_idx], labels[train_idx], device, memory_format, normalization)
        self.valid = ImageSplit(images[valid_idx], labels[valid_idx], device, memory_format, normalization)
        self.batch_size = batch_size
        self.seed = seed
        self.device = self.train.device
        self.cutout_length, self.cutout_prob, self.epochs = cutout_length, cutout_prob, epochs

    def cutout(self, epoch: int) -> tuple[int, float] | None:
        """(length, probability) of the cutout in epoch `epoch`, or None without cutout."""
        if self.cutout_length <= 0:
            return None
        return self.cutout_length, cutout_probability(epoch, self.epochs, self.cutout_prob)

    @property
    def steps_per_epoch(self) -> int:
        """Batches per epoch: ceil(len(search-train) / batch_size), the last one possibly smaller."""
        return -(-len(self.train) // self.batch_size)

    def _generator(self, epoch: int, stream: int) -> torch.Generator:
        generator = torch.Generator(device=self.device)
        generator.manual_seed((self.seed * 1_000_003 + epoch) * 4 + stream)
        return generator

    def epoch(self, epoch: int) -> Iterator[tuple[tuple[Tensor, Tensor], tuple[Tensor, Tensor]]]:
        """The (search-train batch, search-valid batch) pairs of epoch `epoch`, augmented.

        Search-valid batches come from a shuffled pass over search-valid; if search-train has
        more batches, a freshly shuffled pass follows (the reference restarts its loader)."""
        shuffle, augment, holes = self._generator(epoch, 0), self._generator(epoch, 1), self._generator(epoch, 3)
        cutout = self.cutout(epoch)
        train_order = torch.randperm(len(self.train), generator=shuffle, device=self.device)
        valid_chunks = self._valid_chunks(shuffle)
        for step in range(self.steps_per_epoch):
            chunk = slice(step * self.batch_size, (step + 1) * self.batch_size)
            train_batch = self.train.batch(train_order[chunk], augment, cutout, holes)
            yield train_batch, self.valid.batch(next(valid_chunks), augment, cutout, holes)

    def _valid_chunks(self, shuffle: torch.Generator) -> Iterator[Tensor]:
        """Index chunks of search-valid, one shuffled pass after another."""
        while True:
            order = torch.randperm(len(self.valid), generator=shuffle, device=self.device)
            for start in range(0, len(self.valid), self.batch_size):
                yield order[start : start + self.batch_size]

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
        cutout, holes = self.cutout(epoch), self._generator(epoch, 3)
        return [self.valid.batch(order[i * size : (i + 1) * size], generator, cutout, holes) for i in range(count)]
