"""Reading one CIFAR-10 "python version" batch file safely, and the identity of the data read.

The batch files are Python pickles. They are read with an unpickler that admits only what a
CIFAR-10 batch holds (dicts, lists, strings, bytes, numbers and numpy arrays): a pickle that
names any other callable is refused before anything of it runs. The contents are then checked:
(N, 3072) uint8 images, as many integer labels in 0-9 as images, at most 10,000 per file and
as many as `batches.meta` states.
"""

from __future__ import annotations

import codecs
import hashlib
import pickle
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.errors import DataFileError

IMAGE_BYTES = 3 * 32 * 32
IMAGES_PER_FILE = 10_000
"""Images in each of the official files; smaller (cut-down) copies hold fewer, equally many per file."""
NUM_CLASSES = 10


def _numpy_reconstructors() -> dict[tuple[str, str], Any]:
    """The callables numpy's own pickles of arrays and dtypes name, under every module path
    numpy 1.x and 2.x write (taken from numpy itself, so no module is imported by name)."""
    reconstruct = np.ndarray((0,), dtype=np.uint8).__reduce__()[0]
    frombuffer = np.zeros(1, dtype=np.uint8).__reduce_ex__(5)[0]
    scalar = np.float64(0).__reduce__()[0]
    allowed: dict[tuple[str, str], Any] = {("_codecs", "encode"): codecs.encode}
    for core in ("numpy.core", "numpy._core"):
        allowed[(f"{core}.multiarray", "_reconstruct")] = reconstruct
        allowed[(f"{core}.multiarray", "scalar")] = scalar
        allowed[(f"{core}.numeric", "_frombuffer")] = frombuffer
    allowed[("numpy", "ndarray")] = np.ndarray
    allowed[("numpy", "dtype")] = np.dtype
    return allowed


_ALLOWED = _numpy_reconstructors()


class _BatchUnpickler(pickle.Unpickler):
    """An unpickler that resolves only numpy's array and dtype reconstructors; any other global
    (os.system, builtins.eval, a class of some package...) raises instead of being imported."""

    def find_class(self, module: str, name: str) -> Any:
        try:
            return _ALLOWED[(module, name)]
        except KeyError:
            raise pickle.UnpicklingError(f"it refers to {module}.{name}") from None


def unpickle_batch(path: Path) -> Any:
    """The object pickled in `path`, refusing anything but plain data and numpy arrays.

    Raises `DataFileError` naming the file: for a pickle that refers to any other code (nothing
    of it is run) and for a damaged or truncated file.
    """
    try:
        with open(path, "rb") as f:
            return _BatchUnpickler(f, encoding="latin1").load()
    except pickle.UnpicklingError as err:
        if str(err).startswith("it refers to "):
            raise DataFileError(
                f"CIFAR-10 file {path} was refused: {err}, which a CIFAR-10 batch never holds (nothing of it was "
                "run); replace the folder with the official CIFAR-10 python files"
            ) from None
        raise _corrupt(path, err) from None
    except Exception as err:  # only parsing runs here: a damaged pickle can fail in any way, all mean the same
        raise _corrupt(path, err) from None


def _corrupt(path: Path, err: BaseException) -> DataFileError:
    return DataFileError(
        f"CIFAR-10 file {path} is corrupt or truncated ({type(err).__name__}: {err}): delete "
        f"{path.parent} and download CIFAR-10 again"
    )


def _field(batch: Any, key: str) -> Any:
    if isinstance(batch, dict):
        for candidate in (key, key.encode("latin1")):
            if candidate in batch:
                return batch[candidate]
    return None


def read_batch(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """(images (N, 3, 32, 32) uint8, labels (N,) int64) of one batch file, checked.

    Raises `DataFileError` naming the file and what is wrong with it.
    """
    batch = unpickle_batch(path)
    data, labels = _field(batch, "data"), _field(batch, "labels")
    fix = f"delete {path.parent} and download CIFAR-10 again"
    if data is None or labels is None:
        raise DataFileError(f"CIFAR-10 file {path} is not a CIFAR-10 batch (no 'data' and 'labels'); {fix}")
    if not isinstance(data, np.ndarray) or data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != IMAGE_BYTES:
        what = f"{data.dtype} array of shape {data.shape}" if isinstance(data, np.ndarray) else type(data).__name__
        raise DataFileError(
            f"CIFAR-10 file {path}: 'data' is a {what}, expected (N, {IMAGE_BYTES}) uint8 pixels; {fix}"
        )
    labels = np.asarray(labels) if isinstance(labels, (list, tuple, np.ndarray)) else None
    if labels is None or labels.ndim != 1 or (labels.size and labels.dtype.kind not in "iu"):
        raise DataFileError(f"CIFAR-10 file {path}: 'labels' is not a list of integers; {fix}")
    if len(labels) != len(data):
        raise DataFileError(f"CIFAR-10 file {path} has {len(data)} images but {len(labels)} labels; {fix}")
    if len(data) > IMAGES_PER_FILE:
        raise DataFileError(f"CIFAR-10 file {path} has {len(data)} images, at most {IMAGES_PER_FILE} expected; {fix}")
    bad = np.flatnonzero((labels < 0) | (labels >= NUM_CLASSES))
    if len(bad):
        raise DataFileError(
            f"CIFAR-10 file {path}: label {labels[bad[0]]} of image {bad[0]} is not a class 0-{NUM_CLASSES - 1}; {fix}"
        )
    return data.reshape(-1, 3, 32, 32), labels.astype(np.int64)


def images_per_file(meta: Path) -> int | None:
    """The images per batch file that `batches.meta` states (`num_cases_per_batch`: 10,000 in the
    official copy); None without a meta file or a usable number in it. Read like a batch file."""
    if not meta.is_file():
        return None
    stated = _field(unpickle_batch(meta), "num_cases_per_batch")
    return stated if isinstance(stated, int) and 1 <= stated <= IMAGES_PER_FILE else None


def check_counts(paths: list[Path], counts: list[int], expected: int | None) -> None:
    """Raise `DataFileError` for a file with fewer images than `expected` (see `images_per_file`;
    one fewer is allowed, as a cut-down copy split into five may hold); None: not checked."""
    for path, count in zip(paths, counts, strict=True):
        if expected is not None and count < expected - 1:
            raise DataFileError(
                f"CIFAR-10 file {path} is short: {count} images where batches.meta states {expected} per file; "
                f"delete {path.parent} and download CIFAR-10 again"
            )


def data_fingerprint(images: np.ndarray, labels: np.ndarray) -> str:
    """A checksum (BLAKE2b, 16 hex digits) of the images and labels a run trains on: its data's
    identity, so that resuming it on other CIFAR-10 files is refused (about 0.1 s for 50,000 images)."""
    digest = hashlib.blake2b(digest_size=8)
    digest.update(np.ascontiguousarray(images, dtype=np.uint8).data)
    digest.update(np.ascontiguousarray(labels, dtype=np.int64).data)
    return digest.hexdigest()
