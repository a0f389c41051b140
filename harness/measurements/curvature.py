"""The dominant eigenvalue of the Hessian of the architecture objective (SPEC §6)."""

from __future__ import annotations

import time
from typing import Any, ClassVar

import torch

from harness.hessian import architecture_eigenpair, dominant_eigenvalue
from harness.measurements.base import Column, EpochContext, Measurement, register_measurement


@register_measurement
class HessianEigenvalue(Measurement):
    """On the reference's batch by default (`hessian_data="last"`: the last search-valid batch of
    the epoch's loop), or on `hessian_batches` fresh batches. Random draws of the objective
    (GDAS's noise) come from a forked RNG: measuring never changes training."""

    name = "hessian"
    order = 50
    columns: ClassVar[dict[str, Column]] = {
        "hessian_eigenvalue": Column(
            "float64",
            "largest |eigenvalue| of the Hessian of the architecture loss w.r.t. the alphas, + arch weight "
            "decay (NaN: no alphas, or --set hessian=false)",
        ),
        "hessian_seconds": Column("float64", "seconds the eigenvalue took (0 when not computed)"),
    }

    def measure(self, context: EpochContext) -> dict[str, Any]:
        optimizer, config, data = context.optimizer, context.config, context.data
        params = optimizer.arch_parameters()
        if not (config.hessian and params):
            return {"hessian_eigenvalue": float("nan"), "hessian_seconds": 0.0}
        started = time.perf_counter()
        if config.hessian_data == "last":
            batches = [context.last_valid_batch()]
        else:
            batches = data.fixed_valid_batches(context.epoch, config.hessian_batches)
        devices = [data.device] if data.device.type == "cuda" else []
        with torch.random.fork_rng(devices=devices):
            objectives = [optimizer.architecture_objective(batch) for batch in batches]
            pair = architecture_eigenpair(
                context.model,
                objectives,
                params,
                config.hessian_method,
                graphs=context.graphs,
                tolerance=config.hessian_tolerance,
                tf32=config.hessian_tf32,
            )
        eigenvalue = dominant_eigenvalue(pair, optimizer.config.arch_weight_decay)
        return {"hessian_eigenvalue": eigenvalue, "hessian_seconds": time.perf_counter() - started}
