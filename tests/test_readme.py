"""The README opens with two commands, each doing its own set-up, and CI runs exactly those."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _commands(text: str) -> list[str]:
    return [line.split("#")[0].strip() for line in text.splitlines() if line.split("#")[0].strip()]


def readme_commands() -> list[str]:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    first_block = re.search(r"```bash\n(.*?)```", readme, flags=re.S).group(1)
    return _commands(first_block)


def test_the_readme_opens_with_the_main_job_and_the_test_command():
    main_job, tests = readme_commands()
    assert main_job.startswith("pip install ") and main_job.endswith("&& pytest --optimizer=torch.optim.Adam")
    assert tests.startswith("pip install ") and re.search(r"&& pytest( -n \d+)?$", tests)


def test_ci_runs_the_readme_commands_verbatim_and_last():
    ci = _commands((ROOT / ".ci" / "run").read_text(encoding="utf-8"))
    assert ci[-2:] == readme_commands()


def test_ci_pins_torch_for_every_install_after_the_first():
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    pin = ci.index("PIP_CONSTRAINT=")
    installs = [m.start() for m in re.finditer(r"pip install", ci)]
    assert installs[0] < pin < installs[1]
    assert (ROOT / ".ci" / "constraints.txt").read_text().split() == ["torch==2.13.0"]


def test_the_spec_table_is_the_generated_one():
    """README's table of specs is generated from the golden index
    (``python -m optimizer_conformance.conformance.catalogue --write README.md``)."""
    from optimizer_conformance.conformance.catalogue import with_table

    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert readme == with_table(readme), "README's spec table is stale: regenerate it with the catalogue command"
