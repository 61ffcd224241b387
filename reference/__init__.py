"""NumPy reference implementations of the specified optimizers.

Plain, readable NumPy written from the update rules (PyTorch's definitions), independently of the
SymPy derivations. Each class follows the NumPy candidate protocol (see
``optimizer_conformance.conformance.candidates``): ``Cls(params, **hyperparameters)``, ``step(grads)``
updating the arrays in place, hyperparameters as plain attributes, ``state_dict()`` and
``load_state_dict()``.
"""

import importlib
import importlib.util

from .adam import Adam
from .adamw import AdamW
from .sgd import SGD

# DEVELOPMENT ONLY: strict imports at integration
_CLASSES = {"rmsprop": "RMSprop", "adagrad": "Adagrad", "adadelta": "Adadelta", "adamax": "Adamax",
            "nadam": "NAdam", "radam": "RAdam", "asgd": "ASGD", "rprop": "Rprop",
            "sparseadam": "SparseAdam", "adafactor": "Adafactor", "muon": "Muon", "lbfgs": "LBFGS"}
for _mod, _cls in _CLASSES.items():
    if importlib.util.find_spec(f"{__name__}.{_mod}") is not None:
        globals()[_cls] = getattr(importlib.import_module(f"{__name__}.{_mod}"), _cls)

__all__ = ["SGD", "Adam", "AdamW"]
