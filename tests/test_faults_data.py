"""Bad CIFAR-10 files (issue #13, items 1, 2, 5 and 7): no code runs from a pickle, contents are
checked, a misplaced file is named, and the data's identity is a checksum."""

from __future__ import annotations

import os
import pickle
from pathlib import Path

import numpy as np
import pytest

from benchmarks.errors import DataFileError
from harness.cifar10_files import data_fingerprint
from harness.data import CIFAR10_FOLDER, TRAIN_FILES, ensure_cifar10, read_cifar10_train


def write_batches(folder: Path, per_file: int = 6, **override) -> Path:
    """Five tiny training batch files in the official layout; `override` replaces fields of the first."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    for number, name in enumerate(TRAIN_FILES):
        batch = {
            "batch_label": name,
            "data": rng.integers(0, 256, (per_file, 3072), dtype=np.uint8),
            "labels": rng.integers(0, 10, per_file).tolist(),
            "filenames": [f"{i}.png" for i in range(per_file)],
        }
        if number == 0:
            batch.update(override)
        with open(folder / name, "wb") as f:
            pickle.dump(batch, f, protocol=2 if number % 2 else pickle.HIGHEST_PROTOCOL)
    meta = {"label_names": [str(i) for i in range(10)], "num_cases_per_batch": per_file, "num_vis": 3072}
    (folder / "batches.meta").write_bytes(pickle.dumps(meta))
    return folder


class Exploit:
    """A pickle payload that would create a file when unpickled by `pickle.load`."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_good_batches_are_read(tmp_path: Path) -> None:
    images, labels = read_cifar10_train(write_batches(tmp_path / CIFAR10_FOLDER))
    assert images.shape == (30, 3, 32, 32) and images.dtype == np.uint8
    assert labels.shape == (30,) and labels.dtype == np.int64


def test_a_pickle_that_runs_code_is_refused_and_runs_nothing(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    folder = write_batches(tmp_path / CIFAR10_FOLDER, data=Exploit(marker))
    with pytest.raises(DataFileError, match=r"data_batch_1 was refused: it refers to (posix|os)\.system"):
        read_cifar10_train(folder)
    assert not marker.exists()


@pytest.mark.parametrize(
    ("override", "problem"),
    [
        ({"data": np.zeros((6, 3072), dtype=np.float32)}, r"float32 array of shape \(6, 3072\), expected"),
        ({"data": np.zeros((6, 3000), dtype=np.uint8)}, r"uint8 array of shape \(6, 3000\)"),
        ({"labels": [0, 1, 2, 3, 4, 10]}, "label 10 of image 5 is not a class 0-9"),
        ({"labels": [0, 1, -1, 3, 4, 5]}, "label -1 of image 2"),
        ({"labels": [0, 1, 2]}, "has 6 images but 3 labels"),
        ({"labels": [0.5] * 6}, "'labels' is not a list of integers"),
        ({"data": np.zeros((2, 3072), dtype=np.uint8), "labels": [0, 1]}, "is short: 2 images where batches.meta"),
    ],
)
def test_bad_contents_name_the_file(tmp_path: Path, override: dict, problem: str) -> None:
    folder = write_batches(tmp_path / CIFAR10_FOLDER, **override)
    with pytest.raises(DataFileError, match=f"data_batch_1.*{problem}"):
        read_cifar10_train(folder)


def test_a_meta_file_that_runs_code_is_refused(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    folder = write_batches(tmp_path / CIFAR10_FOLDER)
    (folder / "batches.meta").write_bytes(pickle.dumps({"num_cases_per_batch": Exploit(marker)}))
    with pytest.raises(DataFileError, match=r"batches\.meta was refused"):
        read_cifar10_train(folder)
    assert not marker.exists()


def test_truncated_file_is_corrupt(tmp_path: Path) -> None:
    folder = write_batches(tmp_path / CIFAR10_FOLDER)
    path = folder / TRAIN_FILES[2]
    path.write_bytes(path.read_bytes()[:5000])
    with pytest.raises(DataFileError, match="data_batch_3 is corrupt or truncated"):
        read_cifar10_train(folder)


def test_data_may_name_the_batches_folder_itself(tmp_path: Path) -> None:
    folder = write_batches(tmp_path / CIFAR10_FOLDER)
    assert ensure_cifar10(folder) == folder == ensure_cifar10(tmp_path)
    assert not (folder / CIFAR10_FOLDER).exists()  # nothing downloaded into it


def test_batches_folder_that_is_a_file_is_named(tmp_path: Path) -> None:
    (tmp_path / CIFAR10_FOLDER).write_text("not a folder")
    with pytest.raises(DataFileError, match="cifar-10-batches-py is a file, not a folder"):
        ensure_cifar10(tmp_path)


def test_data_fingerprint_changes_with_one_pixel() -> None:
    images = np.zeros((4, 3, 32, 32), dtype=np.uint8)
    labels = np.zeros(4, dtype=np.int64)
    before = data_fingerprint(images, labels)
    images[3, 2, 31, 31] = 1
    assert data_fingerprint(images, labels) != before
    assert data_fingerprint(images, labels) == data_fingerprint(images.copy(), labels.copy())
