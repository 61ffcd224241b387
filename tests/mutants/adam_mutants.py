"""Adam and AdamW as ``torch.optim`` computes them, and one mutant per catalogued variant.

:class:`Adam` is a readable single-tensor (for-loop) transcription of torch's
``_single_tensor_adam`` (capturable and differentiable off): the same state (``step`` as a float32
0-d tensor, ``exp_avg``, ``exp_avg_sq``, ``max_exp_avg_sq`` only with AMSGrad), the same
operations in the same order, hyperparameters read from ``group[...]`` at every step.
:class:`AdamW` differs only in its weight decay (decoupled, θ ← θ·(1 − γλ)).

The variants of the Adam core (``derivations/adam.py``, ``CORE_VARIANTS``) apply to both specs,
so each is written once as a mixin overriding the one method holding its formula, and mixed into
both classes. The weight-decay variants override :meth:`Adam._weight_decay` or wrap the update.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

from .base import GlobalStepCounter, PerParameterOptimizer, keras_decay


class Adam(PerParameterOptimizer):
    """The spec: PyTorch's Adam with L2 weight decay, AMSGrad and maximize."""

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0,
                 amsgrad=False, maximize=False):
        defaults = dict(lr=lr, betas=betas, eps=eps, weight_decay=weight_decay, amsgrad=amsgrad,
                        maximize=maximize)
        super().__init__(params, defaults)

    def _state(self, p: Tensor, group: dict) -> dict:
        state = self.state[p]
        if len(state) == 0:
            state["step"] = torch.tensor(0.0, dtype=torch.float32)
            state["exp_avg"] = torch.zeros_like(p, memory_format=torch.preserve_format)
            state["exp_avg_sq"] = torch.zeros_like(p, memory_format=torch.preserve_format)
            if group["amsgrad"]:
                state["max_exp_avg_sq"] = torch.zeros_like(p, memory_format=torch.preserve_format)
        return state

    def _update(self, p: Tensor, grad: Tensor, group: dict, state: dict) -> None:
        beta1, beta2 = group["betas"]
        if group["maximize"]:
            grad = -grad
        state["step"] += 1
        grad = self._weight_decay(p, grad, group)
        exp_avg, exp_avg_sq = state["exp_avg"], state["exp_avg_sq"]
        exp_avg.lerp_(grad, 1 - beta1)
        exp_avg_sq.mul_(beta2).addcmul_(grad, grad, value=1 - beta2)
        bc1, bc2 = self._bias_corrections(state["step"].item(), beta1, beta2)
        v, bc2 = self._second_moment(state, group, bc2)
        self._descend(p, exp_avg, v, group["lr"], bc1, bc2, group["eps"])

    def _weight_decay(self, p: Tensor, grad: Tensor, group: dict) -> Tensor:
        """L2: g ← g + λ·θ."""
        if group["weight_decay"] != 0:
            grad = grad.add(p, alpha=group["weight_decay"])
        return grad

    def _bias_corrections(self, step: float, beta1: float, beta2: float) -> tuple[float, float]:
        """1 − β₁ᵗ and 1 − β₂ᵗ."""
        return 1 - beta1**step, 1 - beta2**step

    def _second_moment(self, state: dict, group: dict, bc2: float) -> tuple[Tensor, float]:
        """The second moment the update uses, and the bias correction it is still divided by.

        AMSGrad keeps the running maximum of the raw v and bias-corrects it afterwards.
        """
        if group["amsgrad"]:
            v_max = state["max_exp_avg_sq"]
            torch.maximum(v_max, state["exp_avg_sq"], out=v_max)
            return v_max, bc2
        return state["exp_avg_sq"], bc2

    def _descend(self, p: Tensor, m: Tensor, v: Tensor, lr: float, bc1: float,
                 bc2: float, eps: float) -> None:
        """θ ← θ − γ·m̂/(√v̂ + ε), computed as torch does: (√v/√bc₂ + ε), step size γ/bc₁."""
        denom = (v.sqrt() / bc2**0.5).add_(eps)
        p.addcdiv_(m, denom, value=-lr / bc1)


class AdamW(Adam):
    """The spec: PyTorch's AdamW, decoupled weight decay θ ← θ·(1 − γλ) before the step."""

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=1e-2,
                 amsgrad=False, maximize=False):
        super().__init__(params, lr=lr, betas=betas, eps=eps, weight_decay=weight_decay,
                         amsgrad=amsgrad, maximize=maximize)

    def _weight_decay(self, p, grad, group):
        """Decoupled: θ ← θ·(1 − γλ); the gradient is untouched."""
        if group["weight_decay"] != 0:
            p.mul_(1 - group["lr"] * group["weight_decay"])
        return grad


# -- variants of the Adam core (mixins: each is mixed into Adam and into AdamW) -------------------


class EpsHat:
    """adam.eps_hat: θ ← θ − γ·√(1−β₂ᵗ)/(1−β₁ᵗ) · m/(√v + ε)."""

    def _descend(self, p, m, v, lr, bc1, bc2, eps):
        denom = v.sqrt().add_(eps)
        p.addcdiv_(m, denom, value=-lr * bc2**0.5 / bc1)


class EpsInsideSqrt:
    """adam.eps_inside_sqrt: θ ← θ − γ·m̂/√(v̂ + ε)."""

    def _descend(self, p, m, v, lr, bc1, bc2, eps):
        denom = (v / bc2).add_(eps).sqrt_()
        p.addcdiv_(m, denom, value=-lr / bc1)


class UncorrectedSecondMoment:
    """adam.uncorrected_second_moment: θ ← θ − γ·m̂/(√v + ε)."""

    def _bias_corrections(self, step, beta1, beta2):
        return 1 - beta1**step, 1.0


class NoBiasCorrection:
    """adam.no_bias_correction: θ ← θ − γ·m/(√v + ε)."""

    def _bias_corrections(self, step, beta1, beta2):
        return 1.0, 1.0


class BiasCorrectionOffByOne:
    """adam.bias_correction_off_by_one: m̂ = m/(1 − β₁ᵗ⁺¹), v̂ = v/(1 − β₂ᵗ⁺¹)."""

    def _bias_corrections(self, step, beta1, beta2):
        return 1 - beta1 ** (step + 1), 1 - beta2 ** (step + 1)


class AmsgradMaxOfVhat:
    """adam.amsgrad_max_of_vhat: v̂_max ← max(v̂_max, v/(1 − β₂ᵗ)); θ ← θ − γ·m̂/(√v̂_max + ε)."""

    def _second_moment(self, state, group, bc2):
        if not group["amsgrad"]:
            return super()._second_moment(state, group, bc2)
        v_hat_max = state["max_exp_avg_sq"]
        torch.maximum(v_hat_max, state["exp_avg_sq"] / bc2, out=v_hat_max)
        return v_hat_max, 1.0


class AmsgradNoBiasCorrection:
    """adam.amsgrad_no_bias_correction: θ ← θ − γ·m̂/(√v_max + ε) (without AMSGrad: the spec)."""

    def _second_moment(self, state, group, bc2):
        v, bc2 = super()._second_moment(state, group, bc2)
        return v, 1.0 if group["amsgrad"] else bc2


class EpsFloor:
    """adam.eps_floor: θ ← θ − γ·m̂/max(√v̂, ε)."""

    def _descend(self, p, m, v, lr, bc1, bc2, eps):
        denom = (v.sqrt() / bc2**0.5).clamp_(min=eps)
        p.addcdiv_(m, denom, value=-lr / bc1)


class AdamEpsHat(EpsHat, Adam):
    pass


class AdamEpsInsideSqrt(EpsInsideSqrt, Adam):
    pass


class AdamUncorrectedSecondMoment(UncorrectedSecondMoment, Adam):
    pass


class AdamNoBiasCorrection(NoBiasCorrection, Adam):
    pass


class AdamBiasCorrectionOffByOne(BiasCorrectionOffByOne, Adam):
    pass


class AdamAmsgradMaxOfVhat(AmsgradMaxOfVhat, Adam):
    pass


class AdamAmsgradNoBiasCorrection(AmsgradNoBiasCorrection, Adam):
    pass


class AdamEpsFloor(EpsFloor, Adam):
    pass


class AdamGlobalStepCounter(GlobalStepCounter, Adam):
    pass


class AdamWEpsHat(EpsHat, AdamW):
    pass


class AdamWEpsInsideSqrt(EpsInsideSqrt, AdamW):
    pass


class AdamWUncorrectedSecondMoment(UncorrectedSecondMoment, AdamW):
    pass


class AdamWNoBiasCorrection(NoBiasCorrection, AdamW):
    pass


class AdamWBiasCorrectionOffByOne(BiasCorrectionOffByOne, AdamW):
    pass


class AdamWAmsgradMaxOfVhat(AmsgradMaxOfVhat, AdamW):
    pass


class AdamWAmsgradNoBiasCorrection(AmsgradNoBiasCorrection, AdamW):
    pass


class AdamWEpsFloor(EpsFloor, AdamW):
    pass


class AdamWGlobalStepCounter(GlobalStepCounter, AdamW):
    pass


class Keras(GlobalStepCounter, EpsHat):
    """adam.keras: ε̂, the optimizer's step counter, the learning rate held in float32, and (Adam's
    weight_decay included) decoupled decay θ ← θ·(1 − fl₃₂(γ)·λ)."""

    def _update(self, p, grad, group, state):
        lr32 = float(np.float32(group["lr"]))
        super()._update(p, grad, {**group, "lr": lr32}, state)

    def _weight_decay(self, p, grad, group):
        keras_decay(p, group["lr"], group["weight_decay"])
        return grad


class AdamKeras(Keras, Adam):
    pass


class AdamWKeras(Keras, AdamW):
    pass


class AdamWNAdamW(AdamW):
    """adamw.nadamw: m̂ = (β₁·m + (1 − β₁)·g)/(1 − β₁ᵗ), m already updated (timm's NAdamW)."""

    def _update(self, p, grad, group, state):
        # the (sign-corrected) gradient and β₁ of this update, for the look-ahead in _descend
        self._lookahead = (grad.neg() if group["maximize"] else grad, group["betas"][0])
        super()._update(p, grad, group, state)

    def _descend(self, p, m, v, lr, bc1, bc2, eps):
        grad, beta1 = self._lookahead
        super()._descend(p, m.lerp(grad, 1 - beta1), v, lr, bc1, bc2, eps)


# -- weight-decay variants ------------------------------------------------------------------------


class AdamDecoupledDecay(Adam):
    """adam.decoupled_decay: θ ← θ·(1 − γλ) before the step instead of g ← g + λθ."""

    _weight_decay = AdamW._weight_decay


class AdamWL2Decay(AdamW):
    """adamw.l2_decay: g ← g + λθ instead of θ ← θ·(1 − γλ)."""

    _weight_decay = Adam._weight_decay


class AdamWDecayNotScaledByLr(AdamW):
    """adamw.decay_not_scaled_by_lr: θ ← θ·(1 − λ) instead of θ·(1 − γλ)."""

    def _weight_decay(self, p, grad, group):
        if group["weight_decay"] != 0:
            p.mul_(1 - group["weight_decay"])
        return grad


class AdamWDecayAfterStep(AdamW):
    """adamw.decay_after_step: θ ← (θ − step)·(1 − γλ) instead of θ·(1 − γλ) − step."""

    def _update(self, p, grad, group, state):
        super()._update(p, grad, {**group, "weight_decay": 0.0}, state)
        if group["weight_decay"] != 0:
            p.mul_(1 - group["lr"] * group["weight_decay"])


CONTROLS: dict[str, type[torch.optim.Optimizer]] = {"adam": Adam, "adamw": AdamW}

ADAM_MUTANTS: dict[str, type[torch.optim.Optimizer]] = {
    "adam.eps_hat": AdamEpsHat,
    "adam.eps_inside_sqrt": AdamEpsInsideSqrt,
    "adam.uncorrected_second_moment": AdamUncorrectedSecondMoment,
    "adam.no_bias_correction": AdamNoBiasCorrection,
    "adam.bias_correction_off_by_one": AdamBiasCorrectionOffByOne,
    "adam.amsgrad_max_of_vhat": AdamAmsgradMaxOfVhat,
    "adam.amsgrad_no_bias_correction": AdamAmsgradNoBiasCorrection,
    "adam.decoupled_decay": AdamDecoupledDecay,
    "adam.eps_floor": AdamEpsFloor,
    "step.global_counter": AdamGlobalStepCounter,
    "adam.keras": AdamKeras,
}

ADAMW_MUTANTS: dict[str, type[torch.optim.Optimizer]] = {
    "adam.eps_hat": AdamWEpsHat,
    "adam.eps_inside_sqrt": AdamWEpsInsideSqrt,
    "adam.uncorrected_second_moment": AdamWUncorrectedSecondMoment,
    "adam.no_bias_correction": AdamWNoBiasCorrection,
    "adam.bias_correction_off_by_one": AdamWBiasCorrectionOffByOne,
    "adam.amsgrad_max_of_vhat": AdamWAmsgradMaxOfVhat,
    "adam.amsgrad_no_bias_correction": AdamWAmsgradNoBiasCorrection,
    "adamw.l2_decay": AdamWL2Decay,
    "adamw.decay_not_scaled_by_lr": AdamWDecayNotScaledByLr,
    "adamw.decay_after_step": AdamWDecayAfterStep,
    "adamw.nadamw": AdamWNAdamW,
    "adam.eps_floor": AdamWEpsFloor,
    "step.global_counter": AdamWGlobalStepCounter,
    "adam.keras": AdamWKeras,
}

MUTANTS: dict[tuple[str, str], type[torch.optim.Optimizer]] = {
    **{("adam", vid): cls for vid, cls in ADAM_MUTANTS.items()},
    **{("adamw", vid): cls for vid, cls in ADAMW_MUTANTS.items()},
}


# -- combinations, the precision axis, and a deviation no variant explains -------------------------


class AdamEpsHatDecoupledDecay(EpsHat, AdamDecoupledDecay):
    """adam.eps_hat + adam.decoupled_decay: Hugging Face's AdamW (ε̂, decoupled decay) passed off as
    Adam."""


class AdamFloat32Internal(Adam):
    """precision.float32_internal: the update computed in float32 for any param dtype (grad, param
    and state cast to float32, the result written back), as timm's RAdamLegacy does."""

    def _state(self, p, group):
        state = super()._state(p, group)
        for key, value in state.items():
            if key != "step" and value.is_floating_point():
                state[key] = value.float()  # float32 state (a reloaded one comes back in p's dtype)
        return state

    def _update(self, p, grad, group, state):
        p32 = p.float()
        super()._update(p32, grad.float(), group, state)
        p.copy_(p32)


class AdamUndampedFirstMoment(Adam):
    """No catalogued variant: m ← β₁·m + g (the first moment without the (1 − β₁) factor), so
    exp_avg leaves the spec at step 1 while exp_avg_sq stays on it."""

    def _update(self, p, grad, group, state):
        beta1, _ = group["betas"]
        before = state["exp_avg"].clone()
        super()._update(p, grad, {**group, "lr": 0.0}, state)  # every moment as the spec, θ untouched
        g = -grad if group["maximize"] else grad
        g = self._weight_decay(p, g, group)
        state["exp_avg"].copy_(before.mul(beta1).add_(g))
        bc1, bc2 = self._bias_corrections(state["step"].item(), beta1, group["betas"][1])
        v, bc2 = self._second_moment(state, group, bc2)
        self._descend(p, state["exp_avg"], v, group["lr"], bc1, bc2, group["eps"])


class AdamEpsHatDoubledAmsgrad(EpsHat, Adam):
    """adam.eps_hat, and with AMSGrad a made-up deviation no variant has: the running maximum of
    2·v (so only the AMSGrad cases are left unexplained, at the line computing max_exp_avg_sq)."""

    def _second_moment(self, state, group, bc2):
        if not group["amsgrad"]:
            return super()._second_moment(state, group, bc2)
        v_max = state["max_exp_avg_sq"]
        torch.maximum(v_max, state["exp_avg_sq"] * 2, out=v_max)
        return v_max, bc2


COMPOUND_MUTANTS: dict[tuple[str, str], type[torch.optim.Optimizer]] = {
    ("adam", "adam.eps_hat + adam.decoupled_decay"): AdamEpsHatDecoupledDecay,
    ("adam", "precision.float32_internal"): AdamFloat32Internal,
}

# (spec, the rule line the localisation must name, the state variable that leaves the spec first)
LOCALISED: dict[tuple[str, str, str], type[torch.optim.Optimizer]] = {
    ("adam", "first_moment", "exp_avg"): AdamUndampedFirstMoment,
}

# (spec, what explains a share of the failing runs, rule line and state localising what remains)
PARTIAL: dict[tuple[str, str, str, str], type[torch.optim.Optimizer]] = {
    ("adam", "adam.eps_hat", "amsgrad", "max_exp_avg_sq"): AdamEpsHatDoubledAmsgrad,
}
