"""Keras 3 candidates, natively: ``KERAS_BACKEND=torch pytest --optimizer=keras.optimizers.Adam``
(also on the jax and numpy backends where installed).

* One ``keras.Variable`` per param, in the case's dtype; one optimizer per param group (Keras has
  no param groups), built with ``Cls(**settings)`` under Keras' argument names (:mod:`.names`:
  ``learning_rate``, ``beta_1``/``beta_2``, ``epsilon``) and ``build(variables)``.
* Each step is ``apply_gradients([(grad, variable), ...])`` over the params that have a gradient
  on that step: Keras' own iteration counter (``optimizer.iterations``) counts the steps of the
  optimizer, whatever each variable received. A group none of whose params has a gradient on a
  step is not applied (Keras refuses an apply without gradients), but its optimizer's
  ``iterations`` still advances by one: the one optimizer a Keras user has counts every
  ``apply`` once, whichever variables had a gradient (``BaseOptimizer.apply``), and the per-group
  optimizers stand for it.
* A learning-rate change assigns Keras' ``learning_rate``; another setting is set as an attribute
  where the optimizer has one, else the case is skipped with the reason.
* A resume is Keras' own ``save_own_variables``/``load_own_variables`` into a fresh optimizer.
* The state is read from the optimizer's slot lists: ``_momentums``/``_velocities`` (Adam and
  friends) → ``exp_avg``/``exp_avg_sq``, ``momentums`` (SGD) → ``momentum_buffer``, and
  ``iterations`` → ``step``.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .candidates import Candidate, CaseSkipped, UsageError
from .drivers import Driver, skip_shared_groups
from .golden import Case, SparseGrad, Spec

SLOTS = {"_momentums": "exp_avg", "_velocities": "exp_avg_sq", "momentums": "momentum_buffer"}


def keras_module():
    try:
        import keras
    except ImportError as exc:
        raise UsageError(f"this candidate needs Keras 3 (pip install 'optimizer-conformance[keras]'): {exc}") from None
    return keras


class KerasDriver(Driver):
    def __init__(self, cand: Candidate, spec: Spec, case: Case, dtype: str, device: str):
        if device != "cpu":
            raise CaseSkipped(f"Keras candidates run on the CPU here, not {device}")
        if any(isinstance(g, SparseGrad) for s in case.steps for g in s.grads.values()):
            raise CaseSkipped("Keras candidates take dense gradients only")
        skip_shared_groups(spec, case)
        self.keras = keras_module()
        self.cand, self.spec, self.case = cand, spec, case
        self.dtype = dtype
        self.vars = {p.name: self.keras.Variable(p.initial.reshape(p.shape), dtype=dtype, name=p.name)
                     for p in case.params}
        self.groups = [dict(g.hyperparameters) for g in case.groups]
        self.findings = set()
        self.opts = [self._build(i) for i in range(len(case.groups))]

    def _variables(self, i: int) -> list:
        return [self.vars[n] for n in self.case.groups[i].params]

    def _build(self, i: int):
        variables = self._variables(i)
        opt = self.cand.build(self.spec, self.case, variables, self.groups[i], self.dtype, "cpu",
                              lambda: self.cand.target(**self.cand.settings(self.spec, self.groups[i]),
                                                       **self.cand.kwargs))
        opt.build(variables)
        return opt

    def set_hyperparameter(self, group: int, name: str, value: Any) -> None:
        self.groups[group][name] = value
        own = self.cand.own_name(self.spec, name)
        opt = self.opts[group]
        if own == "learning_rate":
            opt.learning_rate = value
        elif hasattr(opt, own):
            setattr(opt, own, value)
        else:
            raise CaseSkipped(f"the Keras optimizer has no {own!r} to change between steps")

    def step(self, grads: dict[str, np.ndarray | None]) -> None:
        ops = self.keras.ops
        for i, group in enumerate(self.case.groups):
            pairs = [(ops.convert_to_tensor(grads[n].reshape(self.vars[n].shape), dtype=self.dtype), self.vars[n])
                     for n in group.params if grads[n] is not None]
            if pairs:
                self.opts[i].apply_gradients(pairs)
            else:  # the group's params all lack a gradient: the step still counts (see the docstring)
                self.opts[i].iterations.assign_add(1)

    def reload(self) -> None:
        for i, opt in enumerate(self.opts):
            store: dict = {}
            opt.save_own_variables(store)
            fresh = self._build(i)
            fresh.load_own_variables(store)
            self.opts[i] = fresh

    def params(self) -> dict[str, np.ndarray]:
        return {n: np.asarray(self.keras.ops.convert_to_numpy(v), dtype=np.float64).reshape(-1).copy()
                for n, v in self.vars.items()}

    def state(self) -> dict[str, dict[str, np.ndarray]]:
        to_np = self.keras.ops.convert_to_numpy
        out: dict[str, dict[str, np.ndarray]] = {n: {} for n in self.vars}
        for i, group in enumerate(self.case.groups):
            opt = self.opts[i]
            for attr, torch_name in SLOTS.items():
                slots = getattr(opt, attr, None)
                if isinstance(slots, list) and len(slots) == len(group.params):
                    for n, v in zip(group.params, slots, strict=True):
                        if v is not None:
                            out[n][torch_name] = np.asarray(to_np(v), dtype=np.float64).copy()
            for n in group.params:
                out[n]["step"] = np.array([float(to_np(opt.iterations))])
        return out
