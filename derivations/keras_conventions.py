"""What every Keras 3 optimizer does around its own update rule (keras/src/optimizers/base_optimizer.py).

* The learning rate is a ``backend.Variable`` of dtype ``backend.floatx()`` (float32 unless changed),
  cast to each variable's dtype in ``update_step``: a float64 variable is updated with fl₃₂(γ)
  (``BaseOptimizer.__init__``).
* ``weight_decay`` is always decoupled, applied before ``update_step`` whatever the optimizer
  (``BaseOptimizer.apply``). With ``KERAS_BACKEND=torch`` (``TorchOptimizer._apply_weight_decay``,
  keras/src/backend/torch/optimizers/torch_optimizer.py) the factor ``1 - weight_decay * lr`` is a
  float32 tensor, the learning-rate variable times the Python float: θ ← θ·fl₃₂(1 − fl₃₂(fl₃₂(λ)·fl₃₂(γ))).
  (The other backends compute θ − θ·λ·fl₃₂(γ) in the variable's dtype; only float64 tells them apart.)
* The step count t is ``iterations + 1``, one counter for the optimizer, advanced once per
  ``apply`` whatever variables had a gradient (``BaseOptimizer.apply``: ``iterations.assign_add(1)``).

:func:`keras_conventions` applies the three to a spec's rule (or to a variant's rule, for the
optimizer-specific formula Keras uses): a Keras optimizer is then one named variant of its spec.
"""

from __future__ import annotations

from dataclasses import replace

import sympy as sp

from .rule import F32, Assign, Rule, g, steps_taken, theta


def keras_conventions(rule: Rule, lr: sp.Symbol, lam: sp.Symbol, counts_steps: bool = True) -> Rule:
    """``rule`` with the learning rate held in float32, L2 weight decay (a line ``weight_decay``
    that adds to g) replaced by Keras's decoupled decay before the update (a decoupled ``decay``
    line: its factor computed as Keras does), and (``counts_steps``) the line ``step`` reading the
    optimizer's iterations."""
    rule = replace(rule, body=tuple(replace(line, expr=sp.sympify(line.expr).xreplace({lr: F32(lr)}))
                                    for line in rule.body))
    decay = theta * F32(1 - F32(F32(lam) * F32(lr)))
    l2 = next((line for line in rule.body if line.label == "weight_decay" and line.target == g), None)
    if l2 is not None:
        first = rule.body[0].label
        rule = rule.remove("weight_decay").insert_before(
            first if first != "weight_decay" else rule.body[1].label,
            Assign("decay", theta, decay, "decoupled weight decay (Keras, its factor in float32)"))
    elif any(line.label == "decay" and line.target == theta for line in rule.body):
        rule = rule.replace("decay", decay, "decoupled weight decay (Keras, its factor in float32)")
    if counts_steps:
        rule = rule.replace("step", steps_taken)
    return rule


KERAS_SOURCES = (
    "keras/src/optimizers/base_optimizer.py BaseOptimizer.__init__ (learning_rate = "
    "backend.Variable(..., dtype=backend.floatx())), BaseOptimizer._apply_weight_decay "
    "(variable - variable * wd * lr), BaseOptimizer.apply (iterations.assign_add(1))",
    "keras/src/backend/torch/optimizers/torch_optimizer.py TorchOptimizer._apply_weight_decay "
    "(torch._foreach_mul_(..., 1 - self.weight_decay * self._get_current_learning_rate()))",
)
