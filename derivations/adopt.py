"""ADOPT with clipping (v2) — the official implementation's rule (iShohei220/adopt, timm).

Taniguchi et al., "ADOPT: Modified Adam Can Converge with Any β₂ with the Optimal Rate"
(arXiv:2411.02853; v2 adds the clipping), as the authors' code computes it
(github.com/iShohei220/adopt ``src/adopt/adopt.py``, ``_single_tensor_adopt``; timm
``timm/optim/adopt.py`` follows it). At the t-th step of a parameter (t counted from 1):

* t = 1: v ← g² and nothing else (no update, no decoupled decay);
* t ≥ 2: ĝ = clip(g / max(√v, ε), ±c_t) with the *previous* v, m ← β₁·m + (1 − β₁)·ĝ,
  θ ← θ − γ·m, and only then v ← β₂·v + (1 − β₂)·g².

The clip value: the official code calls ``clip_lambda(step)`` with ``step`` the count *before* this
step (0 at the first call), ``clip_lambda = step**0.25``, so c_t = (t − 1)^¼ (1 at the first
update). It is written ``max(1, (t − 1)^¼)`` here: the same value at every t ≥ 2, where it is
used, in a form SymPy can compare with 1 in the proofs. Weight decay (``decoupled``, timm's name;
the official code calls it ``decouple``): L2 (g ← g + λθ) before the t = 1 branch, so λθ enters
v₁; decoupled θ ← θ − γλθ only from t = 2 on.

Variants (:data:`VARIANTS`): the clip computed from t instead of t − 1 (pytorch_optimizer), timm's
default exponent 0.333, no clipping (v1), decoupled decay applied at t = 1 too
(pytorch_optimizer). Normalising by the current v (updated before use, as Adam) is not catalogued:
no library checked does it, and with β₂ = 0.9999 its effect on θ is below the float32 tolerance.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

import sympy as sp

from .adam import beta1, beta2, eps, lam, lr, m, maximize, v
from .boundaries import COUNTED
from .cases import CaseBuilder, CaseDesign, HyperparameterChange, long_horizon
from .proofs import ClosedForm
from .rule import Assign, Hyperparameter, Rule, StateVar, Variant, g, t, theta
from .spec import Implementation, Spec

decoupled = sp.Symbol("decoupled")
clip = sp.Symbol("c", positive=True)  # the clip value c_t
g_hat = sp.Symbol("g_hat", real=True)  # the normalised, clipped gradient

first = sp.Eq(t, 1)


def _clipped(x: sp.Expr, c: sp.Expr) -> sp.Expr:
    return sp.Max(sp.Min(x, c), -c)


RULE = Rule(
    id="adopt",
    title="ADOPT (official code v2 / timm; clip (t − 1)^¼)",
    hyperparameters=(
        Hyperparameter("lr", lr, 1e-3, doc="learning rate γ"),
        Hyperparameter("betas", (beta1, beta2), (0.9, 0.9999),
                       doc="decay rates (β₁, β₂) of the first moment and of the second moment"),
        Hyperparameter("eps", eps, 1e-6, doc="ε: the floor of √v"),
        Hyperparameter("weight_decay", lam, 0, neutral=0, doc="weight decay λ"),
        Hyperparameter("weight_decouple", decoupled, False, neutral=False, boolean=True, requires=("weight_decay",),
                       doc="decoupled decay θ ← θ − γλθ (from t = 2) instead of L2 (timm: decoupled, "
                       "official code: decouple)"),
        Hyperparameter("maximize", maximize, False, neutral=False, boolean=True,
                       doc="ascend the objective instead of descending"),
    ),
    state=(
        StateVar("step", t, sp.Integer(0), "steps taken by this parameter", count=True),
        StateVar("exp_avg", m, sp.Integer(0), "first moment m (EMA of the normalised gradient)"),
        StateVar("exp_avg_sq", v, sp.Integer(0), "second moment v (EMA of g²), used one step late"),
    ),
    body=(
        Assign("maximize", g, sp.Piecewise((-g, maximize), (g, True)), "ascend if maximizing"),
        Assign("step", t, t + 1, "count the step"),
        Assign("weight_decay", g, sp.Piecewise((g, decoupled), (g + lam * theta, True)),
               "L2 weight decay (also at t = 1)"),
        Assign("decay", theta, sp.Piecewise((theta, first), (theta - lr * lam * theta, decoupled),
                                            (theta, True)),
               "decoupled decay, from t = 2 on"),
        Assign("clip", clip, sp.Max(1, (t - 1) ** sp.Rational(1, 4)),
               "c_t = (t − 1)^¼ (≥ 1 for t ≥ 2; unused at t = 1)"),
        Assign("normalise", g_hat, _clipped(g / sp.Max(sp.sqrt(v), eps), clip),
               "g over the previous √v (floored at ε), clipped to ±c_t"),
        Assign("first_moment", m, sp.Piecewise((m, first), (beta1 * m + (1 - beta1) * g_hat, True)),
               "EMA of the normalised gradient, from t = 2 on"),
        Assign("update", theta, sp.Piecewise((theta, first), (theta - lr * m, True)),
               "the step, from t = 2 on"),
        Assign("second_moment", v, sp.Piecewise((g**2, first), (beta2 * v + (1 - beta2) * g**2, True)),
               "v₁ = g₁², then the EMA of g² (after its use)"),
    ),
)


# -- variants -------------------------------------------------------------------------------
VARIANTS = (
    Variant(
        id="adopt.clip_step_plus_one",
        title="clip value from t instead of t − 1 (c = t^¼, 2^¼ ≈ 1.19 at the first update)",
        summary="ĝ = clip(g / max(√v, ε), ±t^¼) with t the 1-based step count",
        who="pytorch_optimizer ADOPT (default clip_lambda = step ** 0.25 called with the "
        "1-based group['step'])",
        sources=("pytorch_optimizer/optimizer/adopt.py ADOPT.__init__ (clip_lambda), "
                 "ADOPT._step_per_param (clip = self.clip_lambda(group['step'])), ADOPT.step",),
        delta=lambda r: r.replace("clip", sp.Max(1, t ** sp.Rational(1, 4))),
    ),
    Variant(
        id="adopt.clip_exp_0333",
        title="clip exponent 0.333 (c = (t − 1)^0.333)",
        summary="ĝ = clip(g / max(√v, ε), ±(t − 1)^0.333): equal at t = 2, wider from t = 3",
        who="timm Adopt (default clip_exp=0.333)",
        sources=("timm/optim/adopt.py Adopt.__init__ (clip_exp=0.333), _single_tensor_adopt "
                 "(clip_val = (step - 1) ** clip_exp)",),
        delta=lambda r: r.replace("clip", sp.Max(1, (t - 1) ** sp.Rational(333, 1000))),
    ),
    Variant(
        id="adopt.no_clip",
        title="no clipping (ADOPT v1)",
        summary="ĝ = g / max(√v, ε)",
        who="ADOPT v1 (arXiv:2411.02853v1); official code with clip_lambda=None; timm "
        "clip_exp=None; heavyball ADOPT (unverified)",
        sources=("iShohei220/adopt src/adopt/adopt.py _single_tensor_adopt (clip_lambda None)",
                 "timm/optim/adopt.py _single_tensor_adopt (clip_exp None)"),
        delta=lambda r: r.replace("normalise", g / sp.Max(sp.sqrt(v), eps)),
    ),
    Variant(
        id="adopt.decoupled_decay_at_first_step",
        title="decoupled decay applied at t = 1 too",
        summary="θ ← θ − γλθ at every step, the first (which otherwise leaves θ unchanged) included",
        who="pytorch_optimizer ADOPT(weight_decouple=True): apply_weight_decay runs before the "
        "group['step'] == 1 check",
        sources=("pytorch_optimizer/optimizer/adopt.py ADOPT._step_per_param, ADOPT._step_foreach",
                 "pytorch_optimizer/base/optimizer.py BaseOptimizer.apply_weight_decay"),
        delta=lambda r: r.replace("decay", sp.Piecewise((theta - lr * lam * theta, decoupled),
                                                        (theta, True))),
    ),
)


# -- closed forms ---------------------------------------------------------------------------
delta = sp.Symbol("delta", positive=True)
theta0 = sp.Symbol("theta_0", real=True)
_plain = {lam: 0, maximize: False, decoupled: False}
# Σ_{k=1..t} (1 − β₁^(k−1)): the first moment of a unit normalised gradient, summed
_distance = t - (1 - beta1**t) / (1 - beta1)

CLOSED_FORMS = (
    ClosedForm(
        name="constant_gradient",
        statement="With a constant gradient g ≥ ε (written ε + δ): v_t = g², the normalised gradient "
        "is 1 from t = 2 on (within every clip), m_t = 1 − β₁ᵗ⁻¹ and "
        "θ_t = θ₀ − γ·(t − (1 − β₁ᵗ)/(1 − β₁)): the first step does not move, and the step then "
        "does not depend on the size of g.",
        rule=RULE,
        given={**_plain, g: eps + delta},
        closed={v: (eps + delta) ** 2, m: 1 - beta1 ** (t - 1), theta: theta0 - lr * _distance},
        initial={theta: theta0},
    ),
    ClosedForm(
        name="gradient_below_eps",
        statement="With a constant gradient g = ε/2 the floor ε divides: v_t = ε²/4, the normalised "
        "gradient is ½ and θ_t = θ₀ − (γ/2)·(t − (1 − β₁ᵗ)/(1 − β₁)).",
        rule=RULE,
        given={**_plain, g: eps / 2},
        closed={v: eps**2 / 4, m: (1 - beta1 ** (t - 1)) / 2, theta: theta0 - lr * _distance / 2},
        initial={theta: theta0},
    ),
    ClosedForm(
        name="no_clip_constant_gradient",
        statement="ADOPT v1 (no clipping) follows the same trajectory under a constant gradient "
        "g ≥ ε: the clip never binds there.",
        rule=VARIANTS[2].rule_for(RULE),
        given={**_plain, g: eps + delta},
        closed={v: (eps + delta) ** 2, m: 1 - beta1 ** (t - 1), theta: theta0 - lr * _distance},
        initial={theta: theta0},
    ),
)


# -- cases ----------------------------------------------------------------------------------
@dataclass
class AdoptCaseBuilder(CaseBuilder):
    """A :class:`CaseBuilder` that can put elements on the clip boundary and zero the first gradient.

    ``first_zero[name]``: flat indices whose first gradient is exactly 0 (v₁ = 0: the second step
    divides by ε and the clip decides). ``boundary[name]``: flat indices whose second gradient
    equals the first, so that |g₂|/√v₁ = 1 = c₂ exactly (no weight decay in such a case).
    """

    first_zero: dict[str, tuple[int, ...]] = field(default_factory=dict)
    boundary: dict[str, tuple[int, ...]] = field(default_factory=dict)

    def build(self, defaults: dict[str, Any]) -> CaseDesign:
        design = super().build(defaults)
        steps = list(design.steps)
        g1 = {k: list(x) for k, x in steps[0].grads.items()}
        g2 = {k: list(x) for k, x in steps[1].grads.items()}
        for name, idx in self.first_zero.items():
            for i in idx:
                g1[name][i] = 0.0
        for name, idx in self.boundary.items():
            for i in idx:
                g2[name][i] = g1[name][i]
        steps[0] = replace(steps[0], grads={k: tuple(x) for k, x in g1.items()})
        steps[1] = replace(steps[1], grads={k: tuple(x) for k, x in g2.items()})
        features = sorted({*design.features, *(["zero_gradients"] if self.first_zero else []),
                           *(["clip_boundary"] if self.boundary else [])})
        return replace(design, steps=tuple(steps), features=tuple(features))


def _set(group: int, name: str, value: object) -> HyperparameterChange:
    return HyperparameterChange(group, name, value)


CASES = (
    CaseBuilder(
        id="adopt/defaults",
        title="the official defaults",
        purpose="no update at t = 1; v one step late; |g₂/g₁| in (½, 2) against c₂ = 1",
        hyperparameters={},
        grad_exponents=[0] * 6,
        seed=2301,
    ),
    CaseBuilder(
        id="adopt/growing_gradients",
        title="gradients growing ×16 per step: the clip binds at every step",
        purpose="g_t ≫ √v_{t−1}, so ĝ = ±c_t: (t − 1)^¼ against t^¼, (t − 1)^0.333 and no clip",
        hyperparameters={"lr": "0.125"},
        grad_exponents=[-6, -2, 2, 6, 10, 14],
        seed=2302,
    ),
    AdoptCaseBuilder(
        id="adopt/zero_first_gradient_and_clip_boundary",
        title="zero first gradients (divided by ε) and elements exactly on the clip boundary",
        purpose="v₁ = 0: ĝ₂ = g₂/ε is clipped to ±c₂; g₂ = g₁ elsewhere puts |ĝ₂| = 1 = c₂ "
        "exactly on the boundary",
        hyperparameters={"lr": "0.125", "eps": "0.0009765625"},
        grad_exponents=[0] * 6,
        seed=2303,
        first_zero={"scalar": (0,), "vector": (1, 3), "matrix": (0, 4)},
        boundary={"vector": (0, 2, 4), "matrix": (1, 2, 3, 5)},
    ),
    CaseBuilder(
        id="adopt/small_betas",
        title="small betas, large ε, shrinking and growing gradients",
        purpose="β₂ = ½ makes v_{t−1} and v_t differ at O(1); ε = 1/16 floors small √v",
        hyperparameters={"lr": "0.0625", "betas": ["0.5", "0.5"], "eps": "0.0625"},
        grad_exponents=[0, -1, 1, -2, 0, 2, -1],
        seed=2304,
    ),
    CaseBuilder(
        id="adopt/l2_weight_decay",
        title="L2 weight decay",
        purpose="λθ is added to g before the t = 1 branch: it enters v₁ and every normalised gradient",
        hyperparameters={"lr": "0.125", "weight_decay": "0.5"},
        grad_exponents=[0] * 6,
        seed=2305,
        param_exponent=1,
    ),
    CaseBuilder(
        id="adopt/decoupled_weight_decay",
        title="decoupled weight decay under a constant gradient, γλ = 1/8, lr changed between steps",
        purpose="θ ← θ − γλθ from t = 2 on only: the first step leaves θ unchanged; a constant "
        "gradient keeps |g|/√v = 1, inside every clip, so only the decay is observed",
        hyperparameters={"lr": "0.25", "weight_decay": "0.5", "weight_decouple": True},
        grad_exponents=[0] * 6,
        seed=2306,
        param_exponent=1,
        constant_grad=True,
        changes={4: [_set(0, "lr", "0.125")]},
    ),
    CaseBuilder(
        id="adopt/maximize_lr_schedule",
        title="maximize, with the learning rate changed between steps",
        purpose="the sign flip comes first; the step follows the current learning rate",
        hyperparameters={"lr": "0.125", "maximize": True, "betas": ["0.75", "0.875"]},
        grad_exponents=[0, 1, 0, -1, 1, 0],
        seed=2307,
        changes={3: [_set(0, "lr", "0.5")], 5: [_set(0, "lr", "0.03125")]},
    ),
    CaseBuilder(
        id="adopt/groups_and_missing_grads",
        title="two param groups, and params without a gradient on their last steps",
        purpose="per-group settings; a param without a grad keeps its value, state and step count "
        "(left out only at the end: pytorch_optimizer counts steps per group)",
        hyperparameters={"lr": "0.0625"},
        grad_exponents=[-2, 0, 1, 2, 0, 1],
        seed=2308,
        groups=[(("scalar", "vector"), {}),
                (("matrix",), {"lr": "0.25", "betas": ["0.75", "0.5"], "eps": "0.125",
                               "weight_decay": "0.25"})],
        no_grad={"scalar": [5, 6], "vector": [6]},
    ),
    CaseBuilder(
        id="adopt/resume",
        title="state_dict round trip in mid-trajectory",
        purpose="a fresh instance loaded from state_dict continues exactly (step counts included)",
        hyperparameters={"lr": "0.125", "weight_decay": "0.25", "eps": "0.0625", "betas": ["0.875", "0.75"]},
        grad_exponents=[-1, 1, -1, 2, 0, 3],
        seed=2309,
        reload_before=[4],
    ),
    long_horizon("adopt", {"lr": "0.001"}, 2310,
                 "the clip bound (t − 1)^¼ ≈ 5.6 at t = 10³ (it grows with t) and v after 10³ decays"),
)

SPEC = Spec(
    id="adopt",
    title="ADOPT",
    rule=RULE,
    unreachable_boundaries={
        "decay: Eq(t, 1) below": COUNTED,
        "first_moment: Eq(t, 1) below": COUNTED,
        "update: Eq(t, 1) below": COUNTED,
        "second_moment: Eq(t, 1) below": COUNTED,
    },
    variants=VARIANTS,
    cases=CASES,
    closed_forms=CLOSED_FORMS,
    torch_class=None,
    implementations=(
        Implementation("timm", "timm.optim.adopt.Adopt", kwargs={"clip_exp": 0.25},
                       note="timm/optim/adopt.py Adopt, _single_tensor_adopt: clip (step − 1)^clip_exp; "
                       "clip_exp=0.25 selects the official clip (default 0.333: adopt.clip_exp_0333)"),
        Implementation("pytorch-optimizer", "pytorch_optimizer.ADOPT",
                       note="pytorch_optimizer/optimizer/adopt.py ADOPT._step_per_param: default "
                       "clip_lambda = step**0.25 of the 1-based group step (a callable: no JSON "
                       "setting selects (t − 1)^¼)"),
    ),
)
