"""The vocabulary every derivation is written in.

An optimizer's update rule is an ordered list of assignments (:class:`Assign`) over SymPy
symbols, applied to one scalar element of a parameter at a time: ``theta`` is the element,
``g`` its gradient, the state variables are the optimizer's per-element state and the
hyperparameters are the param group's settings. Later assignments see the values given by
earlier ones, exactly like the lines of an algorithm box in a paper.

A *variant* is a named, small delta of a rule: one assignment replaced, removed or inserted,
or one initial value changed. Because a variant is built from the base rule, the docs can show
precisely which line differs, and nothing is written twice.

This module holds no optimizer; each optimizer has its own module beside it.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace

import sympy as sp

# The two symbols every rule shares: the parameter element and its gradient.
theta = sp.Symbol("theta", real=True)
g = sp.Symbol("g", real=True)
# The per-parameter step counter; a state variable of every rule (torch calls it "step").
t = sp.Symbol("t", integer=True, nonnegative=True)
# Whether this element is present in the step's gradient: always true for a dense gradient; for a
# sparse one (SparseAdam) only the entries it lists (explicit zeros included) are present.
present = sp.Symbol("present")
# Whether the optimizer was rebuilt from a state_dict on this step or an earlier one, or its state
# injected through load_state_dict before the first step (only an acceptable variant uses it:
# torch's load_state_dict casts float32 scalar state to the param dtype).
reloaded = sp.Symbol("reloaded")
# The parameter's number of dimensions (Adafactor factors the second moment of ≥ 2-D params).
ndim = sp.Symbol("n_dim", integer=True, nonnegative=True)
# A matrix parameter's numbers of rows and columns (dims −2 and −1; 1 where the param has fewer
# dimensions): Muon scales its step by the aspect ratio.
n_rows = sp.Symbol("n_rows", integer=True, positive=True)
n_cols = sp.Symbol("n_cols", integer=True, positive=True)
# The number of optimizer.step() calls so far, this one included, whether or not this param had a
# gradient on them: an implementation that keeps one step count per param group or optimizer
# (timm's Lamb, pytorch_optimizer's MADGRAD ``state['k']``) uses it where the per-parameter step t
# counts only the param's own steps; Lookahead syncs every k calls.
steps_taken = sp.Symbol("steps_taken", integer=True, positive=True)


class F32(sp.Function):
    """``fl₃₂(x)``: x rounded to the nearest float32 (ties to even).

    Only an *acceptable* variant uses it, to model a quantity that an implementation keeps in
    float32 by design whatever the parameter's dtype (torch holds NAdam's μ product and ASGD's
    η and μ as float32 0-d tensors). The exact spec never rounds.
    """

    nargs = 1

    def _latex(self, printer):
        return r"\operatorname{fl}_{32}\left(" + printer._print(self.args[0]) + r"\right)"


@dataclass(frozen=True)
class Hyperparameter:
    """A setting of a param group, under torch's name.

    ``symbols`` is one symbol for a scalar setting, or a tuple for a tuple-valued one
    (torch's ``betas``). ``neutral`` is the value at which the feature is off (e.g.
    ``weight_decay=0``); ``None`` when the setting has no neutral value (``lr``).
    """

    name: str
    symbols: sp.Symbol | tuple[sp.Symbol, ...]
    default: object
    neutral: object = None
    doc: str = ""
    boolean: bool = False
    integer: bool = False  # a count (Muon's ns_steps): an integer, not a decimal
    # a named choice (Muon's adjust_lr_fn): the symbol takes the index of the value in ``choices``
    choices: tuple[object, ...] = ()
    # settings this one acts through (SGD's nesterov needs a momentum): a case that turns this
    # feature on alone turns these on too (derivations/feature_cases.py)
    requires: tuple[str, ...] = ()

    @property
    def symbol_tuple(self) -> tuple[sp.Symbol, ...]:
        return self.symbols if isinstance(self.symbols, tuple) else (self.symbols,)


@dataclass(frozen=True)
class StateVar:
    """A per-element state variable, under the name torch keeps it in ``optimizer.state[p]``.

    ``kept_when(hyperparameters)`` says whether torch keeps it for a group with those settings
    (``max_exp_avg_sq`` only with ``amsgrad``); state it does not keep is still evaluated but not
    compared. ``count`` marks an integer counter (``step``). ``per_param`` marks a state that is one
    number per parameter, not one per element (NAdam's μ product, which torch keeps as a 0-d
    tensor): the rule still evaluates it per element (all equal), the golden declares it so that a
    driver injects it as one number.
    """

    name: str
    symbol: sp.Symbol
    initial: sp.Expr
    doc: str = ""
    kept_when: Callable[[Mapping[str, object]], bool] = field(default=lambda hp: True)
    # whether torch keeps it for a param of this shape (Adafactor: row/col factors for >= 2-D)
    kept_for: Callable[[tuple[int, ...]], bool] = field(default=lambda shape: True)
    count: bool = False
    per_param: bool = False


@dataclass(frozen=True)
class Assign:
    """One line of the algorithm: ``target ← expr``, known by ``label``."""

    label: str
    target: sp.Symbol
    expr: sp.Expr
    doc: str = ""


@dataclass(frozen=True)
class Rule:
    """An elementwise update rule: what one ``optimizer.step()`` does to one element."""

    id: str
    title: str
    hyperparameters: tuple[Hyperparameter, ...]
    state: tuple[StateVar, ...]
    body: tuple[Assign, ...]

    # -- lookup --------------------------------------------------------------------------
    def assignment(self, label: str) -> Assign:
        for line in self.body:
            if line.label == label:
                return line
        raise KeyError(f"{self.id} has no assignment labelled {label!r}")

    def _index(self, label: str) -> int:
        return self.body.index(self.assignment(label))

    def hyperparameter(self, name: str) -> Hyperparameter:
        for hp in self.hyperparameters:
            if hp.name == name:
                return hp
        raise KeyError(f"{self.id} has no hyperparameter {name!r}")

    # -- deltas (each returns a new rule) ---------------------------------------------------
    def renamed(self, id: str, title: str) -> Rule:
        return replace(self, id=id, title=title)

    def replace(self, label: str, expr: sp.Expr, doc: str | None = None) -> Rule:
        """The same rule with the right-hand side of one assignment replaced."""
        i = self._index(label)
        old = self.body[i]
        new = replace(old, expr=expr, doc=old.doc if doc is None else doc)
        return replace(self, body=self.body[:i] + (new,) + self.body[i + 1 :])

    def remove(self, label: str) -> Rule:
        i = self._index(label)
        return replace(self, body=self.body[:i] + self.body[i + 1 :])

    def insert_after(self, label: str, line: Assign) -> Rule:
        i = self._index(label)
        return replace(self, body=self.body[: i + 1] + (line,) + self.body[i + 1 :])

    def insert_before(self, label: str, line: Assign) -> Rule:
        i = self._index(label)
        return replace(self, body=self.body[:i] + (line,) + self.body[i:])

    def with_initial(self, name: str, value: sp.Expr) -> Rule:
        state = tuple(
            replace(s, initial=sp.sympify(value)) if s.name == name else s for s in self.state
        )
        return replace(self, state=state)

    # -- symbolic application ------------------------------------------------------------------
    def apply(self, env: Mapping[sp.Symbol, sp.Expr]) -> dict[sp.Symbol, sp.Expr]:
        """Run the body symbolically: returns the environment after one step.

        ``env`` maps symbols (theta, g, state, hyperparameters) to expressions. Used by the
        proofs: feed it a closed form at step t and compare what comes out with step t+1.
        """
        out = dict(env)
        for line in self.body:
            out[line.target] = sp.sympify(line.expr).xreplace(out)
        return out

    def initial_env(self) -> dict[sp.Symbol, sp.Expr]:
        return {s.symbol: s.initial for s in self.state}


@dataclass(frozen=True)
class Variant:
    """A catalogued deviation from a spec, as a named delta of its rule.

    ``id`` is global (``adam.eps_hat``); ``applies_to`` lists the spec ids whose rule it can be
    applied to; ``delta(rule)`` builds the variant's rule from a spec's rule.
    """

    id: str
    title: str
    summary: str
    who: str
    sources: tuple[str, ...]
    delta: Callable[[Rule], Rule]
    # Acceptable (Wycheproof's sense): a deviation that is part of a major implementation's
    # design, e.g. a scalar held in float32. Matching it passes, reported as a named finding.
    acceptable: bool = False
    # A library's own bundle of conventions, named after it (keras's Adam: ε̂, its step counter, its
    # float32 learning rate and decoupled decay): built from other deltas, no formula of its own, so
    # it may change more lines than a single deviation does.
    bundle: bool = False
    # The delta rewrites only a part of the lines it touches (switches a flag, substitutes a term, or
    # wraps the line as it finds it), so another such delta of the same line composes with it
    # (derivations/compound.py): pytorch_optimizer's RAdam gates the decay line decoupled decay rewrites.
    partial_lines: bool = False

    def rule_for(self, spec_rule: Rule) -> Rule:
        return self.delta(spec_rule).renamed(
            f"{spec_rule.id}~{self.id}", f"{spec_rule.title}, variant {self.id}"
        )


def changed_lines(base: Rule, other: Rule) -> list[tuple[Assign | None, Assign | None]]:
    """The lines in which ``other`` differs from ``base`` (for the docs and the reports); a changed
    initial value of a state variable counts as a line ``initial: s ← s₀``."""
    b = {(line.label, line.target): line for line in base.body}
    o = {(line.label, line.target): line for line in other.body}
    diffs: list[tuple[Assign | None, Assign | None]] = []
    for key, line in b.items():
        if key not in o:
            diffs.append((line, None))
        elif o[key].expr != line.expr:
            diffs.append((line, o[key]))
    for key, line in o.items():
        if key not in b:
            diffs.append((None, line))
    # a line moved to another place in the algorithm (e.g. decay after the step instead of before)
    common_b = [k for k in b if k in o]
    common_o = [k for k in o if k in b]
    matcher = difflib.SequenceMatcher(a=common_b, b=common_o, autojunk=False)
    kept = {common_b[blk.a + i] for blk in matcher.get_matching_blocks() for i in range(blk.size)}
    for key in common_b:
        if key not in kept and b[key].expr == o[key].expr:
            diffs.append((b[key], o[key]))
    initial = {sv.name: sv for sv in other.state}
    for sv in base.state:
        if sv.name in initial and sp.sympify(initial[sv.name].initial) != sp.sympify(sv.initial):
            diffs.append((Assign("initial", sv.symbol, sv.initial, f"initial {sv.name}"),
                          Assign("initial", sv.symbol, initial[sv.name].initial, f"initial {sv.name}")))
    return diffs
