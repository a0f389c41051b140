"""Parameters of the reference code's one-shot model, mapped onto `OneShotModel`'s fused layout.

The reference (NAS-Bench-1Shot1, `optimizers/darts/model_search.py`, `Network`) keeps one module
per op; this harness fuses them (SPEC §4 is unchanged):

* `stem.op.{0,1}.*` -> `stem.{0,1}.*`; `postprocess.op.{1,2}.*` -> `postprocess.{1,2}.*`;
  `classifier.*` unchanged;
* `cells.i._input_projections.{0..n}.op.{0,1}.*` (n projections to C, one to n * C) ->
  `cells.i.preprocess.{0,1}.*`, concatenated along the output channels in that order;
* `cells.i._choice_blocks.j.mixed_op._ops.1.op.op.0.weight` (conv3x3: `Conv3x3BnRelu.op` is a
  `ConvBnRelu`, whose `.op` is the Sequential) and `..._ops.2.op.op.0.weight` (conv1x1) -> rows
  j * C to (j + 1) * C of `cells.i.nodes.conv3x3` and `cells.i.nodes.conv1x1`;
* their BatchNorms `..._ops.{1,2}.op.op.1.*` -> `cells.i.nodes.bns.j.*`, conv3x3's channels first.

A fused BatchNorm's `num_batches_tracked` is that of its first reference layer (it only matters
for momentum=None, which neither model uses).
"""

from __future__ import annotations

import re
from collections.abc import Mapping

import torch
from torch import Tensor

_BN_TENSORS = ("weight", "bias", "running_mean", "running_var")


def from_reference_state_dict(state: Mapping[str, Tensor]) -> dict[str, Tensor]:
    """A `OneShotModel` state dict from a state dict of the reference `Network` (same space,
    channels and cells); load it with `model.load_state_dict(..., strict=True)`."""
    cells = 1 + max(int(m.group(1)) for key in state if (m := re.match(r"cells\.(\d+)\.", key)))
    nodes = 1 + max(int(m.group(1)) for key in state if (m := re.match(r"cells\.0\._choice_blocks\.(\d+)\.", key)))
    mapped: dict[str, Tensor] = {}
    for key, value in state.items():
        if key.startswith("stem.op."):
            mapped["stem." + key.removeprefix("stem.op.")] = value
        elif key.startswith("postprocess.op."):
            mapped["postprocess." + key.removeprefix("postprocess.op.")] = value
        elif key.startswith("classifier."):
            mapped[key] = value
    for cell in range(cells):
        projections = [f"cells.{cell}._input_projections.{j}.op" for j in range(nodes + 1)]
        mapped[f"cells.{cell}.preprocess.0.weight"] = torch.cat([state[f"{p}.0.weight"] for p in projections])
        _fuse_batch_norms(state, [f"{p}.1" for p in projections], f"cells.{cell}.preprocess.1", mapped)
        ops = [f"cells.{cell}._choice_blocks.{j}.mixed_op._ops" for j in range(nodes)]
        mapped[f"cells.{cell}.nodes.conv3x3"] = torch.cat([state[f"{o}.1.op.op.0.weight"] for o in ops])
        mapped[f"cells.{cell}.nodes.conv1x1"] = torch.cat([state[f"{o}.2.op.op.0.weight"] for o in ops])
        for j, o in enumerate(ops):
            _fuse_batch_norms(state, [f"{o}.1.op.op.1", f"{o}.2.op.op.1"], f"cells.{cell}.nodes.bns.{j}", mapped)
    return mapped


def _fuse_batch_norms(state: Mapping[str, Tensor], sources: list[str], target: str, mapped: dict[str, Tensor]) -> None:
    """One BatchNorm over the concatenated channels of the `sources` layers."""
    for name in _BN_TENSORS:
        mapped[f"{target}.{name}"] = torch.cat([state[f"{source}.{name}"] for source in sources])
    mapped[f"{target}.num_batches_tracked"] = state[f"{sources[0]}.num_batches_tracked"]
