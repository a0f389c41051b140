"""R-DARTS (Zela et al., "Understanding and Robustifying Differentiable Architecture Search",
ICLR 2020; SDARTS §5.5 and Appendix 7.1; SPEC §5c): DARTS with a stronger regularisation of the
network weights, run at several strengths; per seed, the setting whose final architecture has
the best search-valid performance is kept (`plots.selection`, `python -m harness select`).

* R-DARTS(L2): the weight step's L2 decay `weight_decay` from {3e-4, 9e-4, 27e-4, 81e-4}
  (registered variants of "darts": `rdarts-l2-3e-4`, ...).
* R-DARTS(DP): ScheduledDropPath (Zoph et al., 2018) with maximum drop probability
  `drop_path_max` from {0, 0.2, 0.4, 0.6} (optimizer "darts-dp"; variants `rdarts-dp-0`, ...),
  at the default weight decay 3e-4.

The drop-path schedule is the reference code's (automl/RobustDARTS, `src/search/train_search.py`):
p(epoch) = drop_path_max * epoch / (epochs - 1), epoch from 0, so p is 0 in the first epoch and
drop_path_max in the last. Where it applies differs: the reference drops each edge's mixed-op
output (per sample, scaled by 1 / keep probability) in its DARTS cells; here the one-shot model
drops each choice node's output (`OneShotModel.drop_path_prob`), in train mode only. As in the
reference, the weight step and the architecture step both see dropped paths; unlike it, the
Hessian does not (its objective must be deterministic: `architecture_objective` runs with p = 0).
The reference also scales cutout with the same schedule when drop path is on; cutout is off here.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
from torch import Tensor

from benchmarks.errors import HarnessError
from benchmarks.nasbench1shot1 import OneShotModel, SearchSpace
from optimizers.base import Batch, out_of_range
from optimizers.darts import DARTS, DARTSConfig
from optimizers.registry import register
from optimizers.variants import Variant, register_variant

L2_METHOD = "R-DARTS(L2)"
DP_METHOD = "R-DARTS(DP)"
WEIGHT_DECAYS = ("3e-4", "9e-4", "27e-4", "81e-4")
"""R-DARTS(L2)'s grid (SPEC §5c), as written in the variant names."""
DROP_PATH_MAXIMA = ("0", "0.2", "0.4", "0.6")
"""R-DARTS(DP)'s grid of maximum drop probabilities (SPEC §5c)."""


def drop_path_probability(epoch: int, epochs: int, maximum: float) -> float:
    """ScheduledDropPath's probability in epoch `epoch` (0-based) of `epochs`: linear from 0 in the
    first epoch to `maximum` in the last (the reference's `drop_path_prob * epoch / (epochs - 1)`)."""
    return maximum * epoch / max(epochs - 1, 1)


@dataclass
class DARTSDPConfig(DARTSConfig):
    """drop_path_max: the drop probability reached in the last epoch (a fraction in [0, 1))."""

    drop_path_max: float = 0.2

    def problems(self) -> list[str]:
        return super().problems() + out_of_range(self, fractions=("drop_path_max",))


@register("darts-dp")
class DARTSDropPath(DARTS):
    """R-DARTS(DP) (Zela et al., 2020): DARTS with ScheduledDropPath on the choice nodes' outputs,
    the drop probability rising linearly to `drop_path_max` over the run."""

    Config = DARTSDPConfig

    def __init__(self, space: SearchSpace, model: OneShotModel, config: DARTSDPConfig):
        if not hasattr(model, "drop_path_prob"):
            raise HarnessError(
                f"darts-dp needs a one-shot model with ScheduledDropPath (drop_path_prob); "
                f"{type(model).__name__} has none"
            )
        super().__init__(space, model, config)
        model.drop_path_prob = 0.0

    def new_epoch(self, epoch: int, epochs: int) -> None:
        super().new_epoch(epoch, epochs)
        self.model.drop_path_prob = drop_path_probability(epoch, epochs, self.config.drop_path_max)

    def arch_step(self, valid_batch: Batch, train_batch: Batch) -> None:
        """DARTS's architecture step, with dropped paths (the reference's forward pass drops them
        in both steps); second order as DARTS when `unrolled`."""
        if self.config.unrolled:
            super().arch_step(valid_batch, train_batch)
            return
        loss = super().architecture_objective(valid_batch)(self.alphas)
        self.set_arch_gradients(torch.autograd.grad(loss, self.alphas))
        self.arch_optimizer.step()

    def architecture_objective(self, batch: Batch) -> Callable[[Sequence[Tensor]], Tensor]:
        """The Hessian's objective: DARTS's, with no path dropped (deterministic)."""
        objective = super().architecture_objective(batch)

        def without_drop_path(alphas: Sequence[Tensor]) -> Tensor:
            probability, self.model.drop_path_prob = self.model.drop_path_prob, 0.0
            try:
                return objective(alphas)
            finally:
                self.model.drop_path_prob = probability

        return without_drop_path


for _decay in WEIGHT_DECAYS:
    register_variant(
        Variant(f"rdarts-l2-{_decay}", "darts", {"weight_decay": float(_decay)}, f"R-DARTS(L2) wd={_decay}", L2_METHOD)
    )
for _maximum in DROP_PATH_MAXIMA:
    register_variant(
        Variant(
            f"rdarts-dp-{_maximum}",
            "darts-dp",
            {"drop_path_max": float(_maximum)},
            f"R-DARTS(DP) p={_maximum}",
            DP_METHOD,
        )
    )
