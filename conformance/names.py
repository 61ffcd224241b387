"""Argument names: the spec's hyperparameters (torch's names, or for a spec torch has no class
for, the names of the implementation the spec follows) mapped onto a candidate's signature.

Goldens name hyperparameters as torch does (``lr``, ``betas``, ``eps``, ``weight_decay``). Other
ecosystems spell them differently; a candidate whose signature uses one of the spellings below
needs no factory: the mapping is read from its signature.

========================  ================================================================
torch name                other spellings understood (first match in the signature wins)
========================  ================================================================
``lr``                    ``learning_rate`` (optax, Keras)
``betas`` = (β₁, β₂)      ``b1``, ``b2`` (optax); ``beta_1``, ``beta_2`` (Keras); ``beta1``, ``beta2``
``eps``                   ``epsilon`` (Keras, several third-party libraries)
``weight_decay``          — (the same everywhere it exists)
``decouple``              ``weight_decouple`` (pytorch-optimizer; spec prodigy)
``use_bias_correction``   ``bias_correction`` (pytorch-optimizer; spec prodigy)
``d0``, ``d_coef``        ``estim_lr0``, ``estim_lr_coef`` (optax.contrib; spec prodigy)
``normalize_grads``       ``normalize_gradient`` (pytorch-optimizer; spec soap)
``trust_coefficient``     ``trust_coeff`` (timm; spec lars)
``momentum``, ``nesterov``, ``amsgrad``, ``dampening``, ``maximize``: the same everywhere
========================  ================================================================

A name that means different things in different libraries is never guessed: ``decay`` is learning-
rate decay in old Keras and weight decay elsewhere. A candidate taking ``decay`` must say what it
is, with ``--optimizer-args='{"decay": "weight_decay"}'`` or a class attribute
``conformance_args = {"decay": "weight_decay"}`` (candidate's name → torch's name); the same
declaration maps any other name.
"""

from __future__ import annotations

import inspect
from collections.abc import Mapping
from dataclasses import dataclass

# torch name -> spellings in other ecosystems; a tuple-valued torch setting maps to several names
SPELLINGS: dict[str, tuple[tuple[str, ...], ...]] = {
    "lr": (("learning_rate",),),
    "betas": (("b1", "b2"), ("beta_1", "beta_2"), ("beta1", "beta2")),
    "eps": (("epsilon",),),
    # the settings of specs torch has no class for, as the libraries that have one spell them
    "decouple": (("weight_decouple",),),
    "use_bias_correction": (("bias_correction",),),
    "d0": (("estim_lr0",),),
    "d_coef": (("estim_lr_coef",),),
    "normalize_grads": (("normalize_gradient",),),
    "trust_coefficient": (("trust_coeff",),),
}
# names whose meaning differs between libraries: never mapped without a declaration
AMBIGUOUS: dict[str, str] = {
    "decay": "learning-rate decay in some libraries (old Keras), weight decay in others",
}


class AmbiguousName(ValueError):
    """A candidate takes a name that means different things in different libraries."""


@dataclass(frozen=True)
class NameMap:
    """torch name -> the candidate's name(s); a tuple for a tuple-valued setting (betas)."""

    names: Mapping[str, tuple[str, ...]]
    # torch names the candidate does not name but would receive through its **kwargs
    via_kwargs: frozenset[str] = frozenset()

    def maps(self, torch_name: str) -> bool:
        return torch_name in self.names

    def translate(self, settings: Mapping[str, object]) -> dict[str, object]:
        """The candidate's keyword arguments for torch-named ``settings`` it accepts."""
        out: dict[str, object] = {}
        for name, value in settings.items():
            target = self.names.get(name)
            if target is None:
                continue
            if len(target) == 1:
                out[target[0]] = value
            else:  # a tuple-valued setting spread over several arguments (betas -> b1, b2)
                out.update(zip(target, value, strict=True))
        return out

    def renamed(self) -> dict[str, str]:
        """The candidate's names that differ from torch's (for the report header)."""
        return {t: ",".join(c) for t, c in self.names.items() if c != (t,)}


def explicit_parameters(target) -> tuple[set[str], bool] | None:
    """(named parameters, takes **kwargs) of a callable's signature; None if it has none."""
    try:
        params = inspect.signature(target).parameters
    except (TypeError, ValueError):
        return None
    named = {n for n, p in params.items() if p.kind not in (p.VAR_KEYWORD, p.VAR_POSITIONAL)}
    return named, any(p.kind is p.VAR_KEYWORD for p in params.values())


def name_map(parameters: tuple[set[str], bool] | None, torch_names: list[str],
             declared: Mapping[str, str] | None = None) -> NameMap | None:
    """How a candidate whose constructor takes ``parameters`` (:func:`explicit_parameters`: its
    named parameters, and whether it takes **kwargs) spells each of ``torch_names``, given the
    mapping it declares (its name -> torch's); None when its signature cannot be read (every name
    is then passed as torch spells it)."""
    if parameters is None:
        return None
    named, var_kw = parameters
    declared = dict(declared or {})  # candidate name -> torch
    unknown = [c for c in declared if c not in named and not var_kw]
    if unknown:
        raise AmbiguousName(f"the declared argument mapping names {', '.join(map(repr, unknown))}, which "
                            f"the candidate does not take")
    for cand_name, why in AMBIGUOUS.items():
        if cand_name in named and cand_name not in declared:
            raise AmbiguousName(
                f"the candidate takes {cand_name!r}, which is {why}: say what it is, e.g. "
                f"--optimizer-args='{{\"{cand_name}\": \"weight_decay\"}}' (or a class attribute "
                f"conformance_args = {{\"{cand_name}\": \"weight_decay\"}})")
    by_torch = {t: c for c, t in declared.items()}
    names: dict[str, tuple[str, ...]] = {}
    via: set[str] = set()
    for t in torch_names:
        if t in by_torch:
            names[t] = (by_torch[t],)
        elif t in named:
            names[t] = (t,)
        else:
            spelled = next((s for s in SPELLINGS.get(t, ()) if all(x in named for x in s)), None)
            if spelled is not None:
                names[t] = spelled
            elif var_kw:
                names[t] = (t,)  # passed through **kwargs as torch spells it
                via.add(t)
    return NameMap(names, frozenset(via))
