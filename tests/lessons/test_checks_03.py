"""Lesson 03's check cells reject wrong batch norm code, and say why.

tests/lessons/test_lessons.py proves that the worked solutions pass every check. This file
proves the other half for lesson 03 (03_batch_norm.ipynb): planted wrong versions of
`batch_norm_backward` make its check print "✗ FAILED" with a message that names the slip,
and return False.
"""
import pytest

from checks import batch_norm
from checks.harness import FAILED

pytestmark = pytest.mark.lessons

AXES = (0, 2, 3)


def rejects(capsys, check, *fns, says=()):
    """The check must fail and its message must contain every phrase in `says`."""
    ok = check(*fns)
    out = capsys.readouterr().out
    assert ok is False and out.startswith(FAILED), f"the check did not reject the planted bug:\n{out}"
    for phrase in says:
        assert phrase in out, f"the message should say {phrase!r}; it said:\n{out}"
    return out


# ------------------------------------------------------------------ batch_norm_backward

def bn_eval_mode_dx(g, xhat, gamma, inv_std):
    """The evaluation-mode gradient: the paths through the batch statistics are left out."""
    scale = (gamma * inv_std).reshape(1, -1, 1, 1)
    return scale * g, (g * xhat).sum(axis=AXES), g.sum(axis=AXES)


def bn_no_variance_path(g, xhat, gamma, inv_std):
    scale = (gamma * inv_std).reshape(1, -1, 1, 1)
    return scale * (g - g.mean(axis=AXES, keepdims=True)), (g * xhat).sum(axis=AXES), g.sum(axis=AXES)


def bn_keepdims(g, xhat, gamma, inv_std):
    """Right numbers, but dgamma and dbeta keep their (1, C, 1, 1) shape."""
    from solutions.batch_norm import batch_norm_backward
    dx, dgamma, dbeta = batch_norm_backward(g, xhat, gamma, inv_std)
    return dx, dgamma.reshape(1, -1, 1, 1), dbeta.reshape(1, -1, 1, 1)


@pytest.mark.parametrize("fn, says", [
    (bn_eval_mode_dx, ["evaluation-mode gradient", "case: batch_norm training (4, 3, 2, 2)"]),
    (bn_no_variance_path, ["path through the batch variance is missing"]),
    (bn_keepdims, ["dgamma of shape (1, 3, 1, 1), expected (3,)"]),
])
def test_batch_norm_backward_rejects(capsys, fn, says):
    rejects(capsys, batch_norm.check_batch_norm_backward, fn, says=says)
