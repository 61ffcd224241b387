r"""Muon — PyTorch's definition (``torch.optim.Muon``, as in torch 2.13), Newton–Schulz in bfloat16.

Jordan et al., "Muon: An optimizer for hidden layers in neural networks"
(kellerjordan.github.io/posts/muon, github.com/KellerJordan/Muon) as ``torch.optim.Muon``
implements it (torch/optim/_muon.py, ``_single_tensor_muon``), for 2-D parameters only:

* the momentum buffer is an exponential moving average, ``B ← B + (1 − μ)(g − B)``
  (``buf.lerp_(grad, 1 − momentum)``), and the Nesterov direction is ``U = g + μ(B − g)``
  (``grad.lerp(buf, momentum)``), or ``U = B`` without Nesterov;
* ``O = NS(U)`` orthogonalises the direction with ``ns_steps`` (5) Newton–Schulz steps (below);
* decoupled weight decay ``θ ← θ(1 − γλ)``, then ``θ ← θ − γ·s·O`` for an A×B matrix, with
  ``s = √max(1, A/B)`` (``adjust_lr_fn=None`` or "original": Keller Jordan's scaling) or
  ``s = 0.2·√max(A, B)`` ("match_rms_adamw", Moonshot's).

``ns_steps`` is an integer hyperparameter and ``adjust_lr_fn`` a named choice (the rule's symbol
is its index in :data:`ADJUSTMENTS`); lr scalings of other implementations are catalogued variants.

**The Newton–Schulz iteration and its precision.** ``NS(U)`` is defined as torch (and Keller
Jordan's reference) computes it: ``X = U`` (``Uᵀ`` if the matrix is tall) rounded to bfloat16,
``X ← X / max(‖X‖_F, ε)``, then ``ns_steps`` times ``A = X Xᵀ``, ``B = bA + cA²``,
``X ← aX + BX`` (``ns_coefficients`` = (a, b, c)), transposed back. It runs in **bfloat16**
whatever the parameter's dtype: every matrix product and every scaled sum is rounded to bfloat16
(products accumulate in float32 or wider). The golden is the exact polynomial map (80 digits); the
tolerance of the parameters gets a second term ``K·u_bf16·B_fixed`` (u_bf16 = 2⁻⁸) for that part,
in every dtype under test (an implementation running NS in float32/float64, like the NumPy
reference, is simply far inside it).

``B_fixed`` is derived, not guessed. A running error analysis with absolute values (Wilkinson's)
is far too pessimistic for this iteration: the coefficients 3.4/4.8/2.0 cancel each other in every
step, and bounding each term by its magnitude amplifies by ~10⁵ over five steps. Instead the bound
keeps the signs of the sensitivities: along the exact trajectory (float64 NumPy, no torch), a
reverse-mode (adjoint) pass gives, for each output element O_k, the derivative ∂O_k/∂z of the
output with respect to every rounded intermediate z (every element of X₀, ‖X₀‖, the clamp, X₀/z,
and in each step A, A², bA, cA², B, BX, aX, aX + BX). A rounding perturbs z by at most u·|z|, so
to first order in u_bf16::

    B_fixed[k] = Σ_z |∂O_k/∂z| · m_z,    m_z = |z|  (+ n·2⁻²⁴/2⁻⁸ · (|L|·|R|)_ij for a product LR
                                                      with inner dimension n, float32 accumulation)

with ``m_z = 0`` where the operation is exact: a bfloat16-representable input (U = g with
momentum 0), a scaling by 0 or a power of two, a sum with a term that is identically zero
(b = c = 0), a clamp to ε = a power of two and the division by it. Each intermediate is counted
as rounded once, as Keller Jordan's unfused ``b*A + c*A@A`` and ``a*X + B@X`` round it; torch's
fused ``addmm`` rounds a subset of these. The adjoint of the input, |∂O_k/∂U_j|, also carries U's
own error (in the param dtype's u) through NS into the main bound. Later lines carry ``B_fixed``
linearly (``θ − γ·s·O``: γ·s·B_fixed), with no rounding of their own (docs/tolerances.md).
"""

from __future__ import annotations

import math

import mpmath
import numpy as np
import sympy as sp

from .cases import CaseBuilder, HyperparameterChange
from .proofs import ClosedForm
from .rule import Assign, Hyperparameter, Rule, StateVar, Variant, g, n_cols, n_rows, t, theta
from .spec import Implementation, Spec
from .tensor import TensorFunction

# -- the Newton–Schulz iteration as a tensor function --------------------------------------------

U_BF16 = 2.0**-8
ACCUMULATION = 2.0**-24 / U_BF16  # one float32 rounding, in units of u_bf16


def _is_bf16(x: np.ndarray) -> np.ndarray:
    """Elementwise: is the double exactly a bfloat16 number (8 significant bits, float32 range)?"""
    x32 = np.asarray(x, dtype=np.float32)
    return (x32.astype(np.float64) == x) & ((x32.view(np.uint32) & 0xFFFF) == 0)


def _power_of_two(s: float) -> bool:
    return s != 0 and math.frexp(abs(s))[0] == 0.5


def _rounds_scale(s: float) -> float:
    """Whether s·Y rounds (1.0) or is exact (0.0: s = 0 or ±2ᵏ)."""
    return 0.0 if s == 0 or _power_of_two(s) else 1.0


class NewtonSchulz(TensorFunction):
    r"""``NS(U; a, b, c, ε, k)``: k Newton–Schulz steps on the Frobenius-normalised matrix U.

    The tensor argument is the direction U (a 2-D parameter's worth); the scalars are the
    coefficients a, b, c, ε and the number of steps. Defined in bfloat16 (see the module
    docstring): ``exact`` is the exact polynomial map, ``channels`` its float64 value, the
    propagated error of U, and ``B_fixed`` in units of u_bf16.
    """

    nargs = 6
    fixed_dtype = "bfloat16"
    eps_added = False  # True: X / (‖X‖ + ε) (Keller Jordan, Moonlight, optax) instead of the clamp

    @classmethod
    def eval(cls, x, *scalars):
        eps = scalars[3] if len(scalars) > 3 else None
        if x.is_zero and eps is not None and eps.is_positive:
            return sp.S.Zero  # 0 / max(0, ε)

    def _eval_is_nonnegative(self):
        return None

    def _eval_is_positive(self):
        return None

    def _latex(self, printer):
        u, a, b, c, eps, k = (printer._print(x) for x in self.args)
        norm = r"\lVert\cdot\rVert_F + " if self.eps_added else r"\max(\lVert\cdot\rVert_F, "
        close = "" if self.eps_added else ")"
        return (r"\operatorname{NS}^{\mathrm{bf16}}_{" + k + r"}\left(" + u + r";\ " + ", ".join((a, b, c))
                + r";\ " + norm + eps + close + r"\right)")

    # -- exact ------------------------------------------------------------------------------
    @classmethod
    def _norm_clamp(cls, nrm, eps):
        return nrm + eps if cls.eps_added else max(nrm, eps)

    @classmethod
    def exact(cls, x: np.ndarray, a, b, c, eps, steps) -> np.ndarray:
        tall = x.shape[0] > x.shape[1]
        X = x.T if tall else x
        nrm = mpmath.sqrt(mpmath.fsum(v * v for v in X.flat))
        X = X / cls._norm_clamp(nrm, eps)
        for _ in range(int(steps)):  # the arrays on the left of mpf products: an mpf on the left
            A = X.dot(X.T)  # would try (and fail) to convert the array first; the products are the same
            B = A * b + A.dot(A) * c
            X = X * a + B.dot(X)
        return X.T if tall else X

    # -- value, propagated error, and the bfloat16 bound ---------------------------------------
    @classmethod
    def bound(cls, v, e, *scalars):
        value, err, _ = cls.channels(v, e, {}, *scalars)
        return value, err

    @classmethod
    def propagate(cls, v, e, *scalars):
        return cls._adjoint(v, *scalars)[1](e)

    @classmethod
    def channels(cls, v, e, fixed, *scalars):
        value, carry, b_fixed = cls._adjoint(v, *scalars)
        out = {d: carry(f) for d, f in fixed.items()}
        out[cls.fixed_dtype] = out.get(cls.fixed_dtype, 0.0) + b_fixed
        return value, carry(e), out

    @classmethod
    def _adjoint(cls, u: np.ndarray, a: float, b: float, c: float, eps: float, steps: float):
        """(value, e ↦ Σ_j |∂O/∂U_j|·e_j, B_fixed), along the trajectory from U = u (float64)."""
        tall = u.shape[0] > u.shape[1]
        X0 = np.array(u.T if tall else u, dtype=np.float64)
        p, q = X0.shape
        # forward, keeping every intermediate
        nrm = math.sqrt(float((X0 * X0).sum()))
        z = cls._norm_clamp(nrm, eps)
        clamped = not cls.eps_added and eps > nrm
        X = X0 / z
        trace = []
        for _ in range(int(steps)):
            A = X @ X.T
            P = A @ A
            Bm = b * A + c * P
            Q = Bm @ X
            trace.append((X, A, P, Bm, Q))
            X = a * X + Q
        value = X.T if tall else X
        # which operations round (0: exact by construction)
        r_bA, r_cP, r_aX = _rounds_scale(b), _rounds_scale(c), _rounds_scale(a)
        r_Bm = 0.0 if b == 0 or c == 0 else 1.0
        r_sum = 0.0 if a == 0 or (b == 0 and c == 0) else 1.0
        # reverse: one adjoint per output element, all at once (leading axis k)
        n_out = p * q
        Xbar = np.eye(n_out).reshape(n_out, p, q)
        contrib = np.zeros(n_out)

        def add(adj, magnitude, rounds=1.0):
            nonlocal contrib
            if rounds:
                contrib = contrib + rounds * (np.abs(adj) * magnitude).reshape(n_out, -1).sum(axis=1)

        for X, A, P, Bm, Q in reversed(trace):
            Xn = a * X + Q
            add(Xbar, np.abs(Xn), r_sum)  # aX + BX
            add(Xbar, np.abs(a * X), r_aX)  # aX
            add(Xbar, np.abs(Q) + p * ACCUMULATION * (np.abs(Bm) @ np.abs(X)))  # BX
            Bbar = Xbar @ X.T
            X_adj = a * Xbar + Bm.T @ Xbar
            add(Bbar, np.abs(Bm), r_Bm)  # bA + cA²
            add(Bbar, np.abs(b * A), r_bA)  # bA
            add(Bbar, np.abs(c * P), r_cP)  # cA²
            Pbar = c * Bbar
            add(Pbar, np.abs(P) + p * ACCUMULATION * (np.abs(A) @ np.abs(A)))  # A²
            Abar = b * Bbar + Pbar @ A.T + A.T @ Pbar
            add(Abar, np.abs(A) + q * ACCUMULATION * (np.abs(X) @ np.abs(X).T))  # X Xᵀ
            Xbar = X_adj + (Abar + np.swapaxes(Abar, 1, 2)) @ X
        # X₁ = X₀ / z
        exact_division = clamped and _is_bf16(np.array(eps)) and _power_of_two(eps)
        add(Xbar, np.abs(X0 / z), 0.0 if exact_division else 1.0)
        zbar = -(Xbar * X0).reshape(n_out, -1).sum(axis=1) / z**2
        if cls.eps_added:
            nbar = zbar
            contrib = contrib + np.abs(zbar) * abs(z) * (0.0 if eps == 0 else 1.0)  # ‖X‖ + ε
        elif clamped:
            nbar = np.zeros(n_out)
            contrib = contrib + np.abs(zbar) * abs(z) * (0.0 if _is_bf16(np.array(eps)) else 1.0)
        else:
            nbar = zbar
        # the norm: float32 accumulation of p·q squares and the square root, then bfloat16
        contrib = contrib + np.abs(nbar) * nrm * (1 + (p * q / 2 + 1) * ACCUMULATION)
        X0bar = Xbar / z + (nbar[:, None, None] * X0 / nrm if nrm > 0 else 0.0)
        add(X0bar, np.abs(X0) * ~_is_bf16(X0))  # U rounded to bfloat16

        def unorient(per_output: np.ndarray) -> np.ndarray:
            m = per_output.reshape(p, q)
            return m.T if tall else m

        def carry(err) -> np.ndarray:
            err = np.broadcast_to(np.asarray(err, dtype=np.float64), u.shape)
            e0 = err.T if tall else err
            return unorient((np.abs(X0bar) * e0).reshape(n_out, -1).sum(axis=1))

        return value, carry, unorient(contrib)


class NewtonSchulzEpsAdded(NewtonSchulz):
    r"""``NS`` with ``X / (‖X‖_F + ε)`` instead of ``X / max(‖X‖_F, ε)``."""

    eps_added = True


# -- the rule -----------------------------------------------------------------------------------

lr = sp.Symbol("gamma", positive=True)  # γ
lam = sp.Symbol("lambda", nonnegative=True)  # λ
mu = sp.Symbol("mu", nonnegative=True)  # μ
nesterov = sp.Symbol("nesterov")
a_ns, b_ns, c_ns = sp.symbols("a b c", real=True)  # ns_coefficients
eps = sp.Symbol("epsilon", positive=True)  # ε
NS_STEPS = sp.Symbol("k", integer=True, positive=True)  # ns_steps
adjust = sp.Symbol("adjust_lr_fn", integer=True, nonnegative=True)  # index in ADJUSTMENTS
ADJUSTMENTS = (None, "original", "match_rms_adamw")

B = sp.Symbol("B", real=True)  # momentum buffer
U = sp.Symbol("U", real=True)  # the direction before orthogonalisation
O = sp.Symbol("O", real=True)  # noqa: E741  # the orthogonalised direction

# torch's adjustment of the learning rate for an A×B matrix: √max(1, A/B) ("original", the
# default None) or 0.2·√max(A, B) ("match_rms_adamw")
SCALE = sp.Piecewise((sp.Rational(1, 5) * sp.sqrt(sp.Max(n_rows, n_cols)), sp.Eq(adjust, 2)),
                     (sp.sqrt(sp.Max(1, n_rows / n_cols)), True))

RULE = Rule(
    id="muon",
    title="Muon (PyTorch; EMA momentum, Newton–Schulz in bfloat16)",
    hyperparameters=(
        Hyperparameter("lr", lr, 1e-3, doc="learning rate γ (scaled by √max(1, A/B) for an A×B matrix)"),
        Hyperparameter("weight_decay", lam, 0.1, neutral=0, doc="decoupled weight decay λ (θ ← θ·(1 − γλ))"),
        Hyperparameter("momentum", mu, 0.95, neutral=0, doc="momentum μ of the buffer B ← B + (1 − μ)(g − B)"),
        Hyperparameter("nesterov", nesterov, True, neutral=False, boolean=True, requires=("momentum",),
                       doc="use the Nesterov direction g + μ(B − g) instead of B"),
        Hyperparameter("ns_coefficients", (a_ns, b_ns, c_ns), (3.4445, -4.775, 2.0315),
                       doc="(a, b, c) of the Newton–Schulz step X ← aX + (bA + cA²)X, A = XXᵀ"),
        Hyperparameter("eps", eps, 1e-7, doc="ε: the direction is divided by max(‖U‖_F, ε)"),
        Hyperparameter("ns_steps", NS_STEPS, 5, integer=True, doc="number k of Newton–Schulz steps"),
        Hyperparameter("adjust_lr_fn", adjust, None, choices=ADJUSTMENTS,
                       doc="learning-rate scale for an A×B matrix: None or \"original\": √max(1, A/B); "
                       "\"match_rms_adamw\": 0.2·√max(A, B)"),
    ),
    state=(
        StateVar("step", t, sp.Integer(0), "steps taken by this parameter (not kept by torch)",
                 kept_when=lambda hp: False, count=True),
        StateVar("momentum_buffer", B, sp.Integer(0), "momentum buffer B (EMA of g)"),
    ),
    body=(
        Assign("step", t, t + 1, "count the step"),
        Assign("momentum", B, B + (1 - mu) * (g - B), "EMA of the gradient: buf.lerp_(g, 1 − μ)"),
        Assign("nesterov", U, sp.Piecewise((g + mu * (B - g), nesterov), (B, True)),
               "Nesterov direction g.lerp(B, μ), or the buffer"),
        Assign("orthogonalise", O, NewtonSchulz(U, a_ns, b_ns, c_ns, eps, NS_STEPS),
               "Newton–Schulz orthogonalisation, in bfloat16"),
        Assign("weight_decay", theta, theta * (1 - lr * lam), "decoupled weight decay"),
        Assign("update", theta, theta - lr * SCALE * O, "the step, lr scaled for the matrix's shape"),
    ),
)


# -- variants -----------------------------------------------------------------------------------

def _update(scale: sp.Expr) -> sp.Expr:
    return theta - lr * scale * O


VARIANTS = (
    Variant(
        id="muon.sum_momentum",
        title="momentum as a sum, not an average",
        summary="B ← μB + g; U = g + μB (Nesterov) or B: B is 1/(1 − μ) times torch's EMA, which "
        "the normalisation removes — except where ‖U‖_F < ε and the clamp divides by ε instead",
        who="torch.optim.Muon's own docstring formula, modded-nanogpt's Muon (Oct 2024), Moonlight, "
        "Keras 3 Muon",
        sources=("torch/optim/_muon.py (Muon docstring: B_t ← μB_{t−1} + g_t)",
                 "KellerJordan/modded-nanogpt records/2024-10-10_Muon/train_gpt2.py "
                 "(buf.mul_(momentum).add_(g); g.add(buf, alpha=momentum))",
                 "MoonshotAI/Moonlight examples/toy_train.py",
                 "keras/src/optimizers/muon.py (_muon_update_step)"),
        delta=lambda r: r.replace("momentum", mu * B + g).replace(
            "nesterov", sp.Piecewise((g + mu * B, nesterov), (B, True))),
    ),
    Variant(
        id="muon.bias_corrected_momentum",
        title="bias-corrected momentum (NAdam-style Nesterov)",
        summary="U = μ·B/(1 − μ^{t+1}) + (1 − μ)·g/(1 − μᵗ) (Nesterov) or B/(1 − μᵗ): a different "
        "length (and weighting) of the direction, seen where the ε clamp is active",
        who="optax.contrib.muon / scale_by_muon",
        sources=("google-deepmind/optax optax/contrib/_muon.py (scale_by_muon: bias_correction)",
                 "google-deepmind/optax#1717"),
        delta=lambda r: r.replace("nesterov", sp.Piecewise(
            (mu * B / (1 - mu ** (t + 1)) + (1 - mu) * g / (1 - mu**t), nesterov),
            (B / (1 - mu**t), True))),
    ),
    Variant(
        id="muon.eps_added_to_norm",
        title="ε added to the Frobenius norm instead of clamping it",
        summary="X ← X/(‖X‖_F + ε) instead of X/max(‖X‖_F, ε)",
        who="Keller Jordan's Muon, modded-nanogpt, Moonlight, Keras 3 Muon, optax.contrib.muon (ε = 1e-8)",
        sources=("KellerJordan/Muon muon.py (zeropower_via_newtonschulz5: X / (X.norm() + 1e-7))",
                 "MoonshotAI/Moonlight examples/toy_train.py",
                 "google-deepmind/optax optax/contrib/_muon.py (orthogonalize_via_newton_schulz)"),
        delta=lambda r: r.replace("orthogonalise", NewtonSchulzEpsAdded(U, a_ns, b_ns, c_ns, eps, NS_STEPS)),
    ),
    Variant(
        id="muon.match_rms_adamw",
        title="Moonshot's lr adjustment: 0.2·√max(A, B)",
        summary="θ ← θ − γ·0.2·√max(A, B)·O (update RMS matched to AdamW's) instead of γ·√max(1, A/B)·O",
        who="Moonlight (Moonshot AI), torch.optim.Muon(adjust_lr_fn='match_rms_adamw') passed off as "
        "the default",
        sources=("arXiv:2502.16982 (Muon is Scalable for LLM Training, eq. 4)",
                 "MoonshotAI/Moonlight examples/toy_train.py (adjust_lr_for_muon)"),
        delta=lambda r: r.replace("update", _update(sp.Rational(1, 5) * sp.sqrt(sp.Max(n_rows, n_cols)))),
    ),
    Variant(
        id="muon.max_dim_scale",
        title="lr scaled by √max(A, B)",
        summary="θ ← θ − γ·√max(A, B)·O (\"scale to have update.square().mean() == 1\")",
        who="modded-nanogpt's first Muon record (Oct 2024)",
        sources=("KellerJordan/modded-nanogpt records/2024-10-10_Muon/train_gpt2.py "
                 "(scale = max(g.size(0), g.size(1))**0.5)",),
        delta=lambda r: r.replace("update", _update(sp.sqrt(sp.Max(n_rows, n_cols)))),
    ),
    Variant(
        id="muon.lr_adjustment_transposed",
        title="aspect-ratio scaling of the transposed matrix: √max(1, B/A)",
        summary="θ ← θ − γ·√max(1, B/A)·O: the ratio of the last dimension to the one before it "
        "(JAX's (in, out) kernel layout) applied to a torch-layout (out, in) matrix",
        who="optax.contrib.muon on a matrix in torch's layout",
        sources=("google-deepmind/optax optax/contrib/_muon.py "
                 "(jnp.sqrt(jnp.maximum(1, x.shape[-1] / x.shape[-2])))",),
        delta=lambda r: r.replace("update", _update(sp.sqrt(sp.Max(1, n_cols / n_rows)))),
    ),
)


# -- closed forms -------------------------------------------------------------------------------
g0, theta0 = sp.symbols("g_0 theta_0", real=True)
mu_p = sp.Symbol("mu", positive=True)
lam_p = sp.Symbol("lambda", positive=True)
N0 = NewtonSchulz(g0, a_ns, b_ns, c_ns, eps, NS_STEPS)  # the orthogonalised constant gradient
_decay = 1 - lr * lam_p

CLOSED_FORMS = (
    ClosedForm(
        name="ema_buffer_constant_gradient",
        statement="With a constant gradient g, the buffer after t steps is B_t = (1 − μᵗ)·g and the "
        "Nesterov direction is U_t = (1 − μ^{t+1})·g: a shrinking multiple of g, so NS(U_t) = NS(g) "
        "while ‖U_t‖_F ≥ ε.",
        rule=RULE,
        given={g: g0, mu: mu_p, nesterov: True},
        closed={B: (1 - mu_p**t) * g0, U: (1 - mu_p ** (t + 1)) * g0},
    ),
    ClosedForm(
        name="sum_momentum_is_the_ema_over_one_minus_mu",
        statement="In the sum form (muon.sum_momentum), a constant gradient gives B_t = (1 − μᵗ)/(1 − μ)·g "
        "and U_t = (1 − μ^{t+1})/(1 − μ)·g: exactly 1/(1 − μ) times torch's EMA direction, the same "
        "after the Frobenius normalisation unless the ε clamp is active.",
        rule=VARIANTS[0].rule_for(RULE),
        given={g: g0, mu: mu_p, nesterov: True},
        closed={B: (1 - mu_p**t) / (1 - mu_p) * g0, U: (1 - mu_p ** (t + 1)) / (1 - mu_p) * g0},
    ),
    ClosedForm(
        name="no_momentum_decays_to_a_fixed_point",
        statement="Without momentum and with a constant gradient g, θ_t = dᵗ·θ₀ − √max(1, A/B)·NS(g)·(1 − dᵗ)/λ "
        "with d = 1 − γλ: the decoupled decay pulls θ geometrically to −√max(1, A/B)·NS(g)/λ.",
        rule=RULE,
        given={g: g0, mu: 0, lam: lam_p, adjust: 0},
        closed={theta: _decay**t * theta0 - SCALE.subs(adjust, 0) * N0 * (1 - _decay**t) / lam_p},
        initial={theta: theta0},
    ),
    ClosedForm(
        name="weight_decay_alone_is_geometric",
        statement="With a zero gradient the buffer stays 0, NS(0) = 0, and θ_t = θ₀·(1 − γλ)ᵗ.",
        rule=RULE,
        given={g: 0},
        closed={B: 0, theta: theta0 * (1 - lr * lam) ** t},
        initial={theta: theta0},
    ),
)


# -- cases --------------------------------------------------------------------------------------
# Muon takes matrices only: wide, tall and square (the lr adjustment and the transposition in NS
# differ between them).
SHAPES = (("wide", (3, 4)), ("tall", (4, 2)), ("square", (2, 2)))

# ns_coefficients (1, 0, 0) make NS the plain Frobenius normalisation X/max(‖X‖, ε); with ε = 1
# above ‖U‖ and a bfloat16-representable U it is exact even in bfloat16 (B_fixed = 0), so the
# variants of the step itself separate by the dtype's own tolerance.
NORMALISE_ONLY = {"ns_coefficients": ["1.0", "0.0", "0.0"], "eps": "1.0"}


def _lr(group: int, value: str) -> HyperparameterChange:
    return HyperparameterChange(group, "lr", value)


CASES = (
    CaseBuilder(
        id="muon/defaults",
        title="torch's defaults",
        purpose="EMA momentum, Nesterov, five bfloat16 Newton–Schulz steps, decoupled decay, "
        "√max(1, A/B) on the tall matrix",
        hyperparameters={},
        grad_exponents=[0] * 5,
        seed=951,
        shapes=SHAPES,
    ),
    CaseBuilder(
        id="muon/tiny_gradients",
        title="gradients below ε, at torch's defaults",
        purpose="‖U‖_F < ε = 1e-7: the clamp divides by ε, so the length of the direction matters and "
        "the sum form and the bias-corrected form are far off; with and without Nesterov. Row "
        "vectors 1×25, where 0.2·√max(A, B) = √max(1, A/B) = 1 and √max(A, B) = √max(1, B/A) = 5: the "
        "lr adjustments either agree or differ 5-fold, never by a fraction of the bfloat16 tolerance",
        hyperparameters={},
        grad_exponents=[-34] * 6,
        seed=952,
        shapes=(("row", (1, 25)), ("row_heavy_ball", (1, 25))),
        groups=[(("row",), {}), (("row_heavy_ball",), {"nesterov": False})],
    ),
    CaseBuilder(
        id="muon/normalisation_exact",
        title="Newton–Schulz reduced to an exact normalisation",
        purpose="coefficients (1, 0, 0), momentum 0 and ε = 1 > ‖g‖_F: O = g exactly even in "
        "bfloat16, so the lr adjustment and where ε goes are checked to the dtype's own precision",
        hyperparameters={"lr": "0.25", "momentum": "0.0", **NORMALISE_ONLY},
        grad_exponents=[-2] * 5,
        seed=953,
        shapes=SHAPES,
    ),
    CaseBuilder(
        id="muon/dyadic_momentum",
        title="momentum 1/2 with an exact normalisation",
        purpose="μ = 0.5 and coefficients (1, 0, 0), ε = 1 above ‖U‖_F: the first heavy-ball step "
        "is exact in bfloat16, so sum and EMA (and bias correction) differ by a factor 2 there",
        hyperparameters={"lr": "0.25", "momentum": "0.5", **NORMALISE_ONLY},
        grad_exponents=[-2] * 5,
        seed=954,
        shapes=SHAPES,
        groups=[(("wide", "square"), {"nesterov": False}), (("tall",), {})],
    ),
    CaseBuilder(
        id="muon/weight_decay_lr_schedule",
        title="weight decay with the learning rate changed between steps",
        purpose="decay θ(1 − γλ) and the step follow the current γ",
        hyperparameters={"lr": "0.0625", "weight_decay": "0.5"},
        grad_exponents=[0] * 6,
        seed=955,
        shapes=SHAPES,
        param_exponent=1,
        changes={3: [_lr(0, "0.25")], 5: [_lr(0, "0.015625")]},
    ),
    CaseBuilder(
        id="muon/groups_and_missing_grads",
        title="two param groups, and params without a gradient on some steps",
        purpose="per-group settings (an exact normalisation, ε = 4 above ‖g‖_F, no momentum, in the "
        "second); a param without a grad keeps its value and its buffer",
        hyperparameters={"lr": "0.125"},
        grad_exponents=[0] * 6,
        seed=956,
        shapes=SHAPES,
        groups=[(("wide", "square"), {}),
                (("tall",), {"nesterov": False, "momentum": "0.0", "ns_coefficients": ["1.0", "0.0", "0.0"],
                             "eps": "4.0", "weight_decay": "0.25"})],
        no_grad={"wide": [1, 2], "tall": [4], "square": [3, 4]},
    ),
    CaseBuilder(
        id="muon/match_rms_adamw_one_step",
        title="Moonshot's lr adjustment and a single Newton–Schulz step",
        purpose="adjust_lr_fn='match_rms_adamw' scales the step by 0.2·√max(A, B); ns_steps = 1 keeps the bfloat16 bound small enough to separate the variants",
        hyperparameters={"lr": "0.0625", "momentum": "0.0", "adjust_lr_fn": "match_rms_adamw", "ns_steps": 1},
        grad_exponents=[0] * 5,
        seed=958,
        shapes=SHAPES,
    ),
    CaseBuilder(
        id="muon/resume",
        title="state_dict round trip in mid-trajectory",
        purpose="a fresh instance loaded from state_dict continues exactly",
        hyperparameters={"lr": "0.125", "weight_decay": "0.25", "momentum": "0.875"},
        grad_exponents=[0, 1, -1, 0, 0, 1],
        seed=957,
        shapes=SHAPES,
        reload_before=[4],
    ),
)

SPEC = Spec(
    id="muon",
    title="Muon",
    torch_class="torch.optim.Muon",
    rule=RULE,
    unreachable_boundaries={
        "update: Eq(adjust_lr_fn, 2) above": "adjust_lr_fn is a choice with indices 0..2: nothing lies above the last",
    },
    variants=VARIANTS,
    cases=CASES,
    closed_forms=CLOSED_FORMS,
    implementations=(
        Implementation("pytorch-optimizer", "optimizer_conformance.conformance.wrappers:pytorch_optimizer_muon",
                       args={"ns_coeffs": "ns_coefficients"},
                       note="pytorch_optimizer/optimizer/muon/muon.py Muon (use_muon=True in every param group: "
                       "its __init__ raises '`use_muon` must be set.' without it)"),
    ),
)
