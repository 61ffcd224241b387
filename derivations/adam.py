"""Adam with L2 weight decay, AMSGrad and maximize — the paper's rule as PyTorch implements it.

Kingma & Ba, "Adam: A Method for Stochastic Optimization" (arXiv:1412.6980), Algorithm 1, with
ε added to the bias-corrected √v̂ (PyTorch since pytorch/pytorch#22628). Weight decay is L2: it
is added to the (sign-corrected) gradient. AMSGrad keeps the maximum of the *raw* second moment
and bias-corrects it afterwards (``torch.optim.Adam(amsgrad=True)``, pytorch/pytorch#142323).

The Adam core here is shared with AdamW (``adamw.py``), which swaps the L2 line for decoupled
decay; the variants of the core (:data:`CORE_VARIANTS`) therefore apply to both specs.
"""

from __future__ import annotations

import sympy as sp

from .cases import CaseBuilder, HyperparameterChange, long_horizon, resumed_at_large_t
from .keras_conventions import KERAS_SOURCES, keras_conventions
from .proofs import ClosedForm
from .rule import Assign, Hyperparameter, Rule, StateVar, Variant, g, t, theta
from .spec import Implementation, Spec
from .step_scope import global_counter

lr = sp.Symbol("gamma", positive=True)  # γ
beta1 = sp.Symbol("beta_1", positive=True)  # β₁
beta2 = sp.Symbol("beta_2", positive=True)  # β₂
eps = sp.Symbol("epsilon", positive=True)  # ε
lam = sp.Symbol("lambda", nonnegative=True)  # λ
amsgrad = sp.Symbol("amsgrad")
maximize = sp.Symbol("maximize")

m = sp.Symbol("m", real=True)  # first moment
v = sp.Symbol("v", nonnegative=True)  # second moment
v_max = sp.Symbol("v_max", nonnegative=True)  # AMSGrad's running maximum
m_hat = sp.Symbol(r"\hat{m}", real=True)
v_hat = sp.Symbol(r"\hat{v}", nonnegative=True)

# The second moment the update uses: AMSGrad's maximum, or v itself.
v_used = sp.Piecewise((v_max, amsgrad), (v, True))


def hyperparameters(weight_decay_default: float, weight_decay_doc: str) -> tuple[Hyperparameter, ...]:
    return (
        Hyperparameter("lr", lr, 1e-3, doc="learning rate γ"),
        Hyperparameter("betas", (beta1, beta2), (0.9, 0.999), doc="decay rates (β₁, β₂) of the moments"),
        Hyperparameter("eps", eps, 1e-8, doc="ε added to the denominator"),
        Hyperparameter("weight_decay", lam, weight_decay_default, neutral=0, doc=weight_decay_doc),
        Hyperparameter("amsgrad", amsgrad, False, neutral=False, boolean=True,
                       doc="normalise by the running maximum of the second moment"),
        Hyperparameter("maximize", maximize, False, neutral=False, boolean=True,
                       doc="ascend the objective instead of descending"),
    )


STATE = (
    StateVar("step", t, sp.Integer(0), "steps taken by this parameter", count=True),
    StateVar("exp_avg", m, sp.Integer(0), "first moment m (EMA of g)"),
    StateVar("exp_avg_sq", v, sp.Integer(0), "second moment v (EMA of g²)"),
    StateVar("max_exp_avg_sq", v_max, sp.Integer(0), "running maximum of v (AMSGrad)",
             kept_when=lambda hp: bool(hp["amsgrad"])),
)

# The lines after the gradient has been prepared: shared by Adam and AdamW.
CORE = (
    Assign("step", t, t + 1, "count the step"),
    Assign("first_moment", m, beta1 * m + (1 - beta1) * g, "EMA of the gradient"),
    Assign("second_moment", v, beta2 * v + (1 - beta2) * g**2, "EMA of the squared gradient"),
    Assign("amsgrad", v_max, sp.Piecewise((sp.Max(v_max, v), amsgrad), (v_max, True)),
           "AMSGrad: running maximum of the raw second moment"),
    Assign("bias_correction_m", m_hat, m / (1 - beta1**t), "bias-corrected first moment"),
    Assign("bias_correction_v", v_hat, v_used / (1 - beta2**t), "bias-corrected second moment"),
    Assign("update", theta, theta - lr * m_hat / (sp.sqrt(v_hat) + eps), "the Adam step"),
)

MAXIMIZE = Assign("maximize", g, sp.Piecewise((-g, maximize), (g, True)), "ascend if maximizing")

RULE = Rule(
    id="adam",
    title="Adam (PyTorch; L2 weight decay)",
    hyperparameters=hyperparameters(0, "L2 penalty λ (added to the gradient)"),
    state=STATE,
    body=(MAXIMIZE, Assign("weight_decay", g, g + lam * theta, "L2 weight decay"), *CORE),
)


# -- variants of the core (apply to Adam and AdamW) -----------------------------------------
bc1 = 1 - beta1**t
bc2 = 1 - beta2**t

def _eps_hat(rule: Rule) -> Rule:
    return rule.replace("update", theta - lr * sp.sqrt(bc2) / bc1 * m / (sp.sqrt(v_used) + eps))


def _keras(rule: Rule) -> Rule:
    """What ``keras.optimizers.Adam`` / ``AdamW`` compute: Keras's conventions
    (:mod:`.keras_conventions`: float32 learning rate, decoupled decay, the optimizer's step
    counter) around ε̂, ε added to the raw √v with the bias corrections in the step size."""
    return keras_conventions(_eps_hat(rule), lr, lam)


CORE_VARIANTS = (
    Variant(
        id="adam.eps_hat",
        title="ε̂ (epsilon hat): bias correction folded into the step size",
        summary="θ ← θ − γ·√(1−β₂ᵗ)/(1−β₁ᵗ) · m/(√v + ε): ε is added to the raw √v, "
        "i.e. ε̂ = ε·√(1−β₂ᵗ) in the paper's form",
        who="TensorFlow 1 / Keras 2 and 3 (ε = 1e-7), Hugging Face AdamW, PyTorch before 1.3, official RAdam",
        sources=("tensorflow/tensorflow#35102", "keras-team/keras#17391", "pytorch/pytorch#41477",
                 "arXiv:1412.6980 (sec. 2, last paragraph)"),
        delta=lambda r: _eps_hat(r),
    ),
    Variant(
        id="adam.eps_inside_sqrt",
        title="ε inside the square root",
        summary="θ ← θ − γ·m̂/√(v̂ + ε)",
        who="optax (eps_root), apex legacy FusedAdam, DeepSpeed 1-bit Adam (eps_inside_sqrt), old Flux.jl",
        sources=("optax scale_by_adam(eps_root)", "FluxML/Flux.jl#448"),
        delta=lambda r: r.replace("update", theta - lr * m_hat / sp.sqrt(v_hat + eps)),
    ),
    Variant(
        id="adam.uncorrected_second_moment",
        title="second moment not bias-corrected",
        summary="θ ← θ − γ·m̂/(√v + ε): only m is bias-corrected",
        who="deep-learning specialization course solutions",
        sources=("Kulbear/deep-learning-coursera#30",),
        delta=lambda r: r.replace("bias_correction_v", v_used),
    ),
    Variant(
        id="adam.no_bias_correction",
        title="no bias correction",
        summary="θ ← θ − γ·m/(√v + ε)",
        who="Hugging Face AdamW(correct_bias=False), old MLX",
        sources=("ml-explore/mlx#1640",),
        delta=lambda r: r.replace("bias_correction_m", m).replace("bias_correction_v", v_used),
    ),
    Variant(
        id="adam.bias_correction_off_by_one",
        title="bias correction with t + 1",
        summary="m̂ = m/(1 − β₁ᵗ⁺¹), v̂ = v/(1 − β₂ᵗ⁺¹): the step counter read before its increment",
        who="cs231n assignment code, DL4J",
        sources=("cs231n/cs231n.github.io#179",),
        delta=lambda r: r.replace("bias_correction_m", m / (1 - beta1 ** (t + 1))).replace(
            "bias_correction_v", v_used / (1 - beta2 ** (t + 1))
        ),
    ),
    Variant(
        id="adam.amsgrad_max_of_vhat",
        title="AMSGrad over the bias-corrected second moment",
        summary="v̂_max ← max(v̂_max, v/(1 − β₂ᵗ)); θ ← θ − γ·m̂/(√v̂_max + ε)",
        who="optax amsgrad",
        sources=("google-deepmind/optax#1389", "pytorch/pytorch#142323"),
        delta=lambda r: r.replace(
            "amsgrad", sp.Piecewise((sp.Max(v_max, v / bc2), amsgrad), (v_max, True))
        ).replace("bias_correction_v", sp.Piecewise((v_max, amsgrad), (v / bc2, True))),
    ),
    Variant(
        id="adam.amsgrad_no_bias_correction",
        title="AMSGrad as in the paper: the maximum is not bias-corrected",
        summary="v_max ← max(v_max, v); θ ← θ − γ·m̂/(√v_max + ε) (without AMSGrad: as the spec)",
        who="Reddi et al. 2018, Algorithm 2",
        sources=("arXiv:1904.09237",),
        delta=lambda r: r.replace("bias_correction_v", sp.Piecewise((v_max, amsgrad), (v / bc2, True))),
    ),
    Variant(
        id="adam.eps_floor",
        title="ε as a floor of the denominator",
        summary="θ ← θ − γ·m̂/max(√v̂, ε) instead of γ·m̂/(√v̂ + ε)",
        who="pytorch_optimizer GrokFastAdamW (the floor ADOPT uses, on Adam's √v̂)",
        sources=("pytorch_optimizer/optimizer/grokfast.py GrokFastAdamW._step_per_param "
                 "(exp_avg_sq.sqrt().div_(bias_correction2_sq).clamp_(min=group['eps']))",),
        delta=lambda r: r.replace("update", theta - lr * m_hat / sp.Max(sp.sqrt(v_hat), eps)),
    ),
    Variant(
        id="adam.keras",
        title="Keras 3 Adam / AdamW: ε̂, one step counter, a float32 learning rate, decoupled decay",
        summary="θ ← θ − fl₃₂(γ)·√(1−β₂ᵗ)/(1−β₁ᵗ) · m/(√v + ε) with t = optimizer.iterations + 1 (every "
        "apply counts, whatever the variable), the learning rate rounded to float32 for float64 "
        "variables, and weight_decay always decoupled: θ ← θ·fl₃₂(1 − fl₃₂(fl₃₂(λ)·fl₃₂(γ))) before the update "
        "(the torch backend's float32 factor)",
        who="keras.optimizers.Adam and AdamW (Keras 3, KERAS_BACKEND=torch as any other)",
        sources=("keras/src/optimizers/adam.py Adam.update_step (local_step = iterations + 1; "
                 "alpha = lr * sqrt(1 - beta_2_power) / (1 - beta_1_power); m * alpha / (sqrt(v) + epsilon))",
                 *KERAS_SOURCES),
        delta=_keras,
        bundle=True,
    ),
    global_counter(
        who="Keras 3 Adam and AdamW (optimizer.iterations); pytorch_optimizer AdamW (group['step'])",
        sources=("keras/src/optimizers/adam.py Adam.update_step (local_step = iterations + 1)",
                 "keras/src/optimizers/base_optimizer.py BaseOptimizer.apply (iterations.assign_add(1))",
                 "pytorch_optimizer/optimizer/adamw.py AdamW.step (group['step'] += 1)"),
    ),
)

VARIANTS = CORE_VARIANTS + (
    Variant(
        id="adam.decoupled_decay",
        title="decoupled weight decay where L2 was asked for",
        summary="θ ← θ·(1 − γλ) before the step instead of g ← g + λθ",
        who="Adam(decoupled_weight_decay=True) / AdamW passed off as Adam",
        sources=("arXiv:1711.05101", "pytorch/pytorch#3740"),
        delta=lambda r: r.remove("weight_decay").insert_before(
            "step", Assign("decay", theta, theta * (1 - lr * lam), "decoupled weight decay")
        ),
    ),
)


# -- closed forms ---------------------------------------------------------------------------
g0, theta0 = sp.symbols("g_0 theta_0", real=True)
g_nz = sp.Symbol("g_0", positive=True)
_constant = {lam: 0, maximize: False, amsgrad: False, g: g0}

CLOSED_FORMS = (
    ClosedForm(
        name="moments_constant_gradient",
        statement="With a constant gradient g: m_t = g·(1 − β₁ᵗ) and v_t = g²·(1 − β₂ᵗ), "
        "so m̂_t = g and v̂_t = g² exactly.",
        rule=RULE,
        given=_constant,
        closed={m: g0 * (1 - beta1**t), v: g0**2 * (1 - beta2**t), m_hat: g0, v_hat: g0**2},
    ),
    ClosedForm(
        name="parameter_constant_gradient",
        statement="With a constant gradient g: θ_t = θ₀ − t·γ·g/(|g| + ε).",
        rule=RULE,
        given=_constant,
        closed={
            m: g0 * (1 - beta1**t),
            v: g0**2 * (1 - beta2**t),
            theta: theta0 - t * lr * g0 / (sp.Abs(g0) + eps),
        },
        initial={theta: theta0},
    ),
    ClosedForm(
        name="amsgrad_inactive_under_constant_gradient",
        statement="With a constant gradient g ≠ 0, v_t increases, so AMSGrad's maximum equals v_t and "
        "the trajectory is the same as without AMSGrad.",
        rule=RULE,
        given={lam: 0, maximize: False, amsgrad: True, g: g_nz, beta2: sp.Rational(999, 1000)},
        closed={
            m: g_nz * (1 - beta1**t),
            v: g_nz**2 * (1 - sp.Rational(999, 1000) ** t),
            v_max: g_nz**2 * (1 - sp.Rational(999, 1000) ** t),
            theta: theta0 - t * lr * g_nz / (g_nz + eps),
        },
        initial={theta: theta0},
    ),
)


# -- cases ----------------------------------------------------------------------------------
def _lr(group: int, value: str) -> HyperparameterChange:
    return HyperparameterChange(group, "lr", value)


def cases(prefix: str, decay: str) -> tuple[CaseBuilder, ...]:
    """The case set shared by Adam and AdamW; ``decay`` is the weight decay of the decay cases."""
    return (
        CaseBuilder(
            id=f"{prefix}/defaults",
            title="torch's defaults",
            purpose="bias correction at small t: off-by-one and missing corrections are O(1) here",
            hyperparameters={"lr": "0.001"},
            grad_exponents=[0] * 5,
            seed=201,
        ),
        CaseBuilder(
            id=f"{prefix}/large_eps",
            title="large ε",
            purpose="where ε goes is an O(ε) difference: with ε = 0.5 and |g| ≈ 1 it is O(1)",
            hyperparameters={"lr": "0.125", "eps": "0.5"},
            grad_exponents=[0] * 4,
            seed=202,
        ),
        CaseBuilder(
            id=f"{prefix}/large_eps_small_beta2",
            title="large ε, fast second moment",
            purpose="ε placement with β₂ = 0.75, so bias corrections stay far from 1 for several steps",
            hyperparameters={"lr": "0.0625", "eps": "0.25", "betas": ["0.5", "0.75"]},
            grad_exponents=[1, 0, -1, 0, 1],
            seed=203,
        ),
        CaseBuilder(
            id=f"{prefix}/amsgrad_shrinking_gradients",
            title="AMSGrad with shrinking gradients",
            purpose="the second moment falls, so which maximum is kept (raw v or v̂) matters",
            hyperparameters={"lr": "0.125", "amsgrad": True, "betas": ["0.875", "0.9375"]},
            grad_exponents=[2, 2, -2, -3, -3, -4],
            seed=204,
        ),
        CaseBuilder(
            id=f"{prefix}/weight_decay_maximize",
            title="weight decay while maximizing",
            purpose="how weight decay couples to the step, after the sign flip of maximize",
            hyperparameters={"lr": "0.25", "weight_decay": decay, "maximize": True},
            grad_exponents=[0] * 5,
            seed=205,
            param_exponent=2,
        ),
        CaseBuilder(
            id=f"{prefix}/weight_decay_lr_schedule",
            title="weight decay with the learning rate changed between steps",
            purpose="weight decay and the step follow the current learning rate",
            hyperparameters={"lr": "0.125", "weight_decay": decay},
            grad_exponents=[0] * 6,
            seed=206,
            param_exponent=1,
            changes={3: [_lr(0, "0.5")], 5: [_lr(0, "0.015625")]},
        ),
        CaseBuilder(
            id=f"{prefix}/groups_and_missing_grads",
            title="two param groups, and params without a gradient on some steps",
            purpose="per-group settings; a param without a grad keeps its value, its state and its step count",
            hyperparameters={"lr": "0.0625"},
            grad_exponents=[0] * 6,
            seed=207,
            groups=[(("scalar", "vector"), {}),
                    (("matrix",), {"lr": "0.25", "amsgrad": True, "betas": ["0.75", "0.875"], "eps": "0.125"})],
            no_grad={"scalar": [1, 2], "vector": [4], "matrix": [3, 4]},
        ),
        CaseBuilder(
            id=f"{prefix}/resume",
            title="state_dict round trip in mid-trajectory",
            purpose="a fresh instance loaded from state_dict continues exactly (step counts included)",
            hyperparameters={"lr": "0.125", "amsgrad": True, "weight_decay": decay},
            grad_exponents=[1, 1, -1, 0, -2, 0],
            seed=208,
            reload_before=[4],
        ),
        resumed_at_large_t(prefix, {"lr": "0.001"}, 210,
                           "the step count continues from 10⁶ (exact in torch's float32 counter); "
                           "β₂ᵗ far below every dtype's resolution",
                           {"exp_avg": "signed", "exp_avg_sq": "positive"}),
        long_horizon(prefix, {"lr": "0.001"}, 209,
                     "bias corrections at t = 10³: 1 − β₂ᵗ ≈ 0.63, so an off-by-one or a missing "
                     "correction of v still shows; no drift of the step counter"),
    )


SPEC = Spec(
    id="adam",
    title="Adam",
    torch_class="torch.optim.Adam",
    rule=RULE,
    variants=VARIANTS,
    cases=cases("adam", "0.25"),
    closed_forms=CLOSED_FORMS,
    implementations=(
        Implementation("optax", "optax.adam", note="optax/_src/alias.py adam"),
        Implementation("keras", "keras.optimizers.Adam", note="keras/src/optimizers/adam.py Adam"),
    ),
)
