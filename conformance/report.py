"""Case records (what travels from a test run to the summary, also across pytest-xdist workers),
the failure message, and the JSON report (``--optimizer-report``)."""

from __future__ import annotations

import difflib
import json
import platform
import sys
import unicodedata
from dataclasses import asdict, dataclass, field
from importlib import metadata
from typing import Any

from . import compound
from .compound import PRECISION, describe, size
from .diagnosis import Diagnosis, localise, shown_matches
from .golden import Case, Spec
from .kinds import load_spec
from .scoring import CaseResult, Divergence

REPORT_SCHEMA_ID = "optimizer-conformance/report/v1"
PROPERTY = "optimizer_conformance"  # the user_properties key a record travels under


@dataclass
class CaseRecord:
    spec: str
    case: str
    dtype: str
    device: str
    outcome: str
    reason: str = ""
    max_error: float = 0.0
    tolerance: float = 0.0
    max_ratio: float = 0.0
    params_conform: bool = True
    first_divergence: Divergence | None = None
    first_step_divergences: list[Divergence] = field(default_factory=list)
    matches: list[str] = field(default_factory=list)
    findings: list[str] = field(default_factory=list)
    compared_state: list[str] = field(default_factory=list)
    accepted: str = ""  # the acceptable variant the case followed, if it passed that way
    mode: str = "eager"  # or "cuda_graph" (conformance/cuda_graph.py)

    @property
    def first_divergent_step(self) -> int | None:
        return None if self.first_divergence is None else self.first_divergence.step

    @classmethod
    def from_result(cls, r: CaseResult) -> CaseRecord:
        return cls(r.spec, r.case, r.dtype, r.device, r.outcome, r.reason, r.max_error,
                   r.tolerance_at_max, r.max_ratio, r.params_conform, r.first_divergence,
                   list(getattr(r, "first_step_divergences", [])), list(r.matches), list(r.findings), list(r.compared_state), r.accepted, r.mode)

    def to_json(self) -> dict[str, Any]:
        d = asdict(self)
        d["first_divergent_step"] = self.first_divergent_step
        for k in ("max_error", "tolerance", "max_ratio"):
            d[k] = _finite(d[k])
        for div in [d["first_divergence"], *d["first_step_divergences"]]:
            if div:
                div["index"] = list(div["index"])
                for k in ("expected", "actual", "error", "tolerance"):
                    div[k] = _finite(div[k])
        return d

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> CaseRecord:
        d = dict(d)
        d.pop("first_divergent_step", None)
        if d.get("first_divergence"):
            d["first_divergence"] = _divergence(d["first_divergence"])
        d["first_step_divergences"] = [_divergence(x) for x in d.get("first_step_divergences", [])]
        for k in ("max_error", "tolerance", "max_ratio"):
            d[k] = float("inf") if d[k] is None else d[k]
        return cls(**d)


def _divergence(fd: dict[str, Any]) -> Divergence:
    fd = dict(fd)
    fd["index"] = tuple(fd["index"])
    for k in ("expected", "actual", "error", "tolerance"):
        fd[k] = float(fd[k]) if fd[k] is not None else float("nan")
    return Divergence(**fd)


def _finite(x: float) -> float | None:
    """JSON has no inf/nan: those become null."""
    return x if x == x and abs(x) != float("inf") else None


def _fmt(x: float) -> str:
    return f"{x:.17g}" if x == x else "nan"


def describe_case(case: Case) -> list[str]:
    lines = [f"case: {case.title} — {case.purpose}"]
    for i, g in enumerate(case.groups):
        hps = ", ".join(f"{k}={v}" for k, v in g.raw.items())
        lines.append(f"param group {i} ({', '.join(g.params)}): {hps}")
    events = []
    for t, s in enumerate(case.steps, start=1):
        events += [f"group {c.group} {c.name} → {c.raw} before step {t}" for c in s.changes]
        if s.reload_before:
            events.append(f"state_dict → fresh instance → load_state_dict before step {t}")
        missing = [n for n, g in s.grads.items() if g is None]
        if missing:
            events.append(f"no grad for {', '.join(missing)} at step {t}")
    if events:
        lines.append("events: " + "; ".join(events))
    return lines


def failure_message(rec: CaseRecord, candidate: str) -> str:
    spec = load_spec(rec.spec)
    case = next(c for c in spec.cases if c.id == rec.case)
    where = f"{rec.dtype}, {rec.device}" + (", step() captured in a CUDA graph" if rec.mode == "cuda_graph" else
                                            f", {rec.mode}" if rec.mode != "eager" else "")
    head = f"{rec.case} [{where}]: {candidate} does not conform to spec {rec.spec!r}"
    lines = [head]
    if rec.reason:
        lines.append(f"  {rec.reason}")
    d = rec.first_divergence
    if d is not None:
        lines += [
            f"  first divergence: step {d.step} of {case.n_steps}, {d.where()}",
            f"    expected  {_fmt(d.expected)}",
            f"    actual    {_fmt(d.actual)}",
        ]
        if d.actual == d.actual and abs(d.actual) != float("inf"):
            lines.append(f"    |error| {d.error:.3g} > tolerance {d.tolerance:.3g} ({d.ratio:.3g}× the tolerance)")
        else:
            lines.append(f"    the candidate produced a non-finite value ({_fmt(d.actual)})")
    lines += _variant_lines(spec, rec)
    lines += ["  " + x for x in describe_case(case)]
    return "\n".join(lines)


def _variant_lines(spec: Spec, rec: CaseRecord) -> list[str]:
    if rec.matches:
        out = []
        for name in shown_matches(rec.matches):
            if name.split(" + ")[0] not in spec.variants and name != PRECISION:  # a distributed variant
                from .distributed_variants import VARIANTS

                d = VARIANTS.get(name)
                if d is not None:
                    out += [f"  trajectory matches distributed variant {name}: {d.title}", f"    {d.summary}"]
                    continue
            k = describe(spec, name)
            kind = "variant" if size(name) == 1 and name != PRECISION else "combination" if size(name) > 1 else "precision"
            out += [f"  trajectory matches {kind} {name}: {k.title}",
                    f"    {k.summary}"]
            for line in k.lines:
                out += rule_line_diff(line, indent="    ")
            out.append(f"    known in: {k.who}; sources: {', '.join(k.sources)}")
        return out
    if rec.first_divergence is not None and rec.outcome == "failed":
        if rec.params_conform:
            what = "the loss step(closure) returns" if rec.first_divergence.quantity == "loss" else "the state"
            return [f"  the parameters follow the spec; only {what} differs"]
        combos = compound.compound(spec.id).combinations
        if combos and not any(rec.case in c.separation for c in combos.values()):
            what = ("  trajectory matches no catalogued variant of this spec (combinations of variants "
                    "are evaluated on the spec's own step-by-step cases, not on this one)")
        else:
            what = "  trajectory matches no catalogued variant of this spec, nor a combination of up to three"
        return [what, *("  " + x for x in localise(spec, [rec]))]
    return []


def rule_line_diff(line: dict, indent: str = "") -> list[str]:
    """The spec's rule line above the variant's, the differing characters marked with ``^``::

        rule line bias_correction_v (bias-corrected second moment):
          spec     v̂ ← (vₘₐₓ if amsgrad else v)/(1 − β₂ᵗ)
                                               ^^^^^^^^^^^
          variant  v̂ ← (vₘₐₓ if amsgrad else v)
    """
    spec, variant = line["spec"], line["variant"]
    head = f"{indent}rule line {line['label']} ({line['doc']}):" if line.get("doc") else \
        f"{indent}rule line {line['label']}:"
    if spec is None or variant is None:
        return [head, f"{indent}  spec     {spec if spec is not None else '(no such line)'}",
                f"{indent}  variant  {variant if variant is not None else '(no such line: removed)'}"]
    if spec == variant:
        return [head, f"{indent}  spec     {spec}",
                f"{indent}  variant  the same line, at another place in the algorithm"]
    spec_marks, variant_marks = _marks(spec, variant)
    out = [head, f"{indent}  spec     {spec}"]
    if spec_marks.strip():
        out.append(f"{indent}           {spec_marks}".rstrip())
    out.append(f"{indent}  variant  {variant}")
    if variant_marks.strip():
        out.append(f"{indent}           {variant_marks}".rstrip())
    return out


def _marks(a: str, b: str) -> tuple[str, str]:
    """Marker lines for ``a`` and ``b``: ``^`` under every character not in their common
    subsequence, in terminal columns (a combining accent, as in m̂, takes no column)."""
    matcher = difflib.SequenceMatcher(a=a, b=b, autojunk=False)
    keep_a, keep_b = set(), set()
    for blk in matcher.get_matching_blocks():
        keep_a.update(range(blk.a, blk.a + blk.size))
        keep_b.update(range(blk.b, blk.b + blk.size))

    def under(text: str, keep: set[int]) -> str:
        return "".join("" if unicodedata.combining(c) else (" " if i in keep else "^")
                       for i, c in enumerate(text))

    return under(a, keep_a), under(b, keep_b)


def environment(device: str, dtypes: list[str]) -> dict[str, Any]:
    env: dict[str, Any] = {
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "device": device,
        "dtypes": list(dtypes),
    }
    for pkg in ("optimizer-conformance", "numpy", "torch", "pytest"):
        try:
            env[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            env[pkg] = None
    return env


def summary_counts(records: list[CaseRecord], listed=None) -> dict[str, int]:
    """Outcomes; with --optimizer-xfails (``listed``: whether a record's item is listed) a listed
    failing run counts as xfailed and a listed passing one as xpassed (a strict xfail: it fails
    the run), as pytest counts them."""
    counts = {k: sum(r.outcome == k for r in records) for k in ("passed", "failed", "skipped")}
    if listed is not None:
        for outcome, name in (("failed", "xfailed"), ("passed", "xpassed")):
            n = sum(r.outcome == outcome and listed(r) for r in records)
            counts[outcome] -= n
            counts[name] = n
    return counts


def report_document(candidate: dict[str, Any], spec_id: str, records: list[CaseRecord],
                    diagnosis: Diagnosis, env: dict[str, Any], listed=None,
                    incomplete: str | None = "") -> dict[str, Any]:
    """``incomplete``: why the run did not check every selected case ("" when it did)."""
    counts = summary_counts(records, listed)
    return {
        "schema": REPORT_SCHEMA_ID,
        "complete": not incomplete,
        "reason": incomplete or "",
        "candidate": candidate,
        "spec": spec_id,
        "environment": env,
        "summary": counts,
        "cases": [{"id": r.case, **{k: v for k, v in r.to_json().items() if k not in ("case", "spec")}}
                  for r in records],
        "findings": sorted({f for r in records for f in r.findings}),
        "diagnosis": asdict(diagnosis),
    }


def write_report(path: str, doc: dict[str, Any]) -> None:
    """Written to a temporary file next to it, then renamed: a reader never sees half a report."""
    import os

    tmp = f"{path}.tmp{os.getpid()}"
    try:
        with open(tmp, "w", encoding="utf-8") as fh:
            json.dump(doc, fh, indent=1, ensure_ascii=False)
            fh.write("\n")
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def check_writable(path: str) -> None:
    """--optimizer-report: a usage error unless the report can be written there."""
    import os

    from .candidates import UsageError

    folder = os.path.dirname(os.path.abspath(path))
    if os.path.isdir(path):
        raise UsageError(f"--optimizer-report={path}: is a directory (give a file name, e.g. {path}/report.json)")
    if not os.path.isdir(folder):
        raise UsageError(f"--optimizer-report={path}: the directory {folder} does not exist")
    if not os.access(folder, os.W_OK) or (os.path.exists(path) and not os.access(path, os.W_OK)):
        raise UsageError(f"--optimizer-report={path}: not writable")
