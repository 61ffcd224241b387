"""Rprop (resilient backpropagation) with maximize, in plain NumPy.

Riedmiller & Braun, "A Direct Adaptive Method for Faster Backpropagation Learning: The RPROP
Algorithm" (1993), as ``torch.optim.Rprop`` implements it (see its documentation and
``_single_tensor_rprop`` in torch/optim/rprop.py): the variant without weight backtracking in
which the gradient is set to zero after a sign change (iRprop−, Igel & Hüsken 2000). Every element
keeps its own step size (the learning rate before its first step) and the gradient of its
previous step, ``prev`` (0 before the first step). At each step, with gradient g::

    g = -g                                   if maximize
    factor = eta_plus    if g * prev > 0     (same sign: grow)
             eta_minus   if g * prev < 0     (sign change: shrink)
             1           if g * prev == 0    (first step, or after a sign change)
    step_size = clip(step_size * factor, step_size_min, step_size_max)   (both bounds, always)
    g = 0                if g * prev < 0     (after a sign change: no move)
    theta = theta - sign(g) * step_size
    prev = g

The learning rate only sets the initial step size: changing it later does not affect a
parameter that has already taken a step.
"""

from __future__ import annotations

import numpy as np

from .base import NumpyOptimizer, nonnegative


class Rprop(NumpyOptimizer):
    """Rprop, PyTorch's definition (iRprop−).

    ``params`` is a list of floating-point arrays updated in place by :meth:`step`. The
    hyperparameters are plain attributes and may be changed between steps. Each parameter keeps
    its own step count, which advances only on steps where it has a gradient.
    """

    conformance_spec = "rprop"  # the spec this class implements (how the registry finds it)

    COUNTERS = ("step",)
    HYPERPARAMETERS = ("lr", "etas", "step_sizes", "maximize")

    def __init__(
        self,
        params: list[np.ndarray],
        lr: float = 1e-2,
        etas: tuple[float, float] = (0.5, 1.2),
        step_sizes: tuple[float, float] = (1e-6, 50.0),
        maximize: bool = False,
    ):
        nonnegative(lr=lr)
        if not 0 < etas[0] < 1 < etas[1]:
            raise ValueError(f"invalid etas: {etas}")
        super().__init__(
            params, lr=lr, etas=tuple(etas), step_sizes=tuple(step_sizes), maximize=maximize,
        )

    def step(self, grads: list[np.ndarray | None]) -> None:
        """One update of every parameter whose gradient is not None (in place)."""
        eta_minus, eta_plus = (float(e) for e in self.etas)
        step_size_min, step_size_max = (float(s) for s in self.step_sizes)

        # params without a gradient are skipped: their value, state and step count stay
        for theta, g, state in self._gradients(grads):

            if not state:
                state["step"] = 0
                state["prev"] = np.zeros_like(theta)
                state["step_size"] = np.full_like(theta, float(self.lr))  # the lr of this step
            state["step"] += 1
            prev, step_size = state["prev"], state["step_size"]  # updated in place

            product = g * prev
            factor = np.where(product > 0, eta_plus, np.where(product < 0, eta_minus, 1.0))
            step_size[...] = np.clip(step_size * factor.astype(theta.dtype),
                                     step_size_min, step_size_max)
            g = np.where(product < 0, 0, g).astype(theta.dtype)  # a sign change: do not move
            theta -= np.sign(g) * step_size
            prev[...] = g
