"""``nadam/resumed_at_large_t``: NAdam resumed at t = 10⁶ with its μ product injected as one number
per parameter (a ``per_param`` state, a float32 0-d tensor in torch, as torch creates it).

The injected Π₁₀⁶ is computed at generation time by a series (``derivations/nadam.py``
``mu_product_at``); here it is checked against the plain product ∏ μ_i at smaller N, and the
case is run on torch.optim.NAdam as given (passes, both dtypes and both implementations) and with
the product reset to 1 or left out of the checkpoint (fails: the case sees the μ product).
"""

from __future__ import annotations

import dataclasses

import mpmath
import numpy as np
import pytest
from optimizer_conformance.conformance.candidates import Candidate
from optimizer_conformance.conformance.kinds import load_spec
from optimizer_conformance.conformance.runner import run_case
from optimizer_conformance.derivations import nadam as N

CASE = "nadam/resumed_at_large_t"


def _case():
    spec = load_spec("nadam")
    return spec, next(c for c in spec.cases if c.id == CASE)


@pytest.mark.parametrize(("beta1", "psi", "steps"), [("0.999999", "4", 3000), ("0.9", "0.004", 2000),
                                                     ("0.75", "0.25", 500), ("0.75", "0", 40)])
def test_mu_product_series_is_the_plain_product(beta1: str, psi: str, steps: int) -> None:
    with mpmath.workdps(40):
        b1, q = mpmath.mpf(beta1), mpmath.mpf("0.96") ** mpmath.mpf(psi)
        plain = mpmath.fprod(b1 * (1 - q**i / 2) for i in range(1, steps + 1))
        assert abs(N.mu_product_at(steps, beta1, psi) / plain - 1) < mpmath.mpf(10) ** -35


def test_the_golden_injects_the_float32_rounded_product_once_per_param() -> None:
    spec, case = _case()
    assert case.per_param == {"mu_product"}
    with mpmath.workdps(40):
        exact = N.mu_product_at(10**6, "0.999999", "4")
    for name, by_state in case.initial_state.items():
        assert by_state["step"] == 10**6
        product = by_state["mu_product"]
        assert product.shape == (1,), name  # one number, whatever the param's shape
        assert float(np.float32(product[0])) == product[0]
        assert abs(product[0] - float(exact)) <= 2.0**-24 * float(exact)
        assert 0.01 < product[0] < 0.02  # 1 − Π weighs in the step, in float32 too


@pytest.mark.parametrize("foreach", [False, True])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_torch_nadam_resumes_from_the_injected_product(dtype: str, foreach: bool) -> None:
    spec, case = _case()
    cand = Candidate.from_path("torch.optim.NAdam", kwargs={"foreach": foreach})
    res = run_case(cand, spec, case, dtype)
    assert res.outcome == "passed", (res.outcome, res.reason, res.max_ratio)
    assert res.steps_run == case.n_steps


@pytest.mark.parametrize("wrong", ["reset", "missing"])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_a_lost_product_fails_the_case(dtype: str, wrong: str) -> None:
    """The control: the same checkpoint with Π = 1 (a product restarted on resume), or without
    mu_product (torch then fails to step), does not pass."""
    spec, case = _case()
    state = {name: ({**st, "mu_product": np.ones(1)} if wrong == "reset" else
                    {k: v for k, v in st.items() if k != "mu_product"})
             for name, st in case.initial_state.items()}
    res = run_case(Candidate.from_path("torch.optim.NAdam"), spec, dataclasses.replace(case, initial_state=state), dtype)
    assert res.outcome == "failed", (res.outcome, res.reason)
