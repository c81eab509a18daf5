"""The verdict exercise of lesson 06 rejects wrong code, and names the slip.

error_gap(err_a, err_b, n_images) -> (gap, standard error) and ordering_established(err_a,
err_b, n_images) decide whether one run is really above another. The planted versions below
make the slips a learner makes with a binomial standard error: percent mixed with fractions,
one run's variance for the difference's, a variance without its square root, standard errors
added, the training set's size for the test set's, a gap without its direction, a threshold
of zero or of one standard error. Each must print "✗ FAILED" with words that name it.
"""
import math

import pytest

from checks import degradation
from checks.harness import FAILED, NOT_WRITTEN, PASSED
from solutions import verdict as solved

pytestmark = pytest.mark.lessons


def verdict(capsys, check, fn):
    """(what the check returned, what it printed)."""
    ok = check(fn)
    return ok, capsys.readouterr().out


def rejects(capsys, check, fn, says):
    ok, out = verdict(capsys, check, fn)
    assert ok is False and out.startswith(FAILED), f"the check did not reject the planted bug:\n{out}"
    for phrase in says:
        assert phrase in out, f"the message should say {phrase!r}; it said:\n{out}"


# ------------------------------------------------------------------ error_gap

def gap_se_in_fractions(err_a, err_b, n_images):
    pa, pb = err_a / 100, err_b / 100
    return err_a - err_b, math.sqrt(pa * (1 - pa) / n_images + pb * (1 - pb) / n_images)   # forgot * 100


def gap_percent_in_p_times_one_minus_p(err_a, err_b, n_images):
    return err_a - err_b, math.sqrt(err_a * (1 - err_a) / n_images + err_b * (1 - err_b) / n_images)


def gap_one_run_only(err_a, err_b, n_images):
    pa = err_a / 100
    return err_a - err_b, 100 * math.sqrt(pa * (1 - pa) / n_images)


def gap_without_sqrt(err_a, err_b, n_images):
    pa, pb = err_a / 100, err_b / 100
    return err_a - err_b, 100 * (pa * (1 - pa) / n_images + pb * (1 - pb) / n_images)


def gap_standard_errors_added(err_a, err_b, n_images):
    pa, pb = err_a / 100, err_b / 100
    return err_a - err_b, 100 * (math.sqrt(pa * (1 - pa) / n_images) + math.sqrt(pb * (1 - pb) / n_images))


def gap_training_set_size(err_a, err_b, n_images):
    return solved.error_gap(err_a, err_b, 50_000)            # the training set's 50,000, always


def gap_reversed(err_a, err_b, n_images):
    gap, se = solved.error_gap(err_a, err_b, n_images)
    return -gap, se


def gap_pooled(err_a, err_b, n_images):
    p = (err_a + err_b) / 200                                 # the textbook pooled rate
    return err_a - err_b, 100 * math.sqrt(2 * p * (1 - p) / n_images)


def gap_only(err_a, err_b, n_images):
    return err_a - err_b                                      # shape slip: one number, not (gap, se)


@pytest.mark.parametrize("fn, says", [
    (gap_se_in_fractions, ["in fractions", "multiply it by 100"]),
    (gap_percent_in_p_times_one_minus_p, ["percent", "negative", "p = err / 100"]),
    (gap_one_run_only, ["err_a alone", "add the two variances"]),
    (gap_without_sqrt, ["variance of the gap", "square root"]),
    (gap_standard_errors_added, ["standard errors do not add, variances do"]),
    (gap_training_set_size, ["fits 50,000 images", "training set", "n_images = 10,000"]),
    (gap_reversed, ["wrong sign", "err_a - err_b"]),
    (gap_only, ["must return a tuple (gap, standard_error)"]),
    (gap_pooled, ["pooled standard error", "each run keeps its own rate"]),
], ids=lambda x: getattr(x, "__name__", ""))
def test_error_gap_rejects(capsys, fn, says):
    rejects(capsys, degradation.check_error_gap, fn, says)


# ------------------------------------------------------------------ ordering_established

def established_both_ways(err_a, err_b, n_images):
    gap, se = solved.error_gap(err_a, err_b, n_images)
    return abs(gap) > 2 * se                                 # loses the direction


def established_at_one_se(err_a, err_b, n_images):
    gap, se = solved.error_gap(err_a, err_b, n_images)
    return gap > se


def established_when_above(err_a, err_b, n_images):
    return err_a > err_b                                     # no noise at all


def established_with_a_variance(err_a, err_b, n_images):
    gap, variance = gap_without_sqrt(err_a, err_b, n_images)
    return gap > 2 * variance                                # the right comparison, a wrong error_gap


def established_returns_the_ratio(err_a, err_b, n_images):
    gap, se = solved.error_gap(err_a, err_b, n_images)
    return gap / se                                          # a number, not True/False


@pytest.mark.parametrize("fn, says", [
    (established_both_ways, ["BELOW run b", "no abs()"]),
    (established_at_one_se, ["1.4 standard errors is not established", "one time in 12"]),
    (established_when_above, ["0.2 standard errors counted as established", "not with 0"]),
    (established_with_a_variance, ["0.2 standard errors counted as established", "run error_gap's check"]),
    (established_returns_the_ratio, ["must return True or False"]),
], ids=lambda x: getattr(x, "__name__", ""))
def test_ordering_established_rejects(capsys, fn, says):
    rejects(capsys, degradation.check_ordering_established, fn, says)


# ------------------------------------------------------------------ the solutions, the stubs

@pytest.mark.parametrize("check, fn", [(degradation.check_error_gap, solved.error_gap),
                                       (degradation.check_ordering_established, solved.ordering_established)])
def test_the_solutions_pass(capsys, check, fn):
    ok, out = verdict(capsys, check, fn)
    assert ok is True and out.startswith(PASSED), out


def test_a_stub_is_reported_as_not_written_yet(capsys):
    def ordering_established(err_a, err_b, n_images):
        raise NotImplementedError("your turn")
    ok, out = verdict(capsys, degradation.check_ordering_established, ordering_established)
    assert ok is False and NOT_WRITTEN in out and "ordering_established" in out


def test_the_solution_is_the_binomial_standard_error_of_a_difference():
    """Independent of the reference in experiments.py: 200,000 pairs of simulated test sets
    scatter the gap of their error rates by the standard error error_gap gives (within 1%)."""
    np = pytest.importorskip("numpy")
    rng = np.random.default_rng(0)
    err_a, err_b, n = 24.14, 24.39, 10_000
    counts = rng.binomial(n, [err_a / 100, err_b / 100], size=(200_000, 2))
    scatter = 100 * np.std((counts[:, 0] - counts[:, 1]) / n)
    _, se = solved.error_gap(err_a, err_b, n)
    assert math.isclose(scatter, se, rel_tol=0.01), (scatter, se)
