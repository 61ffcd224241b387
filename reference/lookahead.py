"""Lookahead around the SGD and Adam references, in plain NumPy.

Zhang, Lucas, Hinton & Ba, "Lookahead Optimizer: k steps forward, 1 step back"
(arXiv:1907.08610), Algorithm 1. The inner optimizer updates the fast weights theta on every
step; the slow weights start as the initial weights, and on every k-th call of ``step``::

    theta = slow + alpha * (theta - slow)
    slow  = theta

The inner optimizer's state is kept as it is. The calls are counted once per optimizer (the
libraries keep one counter per param group, advanced on every call); a parameter without a
gradient on a sync call is neither stepped nor synced. The slow weights are kept in each
parameter's state as ``slow_params`` (pytorch_optimizer's name); the call counter is saved by
``state_dict`` with the hyperparameters.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .adam import Adam
from .sgd import SGD


class _Lookahead:
    """The Lookahead part, mixed in before an inner reference class."""

    def _lookahead_init(self, k: int, alpha: float) -> None:
        if int(k) != k or k < 1:
            raise ValueError(f"invalid k: {k}")
        if not 0 <= alpha <= 1:
            raise ValueError(f"invalid alpha: {alpha}")
        self.k = int(k)
        self.alpha = alpha
        self.counter = 0  # step() calls so far

    def step(self, grads: list[np.ndarray | None]) -> None:
        """One inner step, then (every k-th call) the pull-back toward the slow weights."""
        # the slow weights are the parameter before its first step
        first = [theta.copy() if grad is not None and "slow_params" not in state else None
                 for theta, grad, state in zip(self.params, grads, self.state, strict=False)]
        super().step(grads)
        for slow, state in zip(first, self.state, strict=True):
            if slow is not None:
                state["slow_params"] = slow
        self.counter += 1
        if self.counter % self.k != 0:
            return
        alpha = float(self.alpha)
        for theta, grad, state in zip(self.params, grads, self.state, strict=True):
            if grad is None:
                continue  # not synced: as the libraries skip a param without a gradient
            slow = state["slow_params"]
            theta[...] = slow + alpha * (theta - slow)
            slow[...] = theta

    def state_dict(self) -> dict[str, Any]:
        out = super().state_dict()
        out["counter"] = self.counter
        return out

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        super().load_state_dict(state_dict)
        self.counter = int(state_dict["counter"])


class LookaheadSGD(_Lookahead, SGD):
    """Lookahead(k, alpha) around PyTorch's SGD (the SGD reference)."""

    conformance_spec = "lookahead_sgd"
    HYPERPARAMETERS = (*SGD.HYPERPARAMETERS, "k", "alpha")

    def __init__(self, params: list[np.ndarray], lr: float, k: int = 5, alpha: float = 0.5, **sgd: Any):
        super().__init__(params, lr=lr, **sgd)
        self._lookahead_init(k, alpha)


class LookaheadAdam(_Lookahead, Adam):
    """Lookahead(k, alpha) around PyTorch's Adam (the Adam reference)."""

    conformance_spec = "lookahead_adam"
    HYPERPARAMETERS = (*Adam.HYPERPARAMETERS, "k", "alpha")

    def __init__(self, params: list[np.ndarray], lr: float = 1e-3, k: int = 5, alpha: float = 0.5, **adam: Any):
        super().__init__(params, lr=lr, **adam)
        self._lookahead_init(k, alpha)
