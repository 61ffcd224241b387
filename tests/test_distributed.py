"""Distributed runs (``--optimizer-distributed``): the gradient split is exact, torch's wrappers
conform, the distributed mutants fail and are named, and a rank that raises, hangs or dies ends
the case with a verdict naming it and leaves no process behind.

Each run here starts N processes that import torch (~2 s each on two cores), so the default
suite keeps a few; the rest (every mutant, the hang and the death, FSDP2 and ZeRO at world size 3)
run with ``OPTIMIZER_CONFORMANCE_DISTRIBUTED_FULL=1`` (``nox -s distributed``, which also prints
the table of every torch.optim optimizer × wrapper × world size × dtype).
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import numpy as np
import pytest
import torch
from optimizer_conformance.conformance.distributed import local_gradient, mode_name, parse_mode
from optimizer_conformance.conformance.distributed_sweep import run_rerun_on_crash
from optimizer_conformance.conformance.golden import generated_kind
from optimizer_conformance.conformance.kinds import load_spec

try:  # run from the repository root (python -m pytest): tests/ is a namespace package
    from tests.plugin_only import ENV, pytest_command
except ModuleNotFoundError:  # plain pytest puts tests/ itself on sys.path (rootdir-relative)
    from plugin_only import ENV, pytest_command

ROOT = Path(__file__).resolve().parent.parent
FULL = os.environ.get("OPTIMIZER_CONFORMANCE_DISTRIBUTED_FULL", "") not in ("", "0")
full_only = pytest.mark.skipif(not FULL, reason="the full distributed matrix: OPTIMIZER_CONFORMANCE_DISTRIBUTED_FULL=1 "
                               "(nox -s distributed)")
MUTANTS = "tests.mutants.distributed_mutants"


# -- the gradient split (no process spawned) --------------------------------------------------------

@pytest.mark.parametrize("dtype", [torch.float64, torch.float32, torch.bfloat16, torch.float16])
@pytest.mark.parametrize("world", [1, 2, 3, 4])
def test_local_gradients_average_to_the_gradient_exactly(dtype, world):
    gen = torch.Generator().manual_seed(world)
    g = (torch.randn(7, 5, generator=gen, dtype=torch.float64) * 10.0 ** torch.randint(-3, 3, (7, 5),
                                                                                         generator=gen)).to(dtype)
    shares = [local_gradient(g, r, world) for r in range(world)]
    exact = sum(s.to(torch.float64) for s in shares)  # every share has at most 11 + 2 bits: exact in float64
    assert torch.equal(exact, g.to(torch.float64) * world)
    if world > 1:
        assert not all(torch.equal(s, shares[0]) for s in shares[1:]), "every rank must see its own gradient"
    if world in (1, 2, 4):  # a power of two: the average in the dtype itself is exact too, in any order
        ordered = shares[0].clone()
        for s in shares[1:]:
            ordered += s
        assert torch.equal(ordered / world, g)
        predivided = sum(s / world for s in shares)
        assert torch.equal(predivided, g)


def test_non_finite_gradients_reach_every_rank():
    g = torch.tensor([float("inf"), float("nan"), 1.5])
    for r in range(3):
        share = local_gradient(g, r, 3)
        assert share[0] == float("inf") and torch.isnan(share[1])


def test_mode_names_round_trip():
    assert parse_mode(mode_name("fsdp", 3)) == ("fsdp", 3)
    assert parse_mode("eager") is None and parse_mode("cuda_graph") is None


# -- runs through the plugin ----------------------------------------------------------------------

def _sessions() -> dict[int, int]:
    """pid → session id of every process of this machine."""
    out = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        out[int(stat.parent.name)] = int(fields[3])
    return out


def run_plugin(tmp_path: Path, *args: str, timeout: float = 600) -> tuple[dict, str]:
    """``pytest --optimizer ... --optimizer-report`` in a process of its own session: (the report,
    the output). Asserts that no process of that session (a rank) outlives the run."""
    report = tmp_path / "report.json"
    env = {**os.environ, **ENV, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    proc = subprocess.Popen(pytest_command(*args, f"--optimizer-report={report}"), cwd=ROOT, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, start_new_session=True)
    try:
        out, _ = proc.communicate(timeout=timeout)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    left = [pid for pid, sid in _sessions().items() if sid == proc.pid]
    assert not left, f"processes left behind by the run: {left}\n{out}"
    return json.loads(report.read_text()), out


def test_adamw_under_ddp_conforms(tmp_path):
    doc, out = run_plugin(tmp_path, "--optimizer=torch.optim.AdamW", "--optimizer-distributed=ddp")
    assert doc["diagnosis"]["verdict"] == "conforms", out
    # every case of the single-process run: the generated ones (one feature alone, boundary values),
    # the state injected at t = 10⁶ and the long horizon of 10³ steps included
    cases = load_spec("adamw").cases
    assert any(generated_kind(c.id) for c in cases) and any(c.initial_state for c in cases)
    assert any(c.n_steps >= 1000 for c in cases)
    assert doc["summary"]["passed"] == 2 * len(cases) and doc["summary"]["skipped"] == 0, out
    assert {c["mode"] for c in doc["cases"]} == {"ddp-ws2"}
    assert "distributed: ddp over 2 ranks (gloo)" in out
    from jsonschema import Draft202012Validator

    schema = json.loads((ROOT / "conformance" / "schemas" / "report.schema.json").read_text(encoding="utf-8"))
    errors = [e.message for e in Draft202012Validator(schema).iter_errors(doc)]
    assert not errors, errors


@pytest.mark.parametrize("variant", [
    "distributed.grads_summed",
    pytest.param("distributed.step_per_rank", marks=full_only),
    pytest.param("distributed.weight_decay_per_rank", marks=full_only),
    pytest.param("distributed.state_lost_on_resume", marks=full_only),
])
def test_distributed_mutant_fails_and_is_named(tmp_path, variant):
    from tests.mutants.distributed_mutants import DISTRIBUTED_MUTANTS

    cls = DISTRIBUTED_MUTANTS[("adamw", variant)]
    # the quick run leaves out the long horizons (10³ steps, a collective each); the full one runs all
    quick = [] if FULL else ["-k", "not long_horizon"]
    doc, out = run_plugin(tmp_path, f"--optimizer={MUTANTS}.{cls.__name__}", "--optimizer-distributed=own", *quick)
    assert doc["summary"]["failed"] > 0, out
    assert doc["diagnosis"]["verdict"] == "variant" and doc["diagnosis"]["variants"] == [variant], out
    assert f"trajectory matches {variant}" in out


@full_only
def test_an_own_factory_taking_the_group_conforms_at_world_size_3(tmp_path):
    doc, out = run_plugin(tmp_path, f"--optimizer={MUTANTS}:make_averaging_adamw", "--optimizer-spec=adamw",
                          "--optimizer-distributed=own", "--optimizer-world-size=3")
    assert doc["diagnosis"]["verdict"] == "conforms", out


@pytest.mark.parametrize(("fault", "says"), [
    ("raises", "rank 1: step 2: step() raised RuntimeError: rank 1 gives up"),
    pytest.param("dies", "rank 1 died with SIGKILL at step 2", marks=full_only),
    pytest.param("hangs", "rank 1 did not finish within 6 s", marks=full_only),
])
def test_a_misbehaving_rank_is_named_and_nothing_is_left_behind(tmp_path, fault, says):
    from tests.mutants.distributed_mutants import FAULTS

    doc, out = run_plugin(tmp_path, f"--optimizer={MUTANTS}.{FAULTS[fault].__name__}", "--optimizer-spec=adamw",
                          "--optimizer-distributed=own", "--optimizer-timeout=6", "-k", "defaults and float64")
    reasons = [c["reason"] for c in doc["cases"]]
    assert len(reasons) == 1 and says in reasons[0], out


@full_only
@pytest.mark.parametrize("wrapper", ["zero", "fsdp"])
def test_adam_under_sharding_wrappers_at_world_size_3(tmp_path, wrapper):
    doc, out = run_plugin(tmp_path, "--optimizer=torch.optim.Adam", f"--optimizer-distributed={wrapper}",
                          "--optimizer-world-size=3")
    assert doc["diagnosis"]["verdict"] == "conforms", out
    assert doc["summary"]["passed"] == 2 * len(load_spec("adam").cases) and doc["summary"]["skipped"] == 0, out


def test_world_size_without_a_wrapper_is_a_usage_error(pytester):
    result = pytester.runpytest_inprocess("-p", "no:cacheprovider", "--optimizer=torch.optim.SGD",
                                          "--optimizer-world-size=3")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*--optimizer-world-size needs --optimizer-distributed*"])


def test_cuda_without_enough_devices_is_skipped_with_the_reason(tmp_path):
    if torch.cuda.is_available() and torch.cuda.device_count() >= 2:
        pytest.skip("this machine has the CUDA devices: the NCCL path runs (nox -s distributed)")
    doc, out = run_plugin(tmp_path, "--optimizer=torch.optim.SGD", "--optimizer-distributed=ddp",
                          "--optimizer-device=cuda")
    assert doc["summary"]["passed"] == 0 and doc["summary"]["skipped"] == 2 * len(load_spec("sgd").cases), out
    assert all("NCCL runs one rank per CUDA device" in c["reason"] for c in doc["cases"]), out
    assert "verdict: NOT CHECKED" in out


def test_numpy_of_the_split_matches_the_documented_rule():
    """The rule of local_gradient's docstring, on one float32 number: hi keeps the top bits."""
    g = torch.tensor([1.0 + 2.0 ** -23], dtype=torch.float32)  # the last mantissa bit set
    shares = [local_gradient(g, r, 2) for r in range(2)]
    assert shares[0].item() == 2.0 and shares[1].item() == 2.0 ** -22  # 2·hi, 2·lo
    assert np.float32(shares[0].item() + shares[1].item()) / 2 == np.float32(g.item())


@full_only
@pytest.mark.parametrize(("saved_by", "loaded_by"), [(2, 3), (3, 2)])
def test_fsdp2_resumes_at_another_world_size(saved_by, loaded_by):
    from optimizer_conformance.conformance.distributed_reshard import reshard_resume

    for dtype in ("float32", "float64"):
        res = reshard_resume("torch.optim.AdamW", "adamw", "adamw/resume", dtype, saved_by, loaded_by)
        assert res.passed, res


# -- the closure-driven L-BFGS and the sparse-gradient SparseAdam ----------------------------------

@pytest.mark.parametrize("world", [1, 2, 3, 4])
def test_local_sparse_gradients_average_to_the_gradient_and_touch_only_its_indices(world):
    from optimizer_conformance.conformance.distributed import local_sparse_gradient

    gen = torch.Generator().manual_seed(world)
    indices = torch.randint(0, 3, (2, 9), generator=gen)  # repeats on a 3×3 param
    values = torch.randn(9, generator=gen, dtype=torch.float64).to(torch.float32)
    values[4] = 0.0  # an explicit zero: a touched element, kept by one rank
    shares = [local_sparse_gradient(indices, values, r, world) for r in range(world)]
    total = sum(torch.sparse_coo_tensor(i, v.double(), (3, 3), check_invariants=True).to_dense() for i, v in shares)
    assert torch.equal(total, torch.sparse_coo_tensor(indices, values.double(), (3, 3), check_invariants=True).to_dense()
                       * world)
    touched = {tuple(c) for i, _ in shares for c in i.T.tolist()}
    assert touched == {tuple(c) for c in indices.T.tolist()}, "no rank may touch an element the gradient does not"
    assert sum(int((v == 0).sum()) for _, v in shares) == 1, "only the gradient's own explicit zero"
    if world > 1:
        assert len({tuple(v.tolist()) for _, v in shares}) > 1, "every rank must see its own gradient"


@pytest.fixture(scope="module")
def two_ranks():
    """One group of two ranks for the tests below (each case sends its wrapper and its candidate:
    the ranks import torch once); afterwards no rank is left behind."""
    from optimizer_conformance.conformance.distributed_group import RankGroup, leftover_ranks

    group = RankGroup("torch.optim.SGD", {}, (), 40, "ddp", 2)
    assert group.start()[0] == "ready"
    pids = group.pids()
    try:
        yield group
    finally:
        group.stop()
        assert not leftover_ranks(pids)


def _run_cases(group, wrapper: str, cases: list[tuple[str, str, str]], path: str | None = None) -> list:
    """The given (spec, case, dtype) under ``wrapper`` on ``group``: the results. ``path``: the
    candidate (default: the spec's torch class). As in the sweep, a case in which a rank crashed
    inside torch (DDP's sparse all-reduce over gloo, docs/distributed.md) runs once more on new
    ranks; a second crash fails the test with its reason."""
    return [run_rerun_on_crash(group, {"spec": s, "case": c, "dtype": d, "device": "cpu", "accept": [],
                                       "mode": mode_name(wrapper, group.world), "wrapper": wrapper,
                                       "path": path or load_spec(s).torch_class})[0]
            for s, c, d in cases]


def test_the_sweep_runs_a_case_again_on_new_ranks_after_a_rank_crashed(two_ranks, tmp_path):
    """A rank that crashed (SIGABRT) in the sweep: the case runs once more on new ranks, and the
    crash is kept; crashing again is the verdict."""
    def request(marker: str) -> dict:
        return {"spec": "adamw", "case": "adamw/defaults", "dtype": "float64", "device": "cpu", "accept": [],
                "mode": mode_name("own", 2), "wrapper": "own", "path": f"{MUTANTS}.AbortsOnRank1Once",
                "kwargs": {"marker": marker}}

    before = two_ranks.pids()
    res, crash = run_rerun_on_crash(two_ranks, request(str(tmp_path / "aborted")), timeout=40)
    assert crash.startswith("rank 1 died with SIGABRT at step 1 of case adamw/defaults"), crash
    assert res.outcome == "passed", res.reason
    assert not set(two_ranks.pids()) & set(before)  # the second run had ranks of its own
    res, crash = run_rerun_on_crash(two_ranks, request(""), timeout=40)
    assert "rank 1 died with SIGABRT" in crash and res.outcome == "failed"
    assert res.reason.startswith("rank 1 died with SIGABRT at step 1"), res.reason


def test_lbfgs_and_sparse_adam_conform_under_ddp(two_ranks):
    """L-BFGS: every closure call all-reduces the ranks' shares (params, loss and torch's counters
    compared); SparseAdam: sparse COO gradients through nn.Embedding(sparse=True) and gloo's sparse
    all-reduce; a step with a sparse-gradient param left without gradient is torch's refusal."""
    wolfe, unused, repeats, missing = _run_cases(two_ranks, "ddp", [
        ("lbfgs", "lbfgs/strong_wolfe_rosenbrock", "float32"),
        ("lbfgs", "lbfgs/large_gradient_history", "float64"),
        ("sparseadam", "sparseadam/cancelling_repeats", "float32"),
        ("sparseadam", "sparseadam/maximize_groups_missing_grads", "float64"),
    ])
    for res in (wolfe, unused, repeats):
        assert res.outcome == "passed" and res.mode == "ddp-ws2", res.reason
    assert {"func_evals", "n_iter", "loss"} <= set(wolfe.compared_state)
    assert missing.outcome == "skipped"
    assert missing.reason.startswith("not supported by torch: RuntimeError: Expected sparse gradient to be defined")
    assert "pytorch/pytorch#80496" in missing.reason


@full_only
def test_lbfgs_behind_zero_runs_another_algorithm_and_a_rank_without_params_raises(two_ranks):
    """ZeRO steps a local L-BFGS per rank on its partition (a finding: KNOWN_FAILURES)."""
    two_params, one_param = _run_cases(two_ranks, "zero", [("lbfgs", "lbfgs/first_step_norms", "float64"),
                                                   ("lbfgs", "lbfgs/tolerance_grad", "float64")])
    assert two_params.outcome == "failed" and two_params.steps_run == 3
    assert two_params.first_divergence is not None and two_params.first_divergence.step == 1
    assert one_param.outcome == "failed" and one_param.reason.startswith(
        "rank 1: step 1: step(closure) raised IndexError: list index out of range at "), one_param.reason
    assert os.path.join("torch", "optim", "lbfgs.py") in one_param.reason  # torch's own code raised it


@full_only
def test_fsdp2_refusals_are_torch_own_errors(two_ranks):
    sparse, resume, wolfe = _run_cases(two_ranks, "fsdp", [
        ("sparseadam", "sparseadam/defaults", "float32"),
        ("lbfgs", "lbfgs/rosenbrock_lr_schedule_resume", "float64"),
        ("lbfgs", "lbfgs/strong_wolfe_rosenbrock", "float64"),
    ])
    assert sparse.outcome == "skipped" and "Could not run 'fsdp::chunk_cat' with arguments from the 'SparseCPU'" \
        in sparse.reason
    assert resume.outcome == "skipped" and resume.steps_run == 3  # the steps before the resume conform
    assert resume.reason.startswith("not supported by torch: TypeError: 'NoneType' object is not callable")
    assert "_init_optim_state calls step(closure=None)" in resume.reason
    assert wolfe.outcome == "passed", wolfe.reason


# -- issue 14: every case of the single-process run, under every wrapper ---------------------------

def test_a_state_injected_at_a_large_step_count_goes_through_zero_and_fsdp2(two_ranks):
    """``adamw/resumed_at_large_t``: a checkpoint at t = 10⁶ loaded before the first step, through
    ZeRO's consolidated layout and FSDP2's full state dict (sharded by set_optimizer_state_dict);
    and a generated one-feature case behind ZeRO."""
    steps = {c.id: c.n_steps for c in load_spec("adamw").cases}
    for dtype in ("float32", "float64"):
        for wrapper, case in [("zero", "adamw/resumed_at_large_t"), ("fsdp", "adamw/resumed_at_large_t"),
                              ("zero", "adamw/only_amsgrad")]:
            (res,) = _run_cases(two_ranks, wrapper, [("adamw", case, dtype)])
            assert res.outcome == "passed" and res.steps_run == steps[case], (case, wrapper, dtype, res.reason)
            assert res.mode == mode_name(wrapper, 2)
            # the moments and the step count compared after every step, gathered on rank 0
            assert {"step", "exp_avg", "exp_avg_sq"} <= set(res.compared_state), (wrapper, res.compared_state)


def test_a_kwargs_forwarding_own_factory_gets_the_settings_at_their_neutral_value(two_ranks):
    """``make(params, process_group=None, **hyperparameters)`` forwarding to torch's AdamW: a case
    at weight_decay = 0 (the feature off) must reach AdamW as 0, not its default 0.01."""
    spec = load_spec("adamw")
    neutral = [c.id for c in spec.cases if all(g.hyperparameters["weight_decay"] == 0 for g in c.groups)]
    assert "adamw/only_grad_none" in neutral and "adamw/only_maximize" in neutral
    results = _run_cases(two_ranks, "own", [("adamw", "adamw/only_grad_none", "float64"),
                                            ("adamw", "adamw/only_maximize", "float32"),
                                            ("adamw", "adamw/defaults", "float32")],
                         path=f"{MUTANTS}:make_averaging_adamw")
    for res in results:
        assert res.outcome == "passed" and res.mode == "own-ws2", (res.case, res.reason)
