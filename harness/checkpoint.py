"""End-of-epoch checkpoints: everything a killed run needs to resume to the same result."""

from __future__ import annotations

import hashlib
import io
import json
import zipfile
from pathlib import Path
from typing import Any

import torch

from benchmarks.cache import atomic_write
from benchmarks.errors import HarnessError, brief

CHECKPOINT_FORMAT = 2
"""2: rows numbered by epochs completed, with the rows and records written so far."""


class CheckpointError(HarnessError):
    """A checkpoint that is corrupt or belongs to another run configuration."""


CHECKPOINT_KEYS = ("config_digest", "epochs_completed", "model", "optimizer", "rng", "records", "stop")
"""What every checkpoint holds besides its format (`save_checkpoint`)."""
RESTORE = "restore it, or delete it to restart this run from epoch 0"


def config_digest(resolved: dict[str, Any]) -> str:
    """A short digest of a resolved run configuration (what makes two runs the same run)."""
    return hashlib.sha256(json.dumps(resolved, sort_keys=True, default=str).encode()).hexdigest()[:16]


def rng_state() -> dict[str, Any]:
    """The global torch RNG states (CPU, and CUDA when in use)."""
    state = {"cpu": torch.get_rng_state()}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["cpu"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def save_checkpoint(
    path: Path,
    digest: str,
    epochs_completed: int,
    model: torch.nn.Module,
    optimizer_state: dict,
    records: dict[str, list[dict[str, Any]]],
    stop: dict[str, Any] | None = None,
) -> None:
    """Write the state after `epochs_completed` epochs atomically, with `records` (the table's
    rows so far under "rows", and the other per-row records: plain Python values only) and the
    optimizer's early stop, if it asked for one."""
    payload = {
        "format": CHECKPOINT_FORMAT,
        "config_digest": digest,
        "epochs_completed": epochs_completed,
        "model": model.state_dict(),
        "optimizer": optimizer_state,
        "rng": rng_state(),
        "records": records,
        "stop": stop,
    }
    buffer = io.BytesIO()
    torch.save(payload, buffer)  # in memory first: a full disk then fails the file write with ENOSPC
    atomic_write(path, lambda tmp: tmp.write_bytes(buffer.getbuffer()))


CHUNK = 1 << 20  # bytes read at a time when checking a member's CRC-32


def failing_member(path: Path) -> str | None:
    """The first member of a checkpoint's zip archive that is damaged, or None: its bytes fail
    their CRC-32, its header cannot be read, or it is marked a directory (torch.save writes none;
    PyTorch's reader would read it as a wrong tensor). torch.save writes a CRC-32 per member (none
    where told not to: a zero, skipped here), but torch.load does not check them, so a flipped bit
    in a tensor would load as a wrong number. An archive too damaged to list is left to torch.load
    to report."""
    try:
        archive = zipfile.ZipFile(path)
    except Exception:  # no zip archive, or its directory is damaged
        return None
    with archive:
        for member in archive.infolist():
            if member.external_attr & 0x10 or (member.CRC and not _reads_whole(archive, member)):
                return member.filename
    return None


def _reads_whole(archive: zipfile.ZipFile, member: zipfile.ZipInfo) -> bool:
    """Whether `member` opens and its bytes read to their end with the CRC-32 it was written with
    (`CHUNK` bytes at a time)."""
    try:
        with archive.open(member) as data:
            while data.read(CHUNK):
                pass
    except Exception:  # a CRC-32 that fails (checked at the end), a damaged local header, ...
        return False
    return True


def load_checkpoint(path: Path, digest: str) -> dict[str, Any]:
    """Read a checkpoint (tensors on the CPU), checking that it is intact (its CRC-32s, its
    keys) and belongs to the configuration `digest`."""
    if (member := failing_member(path)) is not None:
        raise CheckpointError(f"checkpoint {path} is damaged ({member} fails its CRC-32 or header check): {RESTORE}")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:
        raise CheckpointError(
            f"checkpoint {path} cannot be read ({brief(err)}). It was left as it is: {RESTORE}"
        ) from err
    if isinstance(payload, dict) and payload.get("format") == 1:
        raise CheckpointError(
            f"checkpoint {path} was written by an older harness (format 1, before row 0 was added): its table "
            "stays readable, but the search cannot go on; start it again with another --out"
        )
    if isinstance(payload, dict) and isinstance(payload.get("format"), int) and payload["format"] > CHECKPOINT_FORMAT:
        raise CheckpointError(
            f"checkpoint {path} was written by a newer harness (format {payload['format']}; this one reads "
            f"{CHECKPOINT_FORMAT}): upgrade the harness to resume it"
        )
    if not isinstance(payload, dict) or payload.get("format") != CHECKPOINT_FORMAT:
        raise CheckpointError(f"checkpoint {path} is not a harness checkpoint: {RESTORE}")
    missing = [key for key in CHECKPOINT_KEYS if key not in payload]
    if missing:
        raise CheckpointError(f"checkpoint {path} is damaged (it lacks {', '.join(missing)}): {RESTORE}")
    if payload["config_digest"] != digest:
        raise CheckpointError(
            f"checkpoint {path} belongs to a different configuration than {path.parent / 'config.json'}; "
            "delete the run directory or use another --out."
        )
    return payload
