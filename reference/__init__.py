"""NumPy reference implementations of the specified optimizers.

Plain, readable NumPy written from the update rules (PyTorch's definitions), independently of the
SymPy derivations. Each class follows the NumPy candidate protocol (see
``optimizer_conformance.conformance.candidates``): ``Cls(params, **hyperparameters)``, ``step(grads)``
updating the arrays in place, hyperparameters as plain attributes, ``state_dict()`` and
``load_state_dict()``.
"""

from .adam import Adam
from .adamw import AdamW
from .sgd import SGD

# one line per optimizer

__all__ = ["SGD", "Adam", "AdamW"]
