"""Rprop (resilient backpropagation) with maximize — PyTorch's definition, which is iRprop−.

Riedmiller & Braun, "A Direct Adaptive Method for Faster Backpropagation Learning: The RPROP
Algorithm" (ICNN 1993), in the variant Igel & Hüsken call iRprop− ("Improving the Rprop Learning
Algorithm", NC 2000; Neurocomputing 50, 2003, doi:10.1016/S0925-2312(01)00700-7): every element
has its own step size Δ, multiplied by η₊ while the gradient keeps its sign and by η₋ when it
changes sign; after a sign change the gradient is taken as 0, so the element does not move and
the next step does not adapt Δ. There is no weight backtracking. What ``_single_tensor_rprop``
(torch/optim/rprop.py) does to one element, at its t-th step, with the stored gradient ``prev``
(0 before the first step) and Δ (γ before the first step):

* the factor is η₊ if g·prev > 0, η₋ if g·prev < 0 and 1 if g·prev = 0, and the new Δ is
  ``clamp(Δ·factor, Γmin, Γmax)`` — clamped at both bounds whatever the factor, so a step size
  outside the bounds (γ, or a bound changed mid-run) is clamped at once;
* after a sign change g ← 0; θ ← θ − sign(g)·Δ; prev ← g.

The learning rate γ only sets the initial step size: a parameter's Δ starts from the learning
rate of the step it first has a gradient, and later changes of ``lr`` do not touch it.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

import sympy as sp

from .cases import CaseBuilder, CaseDesign, HyperparameterChange
from .proofs import ClosedForm
from .rule import Assign, Hyperparameter, Rule, StateVar, Variant, g, t, theta
from .spec import Spec

lr = sp.Symbol("gamma", positive=True)  # γ, the initial step size
eta_minus = sp.Symbol("eta_minus", positive=True)  # η₋ < 1
eta_plus = sp.Symbol("eta_plus", positive=True)  # η₊ > 1
step_min = sp.Symbol("Gamma_min", nonnegative=True)  # Γmin
step_max = sp.Symbol("Gamma_max", positive=True)  # Γmax
maximize = sp.Symbol("maximize")

prev = sp.Symbol("g_prev", real=True)  # the gradient kept from the previous step
delta = sp.Symbol("Delta", positive=True)  # the element's step size

same_sign = g * prev > 0
sign_change = g * prev < 0

FACTOR = sp.Piecewise(
    (delta * eta_plus, same_sign), (delta * eta_minus, sign_change), (delta, True)
)


def clamp(x: sp.Expr) -> sp.Expr:
    """torch's ``clamp_(Γmin, Γmax)``: both bounds, whatever the factor was."""
    return sp.Min(sp.Max(x, step_min), step_max)


RULE = Rule(
    id="rprop",
    title="Rprop (PyTorch; iRprop−)",
    hyperparameters=(
        Hyperparameter("lr", lr, 1e-2, doc="learning rate γ: the initial step size"),
        Hyperparameter("etas", (eta_minus, eta_plus), (0.5, 1.2),
                       doc="(η₋, η₊): step-size factors after a sign change / the same sign"),
        Hyperparameter("step_sizes", (step_min, step_max), (1e-6, 50),
                       doc="(Γmin, Γmax): the bounds of the step size"),
        Hyperparameter("maximize", maximize, False, neutral=False, boolean=True,
                       doc="ascend the objective instead of descending"),
    ),
    state=(
        StateVar("step", t, sp.Integer(0), "steps taken by this parameter", count=True),
        StateVar("prev", prev, sp.Integer(0), "the gradient kept for the next sign comparison"),
        StateVar("step_size", delta, lr, "the element's step size Δ (γ before the first step)"),
    ),
    body=(
        Assign("maximize", g, sp.Piecewise((-g, maximize), (g, True)), "ascend if maximizing"),
        Assign("step", t, t + 1, "count the step"),
        Assign("step_size", delta, clamp(FACTOR),
               "grow on the same sign, shrink on a sign change, then clamp at both bounds"),
        Assign("zero", g, sp.Piecewise((0, sign_change), (g, True)),
               "after a sign change the gradient counts as 0: no move, no adaptation next step"),
        Assign("update", theta, theta - sp.sign(g) * delta,
               "move by Δ against the gradient's sign"),
        Assign("prev", prev, g, "keep the gradient (0 after a sign change)"),
    ),
)


# -- variants -------------------------------------------------------------------------------

VARIANTS = (
    Variant(
        id="rprop.no_zeroing_after_flip",
        title="Rprop−: the gradient is not zeroed after a sign change",
        summary="after a sign change θ still moves, θ ← θ − sign(g)·Δ with the shrunk Δ, and "
        "prev ← g (so the next step adapts Δ again)",
        who="Rprop− (Igel & Hüsken), Shark's RpropMinus",
        sources=("doi:10.1016/S0925-2312(01)00700-7",
                 "Shark src/Algorithms/GradientDescent/Rprop.cpp"),
        delta=lambda r: r.remove("zero"),
    ),
    Variant(
        id="rprop.weight_backtracking",
        title="Rprop+: weight backtracking after a sign change",
        summary="after a sign change the previous step is undone, θ ← θ + sign(prev)·Δ_prev, "
        "before Δ shrinks; prev ← 0",
        who="Rprop as in Riedmiller & Braun 1993 (Rprop+ in Igel & Hüsken's naming), Shark's "
        "RpropPlus",
        sources=("doi:10.1109/ICNN.1993.298623", "doi:10.1016/S0925-2312(01)00700-7",
                 "Shark src/Algorithms/GradientDescent/Rprop.cpp"),
        delta=lambda r: r.insert_before(
            "step_size",
            Assign("backtrack", theta, sp.Piecewise((theta + sp.sign(prev) * delta, sign_change),
                                                    (theta, True)),
                   "undo the previous step (its size is the Δ before adaptation)"),
        ),
    ),
    Variant(
        id="rprop.one_sided_clamp",
        title="each bound applied only in its own direction",
        summary="Δ ← min(Δη₊, Γmax) on the same sign, max(Δη₋, Γmin) on a sign change, Δ unchanged "
        "when g·prev = 0: a step size outside [Γmin, Γmax] is not pulled back at once",
        who="Optimisers.jl (Flux) Rprop, Shark's Rprop classes; the algorithm as Riedmiller & "
        "Braun and torch's own documentation write it",
        sources=("doi:10.1109/ICNN.1993.298623", "FluxML/Optimisers.jl src/rules.jl (Rprop)",
                 "torch.optim.Rprop documentation (algorithm box)"),
        delta=lambda r: r.replace(
            "step_size",
            sp.Piecewise((sp.Min(delta * eta_plus, step_max), same_sign),
                         (sp.Max(delta * eta_minus, step_min), sign_change), (delta, True)),
        ),
    ),
    Variant(
        id="rprop.grow_on_zero_product",
        title="the step size grows when g·prev = 0",
        summary="Δ ← Δ·η₊ when g·prev ≥ 0 (first step, after a sign change, zero gradients), "
        "not only when g·prev > 0",
        who="FANN's iRprop− (fann_update_weights_irpropm: same_sign >= 0)",
        sources=("libfann/fann src/fann_train.c",),
        delta=lambda r: r.replace(
            "step_size",
            clamp(sp.Piecewise((delta * eta_minus, sign_change), (delta * eta_plus, True))),
        ),
    ),
)


# -- closed forms ---------------------------------------------------------------------------
g0 = sp.Symbol("g_0", real=True, nonzero=True)
theta0 = sp.Symbol("theta_0", real=True)
# The unclamped regime: no bound is reached (Γmin = 0 and Γmax = ∞ stand for "not reached").
_unclamped = {step_min: 0, step_max: sp.oo, g: g0}
_growth = lr * eta_plus ** (t - 1)
_distance = lr * (eta_plus**t - 1) / (eta_plus - 1)

CLOSED_FORMS = (
    ClosedForm(
        name="step_size_growth_constant_sign",
        statement="With a gradient of constant sign, as long as no bound is reached "
        "(Γmin ≤ γ and γ·η₊ᵗ⁻¹ ≤ Γmax): Δ_t = γ·η₊ᵗ⁻¹ (no adaptation at the first step, "
        "where prev = 0) and prev_t = g.",
        rule=RULE,
        given={**_unclamped, maximize: False},
        closed={delta: _growth, prev: g0},
    ),
    ClosedForm(
        name="parameter_constant_gradient",
        statement="With a constant gradient g ≠ 0 and no bound reached: "
        "θ_t = θ₀ − sign(g)·γ·(η₊ᵗ − 1)/(η₊ − 1), a geometric series of steps.",
        rule=RULE,
        given={**_unclamped, maximize: False},
        closed={delta: _growth, prev: g0, theta: theta0 - sp.sign(g0) * _distance},
        initial={theta: theta0},
    ),
    ClosedForm(
        name="maximize_mirrors_the_trajectory",
        statement="With maximize, a constant gradient g ≠ 0 and no bound reached: "
        "θ_t = θ₀ + sign(g)·γ·(η₊ᵗ − 1)/(η₊ − 1) and prev_t = −g (the sign-flipped gradient).",
        rule=RULE,
        given={**_unclamped, maximize: True},
        closed={delta: _growth, prev: -g0, theta: theta0 + sp.sign(g0) * _distance},
        initial={theta: theta0},
    ),
)


# -- cases ----------------------------------------------------------------------------------


@dataclass
class RpropCaseBuilder(CaseBuilder):
    """A :class:`CaseBuilder` whose gradients can flip sign every step and have exact zeros.

    ``alternate``: step s's gradient is (−1)^(s−1) times the first step's, so every element
    changes sign at every step. ``zeros[s][name]``: flat indices of that param's gradient set to
    exactly 0 at step s (g·prev = 0: no adaptation, no move, prev ← 0).
    """

    alternate: bool = False
    zeros: dict[int, dict[str, tuple[int, ...]]] = field(default_factory=dict)

    def build(self, defaults: dict[str, Any]) -> CaseDesign:
        design = super().build(defaults)
        first = design.steps[0].grads
        steps = []
        for s, step in enumerate(design.steps, start=1):
            grads = dict(step.grads)
            for name, values in grads.items():
                if values is None:
                    continue
                if self.alternate:
                    values = tuple((-1) ** (s - 1) * x for x in first[name])
                zero = self.zeros.get(s, {}).get(name, ())
                grads[name] = tuple(0.0 if i in zero else x for i, x in enumerate(values))
            steps.append(replace(step, grads=grads))
        features = sorted({*design.features, *(["sign_flips"] if self.alternate else []),
                           *(["zero_gradients"] if self.zeros else [])})
        return replace(design, steps=tuple(steps), features=tuple(features))


def _set(group: int, name: str, value: object) -> HyperparameterChange:
    return HyperparameterChange(group, name, value)


CASES = (
    CaseBuilder(
        id="rprop/default_factors",
        title="torch's etas and step sizes, random signs",
        purpose="η = (0.5, 1.2), Γ = (1e-6, 50) with γ = 2⁻⁶: about half the elements change sign "
        "at every step, so zeroing, backtracking and the first step's zero product all show; "
        "η₊ = 1.2 is not a binary fraction, so Δ is rounded at every growth",
        hyperparameters={"lr": "0.015625"},
        grad_exponents=[0] * 6,
        seed=751,
    ),
    RpropCaseBuilder(
        id="rprop/growth_to_max",
        title="a constant gradient: the step size grows to Γmax",
        purpose="Δ_t = γ·η₊ᵗ⁻¹ (not adapted at the first step) until it is clamped at Γmax = 1/2 "
        "at step 7",
        hyperparameters={"lr": "0.0625", "etas": ["0.5", "1.5"],
                         "step_sizes": ["0.0009765625", "0.5"]},
        grad_exponents=[0] * 8,
        seed=752,
        constant_grad=True,
    ),
    RpropCaseBuilder(
        id="rprop/alternating_to_min",
        title="a gradient that changes sign at every step: the step size shrinks to Γmin",
        purpose="move, shrink without moving (prev ← 0), move again with the shrunk Δ, …: Δ halves "
        "every second step until it is clamped at Γmin = 3/64",
        hyperparameters={"lr": "0.25", "etas": ["0.5", "1.25"], "step_sizes": ["0.046875", "1"]},
        grad_exponents=[0] * 8,
        seed=753,
        alternate=True,
    ),
    RpropCaseBuilder(
        id="rprop/zero_gradients_maximize",
        title="exactly zero gradients, while maximizing",
        purpose="g·prev = 0 leaves Δ as it is and does not move θ; the sign flip of maximize "
        "comes first and prev keeps the flipped gradient",
        hyperparameters={"lr": "0.125", "etas": ["0.5", "1.25"], "maximize": True},
        grad_exponents=[0] * 7,
        seed=754,
        zeros={1: {"vector": (0, 3)}, 2: {"vector": (1,), "matrix": (0, 5)},
               3: {"scalar": (0,), "vector": (0, 4)}, 5: {"matrix": (1, 2, 3)},
               6: {"vector": (2,)}},
    ),
    RpropCaseBuilder(
        id="rprop/step_size_outside_bounds",
        title="initial step sizes outside [Γmin, Γmax]",
        purpose="γ = 1 > Γmax = 1/4 and γ = 2⁻¹⁰ < Γmin = 2⁻⁶: torch clamps at the first step, "
        "where g·prev = 0",
        hyperparameters={"lr": "1", "etas": ["0.5", "1.25"], "step_sizes": ["0.015625", "0.25"]},
        grad_exponents=[0] * 5,
        seed=755,
        groups=[(("scalar", "vector"), {}),
                (("matrix",), {"lr": "0.0009765625", "step_sizes": ["0.015625", "1"]})],
    ),
    RpropCaseBuilder(
        id="rprop/groups_and_missing_grads",
        title="two param groups, params without a gradient on some steps, settings changed mid-run",
        purpose="a param's Δ starts from the lr of its first step (lr changed before step 2); a "
        "param without a grad keeps θ, prev, Δ and its step count; lowering Γmax clamps at once",
        hyperparameters={"lr": "0.125", "etas": ["0.5", "1.5"], "step_sizes": ["0.001953125", "1"]},
        grad_exponents=[0] * 7,
        seed=756,
        groups=[(("scalar", "vector"), {}),
                (("matrix",), {"lr": "0.25", "etas": ["0.25", "2"]})],
        no_grad={"scalar": [1, 2], "vector": [4], "matrix": [3, 5]},
        changes={2: [_set(0, "lr", "0.375")],
                 4: [_set(1, "step_sizes", ["0.001953125", "0.03125"])]},
        zeros={6: {"vector": (1, 3)}},
    ),
    RpropCaseBuilder(
        id="rprop/resume",
        title="state_dict round trip in mid-trajectory",
        purpose="a fresh instance loaded from state_dict continues exactly (prev, Δ, step count)",
        hyperparameters={"lr": "0.125", "etas": ["0.5", "1.5"],
                         "step_sizes": ["0.0078125", "0.75"]},
        grad_exponents=[0] * 7,
        seed=757,
        reload_before=[4],
    ),
)

SPEC = Spec(
    id="rprop",
    title="Rprop",
    torch_class="torch.optim.Rprop",
    rule=RULE,
    unreachable_boundaries={
        "step_size: g*g_prev < 0 above": "evaluated only when g·g_prev > 0 is false: g·g_prev ≤ 0 there",
    },
    variants=VARIANTS,
    cases=CASES,
    closed_forms=CLOSED_FORMS,
)
