"""What every NumPy reference shares: the parameter list, the gradient check and state_dict."""

from __future__ import annotations

from typing import Any

import numpy as np


def nonnegative(**values: float) -> None:
    """Raise ValueError naming the first hyperparameter that is negative (as torch's constructors do)."""
    for name, value in values.items():
        if value < 0:
            raise ValueError(f"invalid {name}: {value}")


def betas_in_range(betas: tuple[float, float]) -> None:
    """Raise ValueError unless both decay rates are in [0, 1)."""
    if not (0 <= betas[0] < 1 and 0 <= betas[1] < 1):
        raise ValueError(f"invalid betas: {betas}")


class NumpyOptimizer:
    """Holds ``params`` (updated in place), the hyperparameters (plain attributes, changeable
    between steps) and per-parameter ``state`` dicts under torch's names.

    A subclass's constructor keeps its explicit signature (the defaults are documentation, and
    the harness maps argument names from it), validates, and hands the values on:
    ``super().__init__(params, lr=lr, betas=tuple(betas), ...)``. The hyperparameters a
    ``state_dict`` carries are those keywords, or ``HYPERPARAMETERS`` where a subclass lists them
    (when it keeps other attributes beside them); ``COUNTERS`` names the integer state entries
    (``step``).
    """

    HYPERPARAMETERS: tuple[str, ...] = ()
    COUNTERS: tuple[str, ...] = ()

    def __init__(self, params: list[np.ndarray], **hyperparameters: Any):
        for name, value in hyperparameters.items():
            setattr(self, name, value)
        if hyperparameters and not type(self).HYPERPARAMETERS:
            self.HYPERPARAMETERS = tuple(hyperparameters)
        self.params = list(params)
        for p in self.params:
            if not isinstance(p, np.ndarray) or p.dtype.kind != "f":
                raise TypeError(f"params must be floating-point np.ndarray, got {type(p).__name__}")
        self.state: list[dict[str, Any]] = [{} for _ in self.params]

    def _check_grads(self, grads: list[np.ndarray | None]) -> None:
        if len(grads) != len(self.params):
            raise ValueError(f"expected {len(self.params)} gradients, got {len(grads)}")

    def _gradients(self, grads: list[np.ndarray | None]):
        """``(theta, g, state)`` for every parameter that has a gradient on this step.

        ``g`` is the gradient in the parameter's dtype, negated when the optimizer has
        ``maximize`` set; it is a new array, so the caller's gradient is only read. A parameter
        whose gradient is None is skipped: it, its state and its step count stay as they are.
        """
        self._check_grads(grads)
        for theta, grad, state in zip(self.params, grads, self.state, strict=True):
            if grad is None:
                continue
            g = np.asarray(grad, dtype=theta.dtype)
            if g.shape != theta.shape:
                raise ValueError(f"gradient shape {g.shape} != parameter shape {theta.shape}")
            yield theta, (-g if getattr(self, "maximize", False) else g), state

    def state_dict(self) -> dict[str, Any]:
        """Hyperparameters and per-parameter state, as independent copies."""
        return {
            "hyperparameters": {name: getattr(self, name) for name in self.HYPERPARAMETERS},
            "state": [
                {k: v.copy() if isinstance(v, np.ndarray) else v for k, v in s.items()}
                for s in self.state
            ],
        }

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Restore what :meth:`state_dict` returned (for the same list of parameters)."""
        for name in self.HYPERPARAMETERS:
            setattr(self, name, state_dict["hyperparameters"][name])
        saved = state_dict["state"]
        if len(saved) != len(self.params):
            raise ValueError(f"state of {len(saved)} params for {len(self.params)} params")
        self.state = [
            {
                k: int(v) if k in self.COUNTERS else np.array(v, dtype=p.dtype)  # its own shape (factors)
                for k, v in s.items()
            }
            for s, p in zip(saved, self.params, strict=True)
        ]
