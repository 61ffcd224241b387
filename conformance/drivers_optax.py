"""optax candidates, natively: ``pytest --optimizer=optax.adam`` (or any function returning an
``optax.GradientTransformation``; ``optax.chain(...)`` behind a factory).

* Params are JAX arrays of the case's shapes in a list (one pytree, one transformation and state
  per param group), built with ``make(**settings)`` under optax's argument names
  (:mod:`.names`: ``learning_rate``, ``b1``/``b2``, ``eps``, ...); each step is
  ``updates, state = update(grads, state, params)`` and ``params = optax.apply_updates(params,
  updates)``, with ``update`` under ``jax.jit`` (``--optimizer-no-jit`` runs it eagerly).
* ``jax.jit`` is applied to each case's own transformation, whose settings are Python numbers, as
  in a user's ``jax.jit`` of a step using ``optax.adamw(1e-3, ...)``: XLA folds them into the
  program, so every case (and dtype) is compiled once, which is most of an optax run's time. The
  two cheaper ways change the last bits of the trajectory, so the verdict would no longer be on
  what users run: op by op without jit (XLA rewrites e.g. a division by a broadcast scalar into a
  multiplication by its reciprocal, and may contract a multiply-add), and one compile shared by
  every case with the settings as traced arguments (``inject_hyperparams``: they are then arrays,
  and what Python computes from them in float64 before folding, XLA computes in the arrays'
  precision). Measured on adamw, 50 steps of 64 float32 elements: 7 differ between eager and jit,
  14 between jit with the settings folded and jit with them injected.
* float64 needs ``jax_enable_x64``: it is switched on when this module is imported, before the
  candidate creates any array; if JAX still gives float32 the run stops with a usage error.
* A hyperparameter changed between steps goes through ``optax.inject_hyperparams(make)``, which
  keeps it in the state (as optax's schedules do); only the changed settings are injected (the
  others stay static arguments, as without the wrapper). Where that wrapper cannot take the factory
  the case is skipped with the reason.
* optax has no "no gradient for this param": a zero gradient still advances the state, so cases in
  which a param has no gradient on some step are skipped with that reason.
* The state is compared where optax's state fields map onto torch's names:
  ``mu``/``nu``/``count`` of ``ScaleByAdamState`` → ``exp_avg``/``exp_avg_sq``/``step``,
  ``trace`` → ``momentum_buffer``; a resume is a round trip of the state through NumPy arrays
  into a freshly built transformation.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .candidates import Candidate, CaseSkipped, UsageError
from .drivers import Driver, skip_shared_groups
from .golden import Case, SparseGrad, Spec

# optax state field -> torch's state name
STATE_NAMES = {"mu": "exp_avg", "nu": "exp_avg_sq", "count": "step", "trace": "momentum_buffer"}
NO_GRAD = ("optax has no 'no gradient' for a param (a zero gradient still advances its state): "
           "cases where a param has no gradient on some step are not run")


def jax_modules():
    """jax, jax.numpy and optax, with float64 enabled (usage error if JAX refuses it)."""
    try:
        import jax
    except ImportError as exc:
        raise UsageError(f"this candidate needs JAX and optax (pip install 'optimizer-conformance[jax]'): {exc}") from None
    jax.config.update("jax_enable_x64", True)
    import jax.numpy as jnp
    import optax

    if jnp.zeros((), dtype=jnp.float64).dtype != np.float64:
        raise UsageError("JAX was initialised without float64 support (jax_enable_x64) before the suite could "
                         "enable it: set JAX_ENABLE_X64=1 in the environment")
    return jax, jnp, optax


class OptaxDriver(Driver):
    def __init__(self, cand: Candidate, spec: Spec, case: Case, dtype: str, device: str):
        if device != "cpu":
            raise CaseSkipped(f"optax candidates run on the CPU here, not {device}")
        if any(g is None for s in case.steps for g in s.grads.values()):
            raise CaseSkipped(NO_GRAD)
        if any(isinstance(g, SparseGrad) for s in case.steps for g in s.grads.values()):
            raise CaseSkipped("optax candidates take dense gradients only")
        skip_shared_groups(spec, case)
        self.jax, self.jnp, self.optax = jax_modules()
        self.cand, self.spec, self.case = cand, spec, case
        self.dtype = self.jnp.dtype(dtype)
        self.inject = any(s.changes for s in case.steps)  # settings change mid-run: inject_hyperparams
        self.findings = set()
        self.values = [[self.jnp.asarray(p.initial.reshape(p.shape), dtype=self.dtype)
                        for p in case.params if p.name in g.params] for g in case.groups]
        self.groups = [dict(g.hyperparameters) for g in case.groups]
        self.txs = [self._build(i) for i in range(len(case.groups))]
        self.states = [tx.init(ps) for (tx, _update), ps in zip(self.txs, self.values, strict=True)]

    def _build(self, i: int):
        settings = {**self.cand.settings(self.spec, self.groups[i]), **self.cand.kwargs}
        make = self.cand.target
        if self.inject:
            # only what changes is injected (held in the state); the rest stays a static argument,
            # computed with as optax computes it without the wrapper
            changed = {self.cand.own_name(self.spec, c.name) for s in self.case.steps for c in s.changes}
            static = tuple(k for k in settings if k not in changed)
            try:
                tx = self.optax.inject_hyperparams(make, static_args=static)(**settings)
            except Exception as exc:
                raise CaseSkipped(f"the case changes a setting between steps and optax.inject_hyperparams cannot "
                                  f"wrap the candidate ({type(exc).__name__}: {exc})") from None
        else:
            tx = self.cand.build(self.spec, self.case, self.values[i] if hasattr(self, "values") else [],
                                 self.groups[i], self.dtype.name, "cpu", lambda: make(**settings))
        update = self.jax.jit(tx.update) if getattr(self.cand, "jit", True) else tx.update
        return tx, update

    def set_hyperparameter(self, group: int, name: str, value: Any) -> None:
        self.groups[group][name] = value
        own = self.cand.own_name(self.spec, name)
        hps = getattr(self.states[group], "hyperparams", None)
        if hps is None or own not in hps:
            raise CaseSkipped(f"the candidate's {own!r} cannot be changed between steps "
                              f"(optax.inject_hyperparams does not hold it)")
        hps[own] = self.jnp.asarray(value, dtype=hps[own].dtype)

    def step(self, grads: dict[str, np.ndarray | None]) -> None:
        for i, group in enumerate(self.case.groups):
            given = [self.jnp.asarray(grads[n].reshape(self.shape(n)), dtype=self.dtype) for n in group.params]
            (_tx, update) = self.txs[i]
            updates, self.states[i] = update(given, self.states[i], self.values[i])
            self.values[i] = self.optax.apply_updates(self.values[i], updates)

    def shape(self, name: str) -> tuple[int, ...]:
        return next(p.shape for p in self.case.params if p.name == name)

    def reload(self) -> None:
        """Resume: the state through NumPy (as a checkpoint keeps it) into a fresh transformation."""
        saved = [self.jax.tree.map(np.asarray, st) for st in self.states]
        self.txs = [self._build(i) for i in range(len(self.case.groups))]
        self.states = [self.jax.tree.map(self.jnp.asarray, st) for st in saved]

    def params(self) -> dict[str, np.ndarray]:
        out = {}
        for group, arrays in zip(self.case.groups, self.values, strict=True):
            for n, a in zip(group.params, arrays, strict=True):
                out[n] = np.asarray(a, dtype=np.float64).reshape(-1).copy()
        return out

    def state(self) -> dict[str, dict[str, np.ndarray]]:
        out: dict[str, dict[str, np.ndarray]] = {n: {} for g in self.case.groups for n in g.params}
        for group, st in zip(self.case.groups, self.states, strict=True):
            for fields in _named_states(st):
                for key, torch_name in STATE_NAMES.items():
                    value = fields.get(key)
                    if isinstance(value, (list, tuple)) and len(value) == len(group.params):
                        for n, v in zip(group.params, value, strict=True):
                            out[n][torch_name] = np.asarray(v, dtype=np.float64).copy()
                    elif value is not None and np.ndim(value) == 0 and key == "count":
                        for n in group.params:  # one count for the whole transformation
                            out[n][torch_name] = np.array([float(value)])
        return out


def _named_states(state) -> list[dict]:
    """The fields of every named-tuple state inside an optax state (chains are tuples; injected
    hyperparameters wrap the inner state)."""
    found = []
    stack = [state]
    while stack:
        s = stack.pop()
        if hasattr(s, "_asdict"):
            fields = s._asdict()
            found.append(fields)
            stack.extend(v for k, v in fields.items() if k == "inner_state")
        elif isinstance(s, (list, tuple)):
            stack.extend(x for x in s if hasattr(x, "_asdict") or isinstance(x, tuple))
    return found
