"""SparseAdam in plain NumPy: Adam restricted to the entries a sparse gradient lists.

``torch.optim.SparseAdam`` (see its documentation and ``torch.optim._functional.sparse_adam``).
A sparse gradient arrives as ``(indices, values)`` in torch's COO layout: ``indices`` has one row
per dimension and one column per entry, and an index may be listed more than once. For each
parameter theta with such a gradient, at its t-th step::

    g = coalesce(indices, values)   repeated indices add up; the listed entries are "present"
    g = -g                          if maximize
    at the present entries only (the others keep theta, m and v):
        m = beta1 * m + (1 - beta1) * g
        v = beta2 * v + (1 - beta2) * g**2
        theta = theta - lr * sqrt(1 - beta2**t) / (1 - beta1**t) * m / (sqrt(v) + eps)

t counts the parameter's steps (every step it has a gradient), not the entry's. Note the ε̂ form
of the step: eps is added to sqrt(v), not to the bias-corrected sqrt(v_hat) as in Adam.
"""

from __future__ import annotations

import math

import numpy as np

from .base import NumpyOptimizer, betas_in_range, nonnegative


def coalesce(indices: np.ndarray, values: np.ndarray, shape: tuple[int, ...]) -> tuple[np.ndarray, np.ndarray]:
    """(flat indices of the present entries, their summed values), like ``Tensor.coalesce()``."""
    flat = np.ravel_multi_index(tuple(np.asarray(indices, dtype=np.int64)), shape) if shape else np.zeros(
        np.asarray(values).shape, dtype=np.int64)
    present, inverse = np.unique(flat, return_inverse=True)
    summed = np.zeros(present.shape, dtype=np.asarray(values).dtype)
    np.add.at(summed, inverse, values)
    return present, summed


class SparseAdam(NumpyOptimizer):
    """SparseAdam, PyTorch's definition; ``step(grads)`` takes ``(indices, values)`` pairs or None."""

    conformance_spec = "sparseadam"  # the spec this class implements (how the registry finds it)

    COUNTERS = ("step",)
    HYPERPARAMETERS = ("lr", "betas", "eps", "maximize")

    def __init__(self, params: list[np.ndarray], lr: float = 1e-3, betas: tuple[float, float] = (0.9, 0.999),
                 eps: float = 1e-8, maximize: bool = False):
        nonnegative(lr=lr, eps=eps)
        betas_in_range(betas)
        super().__init__(params, lr=lr, betas=tuple(betas), eps=eps, maximize=maximize)

    def step(self, grads: list[tuple[np.ndarray, np.ndarray] | None]) -> None:
        self._check_grads(grads)
        lr, eps = float(self.lr), float(self.eps)
        beta1, beta2 = (float(b) for b in self.betas)
        for theta, grad, state in zip(self.params, grads, self.state, strict=True):
            if grad is None:
                continue
            indices, values = grad
            where, g = coalesce(indices, np.asarray(values, dtype=theta.dtype), theta.shape)
            if self.maximize:
                g = -g
            if not state:
                state["step"] = 0
                state["exp_avg"] = np.zeros_like(theta)
                state["exp_avg_sq"] = np.zeros_like(theta)
            state["step"] += 1
            t = state["step"]
            if where.size == 0:
                continue  # an empty gradient: nothing present (the step still counts, as in torch)
            at = np.unravel_index(where, theta.shape)  # only the present entries change
            m, v = state["exp_avg"], state["exp_avg_sq"]
            m[at] = beta1 * m[at] + (1 - beta1) * g
            v[at] = beta2 * v[at] + (1 - beta2) * (g * g)
            step_size = lr * math.sqrt(1 - beta2**t) / (1 - beta1**t)
            theta[at] -= step_size * m[at] / (np.sqrt(v[at]) + eps)
