"""SOAP (ShampoO with Adam in the Preconditioner's eigenbasis), in plain NumPy.

Vyas et al., "SOAP: Improving and Stabilizing Shampoo using Adam" (arXiv:2409.11321), as the
authors' code runs it (github.com/nikhilvyas/SOAP, soap.py) with max_precond_dim = 10000,
merge_dims = False and precondition_1d = False. For a parameter theta with gradient G, at the t-th
step on which it has a gradient:

* t = 1: for each dimension d of a parameter with at least two dimensions, a factor
  ``GG[d] = (1 - shampoo_beta) * G_(d) @ G_(d).T`` (G_(d): dimension d first, the others
  flattened: G Gᵀ and Gᵀ G for a matrix) and its eigenvectors Q[d], by decreasing eigenvalue.
  Nothing else happens on this step.
* t >= 2, with k = t - 1::

      G' = G rotated: G ×_d Q[d]ᵀ for every d          (Q_Lᵀ G Q_R for a matrix)
      exp_avg    = beta1 * exp_avg + (1 - beta1) * G     (in the parameter's basis)
      exp_avg_sq = beta2 * exp_avg_sq + (1 - beta2) * G'**2
      D = (exp_avg rotated) / (sqrt(exp_avg_sq) + eps)
      U = D rotated back                                 (Q_L D Q_Rᵀ)
      U = U / (1e-30 + sqrt(mean(U**2)))                 if normalize_grads
      theta -= lr * sqrt(1 - beta2**k) / (1 - beta1**k) * U   (lr * U without correct_bias)
      theta -= lr * weight_decay * theta
      GG[d] = shampoo_beta * GG[d] + (1 - shampoo_beta) * G_(d) @ G_(d).T
      if k % precondition_frequency == 0, for each d: sort Q[d]'s columns by diag(Q[d]ᵀ GG[d] Q[d]),
      decreasing, permute exp_avg_sq along d the same way, and Q[d] = the Q of qr(GG[d] @ Q[d]).

Vectors and scalars have no factor: they follow Adam, one step late. shampoo_beta None means beta2.
The eigenvectors' signs are whatever LAPACK returns: the step does not depend on them. The factors
and eigenbases are kept beside ``state`` (``preconditioners``) and travel with ``state_dict``.
"""

from __future__ import annotations

import copy

import numpy as np

from .base import NumpyOptimizer, betas_in_range, nonnegative


def _rotate(x: np.ndarray, bases: list, back: bool = False) -> np.ndarray:
    """x ×_d Q[d]ᵀ for every dimension d with a basis (×_d Q[d] with ``back``)."""
    for d, q in enumerate(bases):
        if q is not None:
            x = np.moveaxis(np.tensordot(x, q.T if back else q, axes=([d], [0])), -1, d)
    return x


def _outer(g: np.ndarray, d: int) -> np.ndarray:
    """G_(d) @ G_(d).T: the gradient contracted with itself over every dimension but d."""
    unfolded = np.moveaxis(g, d, 0).reshape(g.shape[d], -1)
    return unfolded @ unfolded.T


def _eigenvectors(factor: np.ndarray) -> np.ndarray:
    """Eigenvectors of a symmetric matrix, by decreasing eigenvalue (LAPACK's signs)."""
    _, q = np.linalg.eigh(factor)
    return q[:, ::-1]


class SOAP(NumpyOptimizer):
    """SOAP, the official code's definition, for a list of floating-point arrays updated in place.

    The hyperparameters are plain attributes and may be changed between steps; each parameter
    keeps its own step count.
    """

    conformance_spec = "soap"

    COUNTERS = ("step",)
    HYPERPARAMETERS = ("lr", "betas", "shampoo_beta", "eps", "weight_decay", "precondition_frequency",
                       "correct_bias", "normalize_grads")

    def __init__(
        self,
        params: list[np.ndarray],
        lr: float = 3e-3,
        betas: tuple[float, float] = (0.95, 0.95),
        shampoo_beta: float | None = None,
        eps: float = 1e-8,
        weight_decay: float = 0.01,
        precondition_frequency: int = 10,
        correct_bias: bool = True,
        normalize_grads: bool = False,
    ):
        nonnegative(lr=lr, eps=eps, weight_decay=weight_decay)
        betas_in_range(betas)
        if shampoo_beta is not None and not 0 <= shampoo_beta < 1:
            raise ValueError(f"invalid shampoo_beta: {shampoo_beta}")
        if int(precondition_frequency) < 1:
            raise ValueError(f"invalid precondition_frequency: {precondition_frequency}")
        super().__init__(
            params, lr=lr, betas=tuple(betas), shampoo_beta=shampoo_beta, eps=eps,
            weight_decay=weight_decay, precondition_frequency=precondition_frequency,
            correct_bias=correct_bias, normalize_grads=normalize_grads,
        )
        # per parameter: None before its first gradient, then {"GG": [...], "Q": [...]}
        self.preconditioners: list[dict | None] = [None] * len(self.params)

    def _accumulate(self, pre: dict, g: np.ndarray, shampoo_beta: float) -> None:
        for d, factor in enumerate(pre["GG"]):
            if factor is not None:
                pre["GG"][d] = shampoo_beta * factor + (1 - shampoo_beta) * _outer(g, d)

    def _refresh(self, pre: dict, exp_avg_sq: np.ndarray) -> np.ndarray:
        """One power-iteration step and QR per factor; returns exp_avg_sq in the new order."""
        for d, (factor, q) in enumerate(zip(pre["GG"], pre["Q"], strict=True)):
            if factor is None:
                continue
            product = factor @ q
            estimates = np.sum(q * product, axis=0)  # diag(Qᵀ GG Q)
            order = np.argsort(-estimates, kind="stable")
            exp_avg_sq = np.take(exp_avg_sq, order, axis=d)
            pre["Q"][d], _ = np.linalg.qr(product[:, order])
        return exp_avg_sq

    def step(self, grads: list[np.ndarray | None]) -> None:
        """One update of every parameter whose gradient is not None (in place)."""
        self._check_grads(grads)
        lr = float(self.lr)
        beta1, beta2 = (float(b) for b in self.betas)
        shampoo_beta = beta2 if self.shampoo_beta is None else float(self.shampoo_beta)
        eps = float(self.eps)
        weight_decay = float(self.weight_decay)
        frequency = int(self.precondition_frequency)

        for i, (theta, grad) in enumerate(zip(self.params, grads, strict=True)):
            if grad is None:
                continue
            g = np.asarray(grad, dtype=theta.dtype)
            state = self.state[i]
            if not state:
                state["step"] = 0
                state["exp_avg"] = np.zeros_like(theta)
                state["exp_avg_sq"] = np.zeros_like(theta)
            state["step"] += 1
            pre = self.preconditioners[i]
            if pre is None:  # the first step: the preconditioner only
                factors = [np.zeros((n, n), dtype=theta.dtype) for n in g.shape] if g.ndim >= 2 else []
                pre = self.preconditioners[i] = {"GG": factors}
                self._accumulate(pre, g, shampoo_beta)
                pre["Q"] = [_eigenvectors(f) for f in factors]
                continue
            k = state["step"] - 1
            m, v = state["exp_avg"], state["exp_avg_sq"]

            g_rotated = _rotate(g, pre["Q"])
            m[...] = beta1 * m + (1 - beta1) * g
            v[...] = beta2 * v + (1 - beta2) * g_rotated * g_rotated
            direction = _rotate(m, pre["Q"]) / (np.sqrt(v) + eps)
            update = _rotate(direction, pre["Q"], back=True)
            if self.normalize_grads:
                update = update / (1e-30 + np.sqrt(np.mean(update * update)))
            step_size = lr * np.sqrt(1 - beta2**k) / (1 - beta1**k) if self.correct_bias else lr
            theta -= step_size * update
            theta -= (lr * weight_decay) * theta

            self._accumulate(pre, g, shampoo_beta)
            if k % frequency == 0:
                state["exp_avg_sq"] = self._refresh(pre, v)

    def state_dict(self) -> dict:
        out = super().state_dict()
        out["preconditioners"] = copy.deepcopy(self.preconditioners)
        return out

    def load_state_dict(self, state_dict: dict) -> None:
        super().load_state_dict(state_dict)
        self.preconditioners = copy.deepcopy(state_dict["preconditioners"])
