import os

from hypothesis import HealthCheck, settings

pytest_plugins = ["pytester"]

# The project's test command must give the same verdict on every run (CI included), so property
# tests are derandomized by default: each test draws the same examples every time. Exploration is
# a separate, deliberate job: `HYPOTHESIS_PROFILE=explore pytest -n 2` (or `nox -s explore`, which
# repeats it) draws fresh random examples on each run; a failure it finds is fixed in the code or
# in the test's stated hypothesis, and pinned with @example.
settings.register_profile("default", derandomize=True, print_blob=True)
settings.register_profile(
    "explore", derandomize=False, print_blob=True, suppress_health_check=[HealthCheck.too_slow]
)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "default"))
