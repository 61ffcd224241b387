"""The NumPy references (``optimizer_conformance.reference``) against the goldens and the rules.

1. Every golden case, in float32 and float64, through the conformance runner: the references
   must pass all of them and skip none (they implement every feature).
2. Every golden case in float64, driven directly (no runner): params and state after each step
   within 1e-13 of the exact values, relative to max(1, |expected|).
3. Properties the rules imply, for random inputs: plain SGD is exact gradient descent on dyadic
   numbers, heavy-ball momentum and Adam follow their closed forms under a constant gradient, a
   state_dict round trip and a missing gradient change nothing else, bit for bit.
"""

from __future__ import annotations

import copy
import inspect
from fractions import Fraction

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from optimizer_conformance import reference
from optimizer_conformance.conformance.candidates import Candidate
from optimizer_conformance.conformance.golden import Case, SparseGrad, index
from optimizer_conformance.conformance.kinds import load_spec
from optimizer_conformance.conformance.runner import run_case
from optimizer_conformance.reference import SGD, Adam, AdamW

# Every spec's reference, found by the registry (closed-loop specs have their own tests).
CLASSES = {
    spec_id: reference.REFERENCES[spec_id]
    for spec_id, meta in index()["specs"].items()
    if meta.get("kind", "update") == "update"
}
DTYPES = ("float32", "float64")


def _cases(spec_id: str) -> list[Case]:
    return load_spec(spec_id).cases


GOLDEN = [
    pytest.param(spec_id, case.id, id=case.id) for spec_id in CLASSES for case in _cases(spec_id)
]


def _case(spec_id: str, case_id: str) -> Case:
    (case,) = [c for c in _cases(spec_id) if c.id == case_id]
    return case


def _shares_state_across_groups(spec_id: str, case: Case) -> bool:
    """A case with two param groups of a spec whose groups share state (Prodigy's one D): the NumPy
    protocol builds one optimizer per group, so the runner skips it (conformance/drivers.py)."""
    return len(case.groups) > 1 and bool(load_spec(spec_id).groups_share_state)


# -- 1. through the runner -------------------------------------------------------------------


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize(("spec_id", "case_id"), GOLDEN)
def test_golden_case_passes_through_the_runner(spec_id: str, case_id: str, dtype: str) -> None:
    cls = CLASSES[spec_id]
    cand = Candidate.from_path(f"optimizer_conformance.reference.{cls.__name__}")
    assert cand.api == "numpy"
    spec, case = load_spec(spec_id), _case(spec_id, case_id)
    res = run_case(cand, spec, case, dtype)
    if _shares_state_across_groups(spec_id, case):
        # one NumPy optimizer per group cannot share the state (Prodigy's D): skipped, with the reason
        assert res.outcome == "skipped" and spec.groups_share_state in res.reason, (res.outcome, res.reason)
        return
    assert res.outcome != "skipped", f"{case_id} [{dtype}] skipped: {res.reason}"
    div = res.first_divergence
    where = (
        "none"
        if div is None
        else (
            f"step {div.step}, {div.where()}: expected {div.expected!r}, got {div.actual!r} "
            f"(error {div.error:.3g} > tolerance {div.tolerance:.3g})"
        )
    )
    assert res.outcome == "passed", (
        f"{case_id} [{dtype}] {res.outcome}: {res.reason or 'out of tolerance'}; "
        f"first divergence: {where}; max error/tolerance {res.max_ratio:.3g}; "
        f"steps run {res.steps_run}; matching variants {res.matches}"
    )
    assert res.steps_run == _case(spec_id, case_id).n_steps > 0
    assert not getattr(res, "findings", []), f"{case_id} [{dtype}]: {res.findings}"


def test_every_spec_has_cases() -> None:
    for spec_id in CLASSES:
        assert _cases(spec_id), spec_id


# -- 2. directly against the goldens in float64 ----------------------------------------------


def _drive(cls, case: Case, dtype: str = "float64"):
    """Run ``case`` on the reference: params (name -> (T+1, n)) and state after each step."""
    arrays = {p.name: p.initial.astype(dtype).reshape(p.shape) for p in case.params}
    settings_ = [dict(g.hyperparameters) for g in case.groups]
    opts = [
        cls([arrays[n] for n in g.params], **hp)
        for g, hp in zip(case.groups, settings_, strict=True)
    ]
    for opt, group in zip(opts, case.groups, strict=True):  # a resume at a large step count
        if case.initial_state:
            sd = opt.state_dict()
            sd["state"] = [{k: v if isinstance(v, int)
                            else v.astype(dtype).reshape(() if k in case.per_param else arrays[n].shape)
                            for k, v in case.initial_state.get(n, {}).items()} for n in group.params]
            opt.load_state_dict(sd)
    params = {n: [a.astype(np.float64).ravel().copy()] for n, a in arrays.items()}
    states: list[dict[str, dict]] = []
    for step in case.steps:
        if step.reload_before:
            for i, group in enumerate(case.groups):
                sd = copy.deepcopy(opts[i].state_dict())
                # Built with the learning rate alone: load_state_dict restores the rest.
                opts[i] = cls([arrays[n] for n in group.params], lr=settings_[i]["lr"])
                opts[i].load_state_dict(sd)
        for change in step.changes:
            setattr(opts[change.group], change.name, change.value)
            settings_[change.group][change.name] = change.value
        for opt, group in zip(opts, case.groups, strict=True):
            grads = [step.grads[n] for n in group.params]
            grads = [
                None if g is None
                else (g.indices, g.values) if isinstance(g, SparseGrad)
                else g.reshape(arrays[n].shape)
                for g, n in zip(grads, group.params, strict=True)
            ]
            assert opt.step(grads) is None
        for name, a in arrays.items():
            params[name].append(a.astype(np.float64).ravel().copy())
        snapshot = {}
        for opt, group in zip(opts, case.groups, strict=True):
            for name, st_ in zip(group.params, opt.state, strict=True):
                # per element: a factored (row/column) or scalar state broadcasts to the param
                snapshot[name] = {
                    k: np.broadcast_to(np.asarray(v, dtype=np.float64), arrays[name].shape).ravel()
                    if np.ndim(v) and np.size(v) != arrays[name].size else np.ravel(v).astype(np.float64)
                    for k, v in st_.items()
                }
        states.append(snapshot)
    return {n: np.vstack(v) for n, v in params.items()}, states


def _relative_error(actual: np.ndarray, expected: np.ndarray) -> float:
    return float(np.max(np.abs(actual - expected) / np.maximum(1.0, np.abs(expected)), initial=0.0))


@pytest.mark.parametrize(("spec_id", "case_id"), GOLDEN)
def test_golden_case_float64_within_1e13(spec_id: str, case_id: str) -> None:
    case = _case(spec_id, case_id)
    if _shares_state_across_groups(spec_id, case):
        pytest.skip(f"one NumPy optimizer per group: {load_spec(spec_id).groups_share_state}")
    params, states = _drive(CLASSES[spec_id], case)
    for t in range(1, case.n_steps + 1):
        if all(np.isnan(e[t]).all() for e in case.expected.values()):
            continue  # a long horizon's repeated step before its last: not checked
        for name, expected in case.expected.items():
            err = _relative_error(params[name][t], expected[t])
            assert err < 1e-13, f"{case_id} step {t}, {name}: relative error {err:.3g}"
            for key, exp_state in case.expected_state.get(name, {}).items():
                row = exp_state[t]
                mine = states[t - 1][name].get(key)
                if np.isnan(row).all():
                    assert mine is None, (
                        f"{case_id} step {t}: state[{name}][{key!r}] exists too early"
                    )
                    continue
                assert mine is not None, f"{case_id} step {t}: state[{name}] lacks {key!r}"
                if key in case.counters:
                    assert np.array_equal(np.full_like(row, mine.item()), row), (
                        f"{case_id} step {t}: state[{name}][{key!r}] = {mine.item()}, expected {row[0]}"
                    )
                else:
                    err = _relative_error(mine, row)
                    assert err < 1e-13, f"{case_id} step {t}, state[{name}][{key!r}]: {err:.3g}"


# -- 3. properties ---------------------------------------------------------------------------

# Dyadic rationals k / 2^8 with few significant bits: sums and products by powers of two stay
# exact in float32 and float64, so the reference must match exact rational arithmetic bit for bit.
dyadic = st.integers(-(2**10), 2**10).map(lambda k: Fraction(k, 2**8))
small_dyadic = st.integers(-(2**8), 2**8).map(lambda k: Fraction(k, 2**8))


@settings(max_examples=100, deadline=None)
@given(
    theta0=st.lists(dyadic, min_size=1, max_size=6),
    grads=st.lists(st.lists(small_dyadic, min_size=6, max_size=6), min_size=1, max_size=8),
    lr_exponent=st.integers(0, 6),
    maximize=st.booleans(),
    dtype=st.sampled_from(DTYPES),
)
def test_sgd_without_momentum_is_exact_gradient_descent(
    theta0, grads, lr_exponent, maximize, dtype
):
    n = len(theta0)
    lr = Fraction(1, 2**lr_exponent)
    theta = np.array([float(x) for x in theta0], dtype=dtype)
    opt = SGD([theta], lr=float(lr), maximize=maximize)
    exact = list(theta0)
    sign = -1 if maximize else 1
    for g in grads:
        g = g[:n]
        opt.step([np.array([float(x) for x in g], dtype=dtype)])
        exact = [x - sign * lr * gi for x, gi in zip(exact, g, strict=True)]
        assert theta.dtype == np.dtype(dtype)
        assert theta.tolist() == [float(x) for x in exact]
    assert opt.state == [{}]  # no momentum: no buffer kept


@settings(max_examples=100, deadline=None)
@given(
    theta0=dyadic,
    g=small_dyadic,
    lr_exponent=st.integers(0, 6),
    mu=st.sampled_from([Fraction(1, 2), Fraction(3, 4), Fraction(7, 8)]),
    steps=st.integers(1, 8),
)
def test_heavy_ball_follows_its_closed_form_exactly(theta0, g, lr_exponent, mu, steps):
    """Constant g, no dampening: theta_t = theta_0 - lr*g*(t - mu*(1 - mu^t)/(1 - mu))/(1 - mu).

    Every intermediate value is dyadic with at most ~40 significant bits, so float64 is exact.
    """
    lr = Fraction(1, 2**lr_exponent)
    theta = np.array([float(theta0)])
    opt = SGD([theta], lr=float(lr), momentum=float(mu))
    for t in range(1, steps + 1):
        opt.step([np.array([float(g)])])
        buffer = g * (1 - mu**t) / (1 - mu)
        expected = theta0 - lr * g * (t - mu * (1 - mu**t) / (1 - mu)) / (1 - mu)
        assert opt.state[0]["momentum_buffer"].item() == float(buffer)
        assert theta.item() == float(expected)


@settings(max_examples=200, deadline=None)
@given(
    cls=st.sampled_from([Adam, AdamW]),
    seed=st.integers(0, 2**32 - 1),
    lr=st.floats(1e-4, 1.0),
    beta1=st.floats(0.0, 0.99),
    beta2=st.floats(0.5, 0.999),
    eps=st.floats(1e-8, 1.0),
    amsgrad=st.booleans(),
    steps=st.integers(1, 20),
)
def test_adam_constant_gradient_closed_form(cls, seed, lr, beta1, beta2, eps, amsgrad, steps):
    """Constant g: m_hat = g and v_hat = g^2 exactly, so theta_t = theta_0 - t*lr*g/(|g| + eps).

    The reference only rounds; the bound is a running first-order estimate: each step rounds
    theta and the update (relative u each, a few times), and the update's relative error also
    carries the conditioning of the bias corrections, ~u/(1 - beta^s), and the ~s roundings of
    the moments' recurrences. AMSGrad does not change the trajectory (v only grows). With weight
    decay 0, AdamW is Adam.
    """
    rng = np.random.default_rng(seed)
    n = 5
    g = rng.choice([-1.0, 1.0], n) * 10.0 ** rng.uniform(-3, 3, n)
    theta0 = rng.uniform(-10, 10, n)
    theta = theta0.copy()
    opt = cls([theta], lr=lr, betas=(beta1, beta2), eps=eps, weight_decay=0.0, amsgrad=amsgrad)
    per_step = lr * g / (np.abs(g) + eps)
    u = 2.0**-53
    bound = np.zeros(n)
    for t in range(1, steps + 1):
        opt.step([g])
        expected = theta0 - t * per_step
        conditioning = t + 1 / (1 - beta1**t) + 1 / (1 - beta2**t)
        bound += np.abs(theta0 - (t - 1) * per_step) + np.abs(per_step) * conditioning
        error = np.abs(theta - expected)
        assert np.all(error <= 8 * u * bound), (t, error, 8 * u * bound)
    assert opt.state[0]["step"] == steps


def _hyperparameters(cls, draw):
    if cls is SGD:
        momentum = draw(st.sampled_from([0.0, 0.5, 0.9, 0.99]))
        nesterov = momentum > 0 and draw(st.booleans())
        return {
            "lr": draw(st.floats(1e-3, 1.0)),
            "momentum": momentum,
            "dampening": 0.0 if nesterov else draw(st.sampled_from([0.0, 0.1, 0.5])),
            "weight_decay": draw(st.sampled_from([0.0, 1e-2, 0.5])),
            "nesterov": nesterov,
            "maximize": draw(st.booleans()),
        }
    return {
        "lr": draw(st.floats(1e-4, 1.0)),
        "betas": (draw(st.floats(0.0, 0.99)), draw(st.floats(0.5, 0.9999))),
        "eps": draw(st.sampled_from([1e-8, 1e-3, 0.5])),
        "weight_decay": draw(st.sampled_from([0.0, 1e-2, 0.5])),
        "amsgrad": draw(st.booleans()),
        "maximize": draw(st.booleans()),
    }


@st.composite
def runs(draw):
    """An optimizer class, its settings, a dtype and a gradient schedule with missing grads."""
    cls = draw(st.sampled_from([SGD, Adam, AdamW]))
    hps = _hyperparameters(cls, draw)
    dtype = draw(st.sampled_from(DTYPES))
    steps = draw(st.integers(2, 10))
    shapes = [(), (3,), (2, 2)]
    missing = draw(
        st.lists(st.lists(st.booleans(), min_size=3, max_size=3), min_size=steps, max_size=steps)
    )
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    params = [rng.standard_normal(s).astype(dtype) for s in shapes]
    schedule = [
        [
            None if skip else rng.standard_normal(s).astype(dtype)
            for s, skip in zip(shapes, row, strict=True)
        ]
        for row in missing
    ]
    return cls, hps, params, schedule


@settings(max_examples=100, deadline=None)
@given(run=runs(), data=st.data())
def test_state_dict_round_trip_continues_bit_for_bit(run, data):
    """Snapshot mid-run, build a fresh instance on the same arrays, load: nothing changes."""
    cls, hps, initial, schedule = run
    reload_at = data.draw(st.integers(1, len(schedule) - 1))
    straight = [p.copy() for p in initial]
    opt = cls(straight, **hps)
    for grads in schedule:
        opt.step(grads)

    resumed = [p.copy() for p in initial]
    opt = cls(resumed, **hps)
    for t, grads in enumerate(schedule):
        if t == reload_at:
            sd = copy.deepcopy(opt.state_dict())
            # Other settings on purpose: load_state_dict restores the hyperparameters too.
            opt = cls(resumed, lr=hps["lr"] / 3)
            opt.load_state_dict(sd)
        opt.step(grads)
    for a, b in zip(straight, resumed, strict=True):
        assert a.dtype == b.dtype
        assert np.array_equal(a, b)


@settings(max_examples=100, deadline=None)
@given(run=runs())
def test_missing_gradient_changes_nothing_else(run):
    """Each param of a list evolves as if it had its own optimizer that only stepped with a grad.

    That is: a param without a gradient keeps its value, its state and its step count, and the
    params of one instance are independent (every rule here is elementwise).
    """
    cls, hps, initial, schedule = run
    together = [p.copy() for p in initial]
    opt = cls(together, **hps)
    for grads in schedule:
        copies = [None if g is None else g.copy() for g in grads]
        before = [p.copy() for p in together]
        state_before = copy.deepcopy(opt.state)
        opt.step(grads)
        for i, g in enumerate(grads):
            if g is None:
                assert np.array_equal(together[i], before[i])
                assert _same_state(opt.state[i], state_before[i])
            else:
                assert np.array_equal(g, copies[i])  # gradients are inputs: never written
    for i, p0 in enumerate(initial):
        alone = p0.copy()
        solo = cls([alone], **hps)
        for grads in schedule:
            if grads[i] is not None:
                solo.step([grads[i]])
        assert np.array_equal(alone, together[i])
        assert _same_state(solo.state[0], opt.state[i])
        for v in opt.state[i].values():
            if isinstance(v, np.ndarray):
                assert v.dtype == p0.dtype and v.shape == p0.shape


def _same_state(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(np.array_equal(a[k], b[k]) for k in a)


# -- protocol details ------------------------------------------------------------------------


@pytest.mark.parametrize("cls", [SGD, Adam, AdamW])
@pytest.mark.parametrize("dtype", DTYPES)
def test_updates_in_place_in_the_params_dtype(cls, dtype):
    params = [np.array(0.5, dtype=dtype), np.linspace(-1, 1, 4, dtype=dtype).reshape(2, 2)]
    ids = [id(p) for p in params]
    kwargs = {"momentum": 0.9} if cls is SGD else {"amsgrad": True}
    opt = cls(params, lr=0.1, **kwargs)
    grads = [np.array(0.25, dtype=dtype), np.full((2, 2), -0.5, dtype=dtype)]
    before = [p.copy() for p in params]
    opt.step(grads)
    opt.step(grads)
    assert [id(p) for p in opt.params] == ids
    for p, b in zip(params, before, strict=True):
        assert p.dtype == np.dtype(dtype) and p.shape == b.shape
        assert not np.array_equal(p, b)
    for state, p in zip(opt.state, params, strict=True):
        arrays = [v for v in state.values() if isinstance(v, np.ndarray)]
        assert arrays
        assert all(v.dtype == p.dtype and v.shape == p.shape for v in arrays)


@pytest.mark.parametrize("cls", [SGD, Adam, AdamW])
def test_state_dict_is_a_snapshot(cls):
    p = np.array([1.0, -2.0])
    opt = cls([p], lr=0.1, momentum=0.5) if cls is SGD else cls([p], lr=0.1)
    opt.step([np.array([0.5, 0.5])])
    sd = opt.state_dict()
    frozen = copy.deepcopy(sd)
    opt.step([np.array([0.5, 0.5])])
    opt.lr = 0.01
    assert _same_state(sd["state"][0], frozen["state"][0])
    assert sd["hyperparameters"] == frozen["hyperparameters"]
    assert sd["hyperparameters"]["lr"] == 0.1


def test_hyperparameters_are_attributes_with_torch_names():
    sgd = SGD([np.zeros(1)], lr=0.5)
    assert {k: getattr(sgd, k) for k in SGD.HYPERPARAMETERS} == {
        "lr": 0.5,
        "momentum": 0.0,
        "dampening": 0.0,
        "weight_decay": 0.0,
        "nesterov": False,
        "maximize": False,
    }
    adam_defaults = {
        "lr": 1e-3,
        "betas": (0.9, 0.999),
        "eps": 1e-8,
        "weight_decay": 0.0,
        "amsgrad": False,
        "maximize": False,
    }
    assert {k: getattr(Adam([np.zeros(1)]), k) for k in Adam.HYPERPARAMETERS} == adam_defaults
    adamw = AdamW([np.zeros(1)])
    assert {k: getattr(adamw, k) for k in Adam.HYPERPARAMETERS} == adam_defaults | {
        "weight_decay": 1e-2
    }


def test_adamw_decay_is_decoupled_and_scaled_by_lr():
    """With a zero gradient Adam's step is 0, so AdamW is pure decay: theta *= (1 - lr*wd).

    Here 1 - lr*wd = 7/8, and 3 and -5 times (7/8)^t are exact in float64. L2 decay would put
    wd*theta into the moments instead; decay not scaled by lr would shrink by 3/4.
    """
    theta = np.array([3.0, -5.0])
    opt = AdamW([theta], lr=0.5, weight_decay=0.25)
    for t in range(1, 4):
        opt.step([np.zeros(2)])
        assert theta.tolist() == [3.0 * 0.875**t, -5.0 * 0.875**t]
    assert np.array_equal(opt.state[0]["exp_avg"], np.zeros(2))
    assert opt.state[0]["step"] == 3


# references of the specs torch has a class for (their constructors are compared with torch's)
REFERENCES = {spec_id: reference.REFERENCES[spec_id]
              for spec_id, meta in index()["specs"].items() if meta["torch_class"] is not None}


@pytest.mark.parametrize("spec_id", sorted(REFERENCES))
def test_constructors_refuse_what_torch_refuses(spec_id: str) -> None:
    """A negative lr, eps, weight_decay, ... or betas outside [0, 1) is a ValueError naming it
    (before anything is built) wherever torch's constructor refuses it too."""
    torch = pytest.importorskip("torch")
    cls = REFERENCES[spec_id]
    torch_cls = Candidate.from_path(index()["specs"][spec_id]["torch_class"]).target
    sig = inspect.signature(cls)
    base = {} if sig.parameters["lr"].default is not inspect.Parameter.empty else {"lr": 0.1}
    bad = {"lr": -1.0, "eps": -1.0, "weight_decay": -0.5, "momentum": -0.5, "lr_decay": -1.0,
           "initial_accumulator_value": -1.0, "momentum_decay": -1.0, "betas": (0.9, 1.0)}
    tried = 0
    for name, value in bad.items():
        if name not in sig.parameters or type(sig.parameters[name].default) is not type(value):
            continue
        try:
            torch_cls([torch.zeros(2, 2, requires_grad=True)], **{**base, name: value})
            cls([np.zeros((2, 2))], **{**base, name: value})  # torch takes it (Muon's eps): so does ours
            continue
        except ValueError:
            pass
        with pytest.raises(ValueError, match=f"invalid {name}"):
            cls([np.zeros((2, 2))], **{**base, name: value})
        tried += 1
    assert tried >= 1
    cls([np.zeros((2, 2))], **base)  # the defaults are valid
