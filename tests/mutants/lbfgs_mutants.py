"""L-BFGS as ``torch.optim.LBFGS`` computes it, and one mutant per catalogued L-BFGS variant.

:class:`LBFGS` is a readable transcription of ``torch.optim.LBFGS.step`` (torch/optim/lbfgs.py):
the same state in ``state[first param]``, the same tensor operations in the same order, torch's
own strong-Wolfe line search (``torch.optim.lbfgs._strong_wolfe``) and parameter helpers. The
three formula lines a variant changes are methods (see ``derivations/lbfgs.py``):
:meth:`LBFGS._first_step` (t on the very first iteration), :meth:`LBFGS._keeps_pair` (the
curvature test) and :meth:`LBFGS._initial_hessian` (H₀'s scale). Each mutant overrides those.
"""

from __future__ import annotations

import torch
from torch import Tensor
from torch.optim.lbfgs import _strong_wolfe


class LBFGS(torch.optim.LBFGS):
    """The spec: torch's L-BFGS (minFunc's), line for line."""

    # -- the formula lines -------------------------------------------------------------------
    def _first_step(self, flat_grad: Tensor, lr):
        """t = lr·min(1, 1/‖g‖₁) on the very first iteration."""
        return min(1.0, 1.0 / flat_grad.abs().sum()) * lr

    def _keeps_pair(self, ys: Tensor) -> bool:
        """The pair (y, s) enters the history only if yᵀs > 1e-10."""
        return bool(ys > 1e-10)

    def _initial_hessian(self, ys: Tensor, y: Tensor):
        """H₀ = (yᵀs/yᵀy)·I."""
        return ys / y.dot(y)

    # -- torch's step ----------------------------------------------------------------------------
    @torch.no_grad()
    def step(self, closure):  # type: ignore[override]
        closure = torch.enable_grad()(closure)
        group = self.param_groups[0]
        lr = group["lr"]
        max_iter, max_eval = group["max_iter"], group["max_eval"]
        tolerance_grad, tolerance_change = group["tolerance_grad"], group["tolerance_change"]
        line_search_fn, history_size = group["line_search_fn"], group["history_size"]

        state = self.state[self._params[0]]
        state.setdefault("func_evals", 0)
        state.setdefault("n_iter", 0)

        orig_loss = closure()
        loss = float(orig_loss)
        current_evals = 1
        state["func_evals"] += 1
        flat_grad = self._gather_flat_grad()
        if flat_grad.abs().max() <= tolerance_grad:
            return orig_loss

        d, t = state.get("d"), state.get("t")
        old_dirs, old_stps, ro = state.get("old_dirs"), state.get("old_stps"), state.get("ro")
        H_diag, prev_flat_grad, prev_loss = state.get("H_diag"), state.get("prev_flat_grad"), state.get("prev_loss")

        n_iter = 0
        while n_iter < max_iter:
            n_iter += 1
            state["n_iter"] += 1
            # the direction
            if state["n_iter"] == 1:
                d = flat_grad.neg()
                old_dirs, old_stps, ro = [], [], []
                H_diag = 1
            else:
                y = flat_grad.sub(prev_flat_grad)
                s = d.mul(t)
                ys = y.dot(s)
                if self._keeps_pair(ys):
                    if len(old_dirs) == history_size:
                        old_dirs.pop(0)
                        old_stps.pop(0)
                        ro.pop(0)
                    old_dirs.append(y)
                    old_stps.append(s)
                    ro.append(1.0 / ys)
                    H_diag = self._initial_hessian(ys, y)
                num_old = len(old_dirs)
                if "al" not in state:
                    state["al"] = [None] * history_size
                al = state["al"]
                q = flat_grad.neg()
                for i in range(num_old - 1, -1, -1):
                    al[i] = old_stps[i].dot(q) * ro[i]
                    q.add_(old_dirs[i], alpha=-al[i])
                d = r = torch.mul(q, H_diag)
                for i in range(num_old):
                    be_i = old_dirs[i].dot(r) * ro[i]
                    r.add_(old_stps[i], alpha=al[i] - be_i)
            if prev_flat_grad is None:
                prev_flat_grad = flat_grad.clone(memory_format=torch.contiguous_format)
            else:
                prev_flat_grad.copy_(flat_grad)
            prev_loss = loss
            # the step length
            t = self._first_step(flat_grad, lr) if state["n_iter"] == 1 else lr
            gtd = flat_grad.dot(d)
            if gtd > -tolerance_change:
                break
            ls_func_evals = 0
            if line_search_fn is not None:
                if line_search_fn != "strong_wolfe":
                    raise RuntimeError("only 'strong_wolfe' is supported")
                x_init = self._clone_param()

                def obj_func(x, t, d):
                    return self._directional_evaluate(closure, x, t, d)

                loss, flat_grad, t, ls_func_evals = _strong_wolfe(
                    obj_func, x_init, t, d, loss, flat_grad, gtd, max_ls=max_eval - current_evals)
                self._add_grad(t, d)
                opt_cond = flat_grad.abs().max() <= tolerance_grad
            else:
                self._add_grad(t, d)
                if n_iter != max_iter:
                    with torch.enable_grad():
                        loss = float(closure())
                    flat_grad = self._gather_flat_grad()
                    opt_cond = flat_grad.abs().max() <= tolerance_grad
                    ls_func_evals = 1
            current_evals += ls_func_evals
            state["func_evals"] += ls_func_evals
            # the stopping tests
            if n_iter == max_iter:
                break
            if current_evals >= max_eval:
                break
            if opt_cond:
                break
            if d.mul(t).abs().max() <= tolerance_change:
                break
            if abs(loss - prev_loss) < tolerance_change:
                break

        state.update(d=d, t=t, old_dirs=old_dirs, old_stps=old_stps, ro=ro, H_diag=H_diag,
                     prev_flat_grad=prev_flat_grad, prev_loss=prev_loss)
        return orig_loss


class LBFGSFirstStepL2Norm(LBFGS):
    """lbfgs.first_step_l2_norm (optax): t₁ = lr·min(1, 1/‖g‖₂)."""

    def _first_step(self, flat_grad, lr):
        return min(1.0, 1.0 / flat_grad.norm()) * lr


class LBFGSFirstStepInverseL2Norm(LBFGS):
    """lbfgs.first_step_inverse_l2_norm (scipy L-BFGS-B): t₁ = lr/‖g‖₂, not capped."""

    def _first_step(self, flat_grad, lr):
        return 1.0 / flat_grad.norm() * lr


class LBFGSUnscaledFirstStep(LBFGS):
    """lbfgs.unscaled_first_step (jaxopt; Nocedal & Wright Alg. 7.5): t₁ = lr."""

    def _first_step(self, flat_grad, lr):
        return lr


class LBFGSIdentityInitialHessian(LBFGSUnscaledFirstStep):
    """lbfgs.identity_initial_hessian (optax scale_init_precond=False, jaxopt use_gamma=False):
    H₀ = I, and so t₁ = lr."""

    def _initial_hessian(self, ys, y):
        return 1


class LBFGSNoCurvatureCheck(LBFGS):
    """lbfgs.no_curvature_check (optax, jaxopt; Nocedal & Wright): every pair with yᵀs ≠ 0 is kept."""

    def _keeps_pair(self, ys):
        return bool(ys != 0)


CONTROLS: dict[str, type[torch.optim.Optimizer]] = {"lbfgs": LBFGS}

MUTANTS: dict[tuple[str, str], type[torch.optim.Optimizer]] = {
    ("lbfgs", "lbfgs.first_step_l2_norm"): LBFGSFirstStepL2Norm,
    ("lbfgs", "lbfgs.first_step_inverse_l2_norm"): LBFGSFirstStepInverseL2Norm,
    ("lbfgs", "lbfgs.unscaled_first_step"): LBFGSUnscaledFirstStep,
    ("lbfgs", "lbfgs.identity_initial_hessian"): LBFGSIdentityInitialHessian,
    ("lbfgs", "lbfgs.no_curvature_check"): LBFGSNoCurvatureCheck,
}
