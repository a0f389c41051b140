"""BatchNorm with a lean second derivative, for the Hessian-vector products of SPEC §6.

`BatchNorm2d` is `nn.BatchNorm2d` (same parameters, buffers, running-statistics updates and
first derivatives: one `native_batch_norm` forward and one `native_batch_norm_backward`). Only
when its backward is itself differentiated (a double backward, as in a Hessian-vector product)
does it differ: PyTorch's generic `batchnorm_double_backward` dispatches about 95 operators per
layer, the closed form below 12 (seven passes over the activations). Per channel, over its
N = B * H * W values, with x_hat = (x - mean) * inv (inv = 1 / sqrt(var + eps), biased
variance) and the first backward

    gx = gamma * inv * A,  A = gy - mean(gy) - x_hat * mean(gy * x_hat),
    g_gamma = sum(gy * x_hat),  g_beta = sum(gy),

the products of its derivatives with incoming gradients (ggx, gg_gamma, gg_beta) are

    d/d gy:    gamma * inv * (ggx - mean(ggx) - x_hat * q) + gg_gamma * x_hat + gg_beta
    d/d x:     gamma * inv^2 * (-x_hat * p - m * (ggx - mean(ggx) - x_hat * q) - A * q) + gg_gamma * inv * A
    d/d gamma: inv * N * p

with m = mean(gy * x_hat), q = mean(ggx * x_hat), p = mean(ggx * A) (derived by differentiating
gx, g_gamma and g_beta; tested against PyTorch's double backward in float64).
Under torch.func transforms (vmap, jvp) the layer falls back to `F.batch_norm`.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .wanted import wanted_gradients


def _channel(v: Tensor) -> Tensor:
    """(C,) -> (1, C, 1, 1)."""
    return v.view(1, -1, 1, 1)


class _BatchNormTrain(torch.autograd.Function):
    """Batch-statistics BatchNorm (updating running statistics when given); backward as PyTorch's."""

    @staticmethod
    def forward(
        ctx: Any,
        x: Tensor,
        weight: Tensor | None,
        bias: Tensor | None,
        running_mean: Tensor | None,
        running_var: Tensor | None,
        momentum: float,
        eps: float,
    ) -> Tensor:
        out, mean, invstd = torch.native_batch_norm(x, weight, bias, running_mean, running_var, True, momentum, eps)
        ctx.save_for_backward(x, weight, mean, invstd)
        ctx.eps = eps
        return out

    @staticmethod
    def backward(ctx: Any, gy: Tensor) -> tuple[Tensor | None, ...]:
        x, weight, mean, invstd = ctx.saved_tensors
        affine = weight is not None
        if torch.is_grad_enabled():  # create_graph: differentiable, with the closed-form double backward
            gx, g_weight, g_bias = _BatchNormBackward.apply(gy, x, weight, mean, invstd, ctx.eps)
        else:
            mask = wanted_gradients(ctx, 3) if affine else (wanted_gradients(ctx, 1)[0], False, False)
            gx, g_weight, g_bias = torch.ops.aten.native_batch_norm_backward(
                gy, x, weight, None, None, mean, invstd, True, ctx.eps, list(mask)
            )
        if not affine:
            g_weight = g_bias = None
        return gx, g_weight, g_bias, None, None, None, None


class _BatchNormBackward(torch.autograd.Function):
    """(gy, x, weight) -> (gx, g_weight, g_bias) of batch-statistics BatchNorm, with the closed-form
    products of its derivatives (module docstring). mean and invstd (C,) are the forward's
    statistics of x, constants here (their dependence on x is in the formulas).

    With T = gamma * inv * t (`native_batch_norm_backward` of ggx, which also sums ggx * x_hat)
    and G = gx (this function's output), d/d x is -inv * (m * T + q * G) - p * gamma * inv^2 *
    x_hat, so a product takes three reductions and four multiply-adds over the activations; the
    per-channel factors that do not depend on ggx are computed once, here in the forward."""

    @staticmethod
    def forward(
        ctx: Any, gy: Tensor, x: Tensor, weight: Tensor | None, mean: Tensor, invstd: Tensor, eps: float
    ) -> tuple[Tensor, Tensor | None, Tensor | None]:
        ctx.set_materialize_grads(False)  # an architecture Hessian sends no gradients for weight and bias
        ones = torch.ones_like(invstd)  # a weight of ones where there is none: CUDA's kernel needs one to sum
        gx, sum_gy_xhat, sum_gy = torch.ops.aten.native_batch_norm_backward(
            gy, x, ones if weight is None else weight, None, None, mean, invstd, True, eps, [True, True, True]
        )
        count = x.numel() // x.shape[1]
        m, mean_gy = sum_gy_xhat / count, sum_gy / count
        gamma = invstd if weight is None else weight * invstd  # gamma * inv
        x_factor = gamma * invstd.square()  # gamma * inv^3: d/d x's factor of p * (x - mean)
        factors = torch.stack([-invstd * m, -invstd, -x_factor, x_factor * mean, invstd * count, ones])
        ctx.save_for_backward(gy, x, weight, mean, invstd, gx, m, mean_gy, factors)
        ctx.eps, ctx.count = eps, count
        if weight is None:
            return gx, None, None
        return gx, sum_gy_xhat, sum_gy

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(
        ctx: Any, ggx: Tensor | None, gg_weight: Tensor | None, gg_bias: Tensor | None
    ) -> tuple[Tensor | None, ...]:
        gy, x, weight, mean, invstd, gx, m, mean_gy, factors = ctx.saved_tensors
        minus_inv_m, minus_inv, minus_x_factor, x_factor_mean, inv_count, ones = factors
        g_gy = g_x = g_weight = None
        if ggx is not None:
            t_scaled, sum_ggx_xhat, _ = torch.ops.aten.native_batch_norm_backward(
                ggx, x, ones if weight is None else weight, None, None, mean, invstd, True, ctx.eps, [True, True, False]
            )
            _, sum_ggx_centred_gy, _ = torch.ops.aten.native_batch_norm_backward(
                ggx, gy, ones, None, None, mean_gy, ones, True, ctx.eps, [False, True, False]
            )
            q = sum_ggx_xhat / ctx.count
            p = torch.addcmul(sum_ggx_centred_gy / ctx.count, m, q, value=-1.0)  # mean(ggx * A)
            g_gy = t_scaled
            if ctx.needs_input_grad[1]:
                g_x = torch.addcmul(_channel(p * x_factor_mean), x, _channel(p * minus_x_factor))
                g_x = torch.addcmul(g_x, t_scaled, _channel(minus_inv_m))
                g_x = torch.addcmul(g_x, gx, _channel(minus_inv * q))
            if weight is not None and ctx.needs_input_grad[2]:
                g_weight = p * inv_count
        if gg_weight is not None:
            scale = gg_weight * invstd
            if ctx.needs_input_grad[1]:  # + gg_weight * inv * A, A = gy - mean(gy) - (x - mean) * inv * m
                x_slope = scale * m * invstd
                extra = torch.addcmul(_channel(x_slope * mean - scale * mean_gy), gy, _channel(scale))
                g_x = _accumulate(g_x, torch.addcmul(extra, x, _channel(x_slope), value=-1.0))
            # + gg_weight * x_hat (+ gg_bias below)
            offset = -scale * mean if gg_bias is None else gg_bias - scale * mean
            g_gy = _accumulate(g_gy, torch.addcmul(_channel(offset), x, _channel(scale)))
        elif gg_bias is not None:
            g_gy = _accumulate(g_gy, _channel(gg_bias).expand_as(gy))
        return g_gy, g_x, g_weight, None, None, None


def _accumulate(total: Tensor | None, term: Tensor) -> Tensor:
    return term if total is None else total + term


class BatchNorm2d(nn.BatchNorm2d):
    """`nn.BatchNorm2d` whose batch-statistics mode has the closed-form double backward above
    (same values, parameters, buffers and first derivatives)."""

    counted_by_model: bool = False
    """True when the model increments `num_batches_tracked` itself before the layer runs in
    train mode (`OneShotModel`: one multi-tensor op for all its layers, not one op per layer)."""

    def forward(self, x: Tensor) -> Tensor:
        self._check_input_dim(x)
        factor = 0.0 if self.momentum is None else self.momentum
        if self.training and self.track_running_stats and self.num_batches_tracked is not None:
            if not self.counted_by_model:
                self.num_batches_tracked.add_(1)
            factor = 1.0 / float(self.num_batches_tracked) if self.momentum is None else self.momentum
        batch_statistics = self.training or (self.running_mean is None and self.running_var is None)
        track = not self.training or self.track_running_stats
        running_mean, running_var = (self.running_mean, self.running_var) if track else (None, None)
        if not batch_statistics or torch._C._are_functorch_transforms_active():
            return F.batch_norm(
                x, running_mean, running_var, self.weight, self.bias, batch_statistics, factor, self.eps
            )
        return _BatchNormTrain.apply(x, self.weight, self.bias, running_mean, running_var, factor, self.eps)
