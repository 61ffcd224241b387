"""Lion (EvoLved Sign Momentum) with decoupled weight decay and maximize.

Chen et al., "Symbolic Discovery of Optimization Algorithms" (arXiv:2302.06675), Algorithm 2, as
the authors' reference code (google/automl lion/lion_pytorch.py ``Lion.step``: the same lines, the
same defaults lr=1e-4, betas=(0.9, 0.99), weight_decay=0) and lion-pytorch
(``lion_pytorch/lion_pytorch.py`` ``update_fn``) implement it; optax ``lion`` is the same chain
(``scale_by_lion`` → ``add_decayed_weights`` → ``scale_by_learning_rate``). For each element, with
m₀ = 0::

    θ ← θ·(1 − γλ)                        (decoupled decay with the current learning rate)
    c ← β₁·m + (1 − β₁)·g                 (interpolation: the update direction)
    θ ← θ − γ·sign(c)                     (sign(0) = 0)
    m ← β₂·m + (1 − β₂)·g                 (the momentum, with the other rate)

The paper writes the update as θ − γ·(sign(c) + λθ), which is the same. Libraries keep the
momentum as ``state["exp_avg"]`` and no step counter. Their options that change the decay are the
variants below (coupled decay, decay not scaled by γ, scaled by γ/γ_init or γ²/γ_max); the mistakes
a transcription easily makes (the two rates swapped, the sign of the new momentum instead of the
interpolation, sign(0) taken as +1) are catalogued too.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

import sympy as sp

from .adam import beta1, beta2, lam, lr, m, maximize
from .cases import CaseBuilder, CaseDesign, HyperparameterChange
from .proofs import ClosedForm
from .rule import Assign, Hyperparameter, Rule, StateVar, Variant, g, t, theta
from .spec import Implementation, Spec

c = sp.Symbol("c", real=True)  # the interpolation whose sign is the update
# The learning rate the optimizer was built with (lion-pytorch's ``_init_lr``, timm's
# ``max_lr_snapshot``); only the variants that scale the decay by it keep it.
lr_init = sp.Symbol(r"\gamma_{init}", positive=True)

RULE = Rule(
    id="lion",
    title="Lion (decoupled weight decay with the current learning rate)",
    hyperparameters=(
        Hyperparameter("lr", lr, 1e-4, doc="learning rate γ"),
        Hyperparameter("betas", (beta1, beta2), (0.9, 0.99),
                       doc="(β₁, β₂): the rate of the interpolation c and of the momentum m"),
        Hyperparameter("weight_decay", lam, 0, neutral=0, doc="decoupled weight decay λ: θ ← θ·(1 − γλ)"),
        Hyperparameter("maximize", maximize, False, neutral=False, boolean=True,
                       doc="ascend the objective instead of descending"),
    ),
    state=(
        StateVar("exp_avg", m, sp.Integer(0), "the momentum m (EMA of g with rate β₂)"),
    ),
    body=(
        Assign("maximize", g, sp.Piecewise((-g, maximize), (g, True)), "ascend if maximizing"),
        Assign("weight_decay", theta, theta * (1 - lr * lam), "decoupled weight decay, scaled by the current γ"),
        Assign("interpolation", c, beta1 * m + (1 - beta1) * g, "interpolate momentum and gradient with β₁"),
        Assign("update", theta, theta - lr * sp.sign(c), "move by γ against the sign (sign(0) = 0)"),
        Assign("momentum", m, beta2 * m + (1 - beta2) * g, "EMA of the gradient with β₂"),
    ),
)


def _with_lr_init(r: Rule) -> Rule:
    """The rule with the learning rate of the first step kept (not torch-visible state)."""
    kept = StateVar("lr_init", lr_init, lr, "the learning rate the optimizer was built with",
                    kept_when=lambda hp: False)
    return replace(r, state=(*r.state, kept))


# -- variants -------------------------------------------------------------------------------
VARIANTS = (
    Variant(
        id="lion.coupled_decay",
        title="coupled (L2) weight decay, inside the sign and the momentum",
        summary="g ← g + λθ before the interpolation and the momentum; no decoupled decay",
        who="pytorch_optimizer Lion(weight_decouple=False) (the bitsandbytes-style variant)",
        sources=("pytorch_optimizer/optimizer/lion.py Lion._step_per_param l.144-160 / _step_foreach",
                 "pytorch_optimizer/base/optimizer.py BaseOptimizer.apply_weight_decay l.206-209"),
        delta=lambda r: r.replace("weight_decay", theta).insert_after(
            "maximize", Assign("l2", g, g + lam * theta, "L2 weight decay added to the gradient")),
    ),
    Variant(
        id="lion.fixed_decay",
        title="weight decay not scaled by the learning rate",
        summary="θ ← θ·(1 − λ)",
        who="pytorch_optimizer Lion(fixed_decay=True)",
        sources=("pytorch_optimizer/base/optimizer.py BaseOptimizer.apply_weight_decay l.207 (fixed_decay)",),
        delta=lambda r: r.replace("weight_decay", theta * (1 - lam)),
    ),
    Variant(
        id="lion.decay_over_initial_lr",
        title="weight decay divided by the initial learning rate",
        summary="θ ← θ·(1 − γλ/γ_init), γ_init the lr the optimizer was built with (θ·(1 − λ) "
        "while γ stays γ_init)",
        who="lion-pytorch Lion(decoupled_weight_decay=True)",
        sources=("lion_pytorch/lion_pytorch.py Lion.__init__ l.43 (_init_lr), Lion.step l.79 (wd /= init_lr), "
                 "update_fn l.17",),
        delta=lambda r: _with_lr_init(r).replace("weight_decay", theta * (1 - lr * lam / lr_init)),
    ),
    Variant(
        id="lion.corrected_decay",
        title="corrected weight decay γ²/γ_max",
        summary="θ ← θ·(1 − λγ²/γ_max), γ_max the lr the optimizer was built with (differs from "
        "the spec only once γ ≠ γ_max)",
        who="timm Lion(corrected_weight_decay=True)",
        sources=("timm/optim/lion.py _single_tensor_lion l.205-206 / _multi_tensor_lion l.248 (wd_scale)",
                 "timm/optim/_helpers.py _max_lr_snapshot", "arXiv:2506.02285"),
        delta=lambda r: _with_lr_init(r).replace("weight_decay", theta * (1 - lam * lr**2 / lr_init)),
    ),
    Variant(
        id="lion.betas_swapped",
        title="β₁ and β₂ swapped",
        summary="c ← β₂·m + (1 − β₂)·g; m ← β₁·m + (1 − β₁)·g",
        who="a transcription mistake (the two rates read in the other order)",
        sources=("arXiv:2302.06675 Algorithm 2 (β₁ interpolates, β₂ tracks the momentum)",),
        delta=lambda r: r.replace("interpolation", beta2 * m + (1 - beta2) * g).replace(
            "momentum", beta1 * m + (1 - beta1) * g),
    ),
    Variant(
        id="lion.sign_of_new_momentum",
        title="the sign of the updated momentum instead of the interpolation",
        summary="m ← β₂·m + (1 − β₂)·g first, then θ ← θ − γ·sign(m): signSGD with momentum "
        "(Signum), not Lion",
        who="a transcription mistake (momentum updated before the step); Signum (Bernstein et al. 2018)",
        sources=("arXiv:2302.06675 Algorithm 2", "arXiv:1802.04434 (Signum)"),
        delta=lambda r: r.replace("interpolation", beta2 * m + (1 - beta2) * g).replace("momentum", c),
    ),
    Variant(
        id="lion.sign_of_zero_is_one",
        title="sign(0) taken as +1",
        summary="θ ← θ − γ where c = 0 (e.g. torch.where(c >= 0, 1, -1)) instead of no move",
        who="a transcription mistake (a two-valued sign)",
        sources=("torch.sign / jnp.sign: sign(0) = 0 (arXiv:2302.06675 Algorithm 2 uses sign)",),
        delta=lambda r: r.replace("update", theta - lr * sp.Piecewise((1, c >= 0), (-1, True))),
    ),
)


# -- closed forms ---------------------------------------------------------------------------
g0 = sp.Symbol("g_0", real=True, nonzero=True)
theta0 = sp.Symbol("theta_0", real=True)

CLOSED_FORMS = (
    ClosedForm(
        name="zero_gradient_only_decays",
        statement="With a zero gradient the interpolation is 0 and sign(0) = 0: m_t = 0 and "
        "θ_t = θ₀·(1 − γλ)ᵗ, the decay alone.",
        rule=RULE,
        given={g: 0, maximize: False},
        closed={m: sp.Integer(0), theta: theta0 * (1 - lr * lam) ** t},
        initial={theta: theta0},
    ),
    ClosedForm(
        name="sign_descent_with_decay",
        statement="With β₁ = 0 and a constant gradient g ≠ 0, Lion is sign descent with decoupled "
        "decay: m_t = g·(1 − β₂ᵗ) and θ_t = (1 − γλ)ᵗ·θ₀ − sign(g)·(1 − (1 − γλ)ᵗ)/λ, which tends to "
        "the fixed point −sign(g)/λ.",
        rule=RULE,
        given={g: g0, beta1: 0, maximize: False},
        closed={m: g0 * (1 - beta2**t),
                theta: (1 - lr * lam) ** t * theta0 - sp.sign(g0) * (1 - (1 - lr * lam) ** t) / lam},
        initial={theta: theta0},
    ),
    ClosedForm(
        name="sign_descent_without_decay",
        statement="With β₁ = 0, λ = 0 and a constant gradient g ≠ 0 (maximizing): θ_t = θ₀ + t·γ·sign(g), "
        "m_t = −g·(1 − β₂ᵗ): every step has length exactly γ.",
        rule=RULE,
        given={g: g0, beta1: 0, lam: 0, maximize: True},
        closed={m: -g0 * (1 - beta2**t), theta: theta0 + t * lr * sp.sign(g0)},
        initial={theta: theta0},
    ),
)


# -- cases ----------------------------------------------------------------------------------


@dataclass
class LionCaseBuilder(CaseBuilder):
    """A :class:`CaseBuilder` whose step-2 gradient cancels the interpolation exactly on some elements.

    ``cancel[name]``: flat indices of that param where g₂ = −g₁/2, so that with β₁ = β₂ = 1/2
    (m₁ = g₁/2) the interpolation c₂ = m₁/2 + g₂/2 is exactly 0 in every dtype (g₂ is dyadic with
    the bits of g₁): sign(c₂) = 0 and the element moves by the decay alone.
    """

    cancel: dict[str, tuple[int, ...]] = field(default_factory=dict)

    def build(self, defaults: dict[str, Any]) -> CaseDesign:
        design = super().build(defaults)
        first = design.steps[0].grads
        step2 = dict(design.steps[1].grads)
        for name, idx in self.cancel.items():
            step2[name] = tuple(-first[name][i] / 2 if i in idx else x for i, x in enumerate(step2[name]))
        steps = (design.steps[0], replace(design.steps[1], grads=step2), *design.steps[2:])
        features = sorted({*design.features, "zero_interpolation"})
        return replace(design, steps=steps, features=tuple(features))


def _lr(group: int, value: str) -> HyperparameterChange:
    return HyperparameterChange(group, "lr", value)


CASES = (
    CaseBuilder(
        id="lion/defaults",
        title="the reference implementation's defaults",
        purpose="γ = 1e-4, β = (0.9, 0.99): every step moves each element by exactly γ",
        hyperparameters={},
        grad_exponents=[0] * 5,
        seed=801,
    ),
    CaseBuilder(
        id="lion/small_betas",
        title="small, different rates; gradients of mixed sign and shrinking size",
        purpose="|m| comparable to |g| with mixed signs: which rate interpolates and which tracks the "
        "momentum, and whether the interpolation or the new momentum is signed, flip signs of c",
        hyperparameters={"lr": "0.125", "betas": ["0.25", "0.875"]},
        grad_exponents=[1, 0, 0, -1, -1, -2, -2],
        seed=802,
    ),
    LionCaseBuilder(
        id="lion/zero_interpolation",
        title="an interpolation exactly 0 on some elements",
        purpose="sign(0) = 0: with β₁ = β₂ = 1/2 and g₂ = −g₁/2, c₂ = 0 exactly, and those elements "
        "move by the decay alone at step 2",
        hyperparameters={"lr": "0.125", "betas": ["0.5", "0.5"], "weight_decay": "0.25"},
        grad_exponents=[0] * 4,
        seed=803,
        cancel={"scalar": (0,), "vector": (0, 2, 3), "matrix": (1, 4)},
    ),
    CaseBuilder(
        id="lion/weight_decay",
        title="decay large against the gradient",
        purpose="θ ≈ 4-8, |g| ≈ 1/8, λ = 1/2: coupled decay flips the sign of g + λθ; decay not "
        "scaled by γ (or divided by γ_init = 1/8) shrinks θ eight times more",
        hyperparameters={"lr": "0.125", "weight_decay": "0.5", "betas": ["0.75", "0.875"]},
        grad_exponents=[-2] * 5,
        seed=804,
        param_exponent=3,
    ),
    CaseBuilder(
        id="lion/weight_decay_lr_schedule",
        title="weight decay with the learning rate changed between steps",
        purpose="the decay follows the current γ: γλ, not λγ²/γ_max (timm's corrected decay) nor "
        "λγ/γ_init (lion-pytorch's decoupled mode), which agree with it only while γ is the "
        "constructor's",
        hyperparameters={"lr": "0.125", "weight_decay": "0.25"},
        grad_exponents=[0] * 6,
        seed=805,
        param_exponent=2,
        changes={3: [_lr(0, "0.5")], 5: [_lr(0, "0.03125")]},
    ),
    CaseBuilder(
        id="lion/weight_decay_maximize",
        title="weight decay while maximizing",
        purpose="the sign flip of maximize applies to the gradient only; the decay still shrinks θ",
        hyperparameters={"lr": "0.0625", "weight_decay": "0.5", "maximize": True, "betas": ["0.5", "0.75"]},
        grad_exponents=[0] * 5,
        seed=806,
        param_exponent=2,
    ),
    CaseBuilder(
        id="lion/groups_and_missing_grads",
        title="two param groups, and params without a gradient on some steps",
        purpose="per-group settings; a param without a grad keeps its value and its momentum",
        hyperparameters={"lr": "0.0625", "betas": ["0.5", "0.75"]},
        grad_exponents=[1, 0, 0, -1, -2, -2],
        seed=807,
        groups=[(("scalar", "vector"), {}),
                (("matrix",), {"lr": "0.25", "betas": ["0.75", "0.5"]})],
        no_grad={"scalar": [1, 2], "vector": [4], "matrix": [3, 4]},
    ),
    CaseBuilder(
        id="lion/resume",
        title="state_dict round trip in mid-trajectory",
        purpose="a fresh instance loaded from state_dict continues exactly (the momentum)",
        hyperparameters={"lr": "0.125", "weight_decay": "0.25", "betas": ["0.5", "0.875"]},
        grad_exponents=[1, 1, -1, 0, -2, 0],
        seed=808,
        param_exponent=1,
        reload_before=[4],
    ),
)

SPEC = Spec(
    id="lion",
    title="Lion",
    torch_class=None,
    rule=RULE,
    variants=VARIANTS,
    cases=CASES,
    closed_forms=CLOSED_FORMS,
    implementations=(
        Implementation("pytorch-optimizer", "pytorch_optimizer.Lion",
                       kwargs={"weight_decouple": True, "fixed_decay": False},
                       note="pytorch_optimizer/optimizer/lion.py Lion (decoupled decay θ(1 − γλ) by "
                       "BaseOptimizer.apply_weight_decay with weight_decouple=True, fixed_decay=False: "
                       "the defaults)"),
        Implementation("lion-pytorch", "lion_pytorch.Lion",
                       kwargs={"decoupled_weight_decay": False},
                       note="lion_pytorch/lion_pytorch.py Lion, update_fn (θ(1 − γλ) with the group's lr; "
                       "decoupled_weight_decay=False, the default)"),
    ),
)
