"""docs/tutorial-numpy-adam.md, run: the course-style Adam fails and is named, the one-line fix passes."""

from __future__ import annotations

import re
from pathlib import Path

import numpy  # noqa: F401  (in-process pytester restores sys.modules: import up front)
import optimizer_conformance.conformance.plugin  # noqa: F401
import torch  # noqa: F401  (detect_api imports torch; it cannot be imported twice in a process)

PAGE = Path(__file__).resolve().parents[1] / "docs" / "tutorial-numpy-adam.md"
BUGGY_LINE = "            p -= self.lr * m_hat / (np.sqrt(v) + self.eps)"


def _python_blocks() -> list[str]:
    return re.findall(r"```python\n(.*?)```", PAGE.read_text(encoding="utf-8"), flags=re.S)


def _run(pytester, source: str, module: str):
    # a module name per test: in-process runs share the interpreter's import caches
    pytester.makepyfile(**{module: source})
    pytester.syspathinsert()
    return pytester.runpytest_inprocess("-p", "no:cacheprovider", f"--optimizer={module}.Adam",
                                        "--optimizer-spec=adam")


def test_the_course_adam_fails_and_is_named(pytester):
    buggy, _fix = _python_blocks()
    assert BUGGY_LINE in buggy
    result = _run(pytester, buggy, "scratch_adam")
    assert result.ret == 1
    result.assert_outcomes(failed=6, skipped=10)
    result.stdout.fnmatch_lines(["*verdict: DOES NOT CONFORM*",
                                 "*trajectory matches adam.uncorrected_second_moment*",
                                 "*skipped: candidate does not accept 'amsgrad'*"])


def test_the_one_line_fix_passes(pytester):
    buggy, fix = _python_blocks()
    result = _run(pytester, buggy.replace(BUGGY_LINE + "\n", fix), "fixed_adam")
    assert result.ret == 0
    result.assert_outcomes(passed=6, skipped=10)
    result.stdout.fnmatch_lines(["*verdict: CONFORMS*"])
