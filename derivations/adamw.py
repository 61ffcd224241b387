"""AdamW: Adam with decoupled weight decay, θ ← θ·(1 − γλ) before the step — PyTorch's definition.

Loshchilov & Hutter, "Decoupled Weight Decay Regularization" (arXiv:1711.05101), with the decay
scaled by the learning rate γ as ``torch.optim.AdamW`` (and optax, Keras 3) do.
``torch.optim.Adam(decoupled_weight_decay=True)`` is this same spec.

The rule is Adam's (``adam.py``) with the L2 line replaced by the decoupled decay, so every
variant of the Adam core applies here too.
"""

from __future__ import annotations

import sympy as sp

from . import adam
from .adam import lam, lr
from .proofs import ClosedForm
from .rule import Assign, Rule, Variant, g, t, theta
from .spec import Implementation, Spec

DECAY = Assign("decay", theta, theta * (1 - lr * lam), "decoupled weight decay")

RULE = Rule(
    id="adamw",
    title="AdamW (PyTorch; decoupled weight decay)",
    hyperparameters=adam.hyperparameters(1e-2, "decoupled weight decay λ (θ ← θ·(1 − γλ))"),
    state=adam.STATE,
    body=(adam.MAXIMIZE, DECAY, *adam.CORE),
)

DECAY_VARIANTS = (
    Variant(
        id="adamw.l2_decay",
        title="L2 decay (added to the gradient) where decoupled decay was asked for",
        summary="g ← g + λθ instead of θ ← θ·(1 − γλ): Adam's weight_decay passed off as AdamW",
        who="torch.optim.Adam(weight_decay=λ) used as AdamW",
        sources=("arXiv:1711.05101", "pytorch/pytorch#3740"),
        delta=lambda r: r.remove("decay").insert_after(
            "maximize", Assign("weight_decay", g, g + lam * theta, "L2 weight decay")
        ),
    ),
    Variant(
        id="adamw.decay_not_scaled_by_lr",
        title="decay not scaled by the learning rate",
        summary="θ ← θ·(1 − λ) instead of θ·(1 − γλ)",
        who="TensorFlow Addons AdamW (weight_decay is absolute)",
        sources=("tensorflow/addons#2282",),
        delta=lambda r: r.replace("decay", theta * (1 - lam)),
    ),
    Variant(
        id="adamw.decay_after_step",
        title="decay applied after the Adam step",
        summary="θ ← (θ − step)·(1 − γλ) instead of θ·(1 − γλ) − step",
        who="Hugging Face transformers AdamW",
        sources=("huggingface/transformers#35504",),
        delta=lambda r: r.remove("decay").insert_after(
            "update", Assign("decay", theta, theta * (1 - lr * lam), "decoupled weight decay, late")
        ),
    ),
)

NESTEROV_VARIANTS = (
    Variant(
        id="adamw.nadamw",
        title="NAdamW: a one-step Nesterov look-ahead of the first moment",
        summary="m̂ = (β₁·m + (1 − β₁)·g)/(1 − β₁ᵗ) with m already updated (no momentum schedule μ_t, "
        "unlike torch's NAdam); the rest is AdamW",
        who="timm NAdamW (after the MLCommons AlgoPerf NAdamW baseline)",
        sources=("timm/optim/nadamw.py _single_tensor_nadamw (exp_avg = exp_avg.lerp(grad, 1 - beta1))",
                 "mlcommons/algorithmic-efficiency prize_qualification_baselines nadamw"),
        delta=lambda r: r.replace(
            "bias_correction_m", (adam.beta1 * adam.m + (1 - adam.beta1) * g) / (1 - adam.beta1**t)
        ),
    ),
)

VARIANTS = adam.CORE_VARIANTS + DECAY_VARIANTS + NESTEROV_VARIANTS

# -- closed forms ---------------------------------------------------------------------------
theta0 = sp.Symbol("theta_0", real=True)
_no_grad = {adam.maximize: False, adam.amsgrad: False, g: 0}

CLOSED_FORMS = (
    ClosedForm(
        name="decay_alone_is_geometric",
        statement="With a zero gradient the moments stay 0 and θ_t = θ₀·(1 − γλ)ᵗ.",
        rule=RULE,
        given=_no_grad,
        closed={adam.m: 0, adam.v: 0, theta: theta0 * (1 - lr * lam) ** t},
        initial={theta: theta0},
    ),
    ClosedForm(
        name="decay_is_independent_of_the_moments",
        statement="With a constant gradient g the moments are Adam's (m̂_t = g, v̂_t = g²) whatever λ: "
        "decoupled decay never enters the moments.",
        rule=RULE,
        given={adam.maximize: False, adam.amsgrad: False, g: adam.g0},
        closed={adam.m: adam.g0 * (1 - adam.beta1**t), adam.v: adam.g0**2 * (1 - adam.beta2**t),
                adam.m_hat: adam.g0, adam.v_hat: adam.g0**2},
    ),
)

SPEC = Spec(
    id="adamw",
    title="AdamW",
    torch_class="torch.optim.AdamW",
    rule=RULE,
    variants=VARIANTS,
    cases=adam.cases("adamw", "0.5"),
    closed_forms=CLOSED_FORMS,
    implementations=(
        Implementation("optax", "optax.adamw", note="optax/_src/alias.py adamw"),
        Implementation("keras", "keras.optimizers.AdamW", note="keras/src/optimizers/adamw.py AdamW"),
        Implementation("pytorch-optimizer", "pytorch_optimizer.AdamW", note="pytorch_optimizer/optimizer/adamw.py AdamW"),
        Implementation("pytorch-optimizer", "pytorch_optimizer.GrokFastAdamW", kwargs={"grokfast": False},
                       note="pytorch_optimizer/optimizer/grokfast.py GrokFastAdamW (grokfast=False: the "
                       "gradient filter off, AdamW remains)"),
        Implementation("timm", "timm.optim.nadamw.NAdamW",
                       note="timm/optim/nadamw.py NAdamW (AdamW with a Nesterov look-ahead)"),
    ),
)
