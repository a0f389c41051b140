"""Every single-bit flip of a small checkpoint, loaded as a resumed run would load it: how many
are refused with a one-line `CheckpointError`, how many load exactly what was saved, how many
load something else (none should), and how many raise anything else (none should).

    PYTHONPATH=. python docs/measurements/checkpoint_bit_flips.py [--bits 1,16,128]

(docs/results.md, checkpoint.pt; about a minute on one core.)
"""

from __future__ import annotations

import argparse
import collections
import tempfile
from pathlib import Path

import torch

from harness.checkpoint import CheckpointError, load_checkpoint, save_checkpoint


def outcome(path: Path, model: torch.nn.Module) -> str:
    try:
        state = load_checkpoint(path, "digest")
    except CheckpointError:
        return "refused in one line"
    except Exception as err:  # what this script looks for
        return f"raised {type(err).__name__}"
    same = all(torch.equal(state["model"][k], v) for k, v in model.state_dict().items())
    return "loaded what was saved" if same else "LOADED SOMETHING ELSE"


def main(bits: list[int]) -> None:
    torch.manual_seed(0)
    model = torch.nn.Linear(50, 20)
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "checkpoint.pt"
        save_checkpoint(path, "digest", 1, model, {}, {"rows": [{"epoch": 0}]})
        intact = path.read_bytes()
        counts: collections.Counter[str] = collections.Counter()
        for offset in range(len(intact)):
            for bit in bits:
                data = bytearray(intact)
                data[offset] ^= bit
                path.write_bytes(bytes(data))
                counts[outcome(path, model)] += 1
    print(f"{len(intact)} bytes, bits {bits}: " + ", ".join(f"{what} {n}" for what, n in counts.most_common()))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bits", default="1,16,128", help="the bit masks to flip in every byte")
    main([int(b) for b in parser.parse_args().bits.split(",")])
