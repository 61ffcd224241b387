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
import numpy as np
import sympy as sp

from .cases import CaseDesign, SparseGrad
from .error_bound import ev
from .rule import Rule, g, ndim, present, theta
from .tensor import tensor_nodes

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


@dataclass(frozen=True)
class _Line:
    """One compiled assignment. ``nodes``: its tensor functions, innermost first, each replaced
    by a fresh symbol in the expressions after it; ``args``/``fn``: the elementwise remainder."""

    target: sp.Symbol
    nodes: tuple[tuple[sp.Symbol, type, sp.Expr, tuple[sp.Symbol, ...], Callable], ...]
    expr: sp.Expr
    args: tuple[sp.Symbol, ...]
    fn: Callable


def _lambdify(expr: sp.Expr) -> tuple[tuple[sp.Symbol, ...], Callable]:
    args = tuple(sorted(expr.free_symbols, key=lambda s: s.name))
    return args, sp.lambdify(args, expr, modules=_MODULES)


@cache
def _compile(rule: Rule) -> tuple[_Line, ...]:
    lines = []
    for k, line in enumerate(rule.body):
        expr = sp.sympify(line.expr)
        nodes = []
        while found := tensor_nodes(expr):
            node = found[0]  # innermost first: its argument is elementwise (or uses earlier nodes)
            sym = sp.Symbol(f"_tensor_{k}_{len(nodes)}", real=True)
            arg = node.args[0]
            args, fn = _lambdify(arg)
            nodes.append((sym, type(node), arg, args, fn))
            expr = expr.xreplace({node: sym})
        args, fn = _lambdify(expr)
        lines.append(_Line(line.target, tuple(nodes), expr, args, fn))
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
                # None (Adafactor's ε₁: "the dtype's machine epsilon") is evaluated as 0; the
                # spec's cases keep every ε₁ clamp inactive by orders of magnitude when it is None
                env[sym] = mpmath.mpf(0 if x is None else float(x))
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
            n = len(p.values)
            envs_x, envs_b = [], []  # per element: exact values, and (value, bound) pairs
            for i in range(n):
                env = dict(env_hp)
                env[theta] = params[p.name][i]
                env[g] = mpmath.mpf(grad[i])
                env[present] = mask[i]
                env[ndim] = len(p.shape)
                benv = dict(benv_hp)
                benv[theta] = bounds[p.name][i]
                benv[g] = (float(grad[i]), 0.0)
                benv[present] = (float(mask[i]), 0.0)
                benv[ndim] = (float(len(p.shape)), 0.0)
                for sym in st:
                    env[sym] = st[sym][i]
                    benv[sym] = sb[sym][i]
                envs_x.append(env)
                envs_b.append(benv)
            # line by line over the whole parameter, so that a line may reduce over it
            for line in body:
                for sym, fn_cls, arg, args, fn in line.nodes:
                    xs = np.empty(n, dtype=object)
                    xs[:] = [fn(*(env[a] for a in args)) for env in envs_x]
                    pairs = [ev(arg, benv) for benv in envs_b]
                    vs = np.array([v for v, _ in pairs]).reshape(p.shape)
                    es = np.array([e for _, e in pairs]).reshape(p.shape)
                    rx = fn_cls.exact(xs.reshape(p.shape)).reshape(-1)
                    rv, re = (a.reshape(-1) for a in fn_cls.bound(vs, es))
                    for i in range(n):
                        envs_x[i][sym] = rx[i]
                        envs_b[i][sym] = (float(rv[i]), float(re[i]))
                for env, benv in zip(envs_x, envs_b, strict=True):
                    env[line.target] = line.fn(*(env[a] for a in line.args))
                    benv[line.target] = ev(line.expr, benv)
            for i in range(n):
                params[p.name][i] = envs_x[i][theta]
                bounds[p.name][i] = envs_b[i][theta]
                for sym in st:
                    st[sym][i] = envs_x[i][sym]
                    sb[sym][i] = envs_b[i][sym]
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
