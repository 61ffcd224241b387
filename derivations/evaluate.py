"""Evaluate a rule along a case in high precision (mpmath), element by element.

Each assignment of the rule is compiled once with :func:`sympy.lambdify` to an mpmath function;
the trajectory is then the rule applied step after step, exactly as an optimizer would, with
the case's events (missing gradients, hyperparameter changes) applied where they fall. A
``state_dict`` reload changes nothing in exact arithmetic, so it has no effect here.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import cache

import mpmath
import sympy as sp

from .cases import CaseDesign
from .error_bound import step_bounds
from .cases import SparseGrad
from .rule import Rule, g, present, theta

# Working precision: 80 significant decimal digits; goldens are written with 40.
WORKING_DPS = 80


def _round_to_float32(x):
    """F32: round an mpf to the nearest float32 (24-bit significand, ties to even)."""
    with mpmath.workprec(24):
        return +mpmath.mpf(x)


_MODULES = [{"F32": _round_to_float32}, "mpmath"]


@dataclass
class Snapshot:
    """Values after one step: params[name] and state[name][state_name], lists of mpf.

    ``param_bounds`` and ``state_bounds`` hold, in the same layout, the first-order running
    error bound B (floats) of :mod:`.error_bound`: a faithful evaluation in a dtype with unit
    roundoff u is within u·B of the exact value.
    """

    params: dict[str, list]
    state: dict[str, dict[str, list]]
    param_bounds: dict[str, list]
    state_bounds: dict[str, dict[str, list]]


@cache
def _compile(rule: Rule) -> tuple[tuple[sp.Symbol, tuple[sp.Symbol, ...], Callable], ...]:
    lines = []
    for line in rule.body:
        expr = sp.sympify(line.expr)
        args = tuple(sorted(expr.free_symbols, key=lambda s: s.name))
        lines.append((line.target, args, sp.lambdify(args, expr, modules=_MODULES)))
    return tuple(lines)


@cache
def _compile_initial(rule: Rule) -> tuple[tuple[sp.Symbol, tuple[sp.Symbol, ...], Callable], ...]:
    out = []
    for s in rule.state:
        expr = sp.sympify(s.initial)
        args = tuple(sorted(expr.free_symbols, key=lambda x: x.name))
        out.append((s.symbol, args, sp.lambdify(args, expr, modules=_MODULES)))
    return tuple(out)


def hyperparameter_env(rule: Rule, values: Mapping[str, object]) -> dict[sp.Symbol, object]:
    """Symbol values for a param group's hyperparameters.

    A hyperparameter's decimal string denotes an IEEE-754 double (what every implementation gets
    when it parses it, and what torch computes its scalars from): the golden uses that double's
    exact value, so ``"0.9"`` means 0.90000000000000002220446049250313080847263336181640625.
    """
    env: dict[sp.Symbol, object] = {}
    for hp in rule.hyperparameters:
        value = values[hp.name]
        if hp.boolean:
            env[hp.symbols] = bool(value)
        elif isinstance(hp.symbols, tuple):
            for sym, x in zip(hp.symbols, value, strict=True):
                env[sym] = mpmath.mpf(float(x))
        else:
            env[hp.symbols] = mpmath.mpf(float(value))
    return env


def evaluate(rule: Rule, case: CaseDesign) -> list[Snapshot]:
    """The exact trajectory: one snapshot after each step."""
    with mpmath.workdps(WORKING_DPS):
        return _evaluate(rule, case)


def _evaluate(rule: Rule, case: CaseDesign) -> list[Snapshot]:
    body = _compile(rule)
    initial = _compile_initial(rule)
    group_hps = [dict(gr.hyperparameters) for gr in case.groups]
    group_of = {name: i for i, gr in enumerate(case.groups) for name in gr.params}
    params = {p.name: [mpmath.mpf(x) for x in p.values] for p in case.params}
    bounds = {p.name: [(float(x), 0.0) for x in p.values] for p in case.params}
    state: dict[str, dict[sp.Symbol, list]] = {}  # created on a param's first step
    state_b: dict[str, dict[sp.Symbol, list]] = {}
    out = []
    for step in case.steps:
        for change in step.changes:
            group_hps[change.group][change.name] = change.value
        envs = [hyperparameter_env(rule, hps) for hps in group_hps]
        for p in case.params:
            grad = step.grads[p.name]
            if grad is None:
                continue  # no gradient: neither the param nor its state move
            if isinstance(grad, SparseGrad):
                grad, mask = grad.dense(p.shape)
            else:
                mask = (True,) * len(grad)
            env_hp = envs[group_of[p.name]]
            if p.name not in state:
                state[p.name] = {
                    sym: [f(*(env_hp[a] for a in args))] * len(p.values) for sym, args, f in initial
                }
                state_b[p.name] = {sym: [(float(v), 0.0) for v in vs] for sym, vs in state[p.name].items()}
            st, sb = state[p.name], state_b[p.name]
            benv_hp = {sym: (float(v), 0.0) for sym, v in env_hp.items()}
            for i in range(len(p.values)):
                env = dict(env_hp)
                env[theta] = params[p.name][i]
                env[g] = mpmath.mpf(grad[i])
                env[present] = mask[i]
                for sym in st:
                    env[sym] = st[sym][i]
                for target, args, f in body:
                    env[target] = f(*(env[a] for a in args))
                params[p.name][i] = env[theta]
                for sym in st:
                    st[sym][i] = env[sym]
                benv = dict(benv_hp)
                benv[theta] = bounds[p.name][i]
                benv[g] = (float(grad[i]), 0.0)
                benv[present] = (float(mask[i]), 0.0)
                for sym in sb:
                    benv[sym] = sb[sym][i]
                benv = step_bounds(rule, benv)
                bounds[p.name][i] = benv[theta]
                for sym in sb:
                    sb[sym][i] = benv[sym]
        out.append(
            Snapshot(
                params={k: list(vs) for k, vs in params.items()},
                state={
                    name: {s.name: list(st[s.symbol]) for s in rule.state}
                    for name, st in state.items()
                },
                param_bounds={k: [e for _, e in vs] for k, vs in bounds.items()},
                state_bounds={
                    name: {s.name: [e for _, e in sb[s.symbol]] for s in rule.state}
                    for name, sb in state_b.items()
                },
            )
        )
    return out
