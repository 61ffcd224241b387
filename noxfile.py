"""Sessions: ``nox -s tests golden lint benchmark startup sweep conformance docs explore mutation distributed``.

Every session runs in the current environment (``venv_backend="none"``): a fresh nox venv would
resolve ``torch`` from the registry and download a multi-gigabyte CUDA build. Set up once with
``pip install torch==2.13.0 && pip install -e ".[test,docs]"``.
"""

from pathlib import Path

import nox

nox.options.default_venv_backend = "none"
nox.options.sessions = ["lint", "golden", "tests"]


@nox.session
def tests(session: nox.Session) -> None:
    """The project's own tests (the README's test command)."""
    session.run("pytest", "-n", "2", *session.posargs)


@nox.session
def explore(session: nox.Session) -> None:
    """Property tests with fresh random examples, repeated (`nox -s explore -- 10` for ten rounds).

    The default test command is derandomized (tests/conftest.py) so that CI is reproducible; this
    session is where new counterexamples are looked for."""
    rounds = int(session.posargs[0]) if session.posargs else 5
    files = [str(p) for p in sorted(Path("tests").glob("test_*.py")) if "hypothesis" in p.read_text()]
    for _ in range(rounds):
        session.run("pytest", "-n", "2", "-q", "-p", "no:cacheprovider", *files,
                    env={"HYPOTHESIS_PROFILE": "explore"})


@nox.session
def golden(session: nox.Session) -> None:
    """Regenerate the golden vectors and fail on any byte of difference."""
    session.run("python", "-m", "optimizer_conformance.derivations", "--check")


@nox.session
def lint(session: nox.Session) -> None:
    session.run("ruff", "check", ".")


@nox.session
def benchmark(session: nox.Session) -> None:
    """Worst error of correct implementations / tolerance; variant margins over tolerance."""
    session.run("python", "-m", "optimizer_conformance.conformance.benchmark", *session.posargs)


@nox.session
def startup(session: nox.Session) -> None:
    """What a verdict costs over `import torch` (and over torch's first optimizer construction):
    medians of alternating rounds in fresh processes (`nox -s startup -- --pairs 9 --json out.json`)."""
    session.run("python", "-m", "optimizer_conformance.conformance.startup", *session.posargs)


@nox.session
def sweep(session: nox.Session) -> None:
    """Every torch.optim optimizer in every CPU implementation and dtype: the conformance table."""
    session.run("python", "-m", "optimizer_conformance.conformance.sweep", *session.posargs)


@nox.session
def conformance(session: nox.Session) -> None:
    """The main job: a verdict on torch.optim.Adam (pass another with -- --optimizer=...)."""
    session.run("pytest", *(session.posargs or ["--optimizer=torch.optim.Adam"]))


@nox.session
def mutation(session: nox.Session) -> None:
    """The suite's own mutation test (not in the default sessions: minutes): single-point mutants of
    torch.optim's for-loop implementations, each checked by the plugin; writes docs/mutation-report.json
    (the docs' "Mutation test" page). `nox -s mutation -- --target sgd --json -` for one function."""
    session.run("python", "-m", "optimizer_conformance.conformance.mutation_run", *session.posargs)


@nox.session
def docs(session: nox.Session) -> None:
    """The site, with the pages generated from derivations/ (docs/hooks/generated_pages.py):
    re-proves the closed forms and runs the sweep for the conformance matrix while building."""
    session.run("mkdocs", "build", "--strict")


@nox.session
def distributed(session: nox.Session) -> None:
    """Distributed runs in full (every distributed mutant, a rank that hangs or dies, ZeRO and FSDP2
    at world size 3), then the table of every torch.optim optimizer × ddp/zero/fsdp × world size
    2/3 × dtype (docs/distributed.md), with AdamW's verdict time under each wrapper."""
    session.run("pytest", "-p", "no:cacheprovider", "tests/test_distributed.py", *session.posargs,
                env={"OPTIMIZER_CONFORMANCE_DISTRIBUTED_FULL": "1"})
    session.run("python", "-m", "optimizer_conformance.conformance.distributed_sweep", "--markdown",
                "--timing", "torch.optim.AdamW")
