"""L-BFGS with an optional strong-Wolfe line search, in plain NumPy: PyTorch's definition.

``torch.optim.LBFGS`` (after Mark Schmidt's minFunc). One ``step(closure)`` call runs at most
``max_iter`` iterations and ``max_eval`` evaluations of ``closure``, which returns the loss and
the gradients at the current parameters (updated in place). With g the flat gradient::

    evaluate f, g;  stop at once if max|g| <= tolerance_grad
    repeat (the history, d and t persist across calls):
        first iteration ever:  d = -g                      (no history, H0 = 1)
        otherwise:             y = g - g_prev,  s = t*d
                               if y.s > 1e-10: store (y, s, rho = 1/y.s), drop the oldest
                                               beyond history_size, H0 = y.s / y.y
                               d = -H g by the two-loop recursion from H0*I
        t = lr * min(1, 1/sum|g|) on the first iteration ever, lr afterwards
        stop if g.d > -tolerance_change
        line_search_fn None:          x += t*d, then evaluate f, g (not on the last iteration)
        line_search_fn "strong_wolfe": t from a strong-Wolfe search starting at t
                                      (c1 = 1e-4, c2 = 0.9), x += t*d
        stop on max_iter, max_eval, max|g| <= tolerance_grad, max|t*d| <= tolerance_change or
        |f - f_prev| < tolerance_change
    return the loss of the first evaluation

``state[0]`` (the first parameter's, as in torch) holds the counters ``func_evals`` and
``n_iter`` and the history ``d, t, old_dirs, old_stps, ro, H_diag, prev_flat_grad, prev_loss``.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

import numpy as np

from .base import NumpyOptimizer, nonnegative

Closure = Callable[[], tuple[Any, list[np.ndarray | None]]]


def cubic_minimizer(x1, f1, g1, x2, f2, g2, bounds=None):
    """Minimiser of the cubic interpolating f and f' at x1 and x2, clamped into bounds (default:
    the interval between them); the midpoint when the cubic has no real minimiser."""
    lo, hi = bounds if bounds is not None else ((x1, x2) if x1 <= x2 else (x2, x1))
    d1 = g1 + g2 - 3 * (f1 - f2) / (x1 - x2)
    disc = d1 * d1 - g1 * g2
    if disc < 0:
        return (lo + hi) / 2
    d2 = np.sqrt(disc)
    if x1 <= x2:
        x = x2 - (x2 - x1) * ((g2 + d2 - d1) / (g2 - g1 + 2 * d2))
    else:
        x = x1 - (x1 - x2) * ((g1 + d2 - d1) / (g1 - g2 + 2 * d2))
    return min(max(x, lo), hi)


def strong_wolfe(phi, t, f, g, gtd, d, c1=1e-4, c2=0.9, tolerance_change=1e-9, max_ls=25):
    """A step t along d satisfying the strong Wolfe conditions (minFunc's WolfeLineSearch).

    ``phi(t)`` returns (f, g) at x + t*d. Returns (f, g, t, evaluations) of the accepted point.
    """
    d_norm = np.max(np.abs(d))
    f_new, g_new = phi(t)
    evals = 1
    gtd_new = g_new @ d
    t_prev, f_prev, g_prev, gtd_prev = 0, f, g, gtd
    done = False
    it = 0
    # 1. bracketing: grow the step until an interval contains an acceptable point
    while it < max_ls:
        if f_new > f + c1 * t * gtd or (it > 1 and f_new >= f_prev):
            bracket = [[t_prev, f_prev, g_prev, gtd_prev], [t, f_new, g_new, gtd_new]]
            break
        if abs(gtd_new) <= -c2 * gtd:
            bracket, done = [[t, f_new, g_new, gtd_new]], True
            break
        if gtd_new >= 0:
            bracket = [[t_prev, f_prev, g_prev, gtd_prev], [t, f_new, g_new, gtd_new]]
            break
        t_next = cubic_minimizer(t_prev, f_prev, gtd_prev, t, f_new, gtd_new,
                                 bounds=(t + 0.01 * (t - t_prev), t * 10))
        t_prev, f_prev, g_prev, gtd_prev = t, f_new, g_new, gtd_new
        t = t_next
        f_new, g_new = phi(t)
        evals += 1
        gtd_new = g_new @ d
        it += 1
    if it == max_ls:
        bracket = [[0, f, g, None], [t, f_new, g_new, None]]
    # 2. zoom: shrink the bracket around the acceptable point
    low, high = (0, 1) if bracket[0][1] <= bracket[-1][1] else (1, 0)
    insufficient = False
    while not done and it < max_ls:
        a, b = bracket[0][0], bracket[1][0]
        if abs(b - a) * d_norm < tolerance_change:
            break
        t = cubic_minimizer(a, bracket[0][1], bracket[0][3], b, bracket[1][1], bracket[1][3])
        top, bottom = max(a, b), min(a, b)
        eps = 0.1 * (top - bottom)
        if min(top - t, t - bottom) < eps:  # too close to an end of the bracket
            if insufficient or t >= top or t <= bottom:
                t = top - eps if abs(t - top) < abs(t - bottom) else bottom + eps
                insufficient = False
            else:
                insufficient = True
        else:
            insufficient = False
        f_new, g_new = phi(t)
        evals += 1
        gtd_new = g_new @ d
        it += 1
        point = [t, f_new, g_new, gtd_new]
        if f_new > f + c1 * t * gtd or f_new >= bracket[low][1]:
            bracket[high] = point
            low, high = (0, 1) if bracket[0][1] <= bracket[1][1] else (1, 0)
        else:
            if abs(gtd_new) <= -c2 * gtd:
                done = True
            elif gtd_new * (bracket[high][0] - bracket[low][0]) >= 0:
                bracket[high] = bracket[low]
            bracket[low] = point
    t, f_new, g_new, _ = bracket[low]
    return f_new, g_new, t, evals


class LBFGS(NumpyOptimizer):
    """L-BFGS, PyTorch's definition. ``step(closure)``: ``closure()`` returns ``(loss, grads)``
    at the current values of ``params`` (updated in place; ``grads[i]`` None: a zero gradient)."""

    conformance_spec = "lbfgs"  # the spec this class implements (how the registry finds it)

    HYPERPARAMETERS = ("lr", "max_iter", "max_eval", "tolerance_grad", "tolerance_change",
                       "history_size", "line_search_fn")
    COUNTERS = ("func_evals", "n_iter")

    def __init__(
        self,
        params: list[np.ndarray],
        lr: float = 1.0,
        max_iter: int = 20,
        max_eval: int | None = None,
        tolerance_grad: float = 1e-7,
        tolerance_change: float = 1e-9,
        history_size: int = 100,
        line_search_fn: str | None = None,
    ):
        nonnegative(lr=lr)
        if line_search_fn not in (None, "strong_wolfe"):
            raise ValueError("only 'strong_wolfe' is supported")
        super().__init__(
            params, lr=lr, max_iter=max_iter,
            max_eval=max_iter * 5 // 4 if max_eval is None else max_eval,
            tolerance_grad=tolerance_grad, tolerance_change=tolerance_change,
            history_size=history_size, line_search_fn=line_search_fn,
        )
        self.dtype = self.params[0].dtype

    # -- the flat vector of all parameters --------------------------------------------------------
    def _evaluate(self, closure: Closure) -> tuple[float, np.ndarray]:
        loss, grads = closure()
        self._check_grads(grads)
        flat = np.concatenate([np.zeros(p.size, self.dtype) if g is None else np.asarray(g, self.dtype).ravel()
                               for p, g in zip(self.params, grads, strict=True)])
        return float(loss), flat

    def _move(self, t, d: np.ndarray) -> None:
        """params += t·d (in place)."""
        offset = 0
        for p in self.params:
            p += (t * d[offset: offset + p.size]).reshape(p.shape)
            offset += p.size

    def _at(self, closure: Closure, t, d: np.ndarray) -> tuple[float, np.ndarray]:
        """f and g at params + t·d; params restored bit for bit afterwards."""
        saved = [p.copy() for p in self.params]
        self._move(t, d)
        out = self._evaluate(closure)
        for p, v in zip(self.params, saved, strict=True):
            p[...] = v
        return out

    # -- one call ------------------------------------------------------------------------------------
    def _direction(self, g: np.ndarray, st: dict) -> np.ndarray:
        """-H·g: the two-loop recursion over the stored pairs, from H0 = H_diag·I."""
        old_dirs, old_stps, ro = st["old_dirs"], st["old_stps"], st["ro"]
        alpha = [None] * len(old_dirs)
        q = -g
        for i in reversed(range(len(old_dirs))):
            alpha[i] = (old_stps[i] @ q) * ro[i]
            q = q + (-alpha[i]) * old_dirs[i]
        r = q * st["H_diag"]
        for i in range(len(old_dirs)):
            beta = (old_dirs[i] @ r) * ro[i]
            r = r + (alpha[i] - beta) * old_stps[i]
        return r

    def step(self, closure: Closure):
        st = self.state[0]
        st.setdefault("func_evals", 0)
        st.setdefault("n_iter", 0)
        orig_loss, g = self._evaluate(closure)
        loss = orig_loss
        evals = 1
        st["func_evals"] += 1
        if np.max(np.abs(g)) <= self.tolerance_grad:
            return orig_loss

        n_iter = 0
        while n_iter < self.max_iter:
            n_iter += 1
            st["n_iter"] += 1
            if st["n_iter"] == 1:
                d = -g
                st.update(old_dirs=[], old_stps=[], ro=[], H_diag=1)
            else:
                y = g - st["prev_flat_grad"]
                s = st["d"] * st["t"]
                ys = y @ s
                if ys > 1e-10:  # the curvature safeguard
                    if len(st["old_dirs"]) == self.history_size:
                        for key in ("old_dirs", "old_stps", "ro"):
                            st[key].pop(0)
                    st["old_dirs"].append(y)
                    st["old_stps"].append(s)
                    st["ro"].append(1.0 / ys)
                    st["H_diag"] = ys / (y @ y)
                d = self._direction(g, st)
            st["d"] = d
            st["prev_flat_grad"] = g.copy()
            st["prev_loss"] = prev_loss = loss
            t = min(1.0, 1.0 / np.sum(np.abs(g))) * self.lr if st["n_iter"] == 1 else self.lr
            st["t"] = t
            gtd = g @ d
            if gtd > -self.tolerance_change:
                break
            new_evals = 0
            if self.line_search_fn == "strong_wolfe":
                def phi(step, d=d):
                    return self._at(closure, step, d)

                loss, g, t, new_evals = strong_wolfe(phi, t, loss, g, gtd, d, max_ls=self.max_eval - evals)
                st["t"] = t
                self._move(t, d)
                converged = np.max(np.abs(g)) <= self.tolerance_grad
            else:
                self._move(t, d)
                if n_iter != self.max_iter:  # no evaluation after the last iteration
                    loss, g = self._evaluate(closure)
                    new_evals = 1
                    converged = np.max(np.abs(g)) <= self.tolerance_grad
            evals += new_evals
            st["func_evals"] += new_evals
            if n_iter == self.max_iter or evals >= self.max_eval or converged:
                break
            if np.max(np.abs(d * t)) <= self.tolerance_change or abs(loss - prev_loss) < self.tolerance_change:
                break
        return orig_loss

    # -- checkpoints ---------------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        return {"hyperparameters": {name: getattr(self, name) for name in self.HYPERPARAMETERS},
                "state": copy.deepcopy(self.state)}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        for name in self.HYPERPARAMETERS:
            setattr(self, name, state_dict["hyperparameters"][name])
        if len(state_dict["state"]) != len(self.params):
            raise ValueError(f"state of {len(state_dict['state'])} params for {len(self.params)} params")
        self.state = copy.deepcopy(state_dict["state"])
