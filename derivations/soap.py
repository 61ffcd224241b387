r"""SOAP — Adam in the eigenbasis of Shampoo's preconditioner (the official code's definition).

Vyas, Morwani, Zhao, Shapira, Brandfonbrener, Janson, Kakade, "SOAP: Improving and Stabilizing
Shampoo using Adam" (arXiv:2409.11321), as its authors' code defines it (github.com/nikhilvyas/SOAP,
soap.py, ``SOAP.step``, ``update_preconditioner``, ``get_orthogonal_matrix``,
``get_orthogonal_matrix_QR``), with its defaults ``max_precond_dim = 10000``, ``merge_dims = False``,
``precondition_1d = False``, ``data_format = "channels_first"``. For a parameter with gradient G at
its t-th step (t counts the steps on which it had a gradient):

* **t = 1 only initialises the preconditioner**: L = (1 − β_s)·G Gᵀ, R = (1 − β_s)·Gᵀ G (for an
  m×n matrix; one factor per dimension, contracting the others), Q_L, Q_R their eigenvectors by
  decreasing eigenvalue (``eigh``, flipped). The parameter and the moments do not move.
* t ≥ 2, with k = t − 1 (the code's ``state["step"]``):

      G̃ = Q_Lᵀ G Q_R
      m ← β₁ m + (1 − β₁) G               (in the parameter's basis; see "state" below)
      v ← β₂ v + (1 − β₂) G̃²              (elementwise, in the eigenbasis)
      D = (Q_Lᵀ m Q_R) / (√v + ε)
      U = Q_L D Q_Rᵀ                       (U / (10⁻³⁰ + rms(U)) with normalize_grads)
      θ ← θ − γ·√(1 − β₂ᵏ)/(1 − β₁ᵏ)·U     (γ·U without correct_bias)
      θ ← θ·(1 − γλ)                       (decoupled decay, after the step)
      L ← β_s L + (1 − β_s) G Gᵀ,  R ← β_s R + (1 − β_s) Gᵀ G
      every f-th k (k mod f = 0, f = precondition_frequency): one power-iteration step —
      sort the columns of Q_L by the estimates diag(Q_Lᵀ L Q_L), decreasing, permute v's rows the
      same way, Q_L ← QR(L Q_L) (the orthogonal factor); likewise Q_R with v's columns.

A 0-D or 1-D parameter has no factor (``precondition_1d = False``): the rotations are identities
and the rule is Adam with its first step skipped (:data:`CLOSED_FORMS`).

**Signs and order of the eigenvectors.** An eigenvector's sign is arbitrary (LAPACK's choice), and a
QR factor's column signs follow R's diagonal. The step is invariant to them: flipping column j of
Q_L flips row j of G̃ and of Q_Lᵀ m Q_R, so of D, and U = Q_L D Q_Rᵀ flips it back; v holds squares.
So the parameters, and v, are defined whatever signs an implementation gets (the goldens use
eigenvectors whose largest component is positive and a QR with a positive diagonal; the NumPy
reference keeps LAPACK's signs and passes). Their *order* is not free: v is stored per eigenvector,
so the spec fixes decreasing eigenvalue order (``eigh`` flipped, then the sort by the estimates at
each refresh), and the cases keep the eigenvalues and the estimates well separated, so that the
order is decided by a margin far above any rounding. The first moment is defined in the
parameter's basis (pytorch_optimizer keeps it there; the official code keeps Q_Lᵀ m Q_R and
rotates it at each refresh: the same trajectory, a sign-dependent representation), so only ``v``
(``exp_avg_sq``) is compared as state.

**The eigen-solver, in float32.** The official code runs ``eigh`` and the refresh's product and QR
in float32 whatever the parameter's dtype (``get_orthogonal_matrix`` and ``get_orthogonal_matrix_QR``
cast to ``.float()``; pytorch_optimizer casts its QR to float32 too), so the spec defines them in
float32, as Muon's Newton–Schulz iteration is defined in bfloat16: the goldens are the exact
eigenvectors and QR factors of the exact statistics (80 digits), and the solver's error is a
float32 fixed channel (tolerance + K·u₃₂·B_f, for the params and for v). The statistics L, R are
accumulated in the parameter's dtype (their error stays in the main bound B).

**The eigen-solver's bound.** A perturbation δL of the statistics moves eigenvector k by, to first
order, δq_k = Σ_{j≠k} q_j (q_jᵀ δL q_k)/(λ_k − λ_j): the error is ‖δL‖/gap, not ‖δL‖. So

    |δQ_ik| ≤ Σ_{j≠k} |Q_ij|·‖δL‖₂/|λ_k − λ_j|

with ‖δL‖₂ ≤ u·‖e_L‖_F from L's own accumulated error (units of the dtype's u, into B) and
‖δL‖₂ ≤ u₃₂·(n² + 1)‖L‖_F from L rounded to float32 and the backward error of Householder
tridiagonalisation (γ_{cn²}, Higham, *Accuracy and Stability of Numerical Algorithms*, §19.3), plus
n² per component for Q's loss of orthogonality (units of u₃₂, into B_f). For the power-iteration
refresh Q ← QR(P), P = L·Q, Sun's first-order bound for the QR factor (BIT 31, 1991),
‖δQ‖_F ≤ √2·‖P⁻¹‖₂·‖δP‖_F, applied to every component, with δP = e_L|Q| + |L|e_Q (dtype) and
|L|f_Q + (n + 1)|L||Q| + n²‖P‖_F (float32: the product, Householder QR's backward error).

Products Q_Lᵀ X Q_R carry, in each channel, |Q_L|ᵀ e_X |Q_R| + e_Q_Lᵀ |X| |Q_R| + |Q_L|ᵀ |X| e_Q_R,
plus (m + n)·|Q_L|ᵀ|X||Q_R| for their own rounding (either association) in the dtype's; every
later line carries both through the ordinary running bound (:mod:`.error_bound`), and v carries the
error of the G̃ it accumulated. The cases keep every gap large (``_check_separated`` refuses a case
whose eigenvalues or refresh estimates are closer than 1 % of the largest), so that the order is
well defined and the bound stays small next to what the variants change.

The authors' code (nikhilvyas/SOAP a1e5535, run from source) passes every case in float32.
"""

from __future__ import annotations

import math
from dataclasses import replace

import mpmath
import numpy as np
import sympy as sp

from .adam import beta1, beta2, eps, lam, lr, m, v
from .boundaries import COUNTED
from .cases import CaseBuilder, HyperparameterChange, long_horizon
from .proofs import ClosedForm
from .rule import Assign, Hyperparameter, Rule, StateVar, Variant, g, steps_taken, t, theta
from .spec import Implementation, Spec
from .tensor import Mean, TensorFunction

# The smallest relative gap between eigenvalues (or between the refresh's estimates) a case may
# have: the order of the eigenvectors must be decided far above rounding.
MIN_RELATIVE_GAP = 1e-2


# -- matrix helpers (object arrays of mpf for the goldens, floats for the bound) ----------------

def _mode(x: np.ndarray, q: np.ndarray, d: int) -> np.ndarray:
    """y = x ×_d q: contract dimension d of x with the rows of q (y[.., k, ..] = Σ_i x[.., i, ..]·q[i, k]).

    ``np.moveaxis(np.tensordot(x, q, axes=([d], [0])), -1, d)``, written out (the same ``dot`` of
    the same arrays: tensordot's argument checks cost more than the product of these small
    matrices)."""
    others = [k for k in range(x.ndim) if k != d]
    flat = x.transpose(others + [d]).reshape(math.prod(x.shape[k] for k in others), x.shape[d])
    y = np.dot(flat, q).reshape([x.shape[k] for k in others] + [q.shape[1]])
    order = list(range(x.ndim - 1))
    order.insert(d, x.ndim - 1)
    return y.transpose(order)


def _unfold(x: np.ndarray, d: int) -> np.ndarray:
    """The mode-d unfolding: dimension d first, the others flattened (G for d = 0, Gᵀ for d = 1)."""
    return np.moveaxis(x, d, 0).reshape(x.shape[d], -1)


def _check_separated(values, what: str) -> None:
    vals = sorted(float(x) for x in values)
    scale = max(abs(x) for x in vals) or 1.0
    gaps = [b - a for a, b in zip(vals, vals[1:], strict=False)]
    if gaps and min(gaps) < MIN_RELATIVE_GAP * scale:
        raise ValueError(f"SOAP case design: {what} {vals} are not separated by {MIN_RELATIVE_GAP} relative; "
                         "the order of the eigenvectors would not be well defined")


def _eig_desc_exact(a: np.ndarray) -> tuple[list, np.ndarray]:
    """Eigenvalues (decreasing) and eigenvectors (columns, largest component positive), mpmath."""
    n = a.shape[0]
    e, q = mpmath.eigsy(mpmath.matrix(a.tolist()))
    order = sorted(range(n), key=lambda k: -e[k])
    _check_separated([e[k] for k in order], "eigenvalues")
    out = np.empty((n, n), dtype=object)
    for col, k in enumerate(order):
        vec = [q[i, k] for i in range(n)]
        sign = 1 if max(vec, key=abs) > 0 else -1
        for i in range(n):
            out[i, col] = sign * vec[i]
    return [e[k] for k in order], out


def _qr_exact(p: np.ndarray) -> np.ndarray:
    """The orthogonal factor of p with a positive diagonal of R (Gram–Schmidt at working precision)."""
    n = p.shape[0]
    cols = []
    for k in range(p.shape[1]):
        w = p[:, k].copy()
        for c in cols:
            w = w - c * sum(c * w)
        cols.append(w / mpmath.sqrt(sum(w * w)))
    return np.stack(cols, axis=1) if n else p


def _order(estimates) -> list[int]:
    return sorted(range(len(estimates)), key=lambda k: -estimates[k])


def _eig_bound(a: np.ndarray, ea: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Eigenvectors (decreasing eigenvalue order) and the first-order bounds on their error: from
    the statistics' own error ``ea`` (units of the dtype's u) and from the float32 solver (units of
    float32's u: L rounded to float32, the backward error n²‖L‖_F, and the loss of orthogonality)."""
    n = a.shape[0]
    lam_, q = np.linalg.eigh(a)
    lam_, q = lam_[::-1], q[:, ::-1]
    main, fixed = np.zeros((n, n)), np.full((n, n), float(n * n))
    for k in range(n):
        for j in range(n):
            if j != k:
                main[:, k] += np.abs(q[:, j]) * np.linalg.norm(ea) / abs(lam_[k] - lam_[j])
                fixed[:, k] += np.abs(q[:, j]) * (n * n + 1) * np.linalg.norm(a) / abs(lam_[k] - lam_[j])
    return q, main, fixed


def _qr_bound(p: np.ndarray, e_main: np.ndarray, e_fixed: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The QR factor of p and the bounds on its error (Sun's √2‖p⁻¹‖₂‖δp‖_F), from p's errors in
    the dtype's units and in float32's (plus Householder QR's backward error n²‖p‖_F there)."""
    n = p.shape[0]
    q, _ = np.linalg.qr(p)
    sigma_min = np.linalg.svd(p, compute_uv=False)[-1]
    main = math.sqrt(2) * np.linalg.norm(e_main) / sigma_min
    fixed = math.sqrt(2) * (np.linalg.norm(e_fixed) + n * n * np.linalg.norm(p)) / sigma_min + n * n
    return q, np.full((n, n), main), np.full((n, n), fixed)


# -- the tensor functions -----------------------------------------------------------------------

class _Soap(TensorFunction):
    """A SOAP tensor function: reads (or writes) the parameter's preconditioner in ``memory``."""

    stateful = True
    fixed_dtype = "float32"  # the eigen-solver (eigh, and the refresh's product and QR)

    @classmethod
    def eval(cls, x, *scalars):
        if x.is_Number and x.is_zero:
            return sp.S.Zero  # a rotation of 0

    def _eval_is_nonnegative(self):
        return None

    def _eval_is_positive(self):
        return None

    @classmethod
    def bound(cls, v, e, *scalars):  # pragma: no cover - only channels() is called (stateful)
        raise TypeError("a SOAP tensor function needs its memory: use channels(..., memory=)")

    @classmethod
    def channels(cls, v, e, fixed, *scalars, memory):
        v = np.asarray(v, dtype=np.float64)
        f = np.broadcast_to(np.asarray(fixed.get(cls.fixed_dtype, 0.0), dtype=np.float64), v.shape)
        value, err, f = cls.bound_with(v, np.asarray(e, dtype=np.float64), f, *scalars, memory=memory)
        return value, err, {cls.fixed_dtype: f}


class Rotate(_Soap):
    r"""``Q_Lᵀ X Q_R``: X in the eigenbasis (the identity before the first eigenbasis, and on
    dimensions without a factor)."""

    back = False

    def _latex(self, printer):
        x = printer._print(self.args[0])
        if self.back:
            return r"Q_L\,\left(" + x + r"\right)Q_R^{\top}"
        return r"Q_L^{\top}\left(" + x + r"\right)Q_R"

    def _mathml_presentation(self, printer):
        """Q_Lᵀ (x) Q_R, or Q_L (x) Q_Rᵀ (the docs' MathML printer)."""
        def q(side, transposed):
            sub = printer._mi(side)
            return (printer._el("msubsup", printer._mi("Q"), sub, printer._mi("⊤")) if transposed
                    else printer._el("msub", printer._mi("Q"), sub))
        x = printer._el("mrow", printer._mo("("), printer._print(self.args[0]), printer._mo(")"))
        return printer._el("mrow", q("L", not self.back), x, q("R", self.back))

    @classmethod
    def _bases(cls, memory, ndim):
        return memory.get("Q") or [None] * ndim

    @classmethod
    def exact(cls, x, *scalars, memory):
        for d, q in enumerate(cls._bases(memory, x.ndim)):
            if q is not None:
                x = _mode(x, q.T if cls.back else q, d)
        return x

    @classmethod
    def bound_with(cls, x, e, f, *scalars, memory):
        """e: the dtype's roundings (the products, Q's error from the statistics' error);
        f: float32's (Q's error from the solver), both carried with the argument's own."""
        for d, q in enumerate(cls._bases(memory, x.ndim)):
            if q is None:
                continue
            eq, fq = memory["eQ"][d], memory["fQ"][d]
            q, eq, fq = (q.T, eq.T, fq.T) if cls.back else (q, eq, fq)
            n = q.shape[0]
            value = _mode(x, q, d)
            e = _mode(e, np.abs(q), d) + _mode(np.abs(x), eq, d) + n * _mode(np.abs(x), np.abs(q), d)
            f = _mode(f, np.abs(q), d) + _mode(np.abs(x), fq, d)
            x = value
        return x, e, f


class RotateBack(Rotate):
    r"""``Q_L X Q_Rᵀ``: back to the parameter's basis."""

    back = True


class Sorted(_Soap):
    r"""v with its rows (columns) in the order the last refresh sorted Q_L's (Q_R's) columns."""

    def _eval_is_nonnegative(self):
        return self.args[0].is_nonnegative

    def _latex(self, printer):
        return r"\operatorname{sort}\left(" + printer._print(self.args[0]) + r"\right)"

    def _mathml_presentation(self, printer):
        return printer._applied(printer._mi("sort"), printer._print(self.args[0]))

    @classmethod
    def _apply(cls, x, memory):
        for d, perm in enumerate(memory.get("perm") or ()):
            if perm is not None:
                x = np.take(x, perm, axis=d)
        return x

    @classmethod
    def exact(cls, x, *scalars, memory):
        return cls._apply(x, memory)

    @classmethod
    def bound_with(cls, x, e, f, *scalars, memory):
        return cls._apply(x, memory), cls._apply(e, memory), cls._apply(f, memory)


class Precondition(_Soap):
    r"""``precondition(G; β_s, f, k, active)``: on a parameter's first call, the statistics L, R
    from G and their eigenvectors; on a later call with ``active`` 1, L, R updated with G and, every
    f-th k (k > 0), the eigenbases refreshed by one power-iteration step and QR, recording the sort
    for v (with ``active`` 0 a later call does nothing).
    Its value is 0 (it acts on the memory only)."""

    nargs = 5

    precondition_1d = False  # 1-D parameters get a factor too (precondition_1d=True)
    refresh_by_eigh = False  # refresh by a full eigendecomposition instead of one power step
    init_only = False  # only initialise the memory (from G), if it is empty

    label = "precondition"  # its name in the docs (a variant's function names its difference)

    def _latex(self, printer):
        args = ", ".join(printer._print(a) for a in self.args[1:])
        return (r"\operatorname{" + self.label + r"}\left(" + printer._print(self.args[0]) + r";\ " + args
                + r"\right)")

    def _mathml_presentation(self, printer):
        parts = [printer._print(self.args[0]), printer._mo(";")]
        for i, a in enumerate(self.args[1:]):
            parts += [printer._mo(",")] if i else []
            parts.append(printer._print(a))
        return printer._el("mrow", printer._mi(self.label), printer._mo("\u2061"), printer._mo("("), *parts,
                           printer._mo(")"))

    @classmethod
    def _factors(cls, x) -> list[bool]:
        if x.ndim == 1:
            return [cls.precondition_1d]
        return [True] * x.ndim

    # -- exact --------------------------------------------------------------------------------
    @classmethod
    def exact(cls, x, beta_s, freq, k, active=1, *, memory):
        memory["perm"] = None
        zero = np.zeros(x.shape, dtype=object)
        zero[...] = mpmath.mpf(0)
        first = "GG" not in memory
        if not first and (not active or cls.init_only):
            return zero
        if first:
            memory["GG"] = [np.full((n, n), mpmath.mpf(0), dtype=object) if on else None
                            for n, on in zip(x.shape, cls._factors(x), strict=True)]
        for d, gg in enumerate(memory["GG"]):
            if gg is not None:
                u = _unfold(x, d)
                # the array on the left: mpf * ndarray would try (and fail) to convert the array first
                memory["GG"][d] = gg * beta_s + u.dot(u.T) * (1 - beta_s)
        if first:
            memory["Q"] = [None if gg is None else _eig_desc_exact(gg)[1] for gg in memory["GG"]]
        elif k > 0 and int(k) % int(freq) == 0:
            memory["Q"], memory["perm"] = cls._refresh_exact(memory["GG"], memory["Q"])
        return zero

    @classmethod
    def _refresh_exact(cls, factors, bases):
        out, perms = [], []
        for gg, q in zip(factors, bases, strict=True):
            if gg is None:
                out.append(None)
                perms.append(None)
            elif cls.refresh_by_eigh:
                out.append(_eig_desc_exact(gg)[1])
                perms.append(None)
            else:
                p = gg.dot(q)
                estimates = [sum(q[:, j] * p[:, j]) for j in range(q.shape[1])]
                _check_separated(estimates, "eigenvalue estimates diag(QᵀLQ)")
                order = _order(estimates)
                out.append(_qr_exact(p[:, order]))
                perms.append(order)
        return out, perms

    # -- bound ----------------------------------------------------------------------------------
    @classmethod
    def bound_with(cls, x, e, f, beta_s, freq, k, active=1.0, *, memory):
        memory["perm"] = None
        zero = np.zeros(x.shape)
        first = "GG" not in memory
        if not first and (not active or cls.init_only):
            return zero, zero, zero
        if first:
            memory["GG"] = [np.zeros((n, n)) if on else None for n, on in zip(x.shape, cls._factors(x), strict=True)]
            memory["eGG"] = [None if gg is None else np.zeros_like(gg) for gg in memory["GG"]]
        w = 1.0 - beta_s
        for d, gg in enumerate(memory["GG"]):
            if gg is None:
                continue
            u, eu = _unfold(x, d), _unfold(e, d)
            outer = u @ u.T
            e_outer = 2 * np.abs(u) @ eu.T + u.shape[1] * np.abs(u) @ np.abs(u).T  # inner dimension
            new = gg + w * (outer - gg)  # torch's lerp_
            memory["eGG"][d] = (abs(1 - w) * memory["eGG"][d] + w * e_outer
                                + 2 * np.abs(outer - gg) + np.abs(new))
            memory["GG"][d] = new
        if first:
            triples = [(None, None, None) if gg is None else _eig_bound(gg, egg)
                       for gg, egg in zip(memory["GG"], memory["eGG"], strict=True)]
            memory["Q"], memory["eQ"], memory["fQ"] = (list(x) for x in zip(*triples, strict=True)) if triples \
                else ([], [], [])
        elif k > 0 and int(k) % int(freq) == 0:
            cls._refresh_bound(memory)
        return zero, zero, zero

    @classmethod
    def _refresh_bound(cls, memory):
        perms = []
        for d, gg in enumerate(memory["GG"]):
            if gg is None:
                perms.append(None)
                continue
            egg, q, eq, fq = memory["eGG"][d], memory["Q"][d], memory["eQ"][d], memory["fQ"][d]
            if cls.refresh_by_eigh:
                memory["Q"][d], memory["eQ"][d], memory["fQ"][d] = _eig_bound(gg, egg)
                perms.append(None)
                continue
            p = gg @ q
            order = _order(list(np.sum(q * p, axis=0)))
            q, eq, fq, p = q[:, order], eq[:, order], fq[:, order], p[:, order]
            n = gg.shape[0]
            e_main = egg @ np.abs(q) + np.abs(gg) @ eq
            e_fixed = np.abs(gg) @ fq + (n + 1) * np.abs(gg) @ np.abs(q)  # L to float32, the product
            memory["Q"][d], memory["eQ"][d], memory["fQ"][d] = _qr_bound(p, e_main, e_fixed)
            perms.append(order)
        memory["perm"] = perms


class PreconditionEigh(Precondition):
    r"""The eigenbases refreshed by a full eigendecomposition (``eigh``) instead of a power step."""

    refresh_by_eigh = True
    label = "precondition_eigh"


class Precondition1D(Precondition):
    r"""``precondition`` with a factor for 1-D parameters too (``precondition_1d=True``)."""

    precondition_1d = True
    label = "precondition_1d"


class PreconditionInit(Precondition):
    r"""Only the initialisation of ``precondition`` (statistics and eigenbases from G), if not done."""

    init_only = True
    label = "precondition_init"


# -- the rule -----------------------------------------------------------------------------------

beta_s = sp.Symbol("beta_s", positive=True)  # shampoo_beta
freq = sp.Symbol("f", integer=True, positive=True)  # precondition_frequency
correct_bias = sp.Symbol("correct_bias")
normalize = sp.Symbol("normalize_grads")

g_rot = sp.Symbol(r"\tilde{g}", real=True)  # G̃ = Q_Lᵀ G Q_R
D = sp.Symbol("D", real=True)  # Adam's direction in the eigenbasis
U = sp.Symbol("U", real=True)  # the direction back in the parameter's basis
P = sp.Symbol("P", real=True)  # the preconditioner's update (acts on its memory; value 0)
z = sp.Symbol("z", integer=True, nonnegative=True)  # 1 on the step that only builds the preconditioner
k = sp.Symbol("k", integer=True, nonnegative=True)  # Adam's step count, t − 1

TINY = sp.Rational(1, 10**30)  # the official normalisation's 1e-30


def _after_first(expr: sp.Expr, keep: sp.Expr) -> sp.Expr:
    """``keep`` on the step that only initialises the preconditioner (z = 1), ``expr`` after it."""
    return sp.Piecewise((keep, sp.Eq(z, 1)), (expr, True))


def _scale(k_: sp.Expr) -> sp.Expr:
    return sp.Piecewise((sp.sqrt(1 - beta2**k_) / (1 - beta1**k_), correct_bias), (1, True))


BODY = (
    Assign("step", t, t + 1, "count the step"),
    Assign("initialising", z, sp.Piecewise((1, sp.Eq(t, 1)), (0, True)),
           "z = 1 on the first step: it only builds the preconditioner"),
    Assign("count", k, t - 1, "Adam's step count k (the official code's state['step'])"),
    Assign("rotate_gradient", g_rot, Rotate(g), "the gradient in the eigenbasis: G̃ = Q_Lᵀ G Q_R"),
    Assign("first_moment", m, _after_first(beta1 * m + (1 - beta1) * g, m),
           "EMA of the gradient, in the parameter's basis (not on the first step)"),
    Assign("second_moment", v, _after_first(beta2 * v + (1 - beta2) * g_rot**2, v),
           "EMA of the squared rotated gradient, in the eigenbasis (not on the first step)"),
    Assign("direction", D, Rotate(m) / (sp.sqrt(v) + eps), "Adam's direction in the eigenbasis"),
    Assign("rotate_back", U, RotateBack(D), "back to the parameter's basis: U = Q_L D Q_Rᵀ"),
    Assign("normalise", U, sp.Piecewise((U / (TINY + sp.sqrt(Mean(U**2))), normalize), (U, True)),
           "normalize_grads: U / (10⁻³⁰ + rms(U))"),
    Assign("update", theta, _after_first(theta - lr * _scale(k) * U, theta),
           "the step, bias-corrected with k (none on the first step)"),
    Assign("weight_decay", theta, _after_first(theta * (1 - lr * lam), theta),
           "decoupled weight decay, after the step"),
    Assign("precondition", P, Precondition(g, beta_s, freq, k, 1 - z),
           "L, R and their eigenvectors on the first step; later L, R ← EMA of G Gᵀ, Gᵀ G and a power "
           "step + QR every f-th k"),
    Assign("sort", v, Sorted(v), "v follows the refresh's sort of the eigenvectors"),
)


RULE = Rule(
    id="soap",
    title="SOAP (official code: first step skipped, eigh then a power step + QR every f steps)",
    hyperparameters=(
        Hyperparameter("lr", lr, 3e-3, doc="learning rate γ"),
        Hyperparameter("betas", (beta1, beta2), (0.95, 0.95), doc="Adam's decay rates (β₁, β₂)"),
        Hyperparameter("shampoo_beta", beta_s, None,
                       doc="β_s of the statistics L, R (None: β₂; the cases always set it)"),
        Hyperparameter("eps", eps, 1e-8, doc="ε added to √v in the eigenbasis"),
        Hyperparameter("weight_decay", lam, 0.01, neutral=0, doc="decoupled weight decay λ, after the step"),
        Hyperparameter("precondition_frequency", freq, 10, integer=True,
                       doc="f: the eigenbases are refreshed when k = t − 1 is a multiple of f"),
        Hyperparameter("correct_bias", correct_bias, True, boolean=True,
                       doc="scale the step by √(1 − β₂ᵏ)/(1 − β₁ᵏ)"),
        Hyperparameter("normalize_grads", normalize, False, neutral=False, boolean=True,
                       doc="divide the update by 10⁻³⁰ + its root mean square"),
    ),
    state=(
        StateVar("step", t, sp.Integer(0), "steps with a gradient, the first included (the official code's "
                 "state['step'] is t − 1; pytorch_optimizer keeps none)", kept_when=lambda hp: False, count=True),
        StateVar("exp_avg", m, sp.Integer(0), "first moment m, in the parameter's basis (not compared: the "
                 "official code keeps it rotated into the sign-dependent eigenbasis)", kept_when=lambda hp: False),
        StateVar("exp_avg_sq", v, sp.Integer(0), "second moment v, in the eigenbasis (decreasing eigenvalue "
                 "order; it carries the float32 eigen-solver's error: bound.fixed.float32.state)"),
    ),
    body=BODY,
)


# -- variants -----------------------------------------------------------------------------------

VARIANTS = (
    Variant(
        id="soap.eigh_refresh",
        title="eigenbases refreshed by a full eigendecomposition",
        summary="every f-th k, Q_L, Q_R ← the eigenvectors of L, R (eigh) instead of one power-iteration "
        "step QR(L·Q_L) from the previous basis; v is not re-sorted",
        who="NVIDIA Emerging-Optimizers SOAP(use_eigh=True)",
        sources=("NVIDIA-NeMo/Emerging-Optimizers emerging_optimizers/soap/soap.py "
                 "(SOAP.step → update_eigenbasis_and_momentum(use_eigh=...) → get_eigenbasis_eigh)",),
        delta=lambda r: r.replace("precondition", PreconditionEigh(g, beta_s, freq, k, 1 - z)),
    ),
    Variant(
        id="soap.adam_first_step",
        title="the first step is an Adam step, not skipped",
        summary="on t = 1 (Q = I) m, v and θ are updated as Adam's first step, and the bias correction "
        "counts it (k = t instead of t − 1)",
        who="NVIDIA Emerging-Optimizers SOAP (adam_warmup_steps=1, the default: the eigenbases are "
        "computed after an unrotated first step)",
        sources=("NVIDIA-NeMo/Emerging-Optimizers emerging_optimizers/soap/soap.py SOAP.step "
                 "(precondition(grad, state.get('Q')) with no Q yet; state['step'] == adam_warmup_steps → "
                 "get_eigenbasis_eigh)",),
        delta=lambda r: r.replace("initialising", sp.Integer(0)).replace("update", theta - lr * _scale(t) * U),
    ),
    Variant(
        id="soap.decay_before_step",
        title="decoupled weight decay applied before the step",
        summary="θ ← θ(1 − γλ) then θ ← θ − γ·s·U (instead of the step, then the decay)",
        who="NVIDIA Emerging-Optimizers SOAP (use_decoupled_weight_decay=True, the default)",
        sources=("NVIDIA-NeMo/Emerging-Optimizers emerging_optimizers/soap/soap.py SOAP.step "
                 "(p.add_(p, alpha=-lr*weight_decay) before precondition/calculate_adam_update)",),
        delta=lambda r: r.remove("weight_decay").insert_before(
            "update", Assign("weight_decay", theta, _after_first(theta * (1 - lr * lam), theta),
                             "decoupled weight decay, before the step")),
    ),
    Variant(
        id="soap.group_step",
        title="one step count per param group (pytorch_optimizer)",
        summary="the skip, the bias correction and the refresh follow the number of step() calls s, not "
        "the param's own steps: only s = 1 is skipped (k = s − 1); a param whose first gradient comes "
        "later is initialised from it, updated on that step with that basis, and its G Gᵀ enters L twice",
        who="pytorch_optimizer SOAP",
        sources=("pytorch_optimizer/optimizer/soap.py SOAP.step (group['step'] += 1; if group['step'] == 1: "
                 "continue; step = group['step'] - 1), SOAP.init_group (init_pre_conditioner + "
                 "update_pre_conditioner on a param's first gradient)",),
        delta=lambda r: r.replace("initialising", sp.Piecewise((1, sp.Eq(steps_taken, 1)), (0, True)))
        .replace("count", steps_taken - 1)
        .insert_before("rotate_gradient", Assign("initialise", P, PreconditionInit(g, beta_s, freq, 0, 1),
                                                 "a param's first gradient builds L, R, Q_L, Q_R before the step")),
    ),
    Variant(
        id="soap.normalize_eps",
        title="normalize_grads divides by rms(U) + ε",
        summary="U / (rms(U) + ε) instead of U / (10⁻³⁰ + rms(U))",
        who="pytorch_optimizer SOAP(normalize_gradient=True)",
        sources=("pytorch_optimizer/optimizer/soap.py SOAP.step "
                 "(norm_grad.div_(torch.mean(norm_grad.square()).sqrt_().add_(group['eps'])))",),
        delta=lambda r: r.replace("normalise", sp.Piecewise((U / (sp.sqrt(Mean(U**2)) + eps), normalize), (U, True))),
    ),
    Variant(
        id="soap.precondition_1d",
        title="1-D parameters preconditioned too",
        summary="a vector gets a factor L = EMA of g gᵀ and is rotated into its eigenbasis, instead of "
        "plain Adam (precondition_1d=True)",
        who="the precondition_1d=True setting of the official SOAP, pytorch_optimizer SOAP and NVIDIA "
        "Emerging-Optimizers SOAP (False by default in all three)",
        sources=("nikhilvyas/SOAP soap.py init_preconditioner (if grad.dim() == 1: ... precondition_1d)",
                 "pytorch_optimizer/optimizer/soap.py SOAP.init_pre_conditioner"),
        delta=lambda r: r.replace("precondition", Precondition1D(g, beta_s, freq, k, 1 - z)),
    ),
)


# -- closed forms -------------------------------------------------------------------------------
g0, theta0 = sp.symbols("g_0 theta_0", real=True)


def _vector(rule: Rule) -> Rule:
    """The rule on a 0-D or 1-D parameter (no factor): every rotation is the identity and the
    preconditioner and the sort leave v alone."""
    return (rule.replace("rotate_gradient", g).replace("direction", m / (sp.sqrt(v) + eps))
            .replace("rotate_back", D).remove("precondition").remove("sort")
            .renamed(f"{rule.id}~vector", f"{rule.title}, on a vector"))


_b1, _b2 = sp.Rational(19, 20), sp.Rational(19, 20)

CLOSED_FORMS = (
    ClosedForm(
        name="vector_is_adam_after_a_skipped_step",
        statement="On a vector (no factor) under a constant gradient g, the moments are m_t = g(1 − β₁^{t−1}) "
        "and v_t = g²(1 − β₂^{t−1}) and the direction is D_t = g(1 − β₁^{t−1})/(|g|√(1 − β₂^{t−1}) + ε): "
        "Adam's, one step late (the first step only initialises the preconditioner).",
        rule=_vector(RULE),
        given={g: g0, beta1: _b1, beta2: _b2},
        closed={m: g0 * (1 - _b1 ** (t - 1)), v: g0**2 * (1 - _b2 ** (t - 1)),
                D: g0 * (1 - _b1 ** (t - 1)) / (sp.Abs(g0) * sp.sqrt(1 - _b2 ** (t - 1)) + eps)},
        initial={theta: theta0},
    ),
    ClosedForm(
        name="weight_decay_alone_is_geometric_after_the_first_step",
        statement="With a zero gradient every rotation of 0 is 0 and θ_t = θ₀·(1 − γλ)^{t−1}: the first "
        "step leaves θ alone, every later one decays it.",
        rule=RULE,
        given={g: 0, normalize: False},
        closed={m: 0, theta: theta0 * (1 - lr * lam) ** (t - 1)},
        initial={theta: theta0},
    ),
)


# -- cases --------------------------------------------------------------------------------------
SHAPES = (("wide", (2, 3)), ("tall", (3, 2)), ("vector", (2,)))
FAST = {"betas": ["0.5", "0.75"], "shampoo_beta": "0.5"}


def _lr(group: int, value: str) -> HyperparameterChange:
    return HyperparameterChange(group, "lr", value)


CASES = (
    CaseBuilder(
        id="soap/defaults",
        title="the defaults (shampoo_beta = β₂ = 0.95)",
        purpose="the first step only initialises; Adam in the eigenbasis of L and R after it, bias "
        "correction with k = t − 1; a vector is plain Adam",
        hyperparameters={"shampoo_beta": "0.95"},
        grad_exponents=[0] * 6,
        seed=3101,
        shapes=SHAPES,
    ),
    CaseBuilder(
        id="soap/frequent_refresh",
        title="the eigenbases refreshed every step, fast statistics",
        purpose="f = 1 and β_s = 0.5: each refresh is one power-iteration step from the previous basis, "
        "far from the eigenvectors of the new statistics; v follows the refresh's sort",
        hyperparameters={"lr": "0.0625", "precondition_frequency": 1, "weight_decay": "0", **FAST},
        grad_exponents=[0, 1, -1, 0, 1, 0, -1],
        seed=3104,
        shapes=SHAPES,
    ),
    CaseBuilder(
        id="soap/strong_decay",
        title="strong weight decay and a large step",
        purpose="θ(1 − γλ) after the step versus before it differ by γλ·γ·U",
        hyperparameters={"lr": "0.25", "weight_decay": "0.5", "precondition_frequency": 2, **FAST},
        grad_exponents=[0] * 6,
        seed=3103,
        shapes=SHAPES,
        param_exponent=2,
    ),
    CaseBuilder(
        id="soap/no_bias_correction_normalized",
        title="without bias correction, normalised updates, a large ε",
        purpose="correct_bias=False; normalize_grads divides U by 10⁻³⁰ + rms(U), and ε = 0.5 next to "
        "rms(U) shows an ε added there",
        hyperparameters={"lr": "0.0625", "correct_bias": False, "normalize_grads": True, "eps": "0.5",
                         "precondition_frequency": 3, **FAST},
        grad_exponents=[-1] * 6,
        seed=3104,
        shapes=SHAPES,
    ),
    CaseBuilder(
        id="soap/groups_and_missing_grads",
        title="two param groups, and params without a gradient on some steps",
        purpose="per-param step counts: a param whose first gradient comes at step 3 skips that step "
        "(a per-group count would update it and count its G Gᵀ twice); a param without a grad keeps "
        "its value, state and preconditioner",
        hyperparameters={"lr": "0.0625", "precondition_frequency": 2, **FAST},
        grad_exponents=[0] * 7,
        seed=3106,
        shapes=SHAPES,
        groups=[(("wide", "vector"), {}), (("tall",), {"lr": "0.125", "weight_decay": "0.25"})],
        no_grad={"wide": [1, 2], "tall": [4], "vector": [3, 5]},
    ),
    CaseBuilder(
        id="soap/lr_schedule",
        title="the learning rate changed between steps",
        purpose="the step and the decay follow the current γ",
        hyperparameters={"lr": "0.0625", "weight_decay": "0.25", "precondition_frequency": 2, **FAST},
        grad_exponents=[0] * 6,
        seed=3106,
        shapes=SHAPES,
        changes={3: [_lr(0, "0.25")], 5: [_lr(0, "0.015625")]},
    ),
    CaseBuilder(
        id="soap/resume",
        title="state_dict round trip in mid-trajectory",
        purpose="a fresh instance loaded from state_dict continues exactly (statistics and eigenbases "
        "included), across a refresh",
        hyperparameters={"lr": "0.0625", "weight_decay": "0.125", "precondition_frequency": 2, **FAST},
        grad_exponents=[0, -1, 0, 1, 0, -1],
        seed=3107,
        shapes=SHAPES,
        reload_before=[4],
    ),
    replace(
        long_horizon("soap", {"lr": "0.0001", "betas": ["0.999", "0.999"], "shampoo_beta": "0.95",
                              "precondition_frequency": 250}, 3108,
                     "the bias correction √(1 − β₂ᵏ)/(1 − β₁ᵏ) at k = t − 1 = 999 with β₁ = β₂ = 0.999 (1 − β₁ᵏ ≈ "
                     "0.63: an off-by-one in k or a missing correction still shows) and a 2×2 matrix's eigenbases "
                     "refreshed at k = 250, 500, 750. f = 250 and one small matrix keep the generation cheap: "
                     "each of the 10³ steps is evaluated in mpmath for the spec and every variant. γ = 10⁻⁴ and "
                     "|θ| < 1 keep a float64 run's own rounding (up to 10³ roundings of θ, all one way under a "
                     "constant gradient) well inside 10⁻¹³",
                     shapes=(("square", (2, 2)),)),
        param_exponent=-1),
)

SPEC = Spec(
    id="soap",
    title="SOAP",
    rule=RULE,
    variants=VARIANTS,
    cases=CASES,
    closed_forms=CLOSED_FORMS,
    unreachable_boundaries={
        "initialising: Eq(t, 1) below": COUNTED,
        **{f"{line}: Eq(z, 1) above": "z is 1 on the step that only builds the preconditioner and 0 on the "
           "others: never above 1" for line in ("first_moment", "second_moment", "update", "weight_decay")},
    },
    reseeded={"soap/boundary_weight_decay_above_1": (
        310152, "the seed its place gives (310151) draws gradients whose preconditioner eigenvalues are "
        "not 1 % apart (_check_separated): the eigenvector order would be undefined")},
    torch_class=None,
    implementations=(
        Implementation("pytorch-optimizer", "pytorch_optimizer.SOAP",
                       args={"normalize_gradient": "normalize_grads"},
                       note="pytorch_optimizer/optimizer/soap.py SOAP (eigh in the param's dtype, the QR "
                       "refresh in float32; one step count per group)"),
    ),
)
