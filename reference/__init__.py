"""NumPy reference implementations of the specified optimizers.

Plain, readable NumPy written from the update rules (PyTorch's definitions), independently of the
SymPy derivations; one class per optimizer, named like torch's. Each class follows the NumPy
candidate protocol (see ``optimizer_conformance.conformance.candidates``): ``Cls(params,
**hyperparameters)``, ``step(grads)`` updating the arrays in place, hyperparameters as plain
attributes, ``state_dict()`` and ``load_state_dict()``. :class:`LBFGS` follows the closed-loop
protocol instead (``step(closure)``, see ``optimizer_conformance.conformance.closed_loop``).
"""

from .adadelta import Adadelta
from .adafactor import Adafactor
from .adagrad import Adagrad
from .adam import Adam
from .adamax import Adamax
from .adamw import AdamW
from .asgd import ASGD
from .lbfgs import LBFGS
from .muon import Muon
from .nadam import NAdam
from .radam import RAdam
from .rmsprop import RMSprop
from .rprop import Rprop
from .sgd import SGD
from .sparseadam import SparseAdam

__all__ = ["SGD", "Adam", "AdamW", "RMSprop", "Adagrad", "Adadelta", "Adamax", "NAdam", "RAdam",
           "ASGD", "Rprop", "SparseAdam", "Adafactor", "Muon", "LBFGS"]
