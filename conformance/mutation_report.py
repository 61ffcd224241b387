"""The docs' "Mutation test" page, generated from the report of a run (docs/mutation-report.json).

``python -m optimizer_conformance.conformance.mutation_report [REPORT]`` prints the page; the
mkdocs hook (docs/hooks/generated_pages.py) adds it to the site. Every number on it is counted
from the report's mutants, none is typed.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

STATUSES = ("killed", "equivalent", "survived", "error")
PAGE = "mutation.md"


def load(path: Path) -> dict:
    return json.loads(path.read_text(encoding="utf-8"))


def _counts(mutants: list[dict]) -> dict[str, int]:
    return {s: sum(m["status"] == s for m in mutants) for s in STATUSES}


def _score(c: dict[str, int]) -> str:
    scored = sum(c.values()) - c["equivalent"]
    return f"{c['killed']}/{scored} = {100 * c['killed'] / scored:.1f} %" if scored else "—"


def _row(cells) -> str:
    return "| " + " | ".join(str(c) for c in cells) + " |"


def _table(head: tuple[str, ...], rows: list[tuple]) -> list[str]:
    return [_row(head), "|" + "---|" * len(head), *(_row(r) for r in rows)]


def _mutant(m: dict) -> list[str]:
    runs = ", ".join(f"`{r['class']}` ({r['spec']})" for r in m["runs"])
    out = [f"#### `{m['id']}`", "", f"Checked as {runs}.", "", "```diff", m["diff"], "```", ""]
    findings = sorted({f for r in m["runs"] for f in r.get("findings", [])})
    if findings:
        out += ["Reported without failing a case: " + "; ".join(f"*{f}*" for f in findings) + ".", ""]
    if m["reason"]:
        out += [f"**Why it is equivalent:** {m['reason']}", ""]
    if m.get("gap"):
        out += [f"**What would kill it:** {m['gap']}", ""]
    for r in m["runs"]:
        if r.get("log"):
            out += ["```text", r["log"][-800:], "```", ""]
    return out


def markdown(doc: dict) -> str:
    mutants = doc["mutants"]
    total = _counts(mutants)
    lines = [
        "# Mutation test",
        "",
        "How much of what can go wrong in a real implementation does the suite notice? The mutation "
        "test changes torch.optim's own for-loop implementations at one point at a time — an "
        "operator, a constant, a comparison, a dropped square root or state update, a keyword value "
        "(the mutants are generated from torch's source with `ast`: `conformance/mutation.py`) — "
        "and runs each mutant through the plugin exactly as a user would "
        "(`pytest --optimizer=<mutant>.<Class>`, float32 and float64). A mutant is *killed* when a case "
        "fails, or when the verdict reports a finding that torch's unmutated code does not (a finding is "
        "behaviour the suite reports without failing, such as `step()` writing into `p.grad`, which "
        "torch's own foreach SGD does: see the Findings page); a survivor is *equivalent* when no input can tell it from torch's code (the reason is "
        "written in `conformance/mutation_equivalent.toml`, and shown below), otherwise it is a gap "
        "of the suite. Run it with `nox -s mutation`.",
        "",
        f"**Score: {_score(total)}** killed of the non-equivalent mutants — {len(mutants)} mutants, "
        f"{total['killed']} killed"
        + (f" ({doc['summary']['killed_by_finding']} of them by a finding)" if doc["summary"].get("killed_by_finding") else "")
        + f", {total['equivalent']} equivalent, {total['survived']} survived"
        + (f", {total['error']} did not finish" if total["error"] else "") + ".",
        "",
        f"The run took {doc['seconds']:.0f} s of wall time"
        + (f" and {doc['cpu_seconds']:.0f} s of CPU time" if "cpu_seconds" in doc else "")
        + f" ({doc['jobs']} runs at once on {doc['cpus']} CPUs"
        + (" with a load average of {:.0f} → {:.0f}".format(*doc["load_average"]) if "load_average" in doc else "")
        + f"; torch {doc['torch']}, Python {doc['python']}, {doc['machine']}).",
        "",
    ]
    if not doc.get("complete", True):
        lines += ['!!! warning "Partial run"', "    This report covers a subset of the mutants.", ""]
    lines += ["## Per function", ""]
    rows = []
    for t in doc["targets"]:
        c = _counts([m for m in mutants if m["target"] == t["function"]])
        rows.append((f"`{t['function'].split('.')[0]}`", sum(c.values()), c["killed"],
                     c["equivalent"], c["survived"] + c["error"], _score(c)))
    lines += _table(("torch.optim module", "mutants", "killed", "equivalent", "survived", "score"), rows)
    lines += ["", "Checked as: " + "; ".join(f"`{t['function']}`: {', '.join(t['classes'])}"
                                          for t in doc["targets"]) + "."]
    lines += ["", "## Per operator", ""]
    rows = []
    for kind, text in doc["operators"].items():
        c = _counts([m for m in mutants if m["kind"] == kind])
        if sum(c.values()):
            rows.append((f"`{kind}`", text, sum(c.values()), c["killed"], c["equivalent"],
                         c["survived"] + c["error"]))
    lines += _table(("operator", "what it changes", "mutants", "killed", "equivalent", "survived"), rows)
    known = ", ".join(f"`{k} = {v}`" for k, v in doc["scope"]["known"].items())
    calls = ", ".join(f"`{k}() = {v}`" for k, v in doc["scope"]["known_calls"].items())
    lines += ["", "## Scope", "",
              "Only code that runs when the suite checks a CPU candidate is mutated: a branch whose "
              "condition the configuration decides is mutated on the side taken only, and the "
              f"condition not at all. Decided: {known}; {calls}; `grad.is_sparse = False`; "
              "`isinstance(<hyperparameter>, Tensor) = False` (hyperparameters are Python numbers). "
              "So the `capturable`, `differentiable`, complex, sparse and TorchScript branches "
              "are out of scope (the sweep checks the foreach and fused implementations, and on CUDA the "
              "capturable ones, as wholes).", ""]
    gaps = [m for m in mutants if m["status"] in ("survived", "error")]
    lines += ["## Surviving mutants: gaps of the suite", ""]
    if gaps:
        lines += ["Each of these behaves differently from torch's code for some input, and no case "
                  "has that input yet.", ""]
        for m in gaps:
            lines += _mutant(m)
    else:
        lines += ["None: every non-equivalent mutant is killed.", ""]
    by_finding = [m for m in mutants if m.get("killed_by") == "finding"]
    if by_finding:
        lines += ["## Killed by a finding", "",
                  "Every case passes, and the verdict reports behaviour that torch's unmutated code does not "
                  "show (" + "; ".join(sorted({f"*{f}*" for m in by_finding for f in m["new_findings"]})) + ").", ""]
        for m in by_finding:
            lines += _mutant(m)
    lines += ["## Equivalent mutants", ""]
    for m in (m for m in mutants if m["status"] == "equivalent"):
        lines += _mutant(m)
    return "\n".join(lines).rstrip() + "\n"


def page(path: Path) -> str | None:
    """The page's markdown, or None when no report exists."""
    return markdown(load(path)) if path.exists() else None


def main(argv: list[str] | None = None) -> int:
    from .mutation_run import REPORT

    args = sys.argv[1:] if argv is None else argv
    text = page(Path(args[0]) if args else REPORT)
    if text is None:
        print("no report: run `nox -s mutation` first", file=sys.stderr)
        return 1
    print(text, end="")
    return 0


if __name__ == "__main__":
    sys.exit(main())
