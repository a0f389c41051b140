"""Per-machine caches stay honest (issue #13, item 4): a damaged cache is rebuilt with a warning
naming it, a killed build leaves no orphan behind, and two builders build once."""

from __future__ import annotations

import copy
import threading
import time
from pathlib import Path

import numpy as np
import pytest

import benchmarks.nasbench101.synthetic as synthetic_module
from benchmarks.cache import CacheDamaged, load_or_build
from benchmarks.nasbench1shot1.spaces import SEARCH_SPACES


def _load_text(path: Path) -> str:
    text = path.read_text()
    if not text.startswith("ok"):
        raise CacheDamaged("not ok")
    return text


def test_damaged_space_cache_is_rebuilt_with_a_warning(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    monkeypatch.setenv("NAS_HARNESS_CACHE", str(tmp_path))
    space = copy.copy(SEARCH_SPACES[1])
    space.__dict__.pop("_models", None)
    expected = space.hashes()
    space.__dict__.pop("_models")
    (cached,) = tmp_path.glob("nasbench1shot1-space1-models-*.npz")
    cached.write_bytes(b"PK\x03\x04 damaged")
    assert space.hashes() == expected
    assert f"warning: the search space 1 model list {cached} is damaged" in capsys.readouterr().err
    with np.load(cached) as arrays:
        assert len(arrays["hashes"]) == len(expected)


def test_damaged_synthetic_table_is_rebuilt(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    monkeypatch.setenv("NAS_HARNESS_CACHE", str(tmp_path))
    write = synthetic_module.write_synthetic
    monkeypatch.setattr(
        synthetic_module, "write_synthetic", lambda path, **kwargs: write(path, spaces=(1,), models=20, **kwargs)
    )
    first = synthetic_module.synthetic_table()
    path = Path(first.path)
    path.write_bytes(path.read_bytes()[:1000])
    again = synthetic_module.synthetic_table()
    assert again.num_models == 20 and again.synthetic
    assert f"warning: the synthetic NAS-Bench-101 table {path} is damaged" in capsys.readouterr().err
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".")) == []


def test_orphans_of_a_killed_build_are_removed(tmp_path: Path) -> None:
    path = tmp_path / "thing.npz"
    (tmp_path / ".thing.npz.x1y2.tmp").mkdir()
    (tmp_path / ".thing.npz.x1y2.tmp" / "half.tfrecord").write_bytes(b"half")
    (tmp_path / ".thing.npz.abcd.tmp").write_bytes(b"half")
    (tmp_path / ".other.npz.abcd.tmp").write_bytes(b"not ours")
    assert load_or_build(path, _load_text, lambda p: p.write_text("ok"), "a test cache") == "ok"
    assert sorted(p.name for p in tmp_path.iterdir()) == [".other.npz.abcd.tmp", "thing.npz"]


def test_two_builders_build_once(tmp_path: Path) -> None:
    path = tmp_path / "thing.txt"
    builds = []

    def build(target: Path) -> None:
        builds.append(threading.get_ident())
        time.sleep(0.3)
        target.write_text("ok built")

    results = []
    threads = [
        threading.Thread(target=lambda: results.append(load_or_build(path, _load_text, build, "a test cache")))
        for _ in range(2)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert results == ["ok built", "ok built"] and len(builds) == 1
