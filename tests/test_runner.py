"""The runner: row 0 before training, then one row per epoch with every column, resume after SIGKILL,
failures recorded."""

from __future__ import annotations

import dataclasses
import json
import os
import re
import signal
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

import optimizers
from benchmarks.errors import HarnessError, MissingFileError
from benchmarks.nasbench101.synthetic import write_synthetic
from harness import locks
from harness.checkpoint import CheckpointError
from harness.config import SettingError, make_config
from harness.measurements import declared_columns
from harness.results import CHECKPOINT_FILE, LOCK_FILE, TABLE_FILE, TIMING_COLUMNS, read_status, read_table
from harness.runner import RunFailed, run_search
from tests.runs import cli_args, start_cli, tiny_config

ONE_THREAD = {"OMP_NUM_THREADS": "1"}


def _comparable(frame: pd.DataFrame) -> pd.DataFrame:
    return frame.drop(columns=list(TIMING_COLUMNS)).reset_index(drop=True)


def test_quick_run_writes_every_column(cifar_root, tmp_path):
    config = tiny_config(cifar_root, tmp_path, "sdarts-adv", space=3)
    run_dir = run_search(config, progress=False, log=lambda _: None)
    frame = read_table(run_dir / TABLE_FILE)
    assert list(frame.columns) == list(declared_columns())
    assert frame["epoch"].tolist() == [0, 1, 2, 3]
    assert frame.loc[0, ["train_loss", "train_accuracy"]].isna().all()
    assert not frame.drop(columns=["stop_reason"]).loc[1:].isna().any().any()
    assert frame["stop_reason"].isna().all() and frame["selected"].tolist() == [False, False, False, True]
    assert (frame["hessian_eigenvalue"] > 0).all()
    assert (frame["benchmark"] == "synthetic").all()
    assert ((frame["test_error"] > 0) & (frame["test_error"] < 1)).all()
    saved = json.loads((run_dir / "config.json").read_text())
    assert np.allclose(frame["regret"], frame["test_error"] - saved["benchmark"]["best_test_error"])
    assert (frame["regret"] >= 0).all()
    assert saved["resolved"]["optimizer_config"]["attack_steps"] == 7
    assert saved["benchmark"]["synthetic"] is True
    assert read_status(run_dir)["state"] == "completed"


def test_killed_run_resumes_to_the_same_table(cifar_root, tmp_path):
    reference = tiny_config(cifar_root, tmp_path / "whole", hessian=True)
    assert start_cli(cli_args(reference), env=ONE_THREAD).wait(timeout=600) == 0
    expected = read_table(Path(reference.out) / reference.run_name / TABLE_FILE)

    interrupted = tiny_config(cifar_root, tmp_path / "killed", hessian=True)
    run_dir = Path(interrupted.out) / interrupted.run_name
    process = start_cli(cli_args(interrupted), env=ONE_THREAD)
    deadline = time.time() + 600
    while not (run_dir / CHECKPOINT_FILE).exists():
        assert process.poll() is None and time.time() < deadline, "the run ended before its first checkpoint"
        time.sleep(0.05)
    time.sleep(0.3)
    process.send_signal(signal.SIGKILL)
    process.wait()
    status = read_status(run_dir)
    assert status["state"] == "running" and status["epochs_completed"] < 3

    assert start_cli(cli_args(interrupted), env=ONE_THREAD).wait(timeout=600) == 0
    resumed = read_table(run_dir / TABLE_FILE)
    pd.testing.assert_frame_equal(_comparable(resumed), _comparable(expected))
    assert read_status(run_dir)["state"] == "completed"


@dataclasses.dataclass
class _NanConfig(optimizers.get("darts").Config):
    nan_from_epoch: int = 1


class _NanFromEpoch(optimizers.get("darts")):
    """DARTS whose training loss becomes NaN from epoch `nan_from_epoch` on."""

    Config = _NanConfig

    def new_epoch(self, epoch, epochs):
        super().new_epoch(epoch, epochs)
        self.poisoned = epoch >= self.config.nan_from_epoch

    def step(self, train_batch, valid_batch):
        stats = super().step(train_batch, valid_batch)
        return {**stats, "loss": stats["loss"] * float("nan")} if self.poisoned else stats


optimizers.register("test-nan-from-epoch")(_NanFromEpoch)


def test_nan_loss_stops_the_run_and_keeps_rows(cifar_root, tmp_path):
    config = tiny_config(cifar_root, tmp_path, "test-nan-from-epoch", hessian=False)
    with pytest.raises(RunFailed, match=r"non-finite training loss.*epoch 1.*Lower the learning rates"):
        run_search(config, progress=False, log=lambda _: None)
    run_dir = Path(config.out) / config.run_name
    status = read_status(run_dir)
    assert status["state"] == "failed" and status["failed_epoch"] == 1 and "nan" in status["error"]
    assert read_table(run_dir / TABLE_FILE)["epoch"].tolist() == [0, 1]


def test_a_run_that_completed_no_epoch_may_start_over_with_other_settings(cifar_root, tmp_path):
    diverging = tiny_config(
        cifar_root, tmp_path, "test-nan-from-epoch", hessian=False, optimizer_options={"nan_from_epoch": 0}
    )
    with pytest.raises(RunFailed, match="epoch 0"):
        run_search(diverging, progress=False, log=lambda _: None)
    fixed = dataclasses.replace(diverging, optimizer_options={"nan_from_epoch": 5})
    run_dir = run_search(fixed, progress=False, log=lambda _: None)
    assert read_status(run_dir)["state"] == "completed"
    assert json.loads((run_dir / "config.json").read_text())["resolved"]["optimizer_config"]["nan_from_epoch"] == 5


def test_a_checkpoint_whose_table_is_gone_is_kept_when_the_settings_change(cifar_root, tmp_path):
    config = tiny_config(cifar_root, tmp_path, epochs=1, hessian=False)
    run_dir = run_search(config, progress=False, log=lambda _: None)
    (run_dir / TABLE_FILE).unlink()
    checkpoint = (run_dir / CHECKPOINT_FILE).read_bytes()
    changed = dataclasses.replace(config, optimizer_options={**config.optimizer_options, "arch_lr": 1e-3})
    with pytest.raises(HarnessError, match="holds a run with a different configuration"):
        run_search(changed, progress=False, log=lambda _: None)
    assert (run_dir / CHECKPOINT_FILE).read_bytes() == checkpoint
    run_search(config, progress=False, log=lambda _: None)  # the same settings: the table comes back
    assert read_table(run_dir / TABLE_FILE)["epoch"].tolist() == [0, 1]


def test_a_complete_run_whose_config_is_gone_gets_it_back_from_the_same_settings_only(cifar_root, tmp_path):
    config = tiny_config(cifar_root, tmp_path, epochs=1, hessian=False)
    run_dir = run_search(config, progress=False, log=lambda _: None)
    table = read_table(run_dir / TABLE_FILE)
    (run_dir / "config.json").unlink()
    other = dataclasses.replace(config, optimizer_options={**config.optimizer_options, "arch_lr": 1e-3})
    with pytest.raises(CheckpointError, match="belongs to a different configuration"):
        run_search(other, progress=False, log=lambda _: None)
    assert not (run_dir / "config.json").exists()
    run_search(config, progress=False, log=lambda _: None)
    assert json.loads((run_dir / "config.json").read_text())["resolved"]["run"]["epochs"] == 1
    pd.testing.assert_frame_equal(_comparable(read_table(run_dir / TABLE_FILE)), _comparable(table))
    for name in ("config.json", CHECKPOINT_FILE):  # nothing to check a configuration against: left alone
        (run_dir / name).unlink()
    written = (run_dir / TABLE_FILE).read_bytes()
    lines: list[str] = []
    run_search(config, progress=False, log=lines.append)
    assert any("already complete" in line for line in lines) and (run_dir / TABLE_FILE).read_bytes() == written


@pytest.mark.parametrize(
    ("optimizer", "options", "message"),
    [
        ("darts", {"batch_size": 0}, "batch_size=0 must be at least 1"),
        ("sdarts-adv", {"attack_steps": 0, "arch_beta1": 1.0}, r"arch_beta1=1.0 must be in \[0, 1\).*attack_steps"),
        ("gdas", {"tau_min": 0.0}, "tau_min=0.0 must be > 0"),
        ("enas", {"eval_top": 0}, "eval_top=0 must be at least 1"),
    ],
)
def test_out_of_range_optimizer_settings_are_refused_before_anything_is_written(
    cifar_root, tmp_path, optimizer, options, message
):
    config = tiny_config(cifar_root, tmp_path, optimizer, optimizer_options=options)
    with pytest.raises(SettingError, match=message):
        run_search(config, progress=False, log=lambda _: None)
    assert not any(tmp_path.iterdir())


def test_an_out_folder_that_is_a_file_is_reported(cifar_root, tmp_path):
    (tmp_path / "results").write_text("not a folder")
    with pytest.raises(HarnessError, match=r"results is not a folder"):
        run_search(tiny_config(cifar_root, tmp_path / "results"), progress=False, log=lambda _: None)


def test_corrupt_and_mismatched_checkpoints_are_reported_not_overwritten(cifar_root, tmp_path):
    config = tiny_config(cifar_root, tmp_path, epochs=1, hessian=False)
    run_dir = run_search(config, progress=False, log=lambda _: None)
    checkpoint = run_dir / CHECKPOINT_FILE
    checkpoint.write_bytes(checkpoint.read_bytes()[:100])
    (run_dir / "status.json").unlink()
    damaged = checkpoint.read_bytes()
    with pytest.raises(CheckpointError, match="cannot be read"):
        run_search(config, progress=False, log=lambda _: None)
    assert checkpoint.read_bytes() == damaged

    with pytest.raises(Exception, match=r"different configuration.*channels"):
        run_search(
            tiny_config(cifar_root, tmp_path, epochs=1, hessian=False, channels=4), progress=False, log=lambda _: None
        )


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        (lambda state: state.pop("model"), r"is damaged \(it lacks model\): restore it, or delete it"),
        (lambda state: state.update(format=3), r"written by a newer harness \(format 3; this one reads 2\)"),
        (
            lambda state: state.update(model={k: v[:1] if v.dim() else v for k, v in state["model"].items()}),
            r"does not fit this run \(RuntimeError: Error\(s\) in loading state_dict for OneShotModel: size mismatch",
        ),
        (lambda state: state.update(records=os.system), "holds pickled Python objects, which are refused, never run"),
    ],
)
def test_a_damaged_or_hostile_checkpoint_is_one_line_and_left_as_it_is(cifar_root, tmp_path, damage, message):
    config = tiny_config(cifar_root, tmp_path, epochs=1, hessian=False)
    run_dir = run_search(config, progress=False, log=lambda _: None)
    (run_dir / "status.json").unlink()  # not complete: the next call resumes from the checkpoint
    checkpoint = run_dir / CHECKPOINT_FILE
    state = torch.load(checkpoint, weights_only=True)
    damage(state)
    torch.save(state, checkpoint)
    written = checkpoint.read_bytes()
    with pytest.raises(CheckpointError, match=message) as caught:
        run_search(config, progress=False, log=lambda _: None)
    assert "\n" not in str(caught.value) and "weights_only" not in str(caught.value)
    assert checkpoint.read_bytes() == written


def test_same_seed_same_numbers_other_seed_other_numbers(cifar_root, tmp_path):
    tables = []
    for out, seed in (("a", 0), ("b", 0), ("c", 1)):
        config = tiny_config(cifar_root, tmp_path / out, seed=seed, epochs=1, hessian=False)
        tables.append(_comparable(read_table(run_search(config, progress=False, log=lambda _: None) / TABLE_FILE)))
    pd.testing.assert_frame_equal(tables[0], tables[1])
    assert tables[0]["train_loss"][1] != tables[2]["train_loss"][1]


def test_a_run_directory_in_use_is_refused(cifar_root, tmp_path):
    config = tiny_config(cifar_root, tmp_path, epochs=1, hessian=False)
    run_dir = Path(config.out) / config.run_name
    run_dir.mkdir(parents=True)
    holder = locks.try_lock(run_dir / LOCK_FILE)
    try:
        with pytest.raises(HarnessError, match="in use by another process"):
            run_search(config, progress=False, log=lambda _: None)
    finally:
        holder.close()
    run_search(config, progress=False, log=lambda _: None)
    assert read_status(run_dir)["state"] == "completed"


def test_an_error_before_the_first_epoch_is_recorded(cifar_root, tmp_path):
    config = tiny_config(cifar_root, tmp_path, benchmark=str(tmp_path / "missing.tfrecord"), hessian=False)
    with pytest.raises(MissingFileError, match="fetch nasbench101"):
        run_search(config, progress=False, log=lambda _: None)
    status = read_status(Path(config.out) / config.run_name)
    assert status["state"] == "failed" and status["epochs_completed"] == 0 and "fetch" in status["error"]


def test_a_run_written_before_new_settings_existed_still_resumes(cifar_root, tmp_path):
    config = tiny_config(cifar_root, tmp_path, epochs=2, hessian=False)
    run_dir = run_search(config, progress=False, log=lambda _: None)
    saved = json.loads((run_dir / "config.json").read_text())
    for key in ("channels_last", "hessian_batches", "hessian_data", "bn_momentum", "variant"):
        del saved["resolved"]["run"][key]
    del saved["resolved"]["optimizer_config"]["reference_lr_schedule"]
    (run_dir / "config.json").write_text(json.dumps(saved))
    (run_dir / "status.json").unlink()
    run_search(config, progress=False, log=lambda _: None)
    assert read_status(run_dir)["state"] == "completed"


@pytest.mark.parametrize(
    "setting",
    [
        {"hessian_method": "exact"},
        {"hessian_batches": 0},
        {"epochs": 0},
        {"valid_batches": 0},
        {"device": "tpu"},
        {"bn_momentum": 5.0},
        {"cutout_prob": 1.5},
        {"cutout_length": 0},
        {"hessian_data": "random"},
        {"variant": "Has Space"},
    ],
)
def test_invalid_settings_are_refused_when_the_config_is_made(cifar_root, tmp_path, setting):
    with pytest.raises(SettingError, match=next(iter(setting))):
        tiny_config(cifar_root, tmp_path, **setting)


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"chanels": 4}, "make_config: unknown setting 'chanels'; did you mean channels"),
        ({"hessian": 1}, "make_config: hessian=1: expected a boolean, got 1"),
        ({"epochs": 2.5}, "make_config: epochs=2.5: expected an integer"),
        ({"plugins": "mine.py"}, "plugins='mine.py': expected JSON such as []"),
        ({"optimizer_options": {"arch_lrr": 1}}, "optimizer_options: unknown setting 'arch_lrr'; did you mean"),
        ({"optimizer_options": {"unrolled": "maybe"}}, "unrolled='maybe': expected a boolean"),
    ],
)
def test_make_config_checks_its_settings_as_set_does(overrides, message):
    with pytest.raises(HarnessError, match=re.escape(message)):
        make_config("darts", 1, **overrides)


def test_make_config_reads_strings_and_numbers_as_set_does():
    config = make_config(
        "darts",
        1,
        hessian="false",
        epochs=np.int64(3),
        cutout_prob=1,
        cutout=np.bool_(True),
        out=Path("somewhere") / "results",
        optimizer_options={"unrolled": "false", "arch_lr": "1e-3", "batch_size": np.int32(16)},
    )
    assert config.hessian is False and config.epochs == 3 and type(config.epochs) is int
    assert config.cutout is True and config.out == str(Path("somewhere") / "results")
    assert config.cutout_prob == 1.0 and type(config.cutout_prob) is float
    assert config.optimizer_options == {"unrolled": False, "arch_lr": 1e-3, "batch_size": 16}


def test_a_cifar10_subset_without_data_limit_is_named_in_the_log(cifar_root, tmp_path):
    lines: list[str] = []
    config = dataclasses.replace(tiny_config(cifar_root, tmp_path, epochs=1, hessian=False), data_limit=None)
    run_search(config, progress=False, log=lines.append)
    assert any(line.startswith(f"warning: {cifar_root} holds 2,000 CIFAR-10 training images") for line in lines)
    lines.clear()
    run_search(tiny_config(cifar_root, tmp_path / "limited", epochs=1, hessian=False), progress=False, log=lines.append)
    assert not any("CIFAR-10 training images" in line for line in lines)


def test_more_hessian_batches_than_the_data_holds_is_refused_before_training(cifar_root, tmp_path):
    config = tiny_config(cifar_root, tmp_path, hessian_data="fresh", hessian_batches=4)
    with pytest.raises(SettingError, match="hessian_batches=4"):
        run_search(config, progress=False, log=lambda _: None)
    run_dir = Path(config.out) / config.run_name
    assert read_status(run_dir)["epochs_completed"] == 0 and not (run_dir / TABLE_FILE).exists()


def test_a_table_without_all_models_of_the_space_is_refused(cifar_root, tmp_path):
    partial = tmp_path / "space1-only.tfrecord"
    write_synthetic(partial, spaces=(1,))
    config = tiny_config(cifar_root, tmp_path, space=3, benchmark=str(partial), hessian=False)
    with pytest.raises(HarnessError, match=r"lacks .* of the 55854 models of search space 3"):
        run_search(config, progress=False, log=lambda _: None)


@pytest.mark.parametrize(
    "name, options, revision",
    [
        ("gdas", {}, 2),
        ("darts", {}, 1),
        ("nasp", {}, 1),
        ("nasp", {"mixing": "one-hot"}, 2),
        ("random-ws", {}, 1),
        ("random-ws", {"sampled_ops_only": True}, 2),
        ("enas", {"sampled_ops_only": True}, 2),
    ],
)
def test_a_raised_optimizer_revision_sets_apart_runs_made_before_it(name, options, revision):
    """GDAS is at revision 2 (per-cell samples), NASP's one-hot mixing and sampled_ops_only at 2
    (zero gradients for the ops that did not run): such a run stored without a revision is another
    run; the others (revision 1) keep their identity, and so their digest."""
    import optimizers
    from harness.config import make_config
    from harness.identity import identity_differences, resolved_config, run_identity

    optimizer_class = optimizers.get(name)
    now = resolved_config(make_config(name, 1, optimizer_options=options), optimizer_class)
    assert now["optimizer_revision"] == revision
    before = {key: value for key, value in now.items() if key != "optimizer_revision"}
    differences = identity_differences(run_identity(before, optimizer_class), run_identity(now, optimizer_class))
    if revision == 1:
        assert differences == [] and run_identity(before, optimizer_class) == run_identity(now, optimizer_class)
    else:
        assert len(differences) == 1 and differences[0].startswith("optimizer_revision: 1 -> 2")


@pytest.mark.parametrize("setting", ["cuda_graphs", "channels_last", "cudnn_benchmark", "triton_kernels"])
def test_how_a_run_computes_is_not_part_of_its_identity(setting):
    """Settings that change how (not what) is computed may differ between a run and its resumption."""
    import optimizers
    from harness.config import make_config
    from harness.identity import resolved_config, run_identity

    optimizer_class = optimizers.get("darts")
    default = make_config("darts", 1)
    flipped = make_config("darts", 1, **{setting: not getattr(default, setting)})
    identities = [run_identity(resolved_config(c, optimizer_class), optimizer_class) for c in (default, flipped)]
    assert identities[0] == identities[1]


def test_cudnn_benchmark_and_triton_kernels_follow_the_run_on_cuda_only_and_are_restored_after_it():
    from benchmarks.nasbench1shot1 import kernels
    from harness.components import backend_settings
    from harness.config import make_config

    before = torch.backends.cudnn.benchmark
    try:
        torch.backends.cudnn.benchmark = False
        with backend_settings(make_config("darts", 1, triton_kernels=False), torch.device("cpu")):
            assert torch.backends.cudnn.benchmark is False and kernels._enabled
        with backend_settings(make_config("darts", 1), torch.device("cuda")):
            assert torch.backends.cudnn.benchmark is True and kernels._enabled
        assert torch.backends.cudnn.benchmark is False
        torch.backends.cudnn.benchmark = True
        neither = make_config("darts", 1, cudnn_benchmark=False, triton_kernels=False)
        with pytest.raises(RuntimeError), backend_settings(neither, torch.device("cuda")):
            assert torch.backends.cudnn.benchmark is False and not kernels._enabled
            raise RuntimeError("a failing run")
        assert torch.backends.cudnn.benchmark is True and kernels._enabled
    finally:
        torch.backends.cudnn.benchmark = before


def test_the_epoch_line_shows_the_hessian_only_where_one_was_computed():
    from harness.config import make_config
    from harness.runner import SearchRun

    run = SearchRun.__new__(SearchRun)  # only the line's formatting, no run directory
    run.config = make_config("darts", 1, epochs=3)
    row = {
        "run": "darts-s1-seed0", "epoch": 1, "test_error": 0.1, "regret": 0.01, "hessian_eigenvalue": float("nan"),
        "hessian_seconds": 0.0, "train_loss": 1.0, "train_accuracy": 0.5, "supernet_valid_accuracy": 0.4,
        "epoch_seconds": 2.0, "stop_reason": "",
    }  # fmt: skip
    assert run._summary(row).endswith("| supernet valid acc 40.0% | 2.0 s") and "Hessian" not in run._summary(row)
    row.update(hessian_eigenvalue=0.25, hessian_seconds=1.5)
    assert "| Hessian eig 0.25 |" in run._summary(row) and run._summary(row).endswith("2.0 s + 1.5 s Hessian")
    row.update(hessian_eigenvalue=float("nan"))
    assert "| Hessian eig n/a |" in run._summary(row) and "warning" not in run._summary(row)
    row.update(supernet_valid_loss=float("nan"))
    assert run._summary(row).endswith("may have diverged: check bn_momentum)")


def test_a_flipped_bit_in_a_checkpoint_is_reported_not_loaded(tmp_path):
    """torch.load does not check the CRC-32s torch.save writes; the harness does (and skips the
    members written without one). A member whose local header cannot be read, or marked a
    directory (either of which PyTorch's reader would read as a wrong tensor), is refused too."""
    import struct
    import zipfile

    from harness.checkpoint import load_checkpoint, save_checkpoint
    from harness.recovery import checkpoint_rows

    path = tmp_path / CHECKPOINT_FILE
    model = torch.nn.Linear(50, 20)
    save_checkpoint(path, "digest", 1, model, {}, {"rows": [{"epoch": 0}]})
    intact = path.read_bytes()
    assert torch.equal(load_checkpoint(path, "digest")["model"]["weight"], model.weight.detach())
    assert checkpoint_rows(path) == [{"epoch": 0}]
    with zipfile.ZipFile(path) as archive:
        member = max(archive.infolist(), key=lambda m: m.file_size)  # the weight's bytes
        directory = archive.start_dir
    name_length, extra_length = struct.unpack_from("<HH", intact, member.header_offset + 26)  # its local header
    damaged = {
        "data": (member.header_offset + 30 + name_length + extra_length + 17, 0x08),
        "directory attribute": (intact.index(b"PK\x01\x02", directory) + 38, 0x10),  # the first member's
        "local header": (member.header_offset + 27, 0x01),  # its file name's length
    }
    for what, (offset, bit) in damaged.items():
        data = bytearray(intact)
        data[offset] ^= bit
        path.write_bytes(bytes(data))
        with pytest.raises(CheckpointError, match=r"is damaged \(|cannot be read \(") as caught:
            load_checkpoint(path, "digest")
        assert "\n" not in str(caught.value) and "restore it, or delete it" in str(caught.value), what
        assert checkpoint_rows(path) is None, what  # no table is rebuilt from it either
        assert path.read_bytes() == bytes(data)
    if hasattr(torch.serialization, "set_crc32_options"):  # PyTorch >= 2.6: members without a CRC-32
        before = torch.serialization.get_crc32_options()
        try:
            torch.serialization.set_crc32_options(False)
            save_checkpoint(path, "digest", 1, model, {}, {"rows": []})
        finally:
            torch.serialization.set_crc32_options(before)
        assert load_checkpoint(path, "digest")["epochs_completed"] == 1
