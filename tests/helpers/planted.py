"""What every planted-bug test of a lesson's check asks: did the check reject the bug, and say why?

Used by tests/lessons/test_checks_NN.py and test_lesson_checks.py. A check cell's function prints
one line ("✓ PASSED ...", "✗ FAILED ...", "… not written yet ...") and returns True, False or None.
"""
from checks.harness import FAILED


def verdict(capsys, check, *fns):
    """(what the check returned, what it printed)."""
    ok = check(*fns)
    return ok, capsys.readouterr().out


def rejects(capsys, check, *fns, says=(), not_says=()):
    """The check must fail, its message must contain every phrase of `says` and none of `not_says`."""
    ok, out = verdict(capsys, check, *fns)
    assert ok is False and out.startswith(FAILED), f"the check did not reject the planted bug:\n{out}"
    for phrase in says:
        assert phrase in out, f"the message should say {phrase!r}; it said:\n{out}"
    for phrase in not_says:
        assert phrase not in out, f"the message should not say {phrase!r} (another slip's hint):\n{out}"
    return out
