"""Running a NumPy reference on one parameter through a list of gradients: what the property
tests of tests/test_reference_<spec>.py share."""

from __future__ import annotations


def run_one(cls, theta0, grads, reload_at=None, **hyperparameters):
    """``cls([theta], **hyperparameters)`` stepped through ``grads`` on a copy of ``theta0``;
    before step ``reload_at`` (0-based) the state goes through state_dict() into a fresh instance.
    Returns the final parameter and the optimizer."""
    theta = theta0.copy()
    opt = cls([theta], **hyperparameters)
    for s, g in enumerate(grads):
        if s == reload_at:
            saved = opt.state_dict()
            opt = cls([theta], **hyperparameters)
            opt.load_state_dict(saved)
        opt.step([g])
    return theta, opt
