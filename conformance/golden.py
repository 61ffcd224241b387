"""Load the golden vectors shipped with the package (plain JSON → NumPy; no SymPy, no mpmath)."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from functools import cache, lru_cache
from importlib import resources
from typing import Any

import numpy as np

from .tolerance import CATCH_MARGIN

SCHEMA_ID = "optimizer-conformance/golden/v1"


def _golden_file(rel: str):
    return resources.files("optimizer_conformance.conformance").joinpath("golden", *rel.split("/"))


def _read(rel: str) -> dict:
    with _golden_file(rel).open("r", encoding="utf-8") as fh:
        doc = json.load(fh)
    if doc.get("schema") != SCHEMA_ID:
        raise ValueError(f"golden file {rel}: schema {doc.get('schema')!r}, expected {SCHEMA_ID!r}")
    return doc


def _floats(values) -> np.ndarray:
    return np.array([float(x) for x in values], dtype=np.float64)


def hyperparameter_value(raw: Any) -> Any:
    """JSON hyperparameter → the Python value a candidate receives (decimals → float)."""
    if raw is None or isinstance(raw, (bool, int)):
        return raw  # None, a flag, or a count
    if isinstance(raw, list):
        return tuple(hyperparameter_value(x) for x in raw)
    try:
        return float(raw)
    except ValueError:
        return raw  # a named choice ("original")


@dataclass
class ParamInput:
    name: str
    shape: tuple[int, ...]
    initial: np.ndarray  # float64, flat


@dataclass
class Group:
    params: list[str]
    hyperparameters: dict[str, Any]  # Python values (floats, bools, tuples)
    raw: dict[str, Any]  # as in the JSON, for reports


@dataclass
class Change:
    group: int
    name: str
    value: Any
    raw: Any


@dataclass
class SparseGrad:
    """A sparse COO gradient, uncoalesced (indices may repeat): torch's layout."""

    indices: np.ndarray  # (ndim, nnz) int64
    values: np.ndarray  # (nnz,) float64

    def dense(self, shape: tuple[int, ...]) -> np.ndarray:
        out = np.zeros(shape)
        np.add.at(out, tuple(self.indices), self.values)
        return out.reshape(-1)


@dataclass
class Step:
    changes: list[Change]
    reload_before: bool
    grads: dict[str, np.ndarray | SparseGrad | None]


@dataclass
class Case:
    spec: str
    id: str
    title: str
    purpose: str
    features: list[str]
    catches: list[str]
    separation: dict[str, dict[str, float]]
    params: list[ParamInput]
    groups: list[Group]
    steps: list[Step]
    # expected params: name -> (T + 1, n), row 0 the initial values
    expected: dict[str, np.ndarray]
    # error bound B of the params (tolerance = K·u·B): name -> (T, n), row t-1 after step t
    bound: dict[str, np.ndarray] = field(default_factory=dict)
    # fixed-precision bounds (tolerance + K·u_f·B_f): name -> {fixed dtype: (T, n)}; most specs: {}
    bound_fixed: dict[str, dict[str, np.ndarray]] = field(default_factory=dict)
    # expected state: name -> state name -> (T + 1, n); NaN before the state exists
    expected_state: dict[str, dict[str, np.ndarray]] = field(default_factory=dict)
    # error bound of the state: name -> state name -> (T, n); NaN before the state exists
    state_bound: dict[str, dict[str, np.ndarray]] = field(default_factory=dict)
    counters: frozenset[str] = frozenset()

    @property
    def n_steps(self) -> int:
        return len(self.steps)

    def touched(self, name: str) -> np.ndarray:
        """(T,) bool: whether the param had a gradient at each step."""
        return np.array([s.grads[name] is not None for s in self.steps])

    def separated(self, variant: str, dtype: str) -> bool:
        """Whether this case tells the variant apart from the spec in this dtype."""
        sep = self.separation.get(variant, {})
        key = dtype if dtype in sep else "float32"
        return sep.get(key, 0.0) >= CATCH_MARGIN


@dataclass
class VariantInfo:
    id: str
    title: str
    summary: str
    who: str
    sources: list[str]
    file: str
    acceptable: bool = False  # a documented deviation that passes as a named finding
    # the rule lines it changes, as text: {"label", "doc", "spec", "variant"} (None: no such line)
    lines: list[dict] = field(default_factory=list)

    @classmethod
    def from_index(cls, v: dict) -> VariantInfo:
        """A variant entry of index.json."""
        return cls(v["id"], v["title"], v["summary"], v["who"], list(v["sources"]), v["file"],
                   bool(v.get("acceptable", False)), list(v.get("lines", [])))


@dataclass
class Spec:
    id: str
    title: str
    torch_class: str
    hyperparameters: list[dict]
    cases: list[Case]
    variants: dict[str, VariantInfo]

    @property
    def acceptable(self) -> list[str]:
        """Ids of the acceptable variants (documented deviations that pass as findings)."""
        return [vid for vid, v in self.variants.items() if v.acceptable]

    @property
    def catalogued(self) -> list[str]:
        """Ids of the variants a failing candidate can be diagnosed with (not the acceptable ones)."""
        return [vid for vid, v in self.variants.items() if not v.acceptable]

    def neutral(self, name: str) -> Any:
        for hp in self.hyperparameters:
            if hp["name"] == name:
                return None if hp["neutral"] is None else hyperparameter_value(hp["neutral"])
        return None


@lru_cache(maxsize=1)
def index() -> dict:
    return _read("index.json")


def spec_ids() -> list[str]:
    return list(index()["specs"])


def _grad(raw) -> np.ndarray | SparseGrad | None:
    if raw is None:
        return None
    if isinstance(raw, dict):
        return SparseGrad(np.array(raw["indices"], dtype=np.int64).reshape(len(raw["indices"]), -1),
                          _floats(raw["values"]))
    return _floats(raw)


def _case(spec_id: str, doc: dict, counters: set[str], with_state: bool) -> Case:
    params = [ParamInput(p["name"], tuple(p["shape"]), _floats(p["values"])) for p in doc["params"]]
    groups = [
        Group(list(g["params"]), {k: hyperparameter_value(v) for k, v in g["hyperparameters"].items()},
              dict(g["hyperparameters"]))
        for g in doc["param_groups"]
    ]
    steps, traj = [], {p.name: [p.initial] for p in params}
    bound: dict[str, list] = {p.name: [] for p in params}
    fixed: dict[str, dict[str, list]] = {p.name: {} for p in params}
    state: dict[str, dict[str, list]] = {p.name: {} for p in params}
    state_b: dict[str, dict[str, list]] = {p.name: {} for p in params}
    n = {p.name: p.initial.size for p in params}
    for t, s in enumerate(doc["steps"], start=1):
        steps.append(
            Step(
                changes=[Change(c["group"], c["name"], hyperparameter_value(c["value"]), c["value"])
                         for c in s["changes"]],
                reload_before=s["reload_before"],
                grads={k: _grad(v) for k, v in s["grads"].items()},
            )
        )
        for name, values in s["expected"]["params"].items():
            traj[name].append(_floats(values))
            bound[name].append(_floats(s["bound"]["params"][name]))
            for fixed_dtype, by_param in s["bound"].get("fixed", {}).items():
                fixed[name].setdefault(fixed_dtype, []).append(_floats(by_param["params"][name]))
        if not with_state:
            continue
        for name, st in s["expected"].get("state", {}).items():
            for key, values in st.items():
                rows = state[name].setdefault(key, [np.full(n[name], np.nan)] * t)
                rows.append(np.full(n[name], float(values)) if key in counters else _floats(values))
                brows = state_b[name].setdefault(key, [np.full(n[name], np.nan)] * (t - 1))
                b = s["bound"]["state"][name].get(key)
                brows.append(np.zeros(n[name]) if b is None else _floats(b))
        for name in state:  # state that did not advance this step keeps its rows aligned
            for rows in state[name].values():
                if len(rows) < t + 1:
                    rows.append(rows[-1])
            for brows in state_b[name].values():
                if len(brows) < t:
                    brows.append(brows[-1])
    return Case(
        spec=spec_id,
        id=doc["id"],
        title=doc.get("title", ""),
        purpose=doc.get("purpose", ""),
        features=list(doc.get("features", [])),
        catches=list(doc.get("catches", [])),
        separation={v: {d: float(x) for d, x in s.items()} for v, s in doc.get("separation", {}).items()},
        params=params,
        groups=groups,
        steps=steps,
        expected={k: np.vstack(v) for k, v in traj.items()},
        bound={k: np.vstack(v) for k, v in bound.items()},
        bound_fixed={k: {d: np.vstack(rows) for d, rows in by_dtype.items()} for k, by_dtype in fixed.items()
                     if by_dtype},
        expected_state={k: {s: np.vstack(r) for s, r in st.items()} for k, st in state.items()},
        state_bound={k: {s: np.vstack(r) for s, r in st.items()} for k, st in state_b.items()},
        counters=frozenset(counters),
    )


@cache
def load_spec(spec_id: str) -> Spec:
    meta = index()["specs"][spec_id]
    doc = _read(meta["file"])
    if doc.get("kind") == "closed_loop":  # L-BFGS: cases driven through a closure
        from .closed_loop import load_closed_loop_spec

        return load_closed_loop_spec(spec_id, meta, doc)
    counters = {s["name"] for s in doc["state"] if s["count"]}
    return Spec(
        id=spec_id,
        title=meta["title"],
        torch_class=meta["torch_class"],
        hyperparameters=doc["hyperparameters"],
        cases=[_case(spec_id, c, counters, with_state=True) for c in doc["cases"]],
        variants={v["id"]: VariantInfo.from_index(v) for v in meta["variants"]},
    )


@cache
def load_variant(spec_id: str, variant_id: str) -> dict[str, Case]:
    """The params a variant would produce (``expected``, ``bound``), by case id.

    An acceptable variant's file also holds its state (compared like the spec's)."""
    info = load_spec(spec_id).variants[variant_id]
    doc = _read(info.file)
    if doc.get("kind") == "closed_loop":
        from .closed_loop import load_closed_loop_cases

        return load_closed_loop_cases(spec_id, doc)
    counters = {s["name"] for s in doc["state"] if s["count"]}
    return {c["id"]: _case(spec_id, c, counters, with_state=info.acceptable) for c in doc["cases"]}
