"""L-BFGS as ``torch.optim.LBFGS`` defines it: a closed-loop spec (see ``closed_loop.py``).

torch's L-BFGS is a port of Mark Schmidt's minFunc (via torch7's ``optim.lbfgs`` and
``lswolfe.lua``): Nocedal & Wright's two-loop recursion (Algorithm 7.4) with the initial inverse
Hessian scaled by γ = sᵀy/yᵀy (eq. 7.20), a curvature safeguard that stores the pair (y, s) only
if yᵀs > 10⁻¹⁰, a first step of length ``lr·min(1, 1/‖g‖₁)`` along −g, and either a fixed step
``lr`` or minFunc's strong-Wolfe line search (cubic interpolation, bracketing then zoom). One
``step(closure)`` runs up to ``max_iter`` iterations; the history, the last direction and step,
and the counters ``func_evals`` and ``n_iter`` persist across calls (in ``state[first param]``).

:func:`lbfgs_step` below is that algorithm, transcribed line for line from torch/optim/lbfgs.py
over a generic number type. Its scalar formulas — the lines a variant changes — come from
:data:`RULE`, evaluated by ``closed_loop.Lines``; the vector algebra, the tests and the line
search are the fixed skeleton. The goldens are this code run in 80-digit arithmetic on SymPy
objectives; the closed forms are this code run on SymPy symbols.
"""

from __future__ import annotations

from collections.abc import Mapping

import sympy as sp

from .closed_loop import (
    Change,
    ClosedLoopCase,
    ClosedLoopSpec,
    Lines,
    Objective,
    Param,
    Sym,
    closure_of,
    dot,
    in_field,
    larger,
    max_abs,
    smaller,
    sqrt,
    sum_abs,
)
from .proofs import ClosedForm, residual
from .rule import Assign, Hyperparameter, Rule, StateVar, Variant, t

# -- the rule: the formula lines of the algorithm --------------------------------------------
gamma = sp.Symbol("gamma", positive=True)  # lr
g_l1 = sp.Symbol(r"\|g\|_1", positive=True)  # ‖g‖₁ of the current gradient
g_l2 = sp.Symbol(r"\|g\|_2", positive=True)  # ‖g‖₂
ys = sp.Symbol(r"y^\top s", real=True)  # curvature of the newest pair
yy = sp.Symbol(r"y^\top y", positive=True)
tau = sp.Symbol("tau", real=True)  # the (initial trial) step size t
keep = sp.Symbol("keep")  # whether the pair (y, s) enters the history
rho = sp.Symbol("rho", real=True)  # 1/(yᵀs) of a stored pair
h_diag = sp.Symbol("H_0", real=True)  # scale of the initial inverse Hessian H₀ = h·I
# torch's curvature threshold (the literal 1e-10 in lbfgs.py): a named constant of the rule
EPS_YS = sp.Symbol(r"\epsilon_{ys}", positive=True)
FIXED = {EPS_YS: 1e-10}

_n = sp.symbols("max_iter max_eval tolerance_grad tolerance_change history_size line_search_fn")

HYPERPARAMETERS = (
    Hyperparameter("lr", gamma, 1.0, doc="learning rate γ: the step along the L-BFGS direction "
                   "(the line search's first trial)"),
    Hyperparameter("max_iter", _n[0], 20, integer=True, doc="iterations per step() call at most"),
    Hyperparameter("max_eval", _n[1], None, integer=True, doc="closure evaluations per step() call at most "
                   "(None: max_iter·5//4, fixed at construction)"),
    Hyperparameter("tolerance_grad", _n[2], 1e-7, doc="stop when max|g| ≤ tolerance_grad"),
    Hyperparameter("tolerance_change", _n[3], 1e-9, doc="stop when gᵀd, max|t·d| or the loss "
                   "change fall below tolerance_change"),
    Hyperparameter("history_size", _n[4], 100, integer=True, doc="pairs (y, s) kept"),
    Hyperparameter("line_search_fn", _n[5], None, doc='None (fixed step lr) or "strong_wolfe"'),
)

STATE = (
    StateVar("func_evals", sp.Symbol("func_evals"), sp.Integer(0),
             "closure evaluations since construction", count=True),
    StateVar("n_iter", sp.Symbol("n_iter"), sp.Integer(0), "iterations since construction", count=True),
)

RULE = Rule(
    id="lbfgs",
    title="L-BFGS (PyTorch, after minFunc: scaled first step, γ = sᵀy/yᵀy, yᵀs > 1e-10 safeguard)",
    hyperparameters=HYPERPARAMETERS,
    state=STATE,
    body=(
        Assign("first_step", tau, gamma * sp.Min(1, 1 / g_l1),
               "the very first iteration: t = lr·min(1, 1/‖g‖₁) along d = −g"),
        Assign("step_size", tau, gamma, "every later iteration: t = lr"),
        Assign("curvature_test", keep, sp.StrictGreaterThan(ys, EPS_YS),
               "the pair (y, s) enters the history only if yᵀs > 10⁻¹⁰"),
        Assign("rho", rho, 1 / ys, "ρ = 1/(yᵀs) of a stored pair"),
        Assign("initial_hessian", h_diag, ys / yy,
               "H₀ = (yᵀs/yᵀy)·I from the newest stored pair (Nocedal & Wright eq. 7.20)"),
    ),
)

OPTAX_LBFGS = "optax/_src/transform.py scale_by_lbfgs (google-deepmind/optax)"
JAXOPT_LBFGS = "jaxopt/_src/lbfgs.py LBFGS (google/jaxopt)"
NW = "Nocedal & Wright, Numerical Optimization, 2nd ed., Algorithms 7.4 and 7.5"

VARIANTS = (
    Variant(
        id="lbfgs.first_step_l2_norm",
        title="first step capped in the Euclidean norm",
        summary="t₁ = lr·min(1, 1/‖g‖₂) instead of lr·min(1, 1/‖g‖₁)",
        who="optax scale_by_lbfgs (scale_init_precond=True, the default; optax.lbfgs)",
        sources=(OPTAX_LBFGS + ": capped_inv_norm = min(1, 1/‖updates‖₂) at count 0",),
        delta=lambda r: r.replace("first_step", gamma * sp.Min(1, 1 / g_l2)),
    ),
    Variant(
        id="lbfgs.first_step_inverse_l2_norm",
        title="first step 1/‖g‖₂, not capped",
        summary="t₁ = lr/‖g‖₂: the first trial step of L-BFGS-B",
        who="scipy.optimize L-BFGS-B (lbfgsb.f lnsrlb: stp = min(1/‖d‖₂, stpmx) at iter 0)",
        sources=("scipy/optimize/lbfgsb_src/lbfgsb.f, subroutine lnsrlb",),
        delta=lambda r: r.replace("first_step", gamma / g_l2),
    ),
    Variant(
        id="lbfgs.unscaled_first_step",
        title="first step not scaled by the gradient",
        summary="t₁ = lr along −g (H₀ = I for the first iteration), instead of lr·min(1, 1/‖g‖₁)",
        who="jaxopt LBFGS (γ = 1 while the history is empty); Nocedal & Wright Alg. 7.5 "
            "(H₀⁰ = I, α = 1 tried first)",
        sources=(JAXOPT_LBFGS + ": compute_gamma returns 1 for an empty history", NW),
        delta=lambda r: r.replace("first_step", gamma),
    ),
    Variant(
        id="lbfgs.identity_initial_hessian",
        title="initial inverse Hessian H₀ = I (no sᵀy/yᵀy scaling)",
        summary="H₀ = I at every iteration, and so t₁ = lr on the first",
        who="optax scale_by_lbfgs(scale_init_precond=False); jaxopt LBFGS(use_gamma=False)",
        sources=(OPTAX_LBFGS + ": identity_scale = 1.0 when not scale_init_precond",
                 JAXOPT_LBFGS + ": gamma = 1.0 when not use_gamma"),
        delta=lambda r: r.replace("first_step", gamma).replace("initial_hessian", sp.Integer(1)),
    ),
    Variant(
        id="lbfgs.no_curvature_check",
        title="every pair stored: no yᵀs safeguard",
        summary="(y, s) enters the history unless yᵀs = 0 exactly (ρ = 1/yᵀs even when yᵀs ≤ 10⁻¹⁰ or < 0)",
        who="optax scale_by_lbfgs and jaxopt LBFGS (ρ = 0 only when yᵀs == 0); Nocedal & Wright "
            "Alg. 7.5 (a Wolfe line search keeps yᵀs > 0)",
        sources=(OPTAX_LBFGS + ": weight = 1/vdot(dy, dw) unless 0",
                 JAXOPT_LBFGS + ": rho = 1/vdot_sy unless 0", NW),
        delta=lambda r: r.replace("curvature_test", sp.Ne(ys, 0)),
    ),
)


# -- the algorithm: torch/optim/lbfgs.py over a generic number type -----------------------------
def _axpy(x, t, d):
    """x + t·d, elementwise (torch's p.add_(d, alpha=t))."""
    return [xi + t * di for xi, di in zip(x, d, strict=True)]


def cubic_interpolate(x1, f1, g1, x2, f2, g2, bounds=None):
    """The minimiser of the cubic through (x1, f1, g1), (x2, f2, g2), clamped into ``bounds``."""
    if bounds is not None:
        xmin_bound, xmax_bound = bounds
    else:
        xmin_bound, xmax_bound = (x1, x2) if x1 <= x2 else (x2, x1)
    d1 = g1 + g2 - 3 * (f1 - f2) / (x1 - x2)
    d2_square = d1 * d1 - g1 * g2
    if d2_square >= 0:
        d2 = sqrt(d2_square)
        if x1 <= x2:
            min_pos = x2 - (x2 - x1) * ((g2 + d2 - d1) / (g2 - g1 + 2 * d2))
        else:
            min_pos = x1 - (x1 - x2) * ((g1 + d2 - d1) / (g1 - g2 + 2 * d2))
        return smaller(larger(min_pos, xmin_bound), xmax_bound)
    return (xmin_bound + xmax_bound) / 2


def strong_wolfe(obj_func, x, t, d, f, g, gtd, c1=1e-4, c2=0.9, tolerance_change=1e-9, max_ls=25):
    """torch's ``_strong_wolfe`` (minFunc's WolfeLineSearch): returns f, g, t, evaluations."""
    d_norm = max_abs(d)
    g = list(g)
    f_new, g_new = obj_func(x, t, d)
    ls_func_evals = 1
    gtd_new = dot(g_new, d)

    t_prev, f_prev, g_prev, gtd_prev = 0, f, g, gtd
    done = False
    ls_iter = 0
    while ls_iter < max_ls:
        if f_new > (f + c1 * t * gtd) or (ls_iter > 1 and f_new >= f_prev):
            bracket, bracket_f = [t_prev, t], [f_prev, f_new]
            bracket_g, bracket_gtd = [g_prev, list(g_new)], [gtd_prev, gtd_new]
            break
        if abs(gtd_new) <= -c2 * gtd:
            bracket, bracket_f, bracket_g = [t], [f_new], [g_new]
            done = True
            break
        if gtd_new >= 0:
            bracket, bracket_f = [t_prev, t], [f_prev, f_new]
            bracket_g, bracket_gtd = [g_prev, list(g_new)], [gtd_prev, gtd_new]
            break
        min_step = t + 0.01 * (t - t_prev)
        max_step = t * 10
        tmp = t
        t = cubic_interpolate(t_prev, f_prev, gtd_prev, t, f_new, gtd_new, bounds=(min_step, max_step))
        t_prev, f_prev, g_prev, gtd_prev = tmp, f_new, list(g_new), gtd_new
        f_new, g_new = obj_func(x, t, d)
        ls_func_evals += 1
        gtd_new = dot(g_new, d)
        ls_iter += 1

    if ls_iter == max_ls:
        bracket, bracket_f, bracket_g = [0, t], [f, f_new], [g, g_new]

    insuf_progress = False
    low_pos, high_pos = (0, 1) if bracket_f[0] <= bracket_f[-1] else (1, 0)
    while not done and ls_iter < max_ls:
        if abs(bracket[1] - bracket[0]) * d_norm < tolerance_change:
            break
        t = cubic_interpolate(bracket[0], bracket_f[0], bracket_gtd[0],
                              bracket[1], bracket_f[1], bracket_gtd[1])
        hi, lo = larger(bracket[0], bracket[1]), smaller(bracket[0], bracket[1])
        eps = 0.1 * (hi - lo)
        if smaller(hi - t, t - lo) < eps:
            if insuf_progress or t >= hi or t <= lo:
                t = hi - eps if abs(t - hi) < abs(t - lo) else lo + eps
                insuf_progress = False
            else:
                insuf_progress = True
        else:
            insuf_progress = False
        f_new, g_new = obj_func(x, t, d)
        ls_func_evals += 1
        gtd_new = dot(g_new, d)
        ls_iter += 1
        if f_new > (f + c1 * t * gtd) or f_new >= bracket_f[low_pos]:
            bracket[high_pos], bracket_f[high_pos] = t, f_new
            bracket_g[high_pos], bracket_gtd[high_pos] = list(g_new), gtd_new
            low_pos, high_pos = (0, 1) if bracket_f[0] <= bracket_f[1] else (1, 0)
        else:
            if abs(gtd_new) <= -c2 * gtd:
                done = True
            elif gtd_new * (bracket[high_pos] - bracket[low_pos]) >= 0:
                bracket[high_pos], bracket_f[high_pos] = bracket[low_pos], bracket_f[low_pos]
                bracket_g[high_pos], bracket_gtd[high_pos] = bracket_g[low_pos], bracket_gtd[low_pos]
            bracket[low_pos], bracket_f[low_pos] = t, f_new
            bracket_g[low_pos], bracket_gtd[low_pos] = list(g_new), gtd_new

    return bracket_f[low_pos], bracket_g[low_pos], bracket[low_pos], ls_func_evals


def lbfgs_step(x: list, closure, state: dict, group: dict, lines: Lines):
    """One ``torch.optim.LBFGS.step(closure)``: updates the flat parameter list ``x`` in place,
    returns the loss of the first evaluation. ``closure(x)`` returns (f(x), ∇f(x) as a list)."""
    lr = group["lr"]
    max_iter, max_eval = group["max_iter"], group["max_eval"]
    tolerance_grad, tolerance_change = group["tolerance_grad"], group["tolerance_change"]
    line_search_fn, history_size = group["line_search_fn"], group["history_size"]

    state.setdefault("func_evals", 0)
    state.setdefault("n_iter", 0)
    orig_loss, flat_grad = closure(x)
    loss = orig_loss
    current_evals = 1
    state["func_evals"] += 1
    if max_abs(flat_grad) <= tolerance_grad:
        return orig_loss

    d, t = state.get("d"), state.get("t")
    old_dirs, old_stps, ro = state.get("old_dirs"), state.get("old_stps"), state.get("ro")
    H_diag, prev_flat_grad, prev_loss = state.get("H_diag"), state.get("prev_flat_grad"), state.get("prev_loss")

    n_iter = 0
    while n_iter < max_iter:
        n_iter += 1
        state["n_iter"] += 1
        # -- the direction
        if state["n_iter"] == 1:
            d = [-gi for gi in flat_grad]
            old_dirs, old_stps, ro = [], [], []
            H_diag = 1
        else:
            y = [a - b for a, b in zip(flat_grad, prev_flat_grad, strict=True)]
            s = [di * t for di in d]
            y_s = dot(y, s)
            if lines("curvature_test", {ys: y_s}, y_s):
                if len(old_dirs) == history_size:
                    old_dirs.pop(0)
                    old_stps.pop(0)
                    ro.pop(0)
                old_dirs.append(y)
                old_stps.append(s)
                ro.append(lines("rho", {ys: y_s}, y_s))
                H_diag = lines("initial_hessian", {ys: y_s, yy: dot(y, y)}, y_s)
            num_old = len(old_dirs)
            al = state.setdefault("al", [None] * history_size)
            q = [-gi for gi in flat_grad]
            for i in range(num_old - 1, -1, -1):
                al[i] = dot(old_stps[i], q) * ro[i]
                q = _axpy(q, -al[i], old_dirs[i])
            r = [qi * H_diag for qi in q]
            for i in range(num_old):
                be_i = dot(old_dirs[i], r) * ro[i]
                r = _axpy(r, al[i] - be_i, old_stps[i])
            d = r
        prev_flat_grad = list(flat_grad)
        prev_loss = loss
        # -- the step length
        if state["n_iter"] == 1:
            env = {gamma: lr}
            if lines.uses("first_step", g_l1):
                env[g_l1] = sum_abs(flat_grad)
            if lines.uses("first_step", g_l2):
                env[g_l2] = sqrt(dot(flat_grad, flat_grad))
            t = lines("first_step", env, flat_grad[0])
        else:
            t = lines("step_size", {gamma: lr}, flat_grad[0])
        gtd = dot(flat_grad, d)
        if gtd > -tolerance_change:
            break
        ls_func_evals = 0
        if line_search_fn is not None:
            if line_search_fn != "strong_wolfe":
                raise ValueError("only 'strong_wolfe' is supported")

            def obj_func(x0, step, direction):
                return closure(_axpy(x0, step, direction))

            loss, flat_grad, t, ls_func_evals = strong_wolfe(
                obj_func, list(x), t, d, loss, flat_grad, gtd, max_ls=max_eval - current_evals)
            x[:] = _axpy(x, t, d)
            opt_cond = max_abs(flat_grad) <= tolerance_grad
        else:
            x[:] = _axpy(x, t, d)
            if n_iter != max_iter:
                loss, flat_grad = closure(x)
                opt_cond = max_abs(flat_grad) <= tolerance_grad
                ls_func_evals = 1
        current_evals += ls_func_evals
        state["func_evals"] += ls_func_evals
        # -- the stopping tests
        if n_iter == max_iter:
            break
        if current_evals >= max_eval:
            break
        if opt_cond:
            break
        if max_abs([di * t for di in d]) <= tolerance_change:
            break
        if abs(loss - prev_loss) < tolerance_change:
            break
    state.update(d=d, t=t, old_dirs=old_dirs, old_stps=old_stps, ro=ro, H_diag=H_diag,
                 prev_flat_grad=prev_flat_grad, prev_loss=prev_loss)
    return orig_loss


def prepare(group: dict) -> None:
    """What the constructor adds: max_eval defaults to max_iter·5//4."""
    if group.get("max_eval") is None:
        group["max_eval"] = group["max_iter"] * 5 // 4


# -- objectives, written once in SymPy ------------------------------------------------------------
def _exact(v) -> sp.Rational:
    return sp.Rational(float(v))


def quadratic(A, b) -> Objective:
    """f(x) = ½·xᵀAx − bᵀx (A symmetric positive definite), ∇f = Ax − b."""
    n = len(b)
    x = sp.symbols(f"x_0:{n}", real=True)
    Am = sp.Matrix(n, n, lambda i, j: _exact(A[i][j]))
    assert Am == Am.T, "A must be symmetric"
    xv, bv = sp.Matrix(x), sp.Matrix([_exact(v) for v in b])
    f = sp.expand((xv.T * Am * xv)[0] / 2 - (bv.T * xv)[0])
    return Objective("quadratic", {"A": [list(r) for r in A], "b": list(b)}, tuple(x), f)


def rosenbrock(n: int, a, b) -> Objective:
    """f(x) = Σᵢ₌₀ⁿ⁻² b·(xᵢ₊₁ − xᵢ²)² + (a − xᵢ)² (nonconvex; minimum at x = (a, a², ...) for n = 2)."""
    x = sp.symbols(f"x_0:{n}", real=True)
    A, B = _exact(a), _exact(b)
    f = sum(B * (x[i + 1] - x[i] ** 2) ** 2 + (A - x[i]) ** 2 for i in range(n - 1))
    return Objective("rosenbrock", {"a": a, "b": b}, tuple(x), f)


# -- closed forms: the algorithm itself, run on SymPy symbols -----------------------------------
# The state a step() call leaves, as symbols (the prover's environment): the parameters θᵢ, the
# counters, the last direction dᵢ and step t, the previous gradient, the number of stored pairs
# and H₀. A call reads whatever it needs; history contents it does not know are fresh symbols, so
# a result that depended on them would not simplify to the closed form (the proof would fail).
FUNC_EVALS, N_ITER = sp.Symbol("func_evals"), sp.Symbol("n_iter")
T_STEP, NUM_OLD, H_DIAG = sp.Symbol("t_step"), sp.Symbol("num_old"), sp.Symbol("H_diag")
F_PREV = sp.Symbol("f_prev")
TOL_GRAD, TOL_CHANGE = sp.Symbol(r"\epsilon_g", positive=True), sp.Symbol(r"\epsilon_f", positive=True)


def _field_of(values: list, objective: Objective, fresh: set) -> object:
    """The field ℚ(symbols) of rational functions in every symbol a step() call can meet: those of
    ``values`` (the state and the settings), the objective's constants and ``fresh``. (The
    symbols of the rule's lines are bound to numbers of the run when a line is evaluated; a value
    with a symbol outside the field is computed on as a SymPy expression.) The symbols of the
    values come first: the heuristic GCD of ``sympy.polys`` eliminates the generators in order,
    and the fresh ones (thresholds, unknown history) occur in few values."""
    known = set().union(*(v.free_symbols for v in values if isinstance(v, sp.Basic)))
    known |= objective.f.free_symbols - set(objective.symbols)
    symbols = sorted(known, key=str) + sorted(set(fresh) - known, key=str)
    return sp.polys.fields.FracField(symbols, sp.QQ)


def _power_renaming(values) -> tuple[dict, dict]:
    """A power with a symbolic exponent, b**(k + c) (c a number), renamed b**c·W with W = b**k a
    positive symbol for the run: an exact rewriting that keeps the arithmetic rational (a
    rational identity in W holds for W = b**k). Returns the renaming and its inverse W ↦ b**k."""
    rename, restore = {}, {}
    for v in values:
        for pw in sp.sympify(v).atoms(sp.Pow):
            if pw.exp.free_symbols and pw.base.is_positive:
                c, rest = pw.exp.as_coeff_Add()
                w = sp.Symbol(f"W_{len(restore)}", positive=True)
                for known, (base, e) in restore.items():
                    if (base, e) == (pw.base, rest):
                        w = known
                restore[w] = (pw.base, rest)
                rename[pw] = pw.base**c * w
    return rename, {w: base**e for w, (base, e) in restore.items()}


def _expr(v) -> sp.Expr:
    return v.e if isinstance(v, Sym) else sp.sympify(v)


def _tidy(e: sp.Expr) -> sp.Expr:
    """An exact rewriting into a factored form with powers of one base merged (b**x·b**y →
    b**(x + y)), in which SymPy recognises equal expressions."""
    return sp.factor(sp.powsimp(sp.expand_power_base(sp.expand(e)), combine="exp"))


def _vec(name: str, n: int) -> tuple[sp.Symbol, ...]:
    return sp.symbols(f"{name}_0:{n}", real=True)


class StepCall:
    """One ``step(closure)`` call of :func:`lbfgs_step` on SymPy numbers, as a rule for the
    prover (``proofs.prove``): ``residuals`` runs the call from a state and compares the state
    it leaves with the one a closed form claims.

    Comparisons are decided symbolically (``Sym.sign``); the tolerances and the curvature
    threshold 1e-10 are symbols standing for thresholds smaller than every nonzero quantity they
    are compared with, so the results hold for all thresholds small enough (torch's defaults on
    these problems).
    """

    def __init__(self, objective: Objective, group: Mapping[str, object], rule: Rule = RULE):
        self.objective = objective
        self.rule = rule
        self.n = len(objective.symbols)
        self.group = dict(group)
        self.theta = _vec("theta", self.n)
        self.d = _vec("d", self.n)
        self.prev = _vec("g_prev", self.n)

    def initial_env(self) -> dict:
        return {FUNC_EVALS: sp.Integer(0), N_ITER: sp.Integer(0)}

    def residuals(self, env: Mapping[sp.Symbol, sp.Expr], want: Mapping[sp.Symbol, sp.Expr]) -> dict:
        """``after − want`` for each symbol of ``want``, where ``after`` is the state after the
        call from ``env`` (for ``proofs.prove``): computed in the run's field of rational
        functions, where a residual is zero exactly when it is the zero fraction, with the same
        renaming of powers on both sides. A value outside the field is compared as ``proofs``
        compares the elementwise rules' (``proofs.residual``), after :func:`_tidy`."""
        rename, back = _power_renaming([*env.values(), *want.values()])
        want = {k: sp.sympify(v).xreplace(rename) for k, v in want.items()}
        out, field = self._run({k: sp.sympify(v).xreplace(rename) for k, v in env.items()},
                               extra=set().union(*(v.free_symbols for v in want.values())))
        residuals = {}
        for sym, expr in want.items():
            have, wanted = in_field(field, out[sym]), in_field(field, expr)
            if have is not None and wanted is not None:
                residuals[str(sym)] = (have - wanted).as_expr().xreplace(back)
            else:
                residuals[str(sym)] = residual(_tidy(_expr(out[sym]).xreplace(back)), expr.xreplace(back))
        return residuals

    def _run(self, env: Mapping[sp.Symbol, sp.Expr], extra: set = frozenset()) -> tuple[dict, object]:
        """The state after the call (values: expressions, or :class:`Sym` numbers) and the field
        of rational functions the run computed in."""
        get = lambda s: env.get(s, s)  # noqa: E731  (unknown state: its own symbol)
        m = int(env[NUM_OLD]) if NUM_OLD in env else 0
        history = [(_vec(f"y{k}", self.n), _vec(f"s{k}", self.n), sp.Symbol(f"rho{k}")) for k in range(m)]
        unknown = {s for s in (*self.theta, *self.d, *self.prev, T_STEP, H_DIAG) if s not in env}
        fresh = {*unknown, F_PREV, TOL_GRAD, TOL_CHANGE, EPS_YS, *extra,
                 *(s for y, st, r in history for s in (*y, *st, r))}
        field = _field_of([*env.values(), *self.group.values()], self.objective, fresh)
        saved = Sym.small, Sym.field
        Sym.small, Sym.field = frozenset({TOL_GRAD, TOL_CHANGE, EPS_YS}), field
        try:
            x = [Sym(get(s)) for s in self.theta]
            state: dict = {"func_evals": get(FUNC_EVALS), "n_iter": get(N_ITER)}
            if state["n_iter"] != 0:
                state["d"] = [Sym(get(s)) for s in self.d]
                state["t"] = Sym(get(T_STEP))
                state["prev_flat_grad"] = [Sym(get(s)) for s in self.prev]
                state["prev_loss"] = Sym(F_PREV)
                state["H_diag"] = Sym(get(H_DIAG))
            if state["n_iter"] != 0 and NUM_OLD in env:  # unknown history: any use of it fails
                state["old_dirs"] = [[Sym(s) for s in y] for y, _, _ in history]
                state["old_stps"] = [[Sym(s) for s in st] for _, st, _ in history]
                state["ro"] = [Sym(r) for _, _, r in history]
            group = {**self.group, "tolerance_grad": Sym(TOL_GRAD), "tolerance_change": Sym(TOL_CHANGE)}
            lines = Lines(self.rule, {EPS_YS: Sym(EPS_YS)})
            closure = closure_of(self.objective, self.n, list(range(self.n)))
            lbfgs_step(x, closure, state, group, lines)
        finally:
            Sym.small, Sym.field = saved
        out = {**env, FUNC_EVALS: sp.sympify(state["func_evals"]), N_ITER: sp.sympify(state["n_iter"])}
        out.update(zip(self.theta, x, strict=True))
        if "d" in state:
            out.update(zip(self.d, state["d"], strict=True))
            out.update(zip(self.prev, state["prev_flat_grad"], strict=True))
            out[T_STEP] = state["t"]
            out[H_DIAG] = state["H_diag"]
        if "old_dirs" in state:
            out[NUM_OLD] = sp.Integer(len(state["old_dirs"]))
        return out, field


# 1-D: f = a/2·(x − c)² from x₀ = c + 1 + m with a·(x₀ − c) = 1 + k > 1 (k, m > 0).
_a, _c = sp.Symbol("a", positive=True), sp.Symbol("c", real=True)
_k, _m = sp.Symbol("k", positive=True), sp.Symbol("m", positive=True)
_x = sp.Symbol("x", real=True)
_A1 = (1 + _k) / (1 + _m)
_ONE_D = Objective("quadratic", {}, (_x,), _A1 / 2 * (_x - _c) ** 2)
_DEFAULT_GROUP = {"lr": sp.Integer(1), "max_iter": 20, "max_eval": 25, "history_size": 100,
                  "line_search_fn": None}
_CALL_1D = StepCall(_ONE_D, _DEFAULT_GROUP)

# 2-D isotropic: f = a/2·‖x − c‖², lr γ = 1/(1 + h) ∈ (0, 1), e₀ = x₀ − c = (1 + p, 1 + q),
# a·‖e₀‖₁ = 1 + k > 1; two iterations per call, one stored pair.
_h, _p, _q = sp.symbols("h p q", positive=True)
_c2 = sp.symbols("c_0:2", real=True)
_x2 = sp.symbols("x_0:2", real=True)
_S = 2 + _p + _q
_A2 = (1 + _k) / _S
_G = 1 / (1 + _h)
_ISO = Objective("quadratic", {}, _x2, _A2 / 2 * sum((xi - ci) ** 2 for xi, ci in zip(_x2, _c2, strict=True)))
_CALL_ISO = StepCall(_ISO, {"lr": _G, "max_iter": 2, "max_eval": 4, "history_size": 1, "line_search_fn": None})
_E0 = (1 + _p, 1 + _q)
_E1 = [e * (1 - _G / _S) for e in _E0]  # the error after the first (scaled) iteration
_R = _h / (1 + _h)  # 1 − γ

CLOSED_FORMS = (
    ClosedForm(
        name="secant_step_lands_on_minimum",
        statement="On f = a/2·(x − c)² with lr = 1 and torch's defaults, from |f′(x₀)| = 1 + k > 1: "
        "the first iteration moves by lr·min(1, 1/|g₀|)·g₀ (exactly lr), the second, with the "
        "secant pair (y, s) = (−a, −1) and H₀ = yᵀs/yᵀy = 1/a, lands exactly on c; the call ends "
        "there (g = 0) after 2 iterations and 3 evaluations, and every later call returns at once: "
        "x_t = c, func_evals = t + 2, n_iter = 2.",
        rule=_CALL_1D,
        given={},
        closed={_CALL_1D.theta[0]: _c, FUNC_EVALS: t + 2, N_ITER: sp.Integer(2)},
        initial={_CALL_1D.theta[0]: _c + 1 + _m},
    ),
    ClosedForm(
        name="isotropic_contraction",
        statement="On f = a/2·‖x − c‖² in 2-D with lr = γ ∈ (0, 1), max_iter = 2, history_size = 1 and "
        "a·‖x₀ − c‖₁ > 1 and each |x₀ᵢ − cᵢ| > 1 (so ‖x₀ − c‖₁ > 2 > γ: the first iteration cannot "
        "land on c and end the call): the first iteration moves by γ·(x₀ − c)/‖x₀ − c‖₁; from then on the "
        "two-loop recursion with H₀ = (yᵀs/yᵀy)·I returns exactly the Newton direction −(x − c), "
        "so every iteration contracts the error by 1 − γ: x_t − c = (1 − γ)^(2t−1)·(1 − γ/‖e₀‖₁)·e₀, "
        "d_t = −(1 − γ)^(2t−2)·(1 − γ/‖e₀‖₁)·e₀, func_evals = n_iter = 2t.",
        rule=_CALL_ISO,
        given={},
        closed={
            **{th: ci + _R ** (2 * t - 1) * e for th, ci, e in zip(_CALL_ISO.theta, _c2, _E1, strict=True)},
            **{di: -(_R ** (2 * t - 2)) * e for di, e in zip(_CALL_ISO.d, _E1, strict=True)},
            **{gi: _A2 * _R ** (2 * t - 2) * e for gi, e in zip(_CALL_ISO.prev, _E1, strict=True)},
            T_STEP: _G, NUM_OLD: sp.Integer(1), FUNC_EVALS: 2 * t, N_ITER: 2 * t,
        },
        initial={th: ci + e for th, ci, e in zip(_CALL_ISO.theta, _c2, _E0, strict=True)},
    ),
)


# -- cases ----------------------------------------------------------------------------------------
# Objectives: a 4-D quadratic (not isotropic, so that H₀'s scaling matters), the same scaled by
# 2⁻¹² (every yᵀs then falls below torch's absolute threshold 1e-10), a 2-D quadratic that the
# line search solves to tolerance_grad, and two Rosenbrock functions (nonconvex: yᵀs < 0 occurs
# without a line search). Every input is dyadic; every decision of every trajectory (spec and
# variants) is at least DECISION_MARGIN tolerances from flipping in float32 (the generator checks).
_A4 = [[2.0, 0.5, 0.0, 0.25], [0.5, 1.5, 0.25, 0.0], [0.0, 0.25, 1.0, 0.5], [0.25, 0.0, 0.5, 0.75]]
_B4 = [0.5, -0.25, 0.75, 0.125]
_SMALL = 2.0**-12
QUADRATIC = quadratic(_A4, _B4)
SMALL_QUADRATIC = quadratic([[a * _SMALL for a in row] for row in
                             [[2.0, 0.5, 0.0], [0.5, 1.0, 0.25], [0.0, 0.25, 0.5]]],
                            [v * _SMALL for v in [1.0, -0.5, 0.25]])
QUADRATIC_2D = quadratic([[1.5, 0.5], [0.5, 1.0]], [0.5, -0.25])


def _p4(values: tuple[float, ...]) -> tuple[Param, ...]:
    """A vector and a 0-d param: the flat x of the 4-D quadratic."""
    return Param("vector", (3,), values[:3]), Param("scalar", (), values[3:])


# x₀ with ‖g₀‖₂ = 0.77 < 1 < ‖g₀‖₁ = 1.52: every first-step norm gives another step
_MIXED = (1.0625, -1.25, 2.5, -2.3125)
# x₀ with ‖g₀‖₂ = 2.05 > 1
_LARGE = (1.5, -0.75, 2.0, -1.0)

CASES = (
    ClosedLoopCase(
        id="lbfgs/first_step_norms",
        title="first step with ‖g₀‖₂ < 1 < ‖g₀‖₁",
        purpose="the first step lr·min(1, 1/‖g‖₁) differs from min(1, 1/‖g‖₂) (capped: lr), from 1/‖g‖₂ "
        "and from lr; then quasi-Newton steps, where H₀ = (yᵀs/yᵀy)·I and H₀ = I differ",
        objective=QUADRATIC, params=_p4(_MIXED), variables=("vector", "scalar"),
        hyperparameters={"lr": "0.5", "max_iter": 3}, steps=3,
    ),
    ClosedLoopCase(
        id="lbfgs/large_gradient_history",
        title="‖g₀‖₂ > 1, two pairs of history, a param without gradient",
        purpose="lr = 1 (torch's default); the oldest pair leaves the history; a param the objective "
        "does not use keeps p.grad None and must not move",
        objective=QUADRATIC, params=(*_p4(_LARGE), Param("unused", (2,), (0.5, -1.5))),
        variables=("vector", "scalar"), hyperparameters={"max_iter": 2, "history_size": 2}, steps=4,
    ),
    ClosedLoopCase(
        id="lbfgs/small_scale_curvature_threshold",
        title="an objective scaled by 2⁻¹²: every yᵀs below 1e-10",
        purpose="torch's curvature test is absolute: here it skips every pair, so the run is gradient "
        "descent with step lr; storing the pairs (no safeguard) gives quasi-Newton steps",
        objective=SMALL_QUADRATIC, params=(Param("column", (3, 1), (1.5, -0.75, 2.0)),),
        variables=("column",), hyperparameters={"lr": "0.5", "max_iter": 3}, steps=3,
    ),
    ClosedLoopCase(
        id="lbfgs/rosenbrock_lr_schedule_resume",
        title="fixed steps on Rosenbrock, lr changed, state_dict round trip",
        purpose="a pair with yᵀs < 0 occurs and is skipped; lr 0.25 → 0.5 before call 3; a fresh "
        "instance loaded from state_dict continues the history and the counters before call 4",
        objective=rosenbrock(3, 1.0, 2.0), params=(Param("x", (3,), (-1.25, 0.75, 0.5)),), variables=("x",),
        hyperparameters={"lr": "0.25", "max_iter": 3}, steps=5,
        changes={3: (Change("lr", "0.5"),)}, reload_before=(4,),
    ),
    ClosedLoopCase(
        id="lbfgs/strong_wolfe_rosenbrock",
        title="strong-Wolfe line search on a 3-D Rosenbrock function, lr = 2",
        purpose="long first trials: brackets closed by f rising and by gᵀd turning positive, cubic "
        "interpolation from either end, the old high end becoming the low one while zooming",
        objective=rosenbrock(3, 1.0, 4.0), params=(Param("x", (3,), (-1.0, 2.0, -1.5)),), variables=("x",),
        hyperparameters={"lr": "2.0", "max_iter": 3, "line_search_fn": "strong_wolfe"}, steps=3,
    ),
    ClosedLoopCase(
        id="lbfgs/strong_wolfe_ascent_bracket",
        title="strong-Wolfe line search where a trial lands past the minimum along d",
        purpose="a trial with lower f but gᵀd > 0 closes the bracket; zoom trials failing Armijo "
        "replace the high end; history of 3 pairs",
        objective=rosenbrock(2, 1.0, 4.0), params=(Param("x", (2,), (-1.25, -0.75)),), variables=("x",),
        hyperparameters={"lr": "4.0", "max_iter": 4, "line_search_fn": "strong_wolfe", "history_size": 3},
        steps=3,
    ),
    ClosedLoopCase(
        id="lbfgs/strong_wolfe_insufficient_progress",
        title="strong-Wolfe line search with lr = 4 on a 3-D Rosenbrock function (b = 10)",
        purpose="a first trial far beyond the minimum along d: zooming, the interpolated step lands "
        "within a tenth of the bracket's end and is flagged as insufficient progress",
        objective=rosenbrock(3, 1.0, 10.0), params=(Param("x", (3,), (-1.25, 1.25, 2.0)),), variables=("x",),
        hyperparameters={"lr": "4.0", "max_iter": 2, "line_search_fn": "strong_wolfe"}, steps=2,
    ),
    ClosedLoopCase(
        id="lbfgs/line_search_budget",
        title="a short first trial, extrapolation, and the evaluation budget",
        purpose="lr = 1/4: the first trial satisfies Armijo but not the curvature condition, so the "
        "search extrapolates (cubic, within [1.01·t, 10·t]); max_eval = 2 leaves it "
        "one evaluation (max_ls = 1), after which it returns the better end of [0, t]; every call "
        "then stops on the evaluation budget",
        objective=rosenbrock(2, 1.0, 4.0), params=(Param("x", (2,), (-1.25, 1.75)),), variables=("x",),
        hyperparameters={"lr": "0.25", "max_iter": 2, "max_eval": 2, "line_search_fn": "strong_wolfe"}, steps=3,
    ),    ClosedLoopCase(
        id="lbfgs/tolerance_grad",
        title="the line search converges to tolerance_grad",
        purpose="the first call stops on max|g| ≤ tolerance_grad (2⁻⁷) well inside max_iter; the next "
        "calls return at once after one evaluation",
        objective=QUADRATIC_2D, params=(Param("w", (2,), (1.5, -1.0)),), variables=("w",),
        hyperparameters={"max_iter": 10, "tolerance_grad": "0.0078125", "line_search_fn": "strong_wolfe"},
        steps=3,
    ),
    ClosedLoopCase(
        id="lbfgs/tolerance_change",
        title="fixed steps until the changes fall below tolerance_change",
        purpose="calls stop on |Δloss| < tolerance_change or gᵀd > −tolerance_change (0.01), not on max_iter",
        objective=QUADRATIC_2D, params=(Param("w", (2,), (1.5, -1.0)),), variables=("w",),
        hyperparameters={"lr": "0.5", "max_iter": 10, "tolerance_change": "0.01"}, steps=3,
    ),
)

SPEC = ClosedLoopSpec(
    id="lbfgs",
    title="L-BFGS",
    torch_class="torch.optim.LBFGS",
    rule=RULE,
    variants=VARIANTS,
    cases=CASES,
    closed_forms=CLOSED_FORMS,
    algorithm=lbfgs_step,
    fixed=FIXED,
    prepare=prepare,
)
