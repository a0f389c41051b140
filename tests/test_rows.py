"""What a row is: row 0 before training, the Hessian's batch, the alphas beside the table,
feedback and early stops, variants side by side, and older tables read as the current one."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import ClassVar

import numpy as np
import pandas as pd
import pytest
import torch

import optimizers
from benchmarks.nasbench1shot1 import get_search_space
from harness import cli
from harness.components import build_model
from harness.config import optimizer_config
from harness.data import SearchData
from harness.measurements import curvature, declared_columns, schema_markdown
from harness.records import alpha_tensor_names
from harness.results import ALPHAS_FILE, CHECKPOINT_FILE, TABLE_FILE, collect, is_complete, read_status, read_table
from harness.runner import _last_valid_batch, run_search
from harness.schema import SCHEMA_VERSION, upgrade_table
from optimizers.base import StopRequest
from tests.runs import REPO, cli_args, tiny_config


def quiet_run(config):
    return run_search(config, progress=False, log=lambda _: None)


def test_row_zero_is_the_initial_architecture_and_the_alphas_table_round_trips(cifar_root, tmp_path):
    config = tiny_config(cifar_root, tmp_path, epochs=2, hessian=False)
    run_dir = quiet_run(config)
    table = read_table(run_dir / TABLE_FILE)
    alphas = pd.read_parquet(run_dir / ALPHAS_FILE)
    assert sorted(alphas["epoch"].unique()) == [0, 1, 2]

    torch.manual_seed(config.seed)  # the runner's order: seed, then model, then optimizer
    space, darts = get_search_space(config.space), optimizers.get("darts")
    fresh = darts(space, build_model(config, darts, torch.device("cpu")), optimizer_config(config, darts.Config))
    assert table.loc[0, "arch_hash"] == fresh.discretize().hash()

    final = torch.load(run_dir / CHECKPOINT_FILE, weights_only=True)["optimizer"]["alphas"]
    for epoch, expected in ((0, fresh.alphas), (2, final)):
        rows = alphas[alphas["epoch"] == epoch]
        for name, tensor in zip(alpha_tensor_names(space), expected):
            values = rows[rows["tensor"] == name].sort_values(["row", "column"])["value"].to_numpy()
            np.testing.assert_array_equal(values, tensor.detach().double().flatten().numpy())
    vertices = len(table.loc[0, "arch_ops"].split(","))
    assert len(table.loc[0, "arch_matrix"]) == vertices**2


def test_the_last_search_valid_batch_has_40_images_at_the_papers_sizes():
    images = np.zeros((50_000, 3, 32, 32), dtype=np.uint8)
    labels = np.zeros(50_000, dtype=np.int64)
    data = SearchData(images, labels, batch_size=96, seed=0, device="cpu")
    assert len(_last_valid_batch(data, 0)[1]) == 40


def test_the_hessian_is_taken_on_the_last_search_valid_batch_of_the_epoch(cifar_root, tmp_path, monkeypatch):
    made, hessian_batches = [], []
    darts = optimizers.get("darts")
    objective, eigenpair = darts.architecture_objective, curvature.architecture_eigenpair

    def recording_objective(self, batch):
        made.append(len(batch[1]))
        return objective(self, batch)

    def recording_eigenpair(model, objectives, *args, **kwargs):
        hessian_batches.append(made[-len(objectives) :])
        return eigenpair(model, objectives, *args, **kwargs)

    monkeypatch.setattr(darts, "architecture_objective", recording_objective)
    monkeypatch.setattr(curvature, "architecture_eigenpair", recording_eigenpair)
    # 200 images: 100 in search-valid, batches of 32 -> the loop's last batch has 4 images
    quiet_run(tiny_config(cifar_root, tmp_path / "last", epochs=1, data_limit=200))
    assert hessian_batches == [[4], [4]]
    hessian_batches.clear()
    quiet_run(
        tiny_config(cifar_root, tmp_path / "fresh", epochs=1, data_limit=200, hessian_data="fresh", hessian_batches=2)
    )
    assert hessian_batches == [[32, 32], [32, 32]]


@dataclasses.dataclass
class _StopConfig(optimizers.get("darts").Config):
    stop_after: int = 2
    report: int = 1


class _StopsEarly(optimizers.get("darts")):
    """DARTS that records what it observes and stops after row `stop_after`, reporting row `report`."""

    Config = _StopConfig
    columns: ClassVar[dict[str, str]] = {"observed_rows": "int64"}

    def __init__(self, *args):
        super().__init__(*args)
        self.seen: list[float] = []

    def epoch_columns(self):
        return {"observed_rows": len(self.seen)}

    def observe(self, row):
        self.seen.append(row["hessian_eigenvalue"])

    def should_stop(self):
        if len(self.seen) > self.config.stop_after:
            return StopRequest("enough", report_epoch=self.config.report)
        return None

    def state_dict(self):
        return {**super().state_dict(), "seen": list(self.seen)}

    def load_state_dict(self, state):
        super().load_state_dict(state)
        self.seen = list(state["seen"])


optimizers.register("test-stops-early")(_StopsEarly)


def test_an_early_stop_completes_the_run_and_says_when_and_why(cifar_root, tmp_path):
    config = tiny_config(cifar_root, tmp_path, "test-stops-early", epochs=5, hessian=True)
    run_dir = quiet_run(config)
    table = read_table(run_dir / TABLE_FILE)
    assert table["epoch"].tolist() == [0, 1, 2]
    assert table["observed_rows"].tolist() == [0, 1, 2]
    assert table["selected"].tolist() == [False, True, False]
    assert table["stop_reason"].tolist()[:2] == [pd.NA, pd.NA] and table["stop_reason"].iloc[-1] == "enough"
    status = read_status(run_dir)
    assert status["state"] == "completed" and status["epochs_completed"] == 2
    assert status["stop"] == {"epoch": 2, "reason": "enough", "report_epoch": 1}
    assert is_complete(status, config.epochs)

    mtime = (run_dir / TABLE_FILE).stat().st_mtime_ns
    messages = []
    run_search(config, progress=False, log=messages.append)
    assert (run_dir / TABLE_FILE).stat().st_mtime_ns == mtime
    assert any("stopped early: enough" in message for message in messages)


def test_a_stop_decided_before_a_kill_is_kept_on_resume(cifar_root, tmp_path):
    config = tiny_config(cifar_root, tmp_path, "test-stops-early", epochs=5, hessian=False)
    run_dir = quiet_run(config)
    (run_dir / "status.json").unlink()  # killed after the checkpoint, before the status
    quiet_run(config)
    assert read_table(run_dir / TABLE_FILE)["epoch"].tolist() == [0, 1, 2]
    assert read_status(run_dir)["stop"]["report_epoch"] == 1


def test_a_report_epoch_that_does_not_exist_is_an_error(cifar_root, tmp_path):
    config = tiny_config(
        cifar_root, tmp_path, "test-stops-early", hessian=False, optimizer_options={"stop_after": 0, "report": 3}
    )
    with pytest.raises(Exception, match="report row 3, which does not exist"):
        quiet_run(config)


def test_two_variants_in_one_results_folder_stay_apart(cifar_root, tmp_path, capsys):
    base = tiny_config(cifar_root, tmp_path, epochs=1, hessian=False)
    for name, decay in (("wd-low", "3e-4"), ("wd-high", "81e-4")):
        args = cli_args(base)
        assert cli.main([*args, "--variant", name, "--set", f"weight_decay={decay}"]) == 0
    table = collect(tmp_path)
    assert sorted(table["variant"].unique()) == ["wd-high", "wd-low"]
    assert sorted(table["run"].unique()) == ["darts-wd-high-s1-seed0", "darts-wd-low-s1-seed0"]
    assert (table.groupby("variant")["epoch"].apply(list) == pd.Series({"wd-high": [0, 1], "wd-low": [0, 1]})).all()
    assert not table[table["epoch"] == 1].duplicated("train_loss").any()


def test_a_variant_of_another_optimizer_is_refused(cifar_root, tmp_path, capsys):
    optimizers.register_variant(optimizers.Variant("test-gdas-variant", "gdas", {"tau_max": 5.0}))
    args = cli_args(tiny_config(cifar_root, tmp_path, epochs=1, hessian=False))
    assert cli.main([*args, "--variant", "test-gdas-variant"]) == 2
    assert "configures gdas, not darts" in capsys.readouterr().err


def test_a_version_1_table_reads_as_the_current_version():
    old = pd.DataFrame(
        {
            "run": ["darts-s1-seed0"] * 2,
            "optimizer": ["darts"] * 2,
            "space": [1, 1],
            "seed": [0, 0],
            "epoch": [0, 1],
            "valid_error": [0.07, 0.06],
            "valid_loss": [2.0, 1.9],
            "valid_accuracy": [0.2, 0.3],
            "test_error": [0.08, 0.07],
            "schema_version": [1, 1],
        }
    )
    new = upgrade_table(old)
    assert new["epoch"].tolist() == [1, 2]
    assert new["benchmark_valid_error"].tolist() == [0.07, 0.06]
    assert new["supernet_valid_accuracy"].tolist() == [0.2, 0.3]
    assert "valid_accuracy" not in new.columns
    assert new["variant"].tolist() == ["darts", "darts"]
    assert new["selected"].tolist() == [False, True]
    assert new["schema_version"].tolist() == [SCHEMA_VERSION] * 2
    pd.testing.assert_frame_equal(upgrade_table(new), new)


def test_the_schema_version_and_the_documented_schema_follow_from_the_measurements():
    assert max(column.since for column in declared_columns().values()) == SCHEMA_VERSION
    assert schema_markdown() in (REPO / "docs" / "results.md").read_text()


def test_collected_tables_of_several_versions_mix(cifar_root, tmp_path):
    run_dir = quiet_run(tiny_config(cifar_root, tmp_path, epochs=1, hessian=False))
    old = read_table(run_dir / TABLE_FILE).rename(columns={"supernet_valid_accuracy": "valid_accuracy"})
    old = old.drop(columns=["variant", "selected", "stop_reason"]).assign(schema_version=1, run="old-run")
    old_dir = Path(tmp_path) / "old-run"
    old_dir.mkdir()
    (old_dir / "config.json").write_text("{}")
    old.to_parquet(old_dir / TABLE_FILE)
    table = collect(tmp_path)
    assert table.groupby("run")["epoch"].max().to_dict() == {"darts-s1-seed0": 1, "old-run": 2}
    assert table["supernet_valid_accuracy"].notna().all()


def test_a_registered_variant_brings_its_settings_through_the_api_too():
    from harness.config import make_config

    config = make_config("darts", 1, variant="rdarts-l2-81e-4")
    assert config.optimizer_options["weight_decay"] == 81e-4 and config.run_name == "darts-rdarts-l2-81e-4-s1-seed0"
    own = make_config("darts", 1, variant="rdarts-l2-81e-4", optimizer_options={"weight_decay": 1e-4})
    assert own.optimizer_options["weight_decay"] == 1e-4
    with pytest.raises(Exception, match="configures darts, not gdas"):
        make_config("gdas", 1, variant="rdarts-l2-81e-4")


def test_a_user_named_variant_is_swept_over_one_optimizer_only():
    from harness.commands.sweep import grid_entries

    assert grid_entries(["darts"], ["wd:weight_decay=9e-4"]) == [("darts", "wd", {"weight_decay": "9e-4"})]
    with pytest.raises(Exception, match="curves would merge"):
        grid_entries(["darts", "gdas"], ["wd:weight_decay=9e-4"])


def test_docs_results_lists_every_run_setting_of_the_resolved_config():
    import dataclasses
    import re

    from harness.config import RunConfig

    text = (REPO / "docs" / "results.md").read_text()
    row = next(line for line in text.splitlines() if line.startswith("| `resolved.run` |"))
    documented = set(re.findall(r"`(\w+)`", row.split("|")[2]))
    fields = {f.name for f in dataclasses.fields(RunConfig)}
    assert fields - {"optimizer_options"} <= documented, fields - documented
