"""Evaluate a rule along a case in high precision (mpmath), element by element.

Each assignment of the rule is compiled once with :func:`sympy.lambdify` to an mpmath function;
the trajectory is then the rule applied step after step, exactly as an optimizer would, with
the case's events (missing gradients, hyperparameter changes) applied where they fall. A
``state_dict`` reload changes nothing in exact arithmetic, so it has no effect here.

Beside each value go its running error bound (:mod:`.error_bound`, units of the param dtype's u)
and, for a rule with a tensor function defined in a fixed floating-point type (``fixed_dtype``:
Muon's bfloat16 Newton–Schulz iteration), one more error per such type, in units of that type's
unit roundoff: the function puts its own bound there, and every later line carries it linearly
(``rounding=False`` in :mod:`.error_bound`), adding no rounding of its own.

A tensor function inside a ``Piecewise`` branch is evaluated only where the branch's guard
holds (:func:`_guard`): its argument may be undefined elsewhere (Prodigy's d_coef·r/S at S = 0).
Where the guard is false on every element it reduces over, its symbol holds NaN, which the
``Piecewise`` (evaluated lazily, here and in the bound) never reads. A stateful function (below)
is evaluated on every step whatever its guard: its memory advances.

A *stateful* tensor function (``stateful = True``: SOAP's preconditioner statistics and eigenbases,
matrices that are not the parameter's shape) gets a per-parameter ``memory`` dict that lasts the
whole trajectory: one for the exact evaluation and one for the bound.

A spec's goldens evaluate the same lines on the same inputs many times over: each variant and
each combination of variants differs from the spec in one line or a few, and shares the rest of
every step. So each line's result (exact value, bound, fixed-channel errors) is memoised by its
exact inputs (an mpf by its ``_mpf_`` tuple, a bound by its float), and so is each tensor
function's; a stateful one's by its inputs and a token for the contents of its memories
(see ``_reduce_over_tensor``). A memo hit returns the very numbers the evaluation would: the
goldens do not change by a byte. :func:`forget` empties the memos (the generator does, spec by
spec).
"""

from __future__ import annotations

import itertools
import operator
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from functools import cache

import mpmath
import numpy as np
import sympy as sp

from .boundaries import probes, side
from .cases import CaseDesign, SparseGrad
from .error_bound import compiled
from .rule import Rule, g, n_cols, n_rows, ndim, present, reloaded, steps_taken, theta
from .tensor import tensor_nodes

# Working precision: 80 significant decimal digits; goldens are written with 40.
WORKING_DPS = 80


def _round_to_float32(x):
    """F32: round an mpf to the nearest float32 (24-bit significand, ties to even)."""
    with mpmath.workprec(24):
        return +mpmath.mpf(x)


_MODULES = [{"F32": _round_to_float32}, "mpmath"]

# The per-element environments are keyed by small integers, one per symbol (the same in every
# rule of the process), not by the symbols: hashing a SymPy symbol runs Python code, and the
# environments are read millions of times.
_KEYS: dict[sp.Symbol, int] = {}


def key(sym: sp.Symbol) -> int:
    """The environments' key of a symbol."""
    return _KEYS.setdefault(sym, len(_KEYS))


Reader = Callable[[dict], tuple]  # an environment -> the values of some symbols, in order


def _reader(args: tuple[sp.Symbol, ...]) -> Reader:
    keys = [key(a) for a in args]
    if not keys:
        return lambda env: ()
    if len(keys) == 1:
        (k,) = keys
        return lambda env: (env[k],)
    return operator.itemgetter(*keys)


def _pair(sym: sp.Symbol):
    """The bound's leaf (:func:`.error_bound.compiled`): an environment of (value, bound) pairs."""
    k = key(sym)
    return lambda env: env[k]


def _fixed_pair(sym: sp.Symbol):
    """The fixed channel's leaf: on (bound env, fixed env), the value from the first and the
    fixed-channel error from the second (0 if none)."""
    k = key(sym)
    return lambda envs: (envs[0][k][0], envs[1].get(k, 0.0))


def _bound(expr: sp.Expr):
    """``expr``'s (value, bound) on an environment of (value, bound) pairs."""
    return compiled(expr, True, _pair)


def _carry(expr: sp.Expr):
    """``expr``'s (value, fixed-channel error) on (bound env, fixed env), with no rounding of its own."""
    return compiled(expr, False, _fixed_pair)


@dataclass
class Snapshot:
    """Values after one step: params[name] and state[name][state_name], lists of mpf.

    ``param_bounds`` and ``state_bounds`` hold, in the same layout, the first-order running
    error bound B (floats) of :mod:`.error_bound`: a faithful evaluation in a dtype with unit
    roundoff u is within u·B of the exact value. ``param_fixed[dtype]`` and ``state_fixed[dtype]``
    (only for rules with a fixed-precision tensor function) hold the error in units of that
    dtype's unit roundoff that the fixed-precision part adds (tolerance K·u_dtype·B_dtype on top).
    """

    params: dict[str, list]
    state: dict[str, dict[str, list]]
    param_bounds: dict[str, list]
    state_bounds: dict[str, dict[str, list]]
    param_fixed: dict[str, dict[str, list]] = field(default_factory=dict)
    state_fixed: dict[str, dict[str, dict[str, list]]] = field(default_factory=dict)


@dataclass(frozen=True)
class _Node:
    """A tensor function of a line, replaced by ``symbol`` (environment key ``key``) in the
    expressions after it: its tensor argument ``arg`` compiled (read, fn; its bound; its
    fixed-channel carry), its scalar arguments compiled as (read, fn, bound), and its guard
    (read, fn): the condition under which the line evaluates it (None: always)."""

    symbol: sp.Symbol
    key: int
    function: type
    arg: sp.Expr
    read: Reader
    fn: Callable
    bound: Callable
    carry: Callable
    scalars: tuple[tuple[Reader, Callable, Callable], ...]
    guard: tuple[Reader, Callable] | None  # None: always evaluated
    arg_key: int | None = None  # the argument's key when it is a symbol (read as it is, not evaluated)


@dataclass(frozen=True)
class _Line:
    """One compiled assignment. ``nodes``: its tensor functions, innermost first; ``read``/``fn``:
    the elementwise remainder ``expr``, ``bound`` its running bound and ``carry`` its fixed-channel
    propagation; ``key``: the target's environment key."""

    target: sp.Symbol
    key: int
    arg_keys: tuple[int, ...]  # the keys ``read`` reads, in order
    nodes: tuple[_Node, ...]
    expr: sp.Expr
    read: Reader
    fn: Callable
    bound: Callable
    carry: Callable
    label: str = ""
    replaced: tuple[tuple[sp.Expr, sp.Symbol], ...] = ()  # tensor nodes -> their symbols, in order


@cache
def _lambdify(expr: sp.Expr) -> tuple[Reader, Callable]:
    """``expr`` as an mpmath function of its free symbols (sorted by name), with the reader of
    their values from an environment. Cached: a variant's rule shares most of its lines with the
    spec's, and every combination of variants with the variants'."""
    args = tuple(sorted(expr.free_symbols, key=lambda s: s.name))
    return _reader(args), sp.lambdify(args, expr, modules=_MODULES)


def _guard(expr: sp.Basic, node: sp.Basic, path: sp.Basic = sp.true) -> sp.Basic:
    """The condition under which evaluating ``expr`` evaluates ``node``: the conditions of the
    ``Piecewise`` branches that lead to it (earlier branches not taken), or-ed over its
    occurrences; false if it does not occur."""
    if expr == node:
        return path
    if not isinstance(expr, sp.Basic):
        return sp.false
    if isinstance(expr, sp.Piecewise):
        out, taken_before = sp.false, sp.true
        for e, c in expr.args:
            out = sp.Or(out, _guard(c, node, sp.And(path, taken_before)),
                        _guard(e, node, sp.And(path, taken_before, c)))
            taken_before = sp.And(taken_before, sp.Not(c))
        return out
    out = sp.false
    for a in expr.args:
        out = sp.Or(out, _guard(a, node, path))
    return out


@cache
def _compile(rule: Rule) -> tuple[_Line, ...]:
    lines = []
    for k, line in enumerate(rule.body):
        original = expr = sp.sympify(line.expr)
        nodes, replaced = [], []
        while found := tensor_nodes(expr):
            node = found[0]  # innermost first: its argument is elementwise (or uses earlier nodes)
            sym = sp.Symbol(f"_tensor_{k}_{len(nodes)}", real=True)
            arg = node.args[0]
            scalars = tuple((*_lambdify(x), _bound(x)) for x in node.args[1:])
            # a stateful function's memory advances on every step: evaluated whatever the guard
            guard = None if type(node).stateful else _node_guard(original, node, replaced, sym)
            nodes.append(_Node(sym, key(sym), type(node), arg, *_lambdify(arg), _bound(arg), _carry(arg),
                               scalars, guard, key(arg) if isinstance(arg, sp.Symbol) else None))
            replaced.append((node, sym))
            expr = expr.xreplace({node: sym})
        arg_keys = tuple(key(a) for a in sorted(expr.free_symbols, key=lambda s: s.name))
        lines.append(_Line(line.target, key(line.target), arg_keys, tuple(nodes), expr, *_lambdify(expr), _bound(expr),
                           _carry(expr), line.label, tuple(replaced)))
    return tuple(lines)


def _node_guard(original: sp.Expr, node: sp.Basic, replaced: list, sym: sp.Symbol) -> tuple[Reader, Callable] | None:
    """The compiled guard of a tensor node (found after the nodes ``replaced``) in its line's
    ``original`` expression, every tensor function in it replaced by its symbol; None (evaluate
    always) if it is true, or if it reads a tensor node not evaluated before this one (or this one
    itself)."""
    for earlier, s in reversed(replaced):  # the node as it appears in the original expression
        node = node.xreplace({s: earlier})
    guard = _guard(original, node)
    for earlier, s in replaced:
        guard = guard.xreplace({earlier: s})
    guard = guard.xreplace({node: sym})
    if guard == sp.true or tensor_nodes(guard) or sym in guard.free_symbols:
        return None
    return _lambdify(guard)


@cache
def _compile_probes(rule: Rule) -> tuple[tuple[tuple[str, str, Reader, Callable, Reader, Callable], ...], ...]:
    """Per compiled line: its branches (derivations/boundaries.py) as (key, kind, diff reader,
    diff fn, path reader, path fn), evaluated before the line on the same environment."""
    out = []
    for line in _compile(rule):
        def replaced(e, line=line):
            e = sp.sympify(e)
            for node, sym in line.replaced:
                e = e.xreplace({node: sym})
            return e
        branches = []
        for name, kind, diff, path in probes(rule, line.label, replaced):
            branches.append((name, kind, *_lambdify(diff), *_lambdify(path)))
        out.append(tuple(branches))
    return tuple(out)


@cache
def fixed_dtypes(rule: Rule) -> tuple[str, ...]:
    """The fixed floating-point types of the rule's tensor functions (usually none)."""
    return tuple(sorted({node.function.fixed_dtype for line in _compile(rule) for node in line.nodes
                         if node.function.fixed_dtype is not None}))


@cache
def _compile_initial(rule: Rule) -> tuple[tuple[int, Reader, Callable], ...]:
    """Per state variable: its key, and its initial value compiled (read, fn)."""
    return tuple((key(s.symbol), *_lambdify(sp.sympify(s.initial))) for s in rule.state)


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
        elif hp.choices:
            env[hp.symbols] = mpmath.mpf(hp.choices.index(value))
        elif isinstance(hp.symbols, tuple):
            for sym, x in zip(hp.symbols, value, strict=True):
                # None (Adafactor's ε₁: "the dtype's machine epsilon") is evaluated as 0; the
                # spec's cases keep every ε₁ clamp inactive by orders of magnitude when it is None
                env[sym] = mpmath.mpf(0 if x is None else float(x))
        else:
            env[hp.symbols] = mpmath.mpf(float(value))
    return env


def _hyperparameter_envs(rule: Rule, values: Mapping[str, object]) -> tuple[dict, dict]:
    """:func:`hyperparameter_env` keyed by :func:`key`, and its (value, bound) pairs (exact inputs):
    memoised by the values (every variant's trajectory of a case reads the same settings, step after
    step); the dicts are read, never written."""
    memo_key = (rule.hyperparameters, tuple((k, tuple(v) if isinstance(v, list) else v) for k, v in values.items()))
    if (out := _HYPERPARAMETER_ENVS.get(memo_key)) is None:
        env = {key(sym): v for sym, v in hyperparameter_env(rule, values).items()}
        out = _HYPERPARAMETER_ENVS[memo_key] = env, {k: (float(v), 0.0) for k, v in env.items()}
    return out


def evaluate(rule: Rule, case: CaseDesign, met: dict[str, set[str]] | None = None) -> list[Snapshot]:
    """The exact trajectory: one snapshot after each step. ``met``: if given, filled with the
    sides of the rule's branches (derivations/boundaries.py) that the trajectory meets."""
    with mpmath.workdps(WORKING_DPS):
        return _evaluate(rule, case, met)


@dataclass
class _Param:
    """A parameter this step updates: its per-element envs (exact values, (value, bound) pairs,
    fixed-channel errors), filled line by line, all keyed by :func:`key`."""

    name: str
    shape: tuple[int, ...]
    envs_x: list[dict]
    envs_b: list[dict]
    envs_f: list[dict]


def _node_inputs(node: _Node, ap: _Param, fixed: tuple[str, ...]):
    """A tensor function's argument over one parameter: exact values, bound values, bound errors,
    fixed-channel errors, and its scalar arguments (exact, bound value). A symbol argument is read
    from the environments as it is (what its compiled identity would return)."""
    if (k := node.arg_key) is not None:
        xs = [env[k] for env in ap.envs_x]
        pairs = [benv[k] for benv in ap.envs_b]
        fs = {d: np.array([fenv[d].get(k, 0.0) for fenv in ap.envs_f]).reshape(ap.shape) for d in fixed}
    else:
        read, fn, bound, carry = node.read, node.fn, node.bound, node.carry
        xs = [fn(*read(env)) for env in ap.envs_x]
        pairs = [bound(benv) for benv in ap.envs_b]
        fs = {d: np.array([carry((benv, fenv[d]))[1] for benv, fenv in zip(ap.envs_b, ap.envs_f, strict=True)])
              .reshape(ap.shape) for d in fixed}
    x = np.empty(len(xs), dtype=object)
    x[:] = xs
    vs = np.array([v for v, _ in pairs]).reshape(ap.shape)
    es = np.array([e for _, e in pairs]).reshape(ap.shape)
    sx = [f(*r(ap.envs_x[0])) for r, f, _ in node.scalars]
    sv = [b(ap.envs_b[0])[0] for _, _, b in node.scalars]
    return x.reshape(ap.shape), vs, es, fs, sx, sv


def _results(shape: tuple[int, ...], rx, rv, re, rf, fixed: tuple[str, ...]) -> tuple[list, list, dict]:
    """A tensor function's results as its elements' values, flat in the parameter's order: the
    exact values, the (value, bound) pairs (Python floats) and the fixed channels' errors."""
    values, errors = (np.asarray(a, dtype=np.float64).reshape(-1).tolist() for a in (rv, re))
    carried = {d: np.asarray(np.broadcast_to(rf.get(d, 0.0), shape), dtype=np.float64).reshape(-1).tolist()
               for d in fixed}
    return list(rx), list(zip(values, errors, strict=True)), carried


def _store(k: int, ap: _Param, results: tuple[list, list, dict]) -> None:
    """A tensor function's results (:func:`_results`) into its elements' envs."""
    xs, pairs, carried = results
    for env, x in zip(ap.envs_x, xs, strict=True):
        env[k] = x
    for benv, pair in zip(ap.envs_b, pairs, strict=True):
        benv[k] = pair
    for d, fs in carried.items():
        for fenv, f in zip(ap.envs_f, fs, strict=True):
            fenv[d][k] = f


def _guarded_out(node: _Node, envs: list[dict]) -> bool:
    """Whether the node's guard is false on every element (then it is not evaluated); a guard
    that holds on some elements only cannot be honoured by a function of them all."""
    if node.guard is None:
        return False
    read, fn = node.guard
    held = {bool(fn(*read(env))) for env in envs}
    if held == {True, False}:
        raise ValueError(f"the guard of {node.function.__name__} holds on some elements of its argument only")
    return held == {False}


def _skip(node: _Node, ap: _Param, fixed: tuple[str, ...]) -> None:
    """A node whose guard is false: NaN in its symbol, which the guarded branch never reads."""
    n = len(ap.envs_x)
    nan = np.full(n, np.nan)
    _store(node.key, ap, _results(ap.shape, [mpmath.mpf("nan")] * n, nan, nan, {}, fixed))


def _reduce_over_tensor(node: _Node, ap: _Param, fixed: tuple[str, ...], memory_x: dict, memory_b: dict,
                        histories: dict) -> None:
    """A tensor function over one parameter, broadcast back to its elements; a stateful one gets
    the parameter's memories (exact, and bound) that last the whole trajectory, and ``histories``
    holds, per parameter, the token of their contents (see below)."""
    if _guarded_out(node, ap.envs_x):
        _skip(node, ap, fixed)
        return
    xs, vs, es, fs, sx, sv = _node_inputs(node, ap, fixed)
    fn_cls = node.function
    memo = _MEMO.setdefault(fn_cls, {})
    inputs = (xs.shape, _raw(xs.flat), _raw(sx), vs.tobytes(), es.tobytes(),
              tuple(fs[d].tobytes() for d in fixed), tuple(map(repr, sv)))
    if not fn_cls.stateful:  # a function of its arguments alone: through the memo, as a line (Muon's iteration)
        if (results := memo.get(inputs)) is None:
            results = memo[inputs] = _results(ap.shape, fn_cls.exact(xs, *sx).reshape(-1),
                                              *fn_cls.channels(vs, es, fs, *sv), fixed)
    else:
        # A stateful function's result and its memories afterwards are a function of its inputs and
        # of its memories before: those are a token (one per distinct contents, :func:`_content`),
        # and a call is memoised by (token, inputs), with the memories after it and their token
        # (SOAP's preconditioner is the same in every variant's trajectory that feeds it the same
        # gradients, and a call that leaves the memories as they were keeps the token). The
        # memories a parameter holds are then those of the memo, shared: a call that is evaluated
        # works on copies of them.
        inputs = (histories.get(ap.name), inputs)
        if (results := memo.get(inputs)) is None:
            before_x, before_b = memory_x[ap.name], memory_b[ap.name]
            mem_x, mem_b = _copy_memory(before_x), _copy_memory(before_b)
            rx = fn_cls.exact(xs, *sx, memory=mem_x).reshape(-1)
            rv, re, rf = fn_cls.channels(vs, es, fs, *sv, memory=mem_b)
            if _same_memory(mem_x, before_x) and _same_memory(mem_b, before_b):
                token = histories.get(ap.name)
            else:
                token = _TOKENS.setdefault((_content(mem_x), _content(mem_b)), object())
            results = memo[inputs] = (_results(ap.shape, rx, rv, re, rf, fixed), mem_x, mem_b, token)
        results, memory_x[ap.name], memory_b[ap.name], histories[ap.name] = results
    _store(node.key, ap, results)


def _same_memory(after: dict, before: dict) -> bool:
    """Whether a call left a memory as it was: the same objects under the same keys (a call replaces
    what it changes, see :func:`_copy_memory`)."""
    if after.keys() != before.keys():
        return False
    for k, v in after.items():
        w = before[k]
        if v is not w and not (type(v) is list and type(w) is list and len(v) == len(w)
                               and all(map(operator.is_, v, w))):
            return False
    return True


def _content(value) -> object:
    """A stateful function's memory (or an item of it) as a key: everything that determines it
    (arrays by dtype, shape and values; an mpf by its ``_mpf_``)."""
    if isinstance(value, dict):
        return tuple((k, _content(v)) for k, v in value.items())
    if isinstance(value, (list, tuple)):
        return (type(value), *map(_content, value))
    if isinstance(value, np.ndarray):
        if value.dtype == object:
            return (value.shape, _raw(value.flat))
        return (value.dtype.str, value.shape, value.tobytes())
    return getattr(value, "_mpf_", value)


_TOKENS: dict = {}  # a stateful function's memories' contents (exact, bound) -> their token


def _copy_memory(memory: dict) -> dict:
    """A copy of a stateful function's memory that a call may change: calls replace its arrays,
    and the items of its lists, but never write into an array."""
    return {k: list(v) if isinstance(v, list) else v for k, v in memory.items()}


def _raw(values) -> tuple:
    """Values as memo keys: an mpf by its ``_mpf_``, anything else as itself."""
    values = tuple(values)
    return tuple(map(getattr, values, _MPF, values))


def _reduce_over_step(node: _Node, active: list[_Param], fixed: tuple[str, ...]) -> None:
    """A tensor function over every parameter of the step (flattened, concatenated in the case's
    order), its one value broadcast back to every element of each."""
    if active and _guarded_out(node, [env for ap in active for env in ap.envs_x]):
        for ap in active:
            _skip(node, ap, fixed)
        return
    inputs = [_node_inputs(node, ap, fixed) for ap in active]
    if not inputs:
        return
    cat = lambda k: np.concatenate([np.asarray(i[k]).reshape(-1) for i in inputs])  # noqa: E731
    xs, vs, es = cat(0), cat(1).astype(float), cat(2).astype(float)
    fs = {d: np.concatenate([i[3][d].reshape(-1) for i in inputs]) for d in fixed}
    sx, sv = inputs[0][4], inputs[0][5]
    rx = node.function.exact(xs, *sx).reshape(-1)
    rv, re, rf = node.function.channels(vs, es, fs, *sv)
    rv, re = rv.reshape(-1), re.reshape(-1)
    for ap in active:
        n = len(ap.envs_x)
        _store(node.key, ap, _results(ap.shape, rx[:n], rv[:n], re[:n],
                                      {d: np.asarray(rf[d]).reshape(-1)[:n].reshape(ap.shape) for d in rf}, fixed))


# Every line's results (exact value, (value, bound), fixed-channel errors) by its inputs (exact
# values, (value, bound) pairs, fixed-channel errors): a variant's trajectory, and a combination's,
# repeat most of the spec's line evaluations exactly (the lines before the one it changes, and the
# state it does not touch: Adam's m and v), so each distinct (line, inputs) is evaluated once. An
# mpf is keyed by its ``_mpf_`` (sign, mantissa, exponent, bit count), which determines it; other
# inputs are flags and counts. A tensor function that keeps no memory (not ``stateful``) goes through
# it too, by its argument's values, bounds and fixed errors (float arrays by their bytes) and its
# scalars. Per process; :func:`forget` empties it (the golden generator does, spec by spec).
_MEMO: dict[tuple[Callable, Callable] | type, dict] = {}  # by line (fn, bound), or tensor function
_MPF = itertools.repeat("_mpf_")  # getattr(x, "_mpf_", x) over the inputs
_ZEROS = itertools.repeat(0.0)  # fenv.get(k, 0.0) over the inputs


_HYPERPARAMETER_ENVS: dict = {}  # (hyperparameters, a group's settings) -> its envs (see _hyperparameter_envs)
_EXACT_INPUTS: dict = {}  # a gradient's value (a float or a decimal string) -> its mpf


def _exact_input(x) -> mpmath.mpf:
    """``mpmath.mpf(x)`` at the working precision, converted once per value (the same gradients are
    read by every variant's trajectory)."""
    if (out := _EXACT_INPUTS.get(x)) is None:
        out = _EXACT_INPUTS[x] = mpmath.mpf(x)
    return out


def forget() -> None:
    """Empty the memo of line results and of converted inputs and settings (memory only: a result
    depends on its inputs alone)."""
    _MEMO.clear()
    _TOKENS.clear()
    _EXACT_INPUTS.clear()
    _HYPERPARAMETER_ENVS.clear()


def _elementwise(line: _Line, active: list[_Param], fixed: tuple[str, ...]) -> None:
    """The line's elementwise remainder on every element of every updated parameter, through the
    memo: its exact value, its (value, bound) and, with fixed channels, their errors."""
    target, read, fn, bound = line.key, line.read, line.fn, line.bound
    memo = _MEMO.setdefault((fn, bound), {})
    if not fixed:  # the usual case, unencumbered
        for ap in active:
            for env, benv in zip(ap.envs_x, ap.envs_b, strict=True):
                xs, bs = read(env), read(benv)
                inputs = (tuple(map(getattr, xs, _MPF, xs)), bs)
                if (results := memo.get(inputs)) is None:
                    results = memo[inputs] = (fn(*xs), bound(benv))
                env[target], benv[target] = results
        return
    carry, arg_keys = line.carry, line.arg_keys
    if len(fixed) == 1:  # one fixed type (every such rule so far): the same keys and results, unrolled
        (d,) = fixed
        for ap in active:
            for env, benv, fenv in zip(ap.envs_x, ap.envs_b, ap.envs_f, strict=True):
                xs, bs, fenv_d = read(env), read(benv), fenv[d]
                inputs = (tuple(map(getattr, xs, _MPF, xs)), bs, (tuple(map(fenv_d.get, arg_keys, _ZEROS)),))
                if (results := memo.get(inputs)) is None:
                    results = memo[inputs] = (fn(*xs), bound(benv), (carry((benv, fenv_d))[1],))
                env[target], benv[target], (fenv_d[target],) = results
        return
    for ap in active:
        for env, benv, fenv in zip(ap.envs_x, ap.envs_b, ap.envs_f, strict=True):
            xs, bs = read(env), read(benv)
            fs = tuple(tuple(map(fenv[d].get, arg_keys, _ZEROS)) for d in fixed)
            inputs = (tuple(map(getattr, xs, _MPF, xs)), bs, fs)
            if (results := memo.get(inputs)) is None:  # the fixed errors from the operands' values
                results = memo[inputs] = (fn(*xs), bound(benv), tuple(carry((benv, fenv[d]))[1] for d in fixed))
            env[target], benv[target], carried = results
            for d, f in zip(fixed, carried, strict=True):
                fenv[d][target] = f


# the keys of the symbols every rule shares
_THETA, _G, _PRESENT, _NDIM, _RELOADED = key(theta), key(g), key(present), key(ndim), key(reloaded)
_N_ROWS, _N_COLS, _STEPS_TAKEN = key(n_rows), key(n_cols), key(steps_taken)


def _evaluate(rule: Rule, case: CaseDesign, met: dict[str, set[str]] | None) -> list[Snapshot]:
    body = _compile(rule)
    line_probes = _compile_probes(rule) if met is not None else ((),) * len(body)
    initial = _compile_initial(rule)
    fixed = fixed_dtypes(rule)  # usually (): no fixed-precision channel at all
    group_hps = [dict(gr.hyperparameters) for gr in case.groups]
    group_of = {name: i for i, gr in enumerate(case.groups) for name in gr.params}
    params = {p.name: [mpmath.mpf(x) for x in p.values] for p in case.params}
    bounds = {p.name: [(float(x), 0.0) for x in p.values] for p in case.params}
    # fixed-precision channels: param -> element -> {dtype: error / u_dtype}
    fixes = {p.name: [dict.fromkeys(fixed, 0.0) for _ in p.values] for p in case.params}
    state: dict[str, dict[int, list]] = {}  # created on a param's first step, by the symbols' keys
    state_b: dict[str, dict[int, list]] = {}
    state_f: dict[str, dict[int, list]] = {}
    state_keys = [(s.name, key(s.symbol)) for s in rule.state]
    # stateful tensor functions' per-parameter memories: exact (mpmath) and bound (floats)
    memory_x: dict[str, dict] = {p.name: {} for p in case.params}
    memory_b: dict[str, dict] = {p.name: {} for p in case.params}
    histories: dict[str, object] = {}  # per parameter: the token of its memories (None: empty)
    out = []
    was_reloaded = bool(case.initial_state)  # an injected state comes through load_state_dict too
    step_no = 0  # optimizer.step() calls so far (a repeated step counts each time)
    for step in case.steps:
        was_reloaded = was_reloaded or step.reload_before
        for change in step.changes:
            group_hps[change.group][change.name] = change.value
        envs, benvs = zip(*(_hyperparameter_envs(rule, hps) for hps in group_hps), strict=True)
        # the parameters this step updates (those with a gradient): what their elements share on
        # every repeat of the step (all but the step count), and each element's (g, present)
        shared = {}
        for p in case.params:
            grad = step.grads[p.name]
            if grad is None:
                continue  # no gradient: neither the param nor its state move
            if isinstance(grad, SparseGrad):
                grad, mask = grad.dense(p.shape)
            else:
                mask = (True,) * len(grad)
            rows = p.shape[-2] if len(p.shape) >= 2 else 1
            cols = p.shape[-1] if len(p.shape) >= 1 else 1
            env_hp = {**envs[group_of[p.name]], _NDIM: len(p.shape), _RELOADED: was_reloaded,
                      _N_ROWS: mpmath.mpf(rows), _N_COLS: mpmath.mpf(cols)}
            benv_hp = {**benvs[group_of[p.name]], _NDIM: (float(len(p.shape)), 0.0),
                       _RELOADED: (float(was_reloaded), 0.0), _N_ROWS: (float(rows), 0.0), _N_COLS: (float(cols), 0.0)}
            inputs = [(_exact_input(x), present_, (float(x), 0.0), (float(present_), 0.0))
                      for x, present_ in zip(grad, mask, strict=True)]
            shared[p.name] = (env_hp, benv_hp, inputs)
        for _ in range(step.repeat):
            step_no += 1
            active: list[_Param] = []  # with their element envs
            for p in case.params:
                if p.name not in shared:
                    continue
                env_hp, benv_hp, inputs = shared[p.name]
                env_hp[_STEPS_TAKEN], benv_hp[_STEPS_TAKEN] = mpmath.mpf(step_no), (float(step_no), 0.0)
                if p.name not in state:
                    group_env = envs[group_of[p.name]]
                    state[p.name] = {
                        k: [f(*read(group_env))] * len(p.values) for k, read, f in initial
                    }
                    # a state initialised from a hyperparameter (Rprop's step size = lr) is stored in
                    # the param's dtype: one rounding, unless the value is an integer (0, 1)
                    state_b[p.name] = {k: [(float(v), 0.0 if v == int(v) else abs(float(v))) for v in vs]
                                       for k, vs in state[p.name].items()}
                    state_f[p.name] = {k: [dict.fromkeys(fixed, 0.0) for _ in vs] for k, vs in state[p.name].items()}
                    for sv in rule.state:  # state injected through load_state_dict: exact inputs
                        given = case.initial_state.get(p.name, {}).get(sv.name)
                        if given is not None:
                            # a count or a per-param value: the same number in every element
                            values = [given] * len(p.values) if isinstance(given, int) else \
                                list(given) * len(p.values) if sv.per_param else given
                            assert len(values) == len(p.values), (case.id, p.name, sv.name)
                            state[p.name][key(sv.symbol)] = [mpmath.mpf(x) for x in values]
                            state_b[p.name][key(sv.symbol)] = [(float(x), 0.0) for x in values]
                st, sb, sf = state[p.name], state_b[p.name], state_f[p.name]
                envs_x, envs_b = [], []  # per element: exact values, and (value, bound) pairs
                envs_f = []  # per element: {dtype: {symbol: fixed-channel error}}
                thetas, thetas_b, columns = params[p.name], bounds[p.name], [(k, st[k], sb[k]) for k in st]
                for i, (g_x, present_x, g_b, present_b) in enumerate(inputs):
                    env = dict(env_hp)
                    env[_THETA] = thetas[i]
                    env[_G] = g_x
                    env[_PRESENT] = present_x
                    benv = dict(benv_hp)
                    benv[_THETA] = thetas_b[i]
                    benv[_G] = g_b
                    benv[_PRESENT] = present_b
                    for k, column, column_b in columns:
                        env[k] = column[i]
                        benv[k] = column_b[i]
                    fenv = {d: {_THETA: fixes[p.name][i][d], **{k: sf[k][i][d] for k in st}} for d in fixed}
                    envs_x.append(env)
                    envs_b.append(benv)
                    envs_f.append(fenv)
                active.append(_Param(p.name, p.shape, envs_x, envs_b, envs_f))
            # line by line over every updated parameter, so that a line may reduce over a whole
            # parameter (scope "tensor") or over all of them (scope "step")
            for line, line_probe in zip(body, line_probes, strict=True):
                for node in line.nodes:
                    if node.function.scope == "step":
                        _reduce_over_step(node, active, fixed)
                    else:
                        for ap in active:
                            _reduce_over_tensor(node, ap, fixed, memory_x, memory_b, histories)
                for name, kind, d_read, d_fn, p_read, p_fn in line_probe:
                    for ap in active:
                        for env in ap.envs_x:
                            if p_fn(*p_read(env)):
                                met.setdefault(name, set()).add(side(kind, d_fn(*d_read(env))))
                _elementwise(line, active, fixed)
            for ap in active:  # the step's values become the trajectory's
                st, sb, sf = state[ap.name], state_b[ap.name], state_f[ap.name]
                params[ap.name][:] = [env[_THETA] for env in ap.envs_x]
                bounds[ap.name][:] = [benv[_THETA] for benv in ap.envs_b]
                for k in st:
                    st[k][:] = [env[k] for env in ap.envs_x]
                    sb[k][:] = [benv[k] for benv in ap.envs_b]
                if fixed:
                    fixes[ap.name][:] = [{d: fenv[d][_THETA] for d in fixed} for fenv in ap.envs_f]
                    for k in st:
                        sf[k][:] = [{d: fenv[d][k] for d in fixed} for fenv in ap.envs_f]
        out.append(
            Snapshot(
                params={k: list(vs) for k, vs in params.items()},
                state={
                    name: {s: list(st[k]) for s, k in state_keys}
                    for name, st in state.items()
                },
                param_bounds={k: [e for _, e in vs] for k, vs in bounds.items()},
                state_bounds={
                    name: {s: [e for _, e in sb[k]] for s, k in state_keys}
                    for name, sb in state_b.items()
                },
                param_fixed={d: {k: [f[d] for f in vs] for k, vs in fixes.items()} for d in fixed},
                state_fixed={
                    d: {name: {s: [f[d] for f in sf[k]] for s, k in state_keys}
                        for name, sf in state_f.items()}
                    for d in fixed
                },
            )
        )
    return out
