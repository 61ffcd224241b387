"""The pytest plugin: ``pytest --optimizer=DOTTED.PATH`` checks a candidate against the goldens.

Registered through the ``pytest11`` entry point. Without ``--optimizer`` it adds its options and
does nothing else. With it, the run collects the conformance cases instead of the tests of the
current directory: one test item per golden case and dtype, each building a fresh candidate.

This module is the pytest wiring: the options (their parsing and checks: ``options.py``), the
hook specification, and, with ``--optimizer``, the run (``run.py``: candidate, cases, records,
diagnosis, report) registered as a plugin, whose items are ``items.py``'s.

This module imports nothing heavy at import time (it is loaded in every pytest run of an
environment where the package is installed); NumPy and the candidate's framework are imported
when ``--optimizer`` is given. SymPy and mpmath are never imported: goldens are data.
"""

from __future__ import annotations

import pytest


def pytest_addhooks(pluginmanager: pytest.PytestPluginManager) -> None:
    from . import hookspecs

    pluginmanager.add_hookspecs(hookspecs)


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("optimizer-conformance", "optimizer conformance (verified-reference goldens)")
    group.addoption("--optimizer", metavar="DOTTED.PATH",
                    help="the candidate: an optimizer class or factory, e.g. torch.optim.Adam or pkg.mod:make_adam")
    group.addoption("--optimizer-spec", metavar="NAME",
                    help="the spec to check against (a spec id such as adam, sgd, lbfgs); default: inferred from the class name")
    group.addoption("--optimizer-kwargs", metavar="JSON", default="{}",
                    help="""extra constructor kwargs for every case, e.g. '{"foreach": false}'""")
    group.addoption("--optimizer-args", metavar="JSON", default="{}",
                    help="""the candidate's argument names that differ from torch's, e.g. '{"decay": "weight_decay"}' """
                    "(candidate name -> torch name; common spellings such as learning_rate, b1/b2, beta_1/beta_2 "
                    "and epsilon are mapped without it)")
    group.addoption("--optimizer-no-jit", action="store_true",
                    help="optax candidates: run update() eagerly instead of under jax.jit")
    group.addoption("--optimizer-dtype", metavar="DTYPE", action="append",
                    help="dtype(s) to run in, repeatable or comma-separated (default: float32,float64)")
    group.addoption("--optimizer-device", metavar="DEVICE", default="cpu",
                    help="device for torch candidates: cpu (default), cuda, cuda:N")
    group.addoption("--optimizer-accept", metavar="VARIANT_ID", action="append",
                    help="accept a catalogued variant as the candidate's declared convention (e.g. adam.eps_hat "
                    "for a Keras-compatible Adam): cases that follow it pass as acceptable; repeatable")
    group.addoption("--optimizer-report", metavar="PATH", help="write a JSON report of the run here")
    group.addoption("--optimizer-timeout", metavar="SECONDS", default="60",
                    help="per-case time limit, a number > 0 (default 60): the candidate process is killed after it")
    group.addoption("--optimizer-xfails", metavar="FILE",
                    help="expected failures: a file of test-id prefixes (one per line, # comments), e.g. "
                    "adam/large_eps or adam/large_eps[float32-cpu]; listed cases are marked xfail(strict)")
    group.addoption("--optimizer-plots", metavar="DIR",
                    help="write a PNG per failing case here: expected vs actual trajectory of the first "
                    "diverging element, and its error vs the tolerance (needs matplotlib)")
    group.addoption("--optimizer-distributed", metavar="WRAPPER", choices=("ddp", "zero", "fsdp", "own"),
                    help="run every case in N processes of a torch.distributed group (gloo on the CPU, NCCL on "
                    "CUDA), the candidate behind a wrapper: ddp (DistributedDataParallel), zero "
                    "(ZeroRedundancyOptimizer), fsdp (FSDP2 fully_shard), or own (the candidate takes "
                    "process_group= and communicates itself); see docs/distributed.md")
    group.addoption("--optimizer-world-size", metavar="N", default="2",
                    help="the number of ranks of --optimizer-distributed (default 2)")
    group.addoption("--optimizer-contract", action="store_true",
                    help="also check the optimizer contract a training loop relies on (zero_grad, "
                    "step(closure), add_param_group, state_dict, hooks, ...): torch candidates only")


# Plugins that serve only other tests and cost a conformance run time for nothing: Hypothesis'
# pytest plugin imports all of Hypothesis (~0.7 s) in its terminal summary of every run.
IDLE_PLUGINS = ("hypothesispytest",)


def _drop_idle_plugins(config: pytest.Config) -> None:
    """A conformance run collects only its own cases, none of them a Hypothesis test: leave out
    the plugins listed in IDLE_PLUGINS unless their library is already in use."""
    import sys

    if "hypothesis" in sys.modules:
        return
    for name in IDLE_PLUGINS:
        plugin = config.pluginmanager.get_plugin(name)
        if plugin is not None:
            config.pluginmanager.unregister(plugin)


def pytest_configure(config: pytest.Config) -> None:
    if not config.getoption("optimizer", None):
        return
    _drop_idle_plugins(config)
    from .candidates import UsageError
    from .run import ConformanceRun

    run = ConformanceRun.__new__(ConformanceRun)
    try:
        run.__init__(config)
    except UsageError as exc:
        if getattr(run, "worker", None) is not None:
            run.worker.stop()
        if getattr(run, "group", None) is not None:
            run.group.stop()
        raise pytest.UsageError(" ".join(str(exc).split("\n"))) from None
    config.pluginmanager.register(run, "optimizer-conformance-run")
