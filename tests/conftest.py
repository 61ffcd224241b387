"""The project's own tests: their settings, none of which applies to a conformance run.

The README's main job, ``pytest --optimizer=torch.optim.Adam`` in the repository root, loads this
file too (the root's pytest configuration names tests/ as its test path), with only what
``pip install -e ".[torch]"`` installs: no Hypothesis. So nothing here is imported or set for a
run with ``--optimizer`` (:func:`_conformance_run`): that run checks the candidate as it would
anywhere else, and pays for none of the tests' set-up.
"""

import gc
import multiprocessing.heap  # noqa: F401  (see below)
import os
import sys

import pytest

pytest_plugins = ["pytester"]

# An in-process pytester run drops the modules it imported when it ends. multiprocessing.heap,
# first imported inside such a run (the candidate process's pipes), would then be a second copy in
# the next run, whose pickler still knows the first copy's BufferWrapper: "Can't pickle
# BufferWrapper: it's not the same object" (test_cuda's runs, in one process). Imported here, it
# is the same module for every run.


def _conformance_run(config: pytest.Config) -> bool:
    """Whether this is a run of the plugin (``--optimizer``), not of the project's tests."""
    return bool(config.getoption("optimizer", None))


# The project's test command must give the same verdict on every run (CI included), so property
# tests are derandomized by default: each test draws the same examples every time. Exploration is
# a separate, deliberate job: `HYPOTHESIS_PROFILE=explore pytest -n 2` (or `nox -s explore`, which
# repeats it) draws fresh random examples on each run; a failure it finds is fixed in the code or
# in the test's stated hypothesis, and pinned with @example. Set before any other plugin's
# configuration (Hypothesis' own loads a --hypothesis-profile given on the command line, which
# may name these) and before collection (test modules build their @settings from the profile).
@pytest.hookimpl(tryfirst=True)
def pytest_configure(config):
    if _conformance_run(config):
        return
    from hypothesis import HealthCheck, settings  # the [test] extra

    settings.register_profile("default", derandomize=True, print_blob=True)
    settings.register_profile(
        "explore", derandomize=False, print_blob=True, suppress_health_check=[HealthCheck.too_slow]
    )
    settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "default"))


def pytest_collection_modifyitems(config, items):
    """Tests marked ``long`` first, in their collected order (a stable sort): under ``pytest -n``
    the longest ones start early instead of leaving one worker running the last of them alone."""
    if _conformance_run(config):
        return
    items.sort(key=lambda item: item.get_closest_marker("long") is None)


@pytest.hookimpl(optionalhook=True)  # a pytest-xdist hook: unknown without it installed
def pytest_xdist_make_scheduler(config, log):
    """Under ``pytest -n N`` without an explicit ``--dist``: work stealing (pytest-xdist's
    ``--dist worksteal``), so that a worker that runs out of tests takes pending ones from the
    other instead of idling (the default ``load`` hands out fixed chunks)."""
    if _conformance_run(config):
        return None
    explicit = any(a == "--dist" or a.startswith("--dist=") or a == "-d" for a in config.invocation_params.args)
    if config.getvalue("dist") == "load" and not explicit:
        from xdist.scheduler import WorkStealingScheduling

        return WorkStealingScheduling(config, log)
    return None


def pytest_collection_finish(session):
    """One intra-op thread for torch in each test process. Every tensor here is tiny: a second
    thread never speeds an operation up, but its OpenMP hand-offs and spin-waits cost CPU, and
    under `pytest -n 2` two workers with two threads each oversubscribe a two-core machine (the
    bfloat16 Newton–Schulz matmuls of the Muon mutants took 2–9× the CPU time). Results do not
    depend on it: every bitwise comparison runs both sides in the same process. Set after
    collection (the test modules have imported torch), so that no process imports torch for it."""
    if _conformance_run(session.config):
        return
    torch = sys.modules.get("torch")
    if torch is not None:
        torch.set_num_threads(1)
    # What collection built (torch, SymPy, the specs, the goldens read so far: millions of objects)
    # lives as long as the process. Frozen, the collector's full passes no longer walk it each time
    # (about 0.3 s a pass here, a dozen passes in a worker's run, five more at the session's end);
    # it is still freed when the process ends. Garbage made by the tests is collected as before,
    # but a full pass comes after 100 passes of the middle generation, not 10: what the tests load
    # and keep (goldens parsed, specs built, candidates imported) still grows to hundreds of
    # thousands of objects, walked by each full pass (~70 ms; 68 passes in a worker's run).
    gc.freeze()
    young, middle, _ = gc.get_threshold()
    gc.set_threshold(young, middle, 100)
