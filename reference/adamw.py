"""AdamW: Adam with decoupled weight decay, in plain NumPy.

Loshchilov & Hutter, "Decoupled Weight Decay Regularization" (arXiv:1711.05101), as
``torch.optim.AdamW`` implements it (see its documentation; it equals
``torch.optim.Adam(decoupled_weight_decay=True)``). The decay is scaled by the learning rate and
applied to theta *before* the Adam step; it never enters the moments::

    g = -g                        if maximize
    theta = theta * (1 - lr * weight_decay)            (decoupled decay, no L2 term)
    ... then exactly Adam's step (adam.py) with this g:
    m = beta1 * m + (1 - beta1) * g
    v = beta2 * v + (1 - beta2) * g**2
    v_max = max(v_max, v)         if amsgrad
    theta = theta - (lr / (1 - beta1**t)) * m / (sqrt(v_max or v) / sqrt(1 - beta2**t) + eps)

The default weight decay is 1e-2 (Adam's is 0).
"""

from __future__ import annotations

import numpy as np

from .adam import Adam


class AdamW(Adam):
    """AdamW, PyTorch's definition: Adam with theta *= (1 - lr * weight_decay) before each step."""

    conformance_spec = "adamw"  # the spec this class implements (how the registry finds it)

    decoupled_weight_decay = True

    def __init__(
        self,
        params: list[np.ndarray],
        lr: float = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 1e-2,
        amsgrad: bool = False,
        maximize: bool = False,
    ):
        super().__init__(
            params,
            lr=lr,
            betas=betas,
            eps=eps,
            weight_decay=weight_decay,
            amsgrad=amsgrad,
            maximize=maximize,
        )
