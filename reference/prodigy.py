"""Prodigy (distance-adaptive Adam), in plain NumPy.

Mishchenko & Defazio, "Prodigy: An Expeditiously Adaptive Parameter-Free Learner"
(arXiv:2306.06101), as the authors' package ``prodigyopt`` implements it with growth_rate = inf.
One step-size estimate d for the whole optimizer. On each call to step(), with k the number of
calls so far (this one included) and beta3 = sqrt(beta2)::

    dlr = d * lr * (sqrt(1 - beta2**k) / (1 - beta1**k) if use_bias_correction else 1)
    d_numerator = beta3 * d_numerator
    for every param with a gradient g (g += weight_decay * theta first if not decouple):
        p0 = theta at the param's first step
        d_numerator += (d / d0) * dlr * dot(g, p0 - theta)
        exp_avg = beta1 * exp_avg + (1 - beta1) * d * g
        exp_avg_sq = beta2 * exp_avg_sq + (1 - beta2) * d**2 * g**2
        s = beta3 * s + (d / d0) * (d if safeguard_warmup else dlr) * g
    d_denom = sum of |s| over every param
    if d_denom == 0: stop here (d, the params and their step counts stay)
    d = max(d, d_coef * d_numerator / d_denom)
    for every param with a gradient:
        if decouple: theta = theta - weight_decay * dlr * theta
        theta = theta - dlr * exp_avg / (sqrt(exp_avg_sq) + d * eps)     (dlr from the old d)
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from .base import NumpyOptimizer, betas_in_range, nonnegative


class Prodigy(NumpyOptimizer):
    """Prodigy with one estimate d for all ``params`` (prodigyopt's ``Prodigy``, growth_rate = inf).

    ``params`` is a list of floating-point arrays updated in place by :meth:`step`; the
    hyperparameters are plain attributes and may be changed between steps. The estimate ``d``, its
    numerator and the number of step() calls are attributes of the optimizer (kept in state_dict).
    """

    conformance_spec = "prodigy"

    COUNTERS = ("step",)
    HYPERPARAMETERS = ("lr", "betas", "eps", "weight_decay", "decouple", "d0", "d_coef",
                       "use_bias_correction", "safeguard_warmup")

    def __init__(
        self,
        params: list[np.ndarray],
        lr: float = 1.0,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 0.0,
        decouple: bool = True,
        d0: float = 1e-6,
        d_coef: float = 1.0,
        use_bias_correction: bool = False,
        safeguard_warmup: bool = False,
    ):
        nonnegative(lr=lr, eps=eps, weight_decay=weight_decay)
        if not d0 > 0:
            raise ValueError(f"invalid d0: {d0}")
        betas_in_range(betas)
        super().__init__(
            params, lr=lr, betas=tuple(betas), eps=eps, weight_decay=weight_decay,
            decouple=decouple, d0=d0, d_coef=d_coef, use_bias_correction=use_bias_correction,
            safeguard_warmup=safeguard_warmup, d=float(d0), d_numerator=0.0, calls=0,
        )

    def step(self, grads: list[np.ndarray | None]) -> None:
        """One update of every parameter whose gradient is not None (in place)."""
        lr = float(self.lr)
        beta1, beta2 = (float(b) for b in self.betas)
        beta3 = math.sqrt(beta2)
        eps, weight_decay = float(self.eps), float(self.weight_decay)
        d0, d = float(self.d0), self.d
        self.calls += 1
        k = self.calls
        correction = math.sqrt(1 - beta2**k) / (1 - beta1**k) if self.use_bias_correction else 1.0
        dlr = d * lr * correction

        numerator = beta3 * self.d_numerator
        denominator = 0.0
        active = []
        for theta, g, state in self._gradients(grads):
            if not self.decouple:
                g = g + weight_decay * theta
            if not state:
                state["step"] = 0
                state["p0"] = theta.copy()
                state["s"] = np.zeros_like(theta)
                state["exp_avg"] = np.zeros_like(theta)
                state["exp_avg_sq"] = np.zeros_like(theta)
            numerator += (d / d0) * dlr * float(np.sum(g * (state["p0"] - theta), dtype=np.float64))
            state["exp_avg"][...] = beta1 * state["exp_avg"] + (1 - beta1) * d * g
            state["exp_avg_sq"][...] = beta2 * state["exp_avg_sq"] + (1 - beta2) * d * d * g * g
            weight = d if self.safeguard_warmup else dlr
            state["s"][...] = beta3 * state["s"] + (d / d0) * weight * g
            denominator += float(np.sum(np.abs(state["s"]), dtype=np.float64))
            active.append((theta, state))
        if denominator == 0:
            return  # d, the params and their step counts stay
        self.d_numerator = numerator
        d = max(d, self.d_coef * numerator / denominator)
        self.d = d
        for theta, state in active:
            state["step"] += 1
            if self.decouple and weight_decay != 0:
                theta -= (weight_decay * dlr) * theta
            theta -= dlr * state["exp_avg"] / (np.sqrt(state["exp_avg_sq"]) + d * eps)

    def state_dict(self) -> dict[str, Any]:
        out = super().state_dict()
        out["estimate"] = {"d": self.d, "d_numerator": self.d_numerator, "calls": self.calls}
        return out

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        super().load_state_dict(state_dict)
        estimate = state_dict["estimate"]
        self.d, self.d_numerator, self.calls = estimate["d"], estimate["d_numerator"], estimate["calls"]
