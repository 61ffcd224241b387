"""One feature per case: generated cases that turn a single optional feature on, alone.

A candidate may lack a feature (Keras- and optax-style code takes no ``weight_decay``, NumPy code
may have no ``state_dict``): the runner then skips every case that uses it. If the only cases with
a missing gradient, a scheduler's change or two param groups also set weight decay, such a
candidate silently loses that coverage too. So every *optional feature* of a spec (see
:func:`optional_features`) must be exercised by at least one case that uses no other optional
feature (the settings it acts through, :attr:`Hyperparameter.requires`, aside). The spec's own
cases (combinations included) come first; for each optional feature they leave uncovered alone,
:func:`feature_cases` adds one case built from the spec's first case (its shapes, gradients and
step count) with every optional setting at its neutral value, then that one feature turned on,
with the value the spec's own cases give it.
"""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import suppress
from dataclasses import replace

from .boundaries import boundary_cases
from .cases import CaseBuilder, CaseDesign, HyperparameterChange
from .spec import Spec

# Events a case may contain, that a candidate may not support (each is a feature label of cases.py).
EVENTS = ("grad_none", "hyperparameter_change", "param_groups", "state_dict_resume")


def optional_features(spec: Spec) -> tuple[str, ...]:
    """The features a candidate may lack: the events, and every setting with a neutral value
    (turning it on is a feature: ``weight_decay``, ``amsgrad``, ``momentum``, ...)."""
    return EVENTS + tuple(hp.name for hp in spec.rule.hyperparameters if hp.neutral is not None)


def case_features(spec: Spec, case: CaseDesign) -> frozenset[str]:
    """The case's features: its events and the settings that are off their neutral value."""
    out = set(case.features)
    for hp in spec.rule.hyperparameters:
        if hp.neutral is None:
            continue
        values = [gr.hyperparameters[hp.name] for gr in case.groups]
        values += [c.value for s in case.steps for c in s.changes if c.name == hp.name]
        if any(float(v) != float(hp.neutral) for v in values):
            out.add(hp.name)
    return frozenset(out)


def _requires(spec: Spec, feature: str) -> frozenset[str]:
    """The feature and what it acts through (transitively)."""
    out, todo = set(), [feature]
    while todo:
        f = todo.pop()
        if f in out:
            continue
        out.add(f)
        with suppress(KeyError):  # an event requires nothing
            todo.extend(spec.rule.hyperparameter(f).requires)
    return frozenset(out)


def covers_alone(spec: Spec, case: CaseDesign, feature: str) -> bool:
    """The case exercises ``feature`` and no other optional feature (but those it requires)."""
    features = case_features(spec, case) & set(optional_features(spec))
    return feature in features and features <= _requires(spec, feature)


def _minimal(spec: Spec, base: CaseBuilder) -> dict[str, object]:
    """The first case's settings with every optional setting at its neutral value."""
    out = {**spec.defaults(), **base.hyperparameters}
    for hp in spec.rule.hyperparameters:
        if hp.neutral is not None:
            out[hp.name] = hp.neutral if hp.boolean or hp.integer else str(hp.neutral)
    return out


def _on_values(spec: Spec, designs: Sequence[CaseDesign], names: frozenset[str]) -> dict[str, object] | None:
    """The values the spec's own cases give ``names`` (all from the first group that turns the
    first of them on), or None if no case does."""
    feature = max(names, key=lambda n: len(_requires(spec, n)))  # the one that requires the others
    optional = {hp.name: hp for hp in spec.rule.hyperparameters if hp.neutral is not None}
    for case in designs:
        for gr in case.groups:
            hp = spec.rule.hyperparameter(feature)
            if float(gr.hyperparameters[feature]) != float(hp.neutral):
                # that group's settings (its learning rate makes the feature visible), every other
                # optional setting at its neutral value
                return {k: (v if k in names or k not in optional else
                            optional[k].neutral if optional[k].boolean or optional[k].integer else str(optional[k].neutral))
                        for k, v in gr.hyperparameters.items()}
    return None


def _first_change(designs: Sequence[CaseDesign], optional: set[str]) -> HyperparameterChange | None:
    """The first between-steps change of a non-optional setting (the learning rate) in the spec's cases."""
    for case in designs:
        for s in case.steps:
            for c in s.changes:
                if c.name not in optional:
                    return HyperparameterChange(0, c.name, c.value)
    return None


def _second_group(spec: Spec, designs: Sequence[CaseDesign], optional: set[str]) -> dict[str, object]:
    """The second group's non-optional overrides in the spec's first case with two groups."""
    for case in designs:
        if len(case.groups) > 1:
            first, second = case.groups[0].hyperparameters, case.groups[1].hyperparameters
            over = {k: v for k, v in second.items() if k not in optional and v != first[k]}
            if over:
                return over
    return {"lr": "0.25"}


_GENERATED: dict[str, tuple[CaseBuilder, ...]] = {}


def feature_cases(spec: Spec) -> tuple[CaseBuilder, ...]:
    """The generated cases: one per optional feature that the spec's own cases leave uncovered alone."""
    if spec.id not in _GENERATED:
        _GENERATED[spec.id] = _generate(spec)
    return _GENERATED[spec.id]


def _generate(spec: Spec) -> tuple[CaseBuilder, ...]:
    defaults = spec.defaults()
    designs = [b.build(defaults) for b in spec.cases]
    optional = set(optional_features(spec))
    base = spec.cases[0]
    minimal = _minimal(spec, base)
    names = [p[0] for p in base.shapes]
    steps = len(base.grad_exponents)
    out = []
    for k, feature in enumerate(optional_features(spec), start=1):
        if any(covers_alone(spec, d, feature) for d in designs) or feature in spec.ungenerated_features:
            continue
        hps = dict(minimal)
        extra: dict = {}
        if feature == "grad_none":
            extra["no_grad"] = ({names[0]: [steps], names[-1]: [steps]} if spec.grad_none_last_step_only
                                else {names[0]: [2], names[-1]: [1, steps - 1]})
        elif feature == "hyperparameter_change":
            change = _first_change(designs, optional)
            if change is None:
                continue
            extra["changes"] = {3: [change]}
        elif feature == "param_groups":
            extra["groups"] = [(tuple(names[:1]), {}),
                               (tuple(names[1:]), dict(spec.second_group) or _second_group(spec, designs, optional))]
        elif feature == "state_dict_resume":
            extra["reload_before"] = [3]
        else:
            values = _on_values(spec, designs, _requires(spec, feature))
            if values is None and spec.rule.hyperparameter(feature).boolean and _requires(spec, feature) == {feature}:
                values = {feature: True}  # a flag no case of the spec turns on
            if values is None:
                continue  # no case of the spec turns it on: nothing to take a value from
            hps.update(values)
        out.append(replace(
            base, id=f"{spec.id}/only_{feature}", title=f"{feature} alone",
            purpose=f"{feature} on top of the minimal settings (every other optional feature off), "
            "so that a candidate lacking another feature still runs it",
            hyperparameters=hps, seed=base.seed * 100 + k, features=tuple(base.features),
            no_grad=extra.get("no_grad", {}), changes=extra.get("changes", {}),
            reload_before=extra.get("reload_before", ()), groups=extra.get("groups"),
        ))
    return tuple(out)


def all_cases(spec: Spec) -> tuple[CaseBuilder, ...]:
    """The spec's own cases, then the generated ones: one per feature left uncovered alone, then
    those that put settings on their special values (derivations/boundaries.py)."""
    if spec.id not in _ALL:
        own = tuple(spec.cases) + feature_cases(spec)
        _ALL[spec.id] = own + boundary_cases(spec, own, _minimal(spec, spec.cases[0]))
    return _ALL[spec.id]


_ALL: dict[str, tuple[CaseBuilder, ...]] = {}


def coverage(spec: Spec, designs: Sequence[CaseDesign]) -> dict[str, list[str]]:
    """For each optional feature, the cases that exercise it alone."""
    return {f: [d.id for d in designs if covers_alone(spec, d, f)] for f in optional_features(spec)}
