"""The end-of-run table: case features × outcomes, from the CaseRecords the controller gathered
(the same records, sorted, with or without pytest-xdist, so the same table)."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping

from .report import CaseRecord

NO_FEATURE = "(no feature)"  # cases that exercise the plain rule only
OUTCOMES = ("passed", "failed", "skipped")


def feature_table(records: Iterable[CaseRecord], features: Mapping[str, Iterable[str]],
                  xfailed: Callable[[CaseRecord], bool] | None = None) -> list[str]:
    """One row per feature (alphabetical; then cases without a feature, then the total) with the number
    of case runs (case × dtype) passed, failed and skipped. With ``xfailed`` (the run lists
    expected failures), failed runs it says are expected are counted in their own column."""
    cols = [*OUTCOMES[:2], "xfailed", OUTCOMES[2]] if xfailed else list(OUTCOMES)
    rows: dict[str, dict[str, int]] = {}
    total = dict.fromkeys(cols, 0)
    for rec in records:
        col = rec.outcome if rec.outcome in OUTCOMES else "failed"
        if col == "failed" and xfailed is not None and xfailed(rec):
            col = "xfailed"
        feats = set(features.get(rec.case, ())) | ({"cuda_graph"} if rec.mode == "cuda_graph" else set())
        for feat in sorted(feats) or [NO_FEATURE]:
            rows.setdefault(feat, dict.fromkeys(cols, 0))[col] += 1
        total[col] += 1
    if not any(total.values()):
        return []
    order = sorted(f for f in rows if f != NO_FEATURE) + ([NO_FEATURE] if NO_FEATURE in rows else [])
    table = [(f, rows[f]) for f in order] + [("all", total)]
    width = max(len("feature"), *(len(f) for f, _ in table))
    head = "feature".ljust(width) + "".join(f"  {c:>7}" for c in cols)
    lines = ["case runs (case × dtype) by feature:", head, "-" * len(head)]
    for feat, counts in table:
        lines.append(feat.ljust(width) + "".join(f"  {counts[c]:>7}" for c in cols))
    return lines
