"""Adafactor as ``torch.optim.Adafactor`` computes it, and one mutant per catalogued variant.

:class:`Adafactor` transcribes ``_single_tensor_adafactor`` (torch/optim/_adafactor.py): the same
state (``step`` as a float32 0-d tensor, ``row_var``/``col_var`` for ≥ 2-D params, ``variance``
otherwise) and the same operations in the same order. Each mutant overrides the one method that
holds its variant's formula.
"""

from __future__ import annotations

import torch


class Adafactor(torch.optim.Optimizer):
    """The spec: PyTorch's Adafactor."""

    def __init__(self, params, lr=1e-2, beta2_decay=-0.8, eps=(None, 1e-3), d=1.0, weight_decay=0.0,
                 maximize=False):
        super().__init__(params, dict(lr=lr, beta2_decay=beta2_decay, eps=eps, d=d,
                                      weight_decay=weight_decay, maximize=maximize))

    @torch.no_grad()
    def step(self, closure=None):
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is not None:
                    self._update(p, p.grad if not group["maximize"] else -p.grad, group, self._state(p))

    def _state(self, p):
        state = self.state[p]
        if not state:
            state["step"] = torch.tensor(0.0, dtype=torch.float32)
            if p.grad.dim() > 1:
                state["row_var"] = p.grad.new_zeros(p.grad.shape[:-1] + (1,))
                state["col_var"] = p.grad.new_zeros(p.grad.shape[:-2] + (1,) + p.grad.shape[-1:])
            else:
                state["variance"] = torch.zeros_like(p.grad)
        return state

    def _step_size(self, p, group, rho):
        eps2 = group["eps"][1]
        return max(eps2, p.norm(2).item() / (p.numel() ** 0.5)) * rho

    def _square(self, grad, group, eps1):
        return grad * grad

    def _mean_square(self, grad, dim, eps1):
        # same as (g * g).mean(dim) without materialising g * g, as torch computes it
        return torch.norm(grad, dim=dim, keepdim=True).square_().div_(grad.size(dim))

    def _estimate(self, grad, state, group, w, eps1):
        if grad.dim() > 1:
            row_var, col_var = state["row_var"], state["col_var"]
            row_var.lerp_(self._mean_square(grad, -1, eps1), w)
            col_var.lerp_(self._mean_square(grad, -2, eps1), w)
            var_estimate = row_var @ col_var
            return var_estimate.div_(self._row_mean(row_var).clamp_(min=eps1))
        variance = state["variance"]
        variance.lerp_(self._square(grad, group, eps1), w)
        return variance.clone()

    def _row_mean(self, row_var):
        """The mean of the row statistics over the rows, per batch (shape (…, 1, 1))."""
        return row_var.mean(dim=-2, keepdim=True)

    def _update(self, p, grad, group, state):
        lr = group["lr"]
        eps1 = group["eps"][0]
        if eps1 is None:
            eps1 = torch.finfo(p.dtype).eps
        state["step"] += 1
        t = state["step"].item()
        w = t ** group["beta2_decay"]
        rho = self._rho(lr, t)
        alpha = self._step_size(p, group, rho)
        if group["weight_decay"] != 0:
            p.mul_(1 - self._decay_rate(lr, alpha) * group["weight_decay"])
        update = self._estimate(grad, state, group, w, eps1).clamp_(min=eps1 * eps1).rsqrt_()
        update.mul_(grad)
        denom = max(1.0, update.norm(2).item() / ((update.numel() ** 0.5) * group["d"]))
        p.add_(update, alpha=-alpha / denom)


    def _rho(self, lr, t):
        """ρₜ = min(γ, 1/√t)."""
        return min(lr, 1 / (t**0.5))

    def _decay_rate(self, lr, alpha):
        """The decoupled decay θ ← θ·(1 − γλ) scales λ by γ."""
        return lr


class EpsAddedToG2(Adafactor):
    """adafactor.eps_added_to_g2: the moving averages take g² + ε₁."""

    def _square(self, grad, group, eps1):
        return grad * grad + eps1

    def _mean_square(self, grad, dim, eps1):
        return (grad * grad + eps1).mean(dim=dim, keepdim=True)


class AbsoluteStepSize(Adafactor):
    """adafactor.absolute_step_size: α = γ."""

    def _step_size(self, p, group, rho):
        return group["lr"]


class UnfactoredMatrices(Adafactor):
    """adafactor.unfactored_matrices: every param keeps the full EMA of g² (row/col kept, unused)."""

    def _state(self, p):
        state = super()._state(p)
        state.setdefault("variance", torch.zeros_like(p))
        return state

    def _estimate(self, grad, state, group, w, eps1):
        if grad.dim() > 1:
            super()._estimate(grad, state, group, w, eps1)  # the factors still advance
        variance = state["variance"]
        variance.lerp_(self._square(grad, group, eps1), w)
        return variance.clone()


class RelativeStep(Adafactor):
    """adafactor.relative_step: ρₜ = min(10⁻², 1/√t) whatever γ; the decay is θ ← θ·(1 − λα)."""

    def _rho(self, lr, t):
        return min(1e-2, 1 / (t**0.5))

    def _decay_rate(self, lr, alpha):
        return alpha


class RowMeanBroadcast(Adafactor):
    """adafactor.row_mean_broadcast: the per-batch means taken without keepdim (shape (…, B)) and
    broadcast against the rows (…, B, m) as torch_optimizer's ``_approx_sq_grad`` does: row i of
    every batch is divided by the mean of batch i (expand raises where torch_optimizer does)."""

    def _row_mean(self, row_var):
        batch_means = row_var.mean(dim=(-2, -1))
        return batch_means.expand(row_var.shape[:-1]).unsqueeze(-1).clone()


CONTROLS = {"adafactor": Adafactor}
class HFAdafactorFixedLr(EpsAddedToG2, AbsoluteStepSize):
    """adafactor.eps_added_to_g2 + adafactor.absolute_step_size: transformers' Adafactor with
    scale_parameter=False, relative_step=False (ε₁ added to g², the step size lr itself)."""


class TimmAdafactor(EpsAddedToG2, AbsoluteStepSize, UnfactoredMatrices):
    """adafactor.eps_added_to_g2 + adafactor.absolute_step_size + adafactor.unfactored_matrices: timm's
    Adafactor with the learning rate given (timm/optim/adafactor.py Adafactor.step: ``update = grad ** 2
    + eps``; ``_get_options``: factored only when both trailing dims exceed min_dim_size_to_factor = 16,
    so every param of the cases keeps the full EMA)."""


class TimmAdafactorRelativeStep(EpsAddedToG2, RelativeStep, UnfactoredMatrices):
    """adafactor.eps_added_to_g2 + adafactor.relative_step + adafactor.unfactored_matrices: the same
    with lr=None (timm's relative step, Adafactor._get_lr)."""


class TorchOptimizerAdafactor(EpsAddedToG2, RelativeStep, RowMeanBroadcast):
    """adafactor.eps_added_to_g2 + adafactor.relative_step + adafactor.row_mean_broadcast:
    torch_optimizer's Adafactor with its defaults (torch_optimizer/adafactor.py Adafactor.step:
    ``update = (grad ** 2) + eps2[0]``, ``relative_step=True``; ``_approx_sq_grad``)."""


MUTANTS = {
    ("adafactor", "adafactor.eps_added_to_g2"): EpsAddedToG2,
    ("adafactor", "adafactor.absolute_step_size"): AbsoluteStepSize,
    ("adafactor", "adafactor.unfactored_matrices"): UnfactoredMatrices,
    ("adafactor", "adafactor.relative_step"): RelativeStep,
    ("adafactor", "adafactor.row_mean_broadcast"): RowMeanBroadcast,
}

COMPOUND_MUTANTS = {
    ("adafactor", "adafactor.eps_added_to_g2 + adafactor.absolute_step_size"): HFAdafactorFixedLr,
    ("adafactor", "adafactor.eps_added_to_g2 + adafactor.absolute_step_size + adafactor.unfactored_matrices"):
        TimmAdafactor,
    ("adafactor", "adafactor.eps_added_to_g2 + adafactor.relative_step + adafactor.unfactored_matrices"):
        TimmAdafactorRelativeStep,
    ("adafactor", "adafactor.eps_added_to_g2 + adafactor.relative_step + adafactor.row_mean_broadcast"):
        TorchOptimizerAdafactor,
}
