"""The golden vectors shipped with the package: reading them, and the structures every kind of
case shares (plain JSON → NumPy; no SymPy, no mpmath).

A spec's documents are parsed by its *kind* (``"kind"`` of the golden document: ``open_loop``
when absent, ``closed_loop`` for L-BFGS), see ``kinds.py``; this module knows no kind.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from functools import cache, lru_cache
from importlib import resources
from typing import Any

import numpy as np

from .tolerance import CATCH_MARGIN, tolerance

SCHEMA_ID = "optimizer-conformance/golden/v1"


def _golden_file(rel: str):
    return resources.files("optimizer_conformance.conformance").joinpath("golden", *rel.split("/"))


MANIFEST = "MANIFEST.json"
MANIFEST_SCHEMA_ID = "optimizer-conformance/golden-manifest/v1"
REGENERATE = "reinstall the package, or regenerate with python -m optimizer_conformance.derivations"


class GoldenError(ValueError):
    """A golden file that is missing, unreadable, not valid, or not the one the manifest vouches for."""


def sha256(data: bytes) -> str:
    import hashlib

    return hashlib.sha256(data).hexdigest()


def manifest_document(folder, root=None) -> dict:
    """The manifest of a spec's golden folder (a pathlib.Path): the SHA-256 of every other
    ``*.json`` in it, by path relative to the golden folder ``root`` (default: its parent),
    sorted — what the generator writes as ``<spec>/MANIFEST.json``."""
    root = folder.parent if root is None else root
    files = sorted(p.relative_to(root).as_posix() for p in folder.rglob("*.json") if p.name != MANIFEST)
    return {"schema": MANIFEST_SCHEMA_ID, "algorithm": "sha256",
            "files": {rel: sha256((root / rel).read_bytes()) for rel in files}}


def manifest_path(spec_id: str) -> str:
    return f"{spec_id}/{MANIFEST}"


@cache
def manifest(spec_id: str) -> dict[str, str]:
    """A spec's shipped manifest (``<spec>/MANIFEST.json``): golden file → its SHA-256."""
    rel = manifest_path(spec_id)
    try:
        raw = _golden_file(rel).read_bytes()
    except OSError as exc:
        raise GoldenError(f"golden file {rel} cannot be read ({exc.strerror or exc}): {REGENERATE}") from None
    try:
        doc = json.loads(raw.decode("utf-8"))
        files = doc["files"]
        ok = doc.get("schema") == MANIFEST_SCHEMA_ID and all(
            isinstance(k, str) and isinstance(v, str) and k.startswith(f"{spec_id}/") for k, v in files.items())
    except (ValueError, KeyError, TypeError, AttributeError):
        ok = False
    if not ok:
        raise GoldenError(f"golden file {rel} is not a valid manifest: {REGENERATE}")
    return dict(files)


def verified_bytes(rel: str) -> bytes:
    """A golden file's bytes, refused (GoldenError, naming it) unless its SHA-256 is the one its
    spec's manifest holds."""
    spec_id = rel.split("/", 1)[0]
    want = manifest(spec_id).get(rel) if "/" in rel else None
    if want is None:
        raise GoldenError(f"golden file {rel} is not listed in {manifest_path(spec_id)}: {REGENERATE}")
    try:
        data = _golden_file(rel).read_bytes()
    except OSError as exc:
        raise GoldenError(f"golden file {rel} cannot be read ({exc.strerror or exc}): {REGENERATE}") from None
    if sha256(data) != want:
        raise GoldenError(f"golden file {rel} does not match its SHA-256 in {manifest_path(spec_id)} (edited, "
                          f"truncated or stale): {REGENERATE}")
    return data


def read_document(rel: str) -> dict:
    """A golden document by its path relative to the golden folder (as the index names it),
    verified against its spec's manifest."""
    data = verified_bytes(rel)
    try:
        doc = json.loads(data.decode("utf-8"))
    except ValueError as exc:  # UnicodeDecodeError and JSONDecodeError
        raise GoldenError(f"golden file {rel} is not valid JSON ({exc})") from None
    if not isinstance(doc, dict) or doc.get("schema") != SCHEMA_ID:
        got = doc.get("schema") if isinstance(doc, dict) else type(doc).__name__
        raise GoldenError(f"golden file {rel}: schema {got!r}, expected {SCHEMA_ID!r}")
    return doc


def spec_files(spec_id: str) -> list[str]:
    """The golden files a run of this spec reads: its index, its spec document, its variants'."""
    meta = spec_index(spec_id)
    return [index_path(spec_id), meta["file"], *(v["file"] for v in meta["variants"])]


def verify_spec(spec_id: str) -> None:
    """Every file of the spec against its manifest (GoldenError naming the first that fails)."""
    for rel in spec_files(spec_id):
        verified_bytes(rel)


def floats(values) -> np.ndarray:
    """Decimal strings → float64 values."""
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
    # fixed-precision bounds of the state: name -> state name -> {fixed dtype: (T, n)}; most specs: {}
    state_bound_fixed: dict[str, dict[str, dict[str, np.ndarray]]] = field(default_factory=dict)
    counters: frozenset[str] = frozenset()
    # state entries that are one number per parameter (the header's per_param: NAdam's mu_product)
    per_param: frozenset[str] = frozenset()
    # state loaded before the first step (a large step count): name -> state name -> count or values
    # (one value for a per_param entry)
    initial_state: dict[str, dict[str, int | np.ndarray]] = field(default_factory=dict)
    # the params' tolerances by (name, dtype), computed on first use (see :meth:`tolerance`)
    _tolerances: dict[tuple[str, str], np.ndarray] = field(default_factory=dict, init=False, repr=False,
                                                            compare=False)

    @property
    def n_steps(self) -> int:
        return len(self.steps)

    def tolerance(self, name: str, dtype: str) -> np.ndarray:
        """The tolerance of param ``name``'s trajectory in ``dtype`` (rows as :attr:`bound`), computed
        once per case: a run is scored against it, and the diagnosis against every variant's."""
        key = (name, dtype)
        if key not in self._tolerances:
            self._tolerances[key] = tolerance(self.bound[name], dtype, self.bound_fixed.get(name))
        return self._tolerances[key]

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
    torch_class: str | None  # None: torch has no class for this spec
    hyperparameters: list[dict]
    cases: list[Case]
    variants: dict[str, VariantInfo]
    kind: str  # the kind of its cases (kinds.py): "open_loop" or "closed_loop"
    # why its param groups share state (index "groups_share_state"), or "": then a protocol that
    # builds one optimizer per group cannot run a case with two groups
    groups_share_state: str = ""

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

    def default(self, name: str) -> Any:
        """The spec's default value of a hyperparameter (torch's; None for a setting whose default
        is None, e.g. Muon's adjust_lr_fn, or for a name the spec does not have)."""
        for hp in self.hyperparameters:
            if hp["name"] == name:
                return None if hp.get("default") is None else hyperparameter_value(hp["default"])
        return None


INDEX = "index.json"  # each spec's folder holds its own: adding a spec adds a folder, nothing else


def index_path(spec_id: str) -> str:
    return f"{spec_id}/{INDEX}"


@cache
def spec_index(spec_id: str) -> dict:
    """A spec's entry of the index (``<spec>/index.json``): title, hyperparameters, variants, files."""
    doc = read_document(index_path(spec_id))
    try:
        return doc["specs"][spec_id]
    except (KeyError, TypeError):
        raise GoldenError(f"golden file {index_path(spec_id)} has no entry for spec {spec_id!r}") from None


@lru_cache(maxsize=1)
def generated_kind(case_id: str) -> str | None:
    """Which generated cases ``case_id`` is one of (derivations/feature_cases.py names them
    ``<spec>/only_<feature>``, derivations/boundaries.py ``<spec>/boundary_<...>``): "one_feature",
    "boundary", or None for a spec's own case."""
    name = case_id.split("/", 1)[1]
    return "one_feature" if name.startswith("only_") else "boundary" if name.startswith("boundary_") else None


def spec_ids() -> list[str]:
    """The specs shipped: the folders of the golden folder (no file is parsed here; a folder whose
    index or manifest is missing is refused, naming the file, when its spec is loaded)."""
    root = resources.files("optimizer_conformance.conformance").joinpath("golden")
    return sorted(p.name for p in root.iterdir() if p.is_dir() and not p.name.startswith(("_", ".")))


def index() -> dict:
    """Every spec's index entry, as one document (``{"schema": ..., "specs": {id: entry}}``)."""
    return {"schema": SCHEMA_ID, "specs": {sid: spec_index(sid) for sid in spec_ids()}}


def param_inputs(doc: dict) -> list[ParamInput]:
    """A case document's initial params."""
    return [ParamInput(p["name"], tuple(p["shape"]), floats(p["values"])) for p in doc["params"]]


def variant_infos(meta: dict) -> dict[str, VariantInfo]:
    """The variants of a spec, from its entry in the index."""
    return {v["id"]: VariantInfo.from_index(v) for v in meta["variants"]}
