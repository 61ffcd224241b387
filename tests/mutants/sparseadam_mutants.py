"""SparseAdam as ``torch.optim.SparseAdam`` computes it, and one mutant per catalogued variant.

:class:`SparseAdam` transcribes ``torch.optim._functional.sparse_adam``: coalesce, update the
moments at the present entries through ``sparse_mask``, and add a sparse step in the ε̂ form.
"""

from __future__ import annotations

import math

import torch


class SparseAdam(torch.optim.Optimizer):
    """The spec: PyTorch's SparseAdam."""

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, maximize=False):
        super().__init__(params, dict(lr=lr, betas=betas, eps=eps, maximize=maximize))

    @torch.no_grad()
    def step(self, closure=None):
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is None:
                    continue
                state = self.state[p]
                if not state:
                    state["step"] = 0
                    state["exp_avg"] = torch.zeros_like(p)
                    state["exp_avg_sq"] = torch.zeros_like(p)
                state["step"] += 1
                grad = p.grad if not group["maximize"] else -p.grad
                self._update(p, grad.coalesce(), state, group)

    def _update(self, p, grad, state, group):
        beta1, beta2 = group["betas"]
        indices, values = grad._indices(), grad._values()
        if values.numel() == 0:
            return

        def make_sparse(vals):
            return torch.sparse_coo_tensor(indices, vals, grad.size(), check_invariants=False)

        exp_avg, exp_avg_sq = state["exp_avg"], state["exp_avg_sq"]
        old_m = exp_avg.sparse_mask(grad)._values()
        m_update = values.sub(old_m).mul_(1 - beta1)
        exp_avg.add_(make_sparse(m_update))
        old_v = exp_avg_sq.sparse_mask(grad)._values()
        v_update = values.pow(2).sub_(old_v).mul_(1 - beta2)
        exp_avg_sq.add_(make_sparse(v_update))
        numer = m_update.add_(old_m)
        denom = v_update.add_(old_v).sqrt_().add_(group["eps"])
        p.add_(make_sparse(-self._step_size(state["step"], group) * numer.div_(denom)))

    def _step_size(self, t, group):
        beta1, beta2 = group["betas"]
        return group["lr"] * math.sqrt(1 - beta2**t) / (1 - beta1**t)


class DenseMoments(SparseAdam):
    """sparseadam.dense_moments: plain Adam (ε̂ form) on the densified gradient."""

    def _update(self, p, grad, state, group):
        beta1, beta2 = group["betas"]
        g = grad.to_dense()
        exp_avg, exp_avg_sq = state["exp_avg"], state["exp_avg_sq"]
        exp_avg.mul_(beta1).add_(g, alpha=1 - beta1)
        exp_avg_sq.mul_(beta2).addcmul_(g, g, value=1 - beta2)
        p.sub_(self._step_size(state["step"], group) * exp_avg / (exp_avg_sq.sqrt() + group["eps"]))


class EpsAfterBiasCorrection(SparseAdam):
    """sparseadam.eps_after_bias_correction: θ ← θ − γ·m̂/(√v̂ + ε) at the present entries."""

    def _update(self, p, grad, state, group):
        beta1, beta2 = group["betas"]
        t = state["step"]
        indices, values = grad._indices(), grad._values()
        exp_avg, exp_avg_sq = state["exp_avg"], state["exp_avg_sq"]
        old_m = exp_avg.sparse_mask(grad)._values()
        old_v = exp_avg_sq.sparse_mask(grad)._values()
        new_m = old_m * beta1 + values * (1 - beta1)
        new_v = old_v * beta2 + values * values * (1 - beta2)
        exp_avg.add_(torch.sparse_coo_tensor(indices, new_m - old_m, grad.size(), check_invariants=False))
        exp_avg_sq.add_(torch.sparse_coo_tensor(indices, new_v - old_v, grad.size(), check_invariants=False))
        step = group["lr"] * (new_m / (1 - beta1**t)) / ((new_v / (1 - beta2**t)).sqrt() + group["eps"])
        p.add_(torch.sparse_coo_tensor(indices, -step, grad.size(), check_invariants=False))


CONTROLS = {"sparseadam": SparseAdam}
MUTANTS = {
    ("sparseadam", "sparseadam.dense_moments"): DenseMoments,
    ("sparseadam", "sparseadam.eps_after_bias_correction"): EpsAfterBiasCorrection,
}
