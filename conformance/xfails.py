"""``--optimizer-xfails=FILE``: expected failures, listed as test-id prefixes.

The file holds one prefix per line of the ids the plugin gives its items
(``adam/large_eps[float32-cpu]``; ``adam/large_eps`` or ``adam/`` are prefixes of it); ``#``
starts a comment, blank lines are ignored. Every item an entry matches is marked
``xfail(strict=True)``: a listed case that fails is reported as xfailed, one that passes fails the
run (XPASS(strict)). An entry that matches no item of the run is reported (a pytest warning, and a
line in the end-of-run summary), since it is most likely a typo or a stale entry.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from .candidates import UsageError


@dataclass(frozen=True)
class XfailEntry:
    lineno: int
    prefix: str


@dataclass(frozen=True)
class XfailList:
    path: str  # as given on the command line (the reason names it)
    entries: tuple[XfailEntry, ...]

    @property
    def reason(self) -> str:
        return f"listed in {self.path}"

    def listed(self, item_id: str) -> bool:
        return any(item_id.startswith(e.prefix) for e in self.entries)

    def unmatched(self, item_ids: Iterable[str]) -> list[XfailEntry]:
        ids = list(item_ids)
        return [e for e in self.entries if not any(i.startswith(e.prefix) for i in ids)]

    def describe(self, entry: XfailEntry) -> str:
        return f"--optimizer-xfails: {self.path}:{entry.lineno}: {entry.prefix!r} matches no case of this run"


def read_xfails(path: str, base: Path | None = None) -> XfailList:
    """Parse the file (a missing or unreadable file is a usage error)."""
    file = Path(path)
    if base is not None and not file.is_absolute():
        file = base / file
    try:
        text = file.read_text(encoding="utf-8")
    except OSError as exc:
        raise UsageError(f"--optimizer-xfails={path}: cannot read the file ({exc.strerror or exc})") from None
    except UnicodeDecodeError as exc:
        raise UsageError(f"--optimizer-xfails={path}: not UTF-8 text (byte {exc.start}: {exc.reason})") from None
    entries = []
    for lineno, line in enumerate(text.splitlines(), start=1):
        prefix = line.split("#", 1)[0].strip()
        if prefix:
            entries.append(XfailEntry(lineno, prefix))
    return XfailList(path, tuple(entries))
