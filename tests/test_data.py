"""CIFAR-10 for the search (harness/data.py, SPEC §5): the 50/50 split, steps per epoch,
deterministic shuffled batches, the augmentation (crop 32 of a 4-pixel zero-padded image,
horizontal flip, CIFAR-10 normalisation) checked pixel for pixel against the original images,
the unaugmented validation batches, the fixed validation batches, and reading the batch files."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pytest
import torch

from benchmarks.errors import DataFileError, HarnessError, MissingFileError
from harness.data import SearchData, read_cifar10_train, search_split

MEAN = torch.tensor([0.49139968, 0.48215827, 0.44653124]).view(3, 1, 1)
STD = torch.tensor([0.24703233, 0.24348505, 0.26158768]).view(3, 1, 1)
"""The CIFAR-10 training-set channel mean and std (of pixel / 255), as the reference."""
IMAGES, BATCH = 128, 16
"""The small SearchData of most tests: 64 search-train and 64 search-valid images, batches of 16."""


@pytest.fixture(scope="module")
def small(cifar_arrays) -> tuple[np.ndarray, np.ndarray]:
    images, labels = cifar_arrays
    return images[:IMAGES], labels[:IMAGES]


def search_data(small, seed: int = 0, images: int = IMAGES, batch_size: int = BATCH) -> SearchData:
    return SearchData(small[0][:images], small[1][:images], batch_size=batch_size, seed=seed, device="cpu")


def pixels(batch_images: torch.Tensor) -> torch.Tensor:
    """Normalised float images back to uint8 pixels; asserts they were exact pixel values."""
    raw = (batch_images * STD + MEAN) * 255
    rounded = raw.round()
    assert (raw - rounded).abs().max() < 1e-3, "not pixel / 255 normalised with the CIFAR-10 mean and std"
    assert rounded.min() >= 0 and rounded.max() <= 255
    return rounded.to(torch.uint8)


def find_sources(batch, originals: np.ndarray, labels: np.ndarray) -> list[tuple[int, int, int, bool]]:
    """For each image of `batch`, (index into `originals`, row offset, column offset, flipped) of
    the first crop of the zero-padded original it equals exactly: offsets 0..8 of a 40x40 image,
    flipped horizontally or not. Fails if an image is no such crop of any original of its label."""
    padded = torch.from_numpy(np.pad(originals, ((0, 0), (0, 0), (4, 4), (4, 4))))
    found = []
    for image, label in zip(pixels(batch[0]), batch[1].tolist(), strict=True):
        candidates = np.flatnonzero(labels == label)
        match = next(
            (
                (int(candidates[hit]), dy, dx, flip)
                for dy in range(9)
                for dx in range(9)
                for flip in (False, True)
                for hit in torch.nonzero(
                    (padded[candidates, :, dy : dy + 32, dx : dx + 32] == (image.flip(-1) if flip else image))
                    .flatten(1)
                    .all(dim=1)
                ).flatten()
            ),
            None,
        )
        assert match is not None, "a batch image is no flipped or unflipped crop of an original"
        found.append(match)
    return found


def test_search_split_is_first_half_and_second_half():
    train, valid = search_split(50_000)
    np.testing.assert_array_equal(train, np.arange(25_000))
    np.testing.assert_array_equal(valid, np.arange(25_000, 50_000))
    train, valid = search_split(7)
    assert (train.tolist(), valid.tolist()) == ([0, 1, 2], [3, 4, 5, 6])


def test_search_data_holds_the_two_halves(small):
    images, labels = small
    data = search_data(small)
    assert (len(data.train), len(data.valid)) == (64, 64)
    torch.testing.assert_close(data.train.images[:, :, 4:36, 4:36], torch.from_numpy(images[:64]))
    torch.testing.assert_close(data.valid.images[:, :, 4:36, 4:36], torch.from_numpy(images[64:]))
    torch.testing.assert_close(data.valid.labels, torch.from_numpy(labels[64:]))


@pytest.mark.parametrize(("batch_size", "steps"), [(96, 261), (64, 391), (100, 250), (25_000, 1)])
def test_steps_per_epoch_of_the_full_training_set(batch_size, steps):
    """50,000 images (1x1 pixels: only the counts matter) give 25,000 search-train images."""
    data = SearchData(np.zeros((50_000, 3, 1, 1), np.uint8), np.zeros(50_000, np.int64), batch_size, 0, "cpu")
    assert (len(data.train), len(data.valid)) == (25_000, 25_000)
    assert data.steps_per_epoch == steps == -(-25_000 // batch_size)


def test_too_few_images_for_a_batch_are_refused(small):
    with pytest.raises(HarnessError, match="too few"):
        search_data(small, images=30)


@pytest.mark.parametrize(("images", "last_valid"), [(100, 2), (101, 3)])
def test_the_last_batch_of_an_epoch_is_smaller(small, images, last_valid):
    """50 search-train images in batches of 16: 4 steps, the last of 2 images. Search-valid is
    cut at the same places, so with an odd count its one extra image goes to the last batch."""
    data = search_data(small, images=images)
    assert data.steps_per_epoch == 4
    pairs = list(data.epoch(0))
    assert [len(train[1]) for train, _ in pairs] == [16, 16, 16, 2]
    assert [len(valid[1]) for _, valid in pairs] == [16, 16, 16, last_valid]
    assert all(train[0].shape[1:] == valid[0].shape[1:] == (3, 32, 32) for train, valid in pairs)


def test_batches_are_deterministic_per_seed_and_epoch(small):
    def flat(data: SearchData, epoch: int) -> list[torch.Tensor]:
        return [t for train, valid in data.epoch(epoch) for t in (*train, *valid)]

    first = flat(search_data(small, seed=3), 1)
    assert all(torch.equal(a, b) for a, b in zip(first, flat(search_data(small, seed=3), 1), strict=True))
    for other in (flat(search_data(small, seed=3), 2), flat(search_data(small, seed=4), 1)):
        images = [a for a in first if a.is_floating_point()]
        assert all(not torch.equal(a, b) for a, b in zip(images, [b for b in other if b.is_floating_point()]))


def test_epoch_batches_are_augmented_crops_of_each_half_once_per_epoch(small):
    """Each search-train image appears exactly once per epoch, as a crop of its zero-padded
    original (offsets 0..8), flipped or not, normalised; search-valid batches are augmented the
    same way (the reference's one augmented dataset) and drawn from the second half only."""
    images, labels = small
    data = search_data(small)
    train_sources, valid_sources = [], []
    for train, valid in data.epoch(0):
        train_sources += find_sources(train, images[:64], labels[:64])
        valid_sources += find_sources(valid, images[64:], labels[64:])
        torch.testing.assert_close(train[1], torch.from_numpy(labels[[s[0] for s in train_sources[-len(train[1]) :]]]))
    for sources in (train_sources, valid_sources):
        assert sorted(s[0] for s in sources) == list(range(64))  # a permutation of the half
        assert len({(dy, dx) for _, dy, dx, _ in sources}) > 20  # random offsets ...
        assert {flip for *_, flip in sources} == {False, True}  # ... and flips
    assert [s[0] for s in train_sources] != list(range(64))  # shuffled
    both = train_sources + valid_sources  # offsets span 0..8 in both directions (each missed w.p. ~1e-13)
    assert {dy for _, dy, _, _ in both} == {dx for _, _, dx, _ in both} == set(range(9))


def test_valid_batches_are_the_unaugmented_second_half_in_order(small):
    images, labels = small
    data = search_data(small)
    for size, sizes in ((None, [16] * 4), (24, [24, 24, 16])):
        batches = list(data.valid_batches(size))
        assert [len(b[1]) for b in batches] == sizes
        torch.testing.assert_close(torch.cat([pixels(b[0]) for b in batches]), torch.from_numpy(images[64:]))
        torch.testing.assert_close(torch.cat([b[1] for b in batches]), torch.from_numpy(labels[64:]))
    expected = (torch.from_numpy(images[64:80]).float() / 255 - MEAN) / STD
    torch.testing.assert_close(next(data.valid_batches())[0], expected)


def test_fixed_valid_batches_are_distinct_and_repeatable(small):
    images, labels = small
    data = search_data(small)
    batches = data.fixed_valid_batches(5, 3)
    assert len(batches) == 3 and all(len(b[1]) == BATCH for b in batches)
    sources = [find_sources(b, images[64:], labels[64:]) for b in batches]
    indices = [s[0] for batch in sources for s in batch]
    assert len(set(indices)) == 3 * BATCH  # no image in two batches
    assert {flip for batch in sources for *_, flip in batch} == {False, True}  # augmented
    again = data.fixed_valid_batches(5, 3)
    assert all(torch.equal(a, b) for pair in zip(batches, again, strict=True) for a, b in zip(*pair, strict=True))
    assert all(torch.equal(a[0], b[0]) for a, b in zip(batches, search_data(small).fixed_valid_batches(5, 3)))
    assert not torch.equal(data.fixed_valid_batches(6, 1)[0][0], batches[0][0])
    with pytest.raises(HarnessError):
        data.fixed_valid_batches(5, 5)  # 64 search-valid images hold 4 batches of 16


def write_batches(folder: Path, counts=(3, 2, 4, 1, 2)) -> tuple[np.ndarray, np.ndarray]:
    """A fake cifar-10-batches-py: data_batch_1..5 with `counts` random images; returns them all."""
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (sum(counts), 3, 32, 32), dtype=np.uint8)
    labels = rng.integers(0, 10, sum(counts))
    start = 0
    for number, count in enumerate(counts, 1):
        part = slice(start, start + count)
        batch = {
            "batch_label": f"training batch {number} of 5",
            "labels": labels[part].tolist(),
            "data": images[part].reshape(count, 3072),
            "filenames": [f"{i}.png" for i in range(count)],
        }
        (folder / f"data_batch_{number}").write_bytes(pickle.dumps(batch, protocol=2))
        start += count
    (folder / "test_batch").write_bytes(b"not read")
    return images, labels


def test_read_cifar10_train_concatenates_the_five_files_in_order(tmp_path):
    images, labels = write_batches(tmp_path / "cifar-10-batches-py")
    got_images, got_labels = read_cifar10_train(tmp_path / "cifar-10-batches-py")
    assert (got_images.dtype, got_labels.dtype) == (np.uint8, np.int64)
    np.testing.assert_array_equal(got_images, images)
    np.testing.assert_array_equal(got_labels, labels)


@pytest.mark.parametrize("keep", [0.0, 0.5, 0.99])
def test_a_truncated_batch_file_is_a_data_file_error_naming_it(tmp_path, keep):
    folder = tmp_path / "cifar-10-batches-py"
    write_batches(folder)
    path = folder / "data_batch_3"
    raw = path.read_bytes()
    path.write_bytes(raw[: int(keep * len(raw))])
    with pytest.raises(DataFileError, match="data_batch_3") as error:
        read_cifar10_train(folder)
    assert str(path) in str(error.value)


def test_a_batch_file_with_fewer_labels_than_images_is_a_data_file_error(tmp_path):
    folder = tmp_path / "cifar-10-batches-py"
    write_batches(folder)
    path = folder / "data_batch_2"
    batch = pickle.loads(path.read_bytes())
    path.write_bytes(pickle.dumps({**batch, "labels": batch["labels"][:-1]}))
    with pytest.raises(DataFileError, match="data_batch_2"):
        read_cifar10_train(folder)


def test_a_missing_batch_file_is_a_missing_file_error_naming_it(tmp_path):
    folder = tmp_path / "cifar-10-batches-py"
    write_batches(folder)
    (folder / "data_batch_4").unlink()
    with pytest.raises(MissingFileError, match="data_batch_4") as error:
        read_cifar10_train(folder)
    assert str(folder / "data_batch_4") in str(error.value)


# --- reference data options: the split, ENAS's normalisation, cutout ---------------------------


def test_train_portion_splits_as_the_reference():
    """ENAS's reference trains on images 0-44,999 and rewards on the last 5,000 (portion 0.9)."""
    train, valid = search_split(50_000, 0.9)
    assert (train[-1], valid[0], len(valid)) == (44_999, 45_000, 5_000)
    data = SearchData(
        np.zeros((50_000, 3, 1, 1), np.uint8), np.zeros(50_000, np.int64), 64, 0, "cpu", train_portion=0.9
    )
    assert (len(data.train), len(data.valid), data.steps_per_epoch) == (45_000, 5_000, 704)


def test_a_shorter_search_valid_is_cycled_in_freshly_shuffled_passes(small):
    data = SearchData(*small, batch_size=16, seed=0, device="cpu", train_portion=0.75)  # 96 / 32 images
    images, labels = small
    valid_sources = [s[0] for _, valid in data.epoch(0) for s in find_sources(valid, images[96:], labels[96:])]
    assert len(valid_sources) == 96  # 6 steps, every search-valid batch full
    passes = [valid_sources[i : i + 32] for i in (0, 32, 64)]
    assert all(sorted(p) == list(range(32)) for p in passes)
    assert passes[0] != passes[1]


def test_enas_normalisation(small):
    data = SearchData(*small, batch_size=16, seed=0, device="cpu", normalization="enas")
    mean, std = (
        torch.tensor([0.4914, 0.4822, 0.4465]).view(3, 1, 1),
        torch.tensor([0.2023, 0.1994, 0.2010]).view(3, 1, 1),
    )
    torch.testing.assert_close(
        next(data.valid_batches())[0], (torch.from_numpy(small[0][64:80]).float() / 255 - mean) / std
    )


def test_cutout_probability_rises_linearly_and_squares_are_cut_after_normalisation(small):
    from harness.data import cutout_probability

    assert [cutout_probability(e, 100, 1.0) for e in (0, 33, 99)] == [0.0, 1 / 3, 1.0]
    plain = search_data(small)
    cut = SearchData(*small, batch_size=16, seed=0, device="cpu", cutout_length=16, epochs=5)
    assert cut.cutout(4) == (16, 1.0) and plain.cutout(4) is None
    # epoch 0: probability 0, the same crops and flips as without cutout (cutout has its own random stream)
    for (a, b), (c, d) in zip(plain.epoch(0), cut.epoch(0), strict=True):
        torch.testing.assert_close(a[0], c[0])
        torch.testing.assert_close(b[0], d[0])
    # last epoch: probability 1, every image has a zeroed square of at most 16 x 16 (clipped at the borders)
    for (train, valid), (train_plain, _) in zip(cut.epoch(4), plain.epoch(4), strict=True):
        for image, original in zip(train[0], train_plain[0], strict=True):
            zeroed = (image == 0).all(dim=0) & (original != 0).any(dim=0)
            rows, cols = zeroed.any(dim=1).nonzero().flatten(), zeroed.any(dim=0).nonzero().flatten()
            assert 0 < len(rows) <= 16 and 0 < len(cols) <= 16
            assert zeroed[rows.min() : rows.max() + 1, cols.min() : cols.max() + 1].all()  # a rectangle
        assert (valid[0] == 0).all(dim=1).flatten(1).any(dim=1).all()  # search-valid too


def test_search_data_takes_the_optimizers_split_and_normalisation_and_the_runs_cutout(small):
    from harness.components import search_data as run_data
    from harness.config import make_config

    enas = run_data(make_config("enas", 1, cutout=True, epochs=5), 16, torch.device("cpu"), *small)
    assert (len(enas.train), len(enas.valid), enas.cutout(4)) == (115, 13, (16, 1.0))  # floor(0.9 x 128)
    torch.testing.assert_close(enas.train._std.flatten(), torch.tensor([0.2023, 0.1994, 0.2010]))
    darts = run_data(make_config("darts", 1), 16, torch.device("cpu"), *small)
    assert (len(darts.train), len(darts.valid), darts.cutout(4)) == (64, 64, None)
