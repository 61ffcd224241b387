"""NAdam (Nesterov-accelerated Adam) with momentum decay — Dozat's rule as PyTorch implements it.

Dozat, "Incorporating Nesterov Momentum into Adam" (ICLR 2016 workshop, openreview
OM0jvwB8jIp57ZJjtNEZ), with the momentum schedule μ_t = β₁·(1 − ½·0.96^(t·ψ)), ψ the momentum
decay (0.004), as ``torch.optim.NAdam`` computes it (``_single_tensor_nadam``)::

    μ_t = β₁(1 − ½·0.96^(tψ)),  μ_{t+1} = β₁(1 − ½·0.96^((t+1)ψ)),  Π_t = Π_{t−1}·μ_t (Π₀ = 1)
    m_t = β₁m + (1 − β₁)g,  v_t = β₂v + (1 − β₂)g²,  v̂ = v_t/(1 − β₂ᵗ),  d = √v̂ + ε
    θ ← θ − γ(1 − μ_t)/(1 − Π_t) · g/d − γμ_{t+1}/(1 − Π_t·μ_{t+1}) · m_t/d

The first moment uses β₁ (not μ_t); μ only weighs the Nesterov look-ahead. Weight decay is L2
(added to the gradient) or, with ``decoupled_weight_decay``, θ ← θ·(1 − γλ) before the step
(NAdamW). torch applies the update in two ``addcdiv_`` calls, one per term: the rule does too.

The running product Π (``mu_product``) is one number per parameter, which torch keeps as a
float32 0-d tensor whatever the parameter's dtype: ``mu_product *= mu`` rounds μ to float32 and
then the product to float32, Π_t = fl₃₂(Π_{t−1}·fl₃₂(μ_t)). In float64 that is a relative error
of ~2⁻²⁴ in the step's coefficients, far outside float64's tolerance: the acceptable variant
``nadam.float32_mu_product`` models it exactly, so that torch passes with a named finding.
``load_state_dict`` casts the product to the parameter's dtype (torch casts every floating state
tensor but ``step``; pytorch/pytorch#75224), so a resumed float64 run computes it in double from
then on: the acceptable variant follows that too (``reloaded``). The ``nadam/resume`` case keeps
every product exact in float32 (ψ = 0, β₁ = 0.75), so the exact spec holds for torch there; the
``nadam/resume_default_schedule`` case resumes with the default ψ, where torch follows the variant.
"""

from __future__ import annotations

import mpmath
import sympy as sp

from .adam import beta1, beta2, eps, lam, lr, m, maximize, v, v_hat
from .cases import LARGE_T, CaseBuilder, HyperparameterChange, long_horizon, resumed_at_large_t
from .proofs import ClosedForm
from .rule import F32, Assign, Hyperparameter, Rule, StateVar, Variant, g, reloaded, t, theta
from .spec import Implementation, Spec

psi = sp.Symbol("psi", nonnegative=True)  # ψ, momentum decay
decoupled = sp.Symbol("decoupled_weight_decay")
mu = sp.Symbol("mu", positive=True)  # μ_t, the momentum cache
mu_next = sp.Symbol("mu_next", positive=True)  # μ_{t+1}
mu_product = sp.Symbol("Pi", positive=True)  # Π_t = μ_1···μ_t (torch: mu_product)
d = sp.Symbol("d", positive=True)  # the denominator √v̂ + ε

DECAY_BASE = sp.Rational(24, 25)  # Dozat's 0.96


def _cache(step: sp.Expr, exponent_scale: sp.Expr) -> sp.Expr:
    """β₁·(1 − ½·0.96^(step·scale)): the momentum cache at a step."""
    return beta1 * (1 - DECAY_BASE ** (step * exponent_scale) / 2)


RULE = Rule(
    id="nadam",
    title="NAdam (PyTorch; momentum decay, L2 or decoupled weight decay)",
    hyperparameters=(
        Hyperparameter("lr", lr, 2e-3, doc="learning rate γ"),
        Hyperparameter("betas", (beta1, beta2), (0.9, 0.999), doc="decay rates (β₁, β₂) of the moments"),
        Hyperparameter("eps", eps, 1e-8, doc="ε added to the denominator √v̂"),
        Hyperparameter("weight_decay", lam, 0, neutral=0,
                       doc="weight decay λ: L2 (added to the gradient) or decoupled"),
        Hyperparameter("momentum_decay", psi, 4e-3,
                       doc="momentum decay ψ of the schedule μ_t = β₁·(1 − ½·0.96^(tψ))"),
        Hyperparameter("decoupled_weight_decay", decoupled, False, neutral=False, boolean=True,
                       requires=("weight_decay",),
                       doc="decoupled weight decay θ ← θ·(1 − γλ) (NAdamW) instead of L2"),
        Hyperparameter("maximize", maximize, False, neutral=False, boolean=True,
                       doc="ascend the objective instead of descending"),
    ),
    state=(
        StateVar("step", t, sp.Integer(0), "steps taken by this parameter", count=True),
        StateVar("mu_product", mu_product, sp.Integer(1),
                 "running product Π_t = μ_1···μ_t (one number per parameter)", per_param=True),
        StateVar("exp_avg", m, sp.Integer(0), "first moment m (EMA of g)"),
        StateVar("exp_avg_sq", v, sp.Integer(0), "second moment v (EMA of g²)"),
    ),
    body=(
        Assign("maximize", g, sp.Piecewise((-g, maximize), (g, True)), "ascend if maximizing"),
        Assign("weight_decay", g, sp.Piecewise((g, decoupled), (g + lam * theta, True)),
               "L2 weight decay (unless decoupled)"),
        Assign("decay", theta, sp.Piecewise((theta * (1 - lr * lam), decoupled), (theta, True)),
               "decoupled weight decay (NAdamW)"),
        Assign("step", t, t + 1, "count the step"),
        Assign("momentum_cache", mu, _cache(t, psi), "μ_t = β₁·(1 − ½·0.96^(tψ))"),
        Assign("momentum_cache_next", mu_next, _cache(t + 1, psi), "μ_{t+1}"),
        Assign("mu_product", mu_product, mu_product * mu, "Π_t = Π_{t−1}·μ_t"),
        Assign("first_moment", m, beta1 * m + (1 - beta1) * g, "EMA of the gradient"),
        Assign("second_moment", v, beta2 * v + (1 - beta2) * g**2, "EMA of the squared gradient"),
        Assign("bias_correction_v", v_hat, v / (1 - beta2**t), "bias-corrected second moment v̂"),
        Assign("denominator", d, sp.sqrt(v_hat) + eps, "√v̂ + ε"),
        Assign("update_gradient", theta, theta - lr * (1 - mu) / (1 - mu_product) * g / d,
               "the gradient's share of the Nesterov step"),
        Assign("update_momentum", theta, theta - lr * mu_next / (1 - mu_product * mu_next) * m / d,
               "the first moment's share, looked ahead with μ_{t+1}"),
    ),
)


# -- variants -------------------------------------------------------------------------------
VARIANTS = (
    Variant(
        id="nadam.keras_schedule",
        title="momentum schedule without the momentum decay factor (Keras)",
        summary="μ_t = β₁·(1 − ½·0.96ᵗ) instead of β₁·(1 − ½·0.96^(tψ)), ψ = 0.004: the cache "
        "reaches 0.98·β₁ within ~100 steps instead of ~25,000",
        who="Keras 2.11+ and Keras 3 Nadam (no momentum-decay argument)",
        sources=("keras-team/keras keras/src/optimizers/nadam.py", "pytorch/pytorch#59009"),
        delta=lambda r: r.replace("momentum_cache", _cache(t, 1)).replace(
            "momentum_cache_next", _cache(t + 1, 1)
        ),
    ),
    Variant(
        id="nadam.constant_mu",
        title="constant momentum cache μ = β₁ (optax)",
        summary="μ_t = μ_{t+1} = β₁, so Π_t = β₁ᵗ: m̂ = β₁·m/(1 − β₁ᵗ⁺¹) + (1 − β₁)·g/(1 − β₁ᵗ)",
        who="optax nadam (scale_by_adam(nesterov=True))",
        sources=("google-deepmind/optax optax/_src/transform.py (scale_by_adam, nesterov)",),
        delta=lambda r: r.replace("momentum_cache", beta1).replace("momentum_cache_next", beta1),
    ),
    Variant(
        id="nadam.mu_counted_twice",
        title="μ_t counted twice in the look-ahead product",
        summary="the first moment's coefficient uses 1 − Π_t·μ_t·μ_{t+1} (Π_t already holds μ_t) "
        "instead of 1 − Π_t·μ_{t+1}",
        who="torch.optim.NAdam(differentiable=True) before PR #92699 (torch < 2.0); TorchSharp NAdam "
        "before dotnet/TorchSharp#1155",
        sources=("pytorch/pytorch PR #92699", "dotnet/TorchSharp#1155"),
        delta=lambda r: r.replace(
            "update_momentum", theta - lr * mu_next / (1 - mu_product * mu * mu_next) * m / d
        ),
    ),
    Variant(
        id="nadam.float32_mu_product",
        title="μ product held in float32",
        summary="Π_t = fl₃₂(Π_{t−1}·fl₃₂(μ_t)): torch keeps mu_product as a float32 0-d tensor whatever "
        "the parameter's dtype (μ is rounded to float32, then the product), until load_state_dict casts "
        "it to the parameter's dtype (then Π_t = Π_{t−1}·μ_t); everything else is exact",
        who="torch.optim.NAdam (single-tensor and foreach paths), by design (until load_state_dict casts "
        "mu_product to the parameter's dtype)",
        sources=("torch/optim/nadam.py (_init_group: mu_product = torch.tensor(1.0, dtype=_get_scalar_dtype()))",),
        delta=lambda r: r.replace(
            "mu_product", sp.Piecewise((mu_product * mu, reloaded), (F32(mu_product * F32(mu)), True))
        ),
        acceptable=True,
    ),
)


# -- closed forms ---------------------------------------------------------------------------
g0, theta0 = sp.symbols("g_0 theta_0", real=True)
_plain = {lam: 0, maximize: False, decoupled: False, g: g0}

CLOSED_FORMS = (
    ClosedForm(
        name="momentum_decay_zero_gives_half_beta1",
        statement="With momentum_decay ψ = 0 the cache is the constant μ = β₁/2 (0.96⁰ = 1), not β₁: "
        "mu_product_t = (β₁/2)ᵗ; under a constant gradient m_t = g·(1 − β₁ᵗ), v_t = g²·(1 − β₂ᵗ).",
        rule=RULE,
        given={**_plain, psi: 0},
        closed={mu: beta1 / 2, mu_next: beta1 / 2, mu_product: (beta1 / 2) ** t,
                m: g0 * (1 - beta1**t), v: g0**2 * (1 - beta2**t)},
    ),
    ClosedForm(
        name="beta1_zero_is_bias_corrected_rmsprop",
        statement="With β₁ = 0 the caches and their product vanish and NAdam is bias-corrected RMSprop: "
        "under a constant gradient g, θ_t = θ₀ − t·γ·g/(|g| + ε), whatever ψ.",
        rule=RULE,
        given={**_plain, beta1: 0},
        closed={mu_product: 0, m: g0, v: g0**2 * (1 - beta2**t),
                theta: theta0 - t * lr * g0 / (sp.Abs(g0) + eps)},
        initial={theta: theta0},
    ),
    ClosedForm(
        name="decoupled_decay_alone_is_geometric",
        statement="With decoupled weight decay and a zero gradient the moments stay 0 and "
        "θ_t = θ₀·(1 − γλ)ᵗ.",
        rule=RULE,
        given={maximize: False, decoupled: True, g: 0},
        closed={m: 0, v: 0, theta: theta0 * (1 - lr * lam) ** t},
        initial={theta: theta0},
    ),
)


# -- cases ----------------------------------------------------------------------------------
def _lr(group: int, value: str) -> HyperparameterChange:
    return HyperparameterChange(group, "lr", value)


def mu_product_at(steps: int, beta1_: str, psi_: str) -> mpmath.mpf:
    """Π_N = ∏_{i=1..N} β₁(1 − ½qⁱ), q = 0.96^ψ, in mpmath at the working precision, without N
    multiplications: ln ∏(1 − ½qⁱ) = −Σ_k (½ᵏ/k)·Σ_i q^(ik) = −Σ_k (½ᵏ/k)·qᵏ(1 − q^(kN))/(1 − qᵏ),
    a series that converges like 2⁻ᵏ (ψ = 0: q = 1, the product is (β₁/2)ᴺ)."""
    b1, q = mpmath.mpf(beta1_), mpmath.mpf("0.96") ** mpmath.mpf(psi_)
    if q == 1:
        return (b1 / 2) ** steps
    log, k, eps = mpmath.mpf(0), 1, mpmath.mpf(2) ** (-mpmath.mp.prec - 8)
    while True:
        qk = q**k
        term = mpmath.mpf(2) ** -k / k * qk * (1 - qk**steps) / (1 - qk)
        log -= term
        if term < eps:
            return b1**steps * mpmath.exp(log)
        k += 1


def float32_value(x: mpmath.mpf) -> float:
    """x rounded to nearest in float32 (24 significant bits; x a normal float32 magnitude)."""
    with mpmath.workprec(24):
        return float(+x)


# the resumed case: β₁ and ψ that keep Π_{10⁶} ≈ 0.0145, weighing in 1 − Π (with the defaults it is
# far below 10⁻⁴⁰⁰⁰⁰: 0 in every dtype); 40 digits before the one rounding to float32
RESUMED_BETAS, RESUMED_PSI = ["0.999999", "0.999"], "4"
with mpmath.workdps(40):
    RESUMED_MU_PRODUCT = float32_value(mu_product_at(LARGE_T, RESUMED_BETAS[0], RESUMED_PSI))


CASES = (
    CaseBuilder(
        id="nadam/defaults",
        title="torch's defaults",
        purpose="the momentum schedule, its running product and the bias corrections at small t",
        hyperparameters={},
        grad_exponents=[0] * 6,
        seed=551,
    ),
    CaseBuilder(
        id="nadam/fast_momentum_decay",
        title="a fast momentum schedule",
        purpose="ψ = 0.25: μ_t rises from ~β₁/2 towards β₁ within the case",
        hyperparameters={"lr": "0.25", "momentum_decay": "0.25", "betas": ["0.75", "0.9375"]},
        grad_exponents=[0] * 6,
        seed=552,
    ),
    CaseBuilder(
        id="nadam/momentum_decay_zero",
        title="no momentum decay",
        purpose="ψ = 0 gives the constant cache μ = β₁/2, not β₁",
        hyperparameters={"lr": "0.0625", "momentum_decay": "0"},
        grad_exponents=[1, 0, 0, -1, 0, 1],
        seed=553,
    ),
    CaseBuilder(
        id="nadam/weight_decay_maximize",
        title="L2 weight decay while maximizing",
        purpose="the sign flip of maximize happens before the L2 term is added",
        hyperparameters={"lr": "0.125", "weight_decay": "0.25", "maximize": True},
        grad_exponents=[0] * 5,
        seed=554,
        param_exponent=2,
    ),
    CaseBuilder(
        id="nadam/decoupled_weight_decay_lr_schedule",
        title="decoupled weight decay with the learning rate changed between steps",
        purpose="NAdamW: θ ← θ·(1 − γλ) with the current γ, outside the moments",
        hyperparameters={"lr": "0.125", "weight_decay": "0.5", "decoupled_weight_decay": True},
        grad_exponents=[0] * 6,
        seed=555,
        param_exponent=1,
        changes={3: [_lr(0, "0.5")], 5: [_lr(0, "0.015625")]},
    ),
    CaseBuilder(
        id="nadam/groups_and_missing_grads",
        title="two param groups, and params without a gradient on some steps",
        purpose="per-group settings; a param without a grad keeps its value, its state (μ product "
        "included) and its step count",
        hyperparameters={"lr": "0.0625"},
        grad_exponents=[0] * 6,
        seed=556,
        groups=[(("scalar", "vector"), {}),
                (("matrix",), {"lr": "0.25", "betas": ["0.75", "0.875"], "momentum_decay": "0.125",
                               "weight_decay": "0.125", "decoupled_weight_decay": True})],
        no_grad={"scalar": [1, 2], "vector": [4], "matrix": [3, 4]},
    ),
    CaseBuilder(
        id="nadam/resume",
        title="state_dict round trip in mid-trajectory",
        purpose="a fresh instance loaded from state_dict continues exactly (μ product and step counts "
        "included). ψ = 0 and β₁ = 0.75 make every μ_t = 3/8 and every product (3/8)ᵗ exact in float32, so "
        "that torch's cast of mu_product to the parameter's dtype on load_state_dict (pytorch/pytorch#75224) "
        "changes no number: with the default ψ, torch in float64 follows neither the spec nor "
        "nadam.float32_mu_product after the reload",
        hyperparameters={"lr": "0.125", "weight_decay": "0.25", "eps": "0.0625", "momentum_decay": "0",
                         "betas": ["0.75", "0.999"]},
        grad_exponents=[1, 1, -1, 0, -2, 0],
        seed=557,
        reload_before=[4],
    ),
    CaseBuilder(
        id="nadam/resume_default_schedule",
        title="state_dict round trip with the default momentum schedule",
        purpose="the μ product after a resume: exact in the spec; torch keeps it in float32 until "
        "load_state_dict casts it to the parameter's dtype (the acceptable variant follows both regimes)",
        hyperparameters={"lr": "0.125", "eps": "0.0625"},
        grad_exponents=[0, 1, 0, -1, 0, 0],
        seed=558,
        reload_before=[3],
    ),
    long_horizon("nadam", {"lr": "0.001"}, 559,
                 "the momentum schedule μ_t = β₁(1 − ½·0.96^(tψ)) at t = 10³ (0.96⁴: still moving) and the "
                 "μ product after 10³ factors (about β₁¹⁰⁰⁰, below float32's normal range: a product kept "
                 "in float32 underflows, and 1 − Πμ is 1 either way)"),
    resumed_at_large_t("nadam", {"betas": RESUMED_BETAS, "momentum_decay": RESUMED_PSI}, 560,
                       f"the μ product continued from t = 10⁶: Π₁₀⁶ = ∏ μ_i (i = 1..10⁶) for β₁ = 0.999999, ψ = 4, "
                       f"computed in mpmath at generation time and rounded to float32 ({RESUMED_MU_PRODUCT!r}), is "
                       "injected as one exact number per parameter (torch keeps it as a float32 0-d tensor); "
                       "1 − Π ≈ 0.985 weighs in both coefficients, so a product reset or read per element shows; "
                       "the step count continues from 10⁶ (μ_t = β₁ to every dtype's resolution)",
                       {"exp_avg": "signed", "exp_avg_sq": "positive"},
                       per_param={"mu_product": RESUMED_MU_PRODUCT}),
)

SPEC = Spec(
    id="nadam",
    title="NAdam",
    torch_class="torch.optim.NAdam",
    rule=RULE,
    variants=VARIANTS,
    cases=CASES,
    closed_forms=CLOSED_FORMS,
    implementations=(
        Implementation("optax", "optax.nadam", note="optax/_src/alias.py nadam"),
        Implementation("keras", "keras.optimizers.Nadam", note="keras/src/optimizers/nadam.py Nadam"),
    ),
)
