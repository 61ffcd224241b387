"""Candidates from other ecosystems with no adapter code: optax (JAX), Keras 3, and classes whose
arguments are spelled the optax/Keras way. Each runs as a user runs it (``pytest --optimizer=...``
in a fresh process, with the plugin alone loaded: JAX's float64 switch and Keras' backend are
process-wide)."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys

import pytest
from optimizer_conformance.conformance.golden import index
from optimizer_conformance.conformance.names import AmbiguousName, explicit_parameters, name_map

try:  # run from the repository root (python -m pytest): tests/ is a namespace package
    from tests.plugin_only import ENV, pytest_command
except ModuleNotFoundError:  # plain pytest puts tests/ itself on sys.path (rootdir-relative)
    from plugin_only import ENV, pytest_command

TORCH_NAMES = ["lr", "betas", "eps", "weight_decay", "amsgrad", "maximize"]


def _verdict(tmp_path, *args: str, env: dict | None = None) -> tuple[int, str, dict]:
    report = tmp_path / "report.json"
    run_env = {k: v for k, v in os.environ.items() if k != "PYTEST_ADDOPTS"}
    run_env.update({**ENV, **(env or {})})
    proc = subprocess.run(pytest_command("-q", *args, f"--optimizer-report={report}"),
                          cwd=tmp_path, env=run_env, capture_output=True, text=True, timeout=600)
    doc = json.loads(report.read_text()) if report.exists() else {}
    return proc.returncode, proc.stdout + proc.stderr, doc


# -- argument names ----------------------------------------------------------------------------------
def test_optax_and_keras_spellings_are_mapped():
    def optax_like(learning_rate, b1=0.9, b2=0.999, eps=1e-8, weight_decay=0.0):
        pass

    def keras_like(learning_rate=0.001, beta_1=0.9, beta_2=0.999, epsilon=1e-7, amsgrad=False, **kwargs):
        pass

    names = name_map(explicit_parameters(optax_like), TORCH_NAMES)
    assert names.translate({"lr": 0.1, "betas": (0.5, 0.75), "eps": 0.25, "weight_decay": 0.0, "amsgrad": True}) \
        == {"learning_rate": 0.1, "b1": 0.5, "b2": 0.75, "eps": 0.25, "weight_decay": 0.0}
    assert not names.maps("amsgrad") and not names.maps("maximize")
    keras = name_map(explicit_parameters(keras_like), TORCH_NAMES)
    assert keras.translate({"lr": 0.1, "betas": (0.5, 0.75), "eps": 0.25, "amsgrad": False}) \
        == {"learning_rate": 0.1, "beta_1": 0.5, "beta_2": 0.75, "epsilon": 0.25, "amsgrad": False}
    assert keras.via_kwargs == {"weight_decay", "maximize"}  # only through **kwargs


def test_third_party_spellings_of_specs_without_a_torch_class_are_mapped():
    """pytorch-optimizer's Prodigy (weight_decouple, bias_correction) and optax.contrib.prodigy
    (estim_lr0, estim_lr_coef) against the prodigy spec's names, read from the real signatures."""
    pytorch_optimizer = pytest.importorskip("pytorch_optimizer")
    optax = pytest.importorskip("optax")
    spec_names = ["lr", "betas", "eps", "weight_decay", "decouple", "d0", "d_coef", "use_bias_correction",
                  "safeguard_warmup"]
    po = name_map(explicit_parameters(pytorch_optimizer.Prodigy), spec_names)
    assert po.translate({"decouple": False, "use_bias_correction": True, "d0": 1e-6}) \
        == {"weight_decouple": False, "bias_correction": True, "d0": 1e-6}
    assert "decouple" not in po.via_kwargs and "use_bias_correction" not in po.via_kwargs
    ox = name_map(explicit_parameters(optax.contrib.prodigy), spec_names)
    assert ox.translate({"lr": 1.0, "d0": 1e-6, "d_coef": 0.5}) == {"learning_rate": 1.0, "estim_lr0": 1e-6,
                                                                     "estim_lr_coef": 0.5}


def test_an_ambiguous_name_is_refused_until_declared():
    def old_keras(lr=0.01, decay=0.0):
        pass

    with pytest.raises(AmbiguousName, match=r"'decay'.*--optimizer-args='\{\"decay\": \"weight_decay\"\}'"):
        name_map(explicit_parameters(old_keras), ["lr", "weight_decay"])
    declared = name_map(explicit_parameters(old_keras), ["lr", "weight_decay"], {"decay": "weight_decay"})
    assert declared.translate({"lr": 0.5, "weight_decay": 0.25}) == {"lr": 0.5, "decay": 0.25}


def test_a_numpy_adam_with_keras_names_needs_no_factory(tmp_path):
    """The reference Adam's step under Keras' spellings (a subclass that renames its arguments):
    conforms with no factory and no --optimizer-args."""
    (tmp_path / "keras_names.py").write_text('''
from optimizer_conformance.reference import Adam as _Adam

class Adam(_Adam):
    def __init__(self, params, learning_rate=1e-3, beta_1=0.9, beta_2=0.999, epsilon=1e-8,
                 weight_decay=0.0, amsgrad=False, maximize=False):
        super().__init__(params, lr=learning_rate, betas=(beta_1, beta_2), eps=epsilon,
                         weight_decay=weight_decay, amsgrad=amsgrad, maximize=maximize)

    @property
    def learning_rate(self):
        return self.lr

    @learning_rate.setter
    def learning_rate(self, value):
        self.lr = value
''', encoding="utf-8")
    rc, out, doc = _verdict(tmp_path, "--optimizer=keras_names.Adam")
    assert rc == 0, out
    assert doc["summary"] == {"passed": 2 * len(index()["specs"]["adam"]["cases"]), "failed": 0, "skipped": 0}, out


def test_ambiguous_decay_is_a_usage_error(tmp_path):
    (tmp_path / "old_sgd.py").write_text(
        "from optimizer_conformance.reference import SGD as _SGD\n"
        "class SGD(_SGD):\n"
        "    def __init__(self, params, lr=0.01, momentum=0.0, decay=0.0):\n"
        "        super().__init__(params, lr=lr, momentum=momentum, weight_decay=decay)\n", encoding="utf-8")
    rc, out, _ = _verdict(tmp_path, "--optimizer=old_sgd.SGD")
    assert rc == 4 and "'decay'" in out and "--optimizer-args" in out and "Traceback" not in out
    rc, out, doc = _verdict(tmp_path, "--optimizer=old_sgd.SGD", '--optimizer-args={"decay": "weight_decay"}')
    assert doc["summary"]["passed"] > 0 and "does not accept 'weight_decay'" not in out, out


# -- optax ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize(("path", "spec"), [("optax.adam", "adam"), ("optax.adamw", "adamw"), ("optax.sgd", "sgd")])
def test_optax_runs_natively_and_conforms(tmp_path, path, spec):
    pytest.importorskip("optax")
    rc, out, doc = _verdict(tmp_path, f"--optimizer={path}")
    assert rc == 0, out
    assert doc["spec"] == spec and doc["candidate"]["api"] == "optax"
    assert doc["summary"]["passed"] >= 6 and doc["summary"]["failed"] == 0
    # cases a transformation cannot express are skipped with the reason, not run otherwise
    reasons = {c["reason"] for c in doc["cases"] if c["outcome"] == "skipped"}
    assert all(r for r in reasons)


def test_an_optax_mutant_is_named(tmp_path):
    """optax's own eps_root (ε inside the square root) through a factory: named adam.eps_inside_sqrt."""
    pytest.importorskip("optax")
    (tmp_path / "rooted.py").write_text(
        "import optax\n\n"
        "def adam(learning_rate, b1=0.9, b2=0.999, eps=1e-8):\n"
        "    return optax.adam(learning_rate, b1=b1, b2=b2, eps=0.0, eps_root=eps)\n\n"
        "adam.conformance_api = 'optax'\n", encoding="utf-8")
    rc, out, doc = _verdict(tmp_path, "--optimizer=rooted:adam", "--optimizer-spec=adam")
    assert rc == 1, out
    assert doc["diagnosis"]["verdict"] == "variant" and doc["diagnosis"]["variants"] == ["adam.eps_inside_sqrt"], out


# -- Keras ---------------------------------------------------------------------------------------------
def test_keras_adam_runs_natively_and_is_named(tmp_path):
    """Keras's Adam is ε̂ (its large-ε cases match adam.eps_hat too), one step counter for the
    optimizer (the missing-gradient case), a float32 learning rate (float64) and decoupled decay:
    the run names adam.keras, which explains every failing case, and nothing else."""
    if importlib.util.find_spec("keras") is None:  # (importing it here would need a backend chosen)
        pytest.skip("Keras 3 is not installed (the [keras] extra)")
    rc, out, doc = _verdict(tmp_path, "--optimizer=keras.optimizers.Adam", env={"KERAS_BACKEND": "torch"})
    assert rc == 1, out
    assert doc["candidate"]["api"] == "keras"
    named = {(c["id"], c["dtype"]): c["matches"] for c in doc["cases"] if c["outcome"] == "failed"}
    assert named and all("adam.keras" in m for m in named.values()), out
    assert {"adam.eps_hat", "adam.keras"} <= set(named[("adam/large_eps", "float32")]), out
    assert doc["diagnosis"]["verdict"] == "variant" and doc["diagnosis"]["variants"] == ["adam.keras"], out


def test_the_plugin_alone_imports_neither_jax_nor_keras():
    code = ("import sys, optimizer_conformance.conformance.plugin; "
            "print([m for m in ('jax', 'optax', 'keras') if m in sys.modules])")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True)
    assert out.stdout.strip() == "[]"
