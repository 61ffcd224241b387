"""A ``python -m pytest`` command line that loads this project's plugin and nothing else installed.

The tests that start pytest in a fresh process (to copy the package, kill it, or crash a worker)
test the plugin, not the environment's other plugins. Autoloading every installed one costs each
such run about 0.4 s here (anyio's plugin imports trio, which selenium brings): most of a run that
checks one case. The tests of what a user's run loads (tests/test_startup.py) keep autoloading.
"""

from __future__ import annotations

import sys

# PYTEST_DISABLE_PLUGIN_AUTOLOAD: only plugins named with -p are loaded (and pytest's own)
ENV = {"PYTEST_DISABLE_PLUGIN_AUTOLOAD": "1"}


def set_env(monkeypatch) -> None:
    """:data:`ENV` in this test's environment: an in-process pytester run, and the pytest-xdist
    workers it starts, load only the plugins named with :func:`plugins`."""
    for name, value in ENV.items():
        monkeypatch.setenv(name, value)


def plugins(xdist: bool = False) -> list[str]:
    """The ``-p`` options that load the plugin (and pytest-xdist, if asked) by name: for a run with
    :data:`ENV` in its environment (an in-process pytester run too: its xdist workers inherit both)."""
    return ["-p", "optimizer_conformance.conformance.plugin", *(["-p", "xdist.plugin"] if xdist else [])]


def pytest_command(*args: str, xdist: bool = False) -> list[str]:
    """``python -m pytest -p no:cacheprovider`` with :func:`plugins`, then ``args``; run it with
    :data:`ENV` in its environment."""
    return [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", *plugins(xdist), *args]
