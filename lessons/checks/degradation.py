"""Lesson 06 (06_degradation.ipynb): the verdict on two runs' final errors.

error_gap(err_a, err_b, n_images) -> (gap, standard_error) is compared with
experiments.gap_and_standard_error, and ordering_established(err_a, err_b, n_images) with
experiments.clearly_above, the versions lesson 06 uses while the exercise is not written yet.
When a number is off, the message names the slip that reproduces it: percent against
fractions, one run's variance for the gap's, a variance left without its square root,
standard errors added, another number of images, a gap without its direction.
"""
import math

from experiments import ESTABLISHED_AT, clearly_above, gap_and_standard_error

from .harness import Mismatch, case, check, describe

SHAPE_HINT = "err_a, err_b and n_images are plain numbers; error_gap returns two numbers, (gap, standard_error)."

# (what, err_a, err_b, n_images): errors in percent, as the logs write them
GAP_CASES = [
    ("ResNet-20 against ResNet-56, test error on 10,000 images", 24.14, 24.39, 10_000),
    ("plain-56 against plain-20, training error on 10,000 images", 61.26, 26.32, 10_000),
    ("plain-56 against plain-20, test error on 1,000 images", 90.2, 62.3, 1_000),
    ("two nets at chance level on 100 images", 50.0, 50.0, 100),
    ("a net with no errors against one with 10% on 400 images", 0.0, 10.0, 400),
]
TRAINING_SET = 50_000    # the slip of counting the training set's images for a test error


def close(x, y):
    return math.isclose(x, y, rel_tol=1e-6, abs_tol=1e-9)


def as_number(value, fn_name, name):
    """value as a float, or a Mismatch that says what came back instead."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise Mismatch(f"{fn_name} returned {name} = {describe(value)}; it must be one number") from None
    return number


def _variances(err_a, err_b, n):
    """Each run's binomial variance of its error rate, as fractions squared."""
    return [p / 100 * (1 - p / 100) / n for p in (err_a, err_b)]


def _pooled(err_a, err_b, n):
    """The pooled two-proportion standard error, in points."""
    p = (err_a + err_b) / 200
    return 100 * math.sqrt(2 * p * (1 - p) / n)


def _gap_slip(err_a, err_b, n, gap, se, expected_gap, expected_se):
    """The usual slip that reproduces the learner's (gap, se), or None."""
    if not math.isfinite(se):
        return (f"the standard error is {se}: p (1 - p) with p in percent ({err_a} × (1 - {err_a})) is "
                "negative, and its square root is not a number. Turn the percent into fractions first "
                "(p = err / 100), or write p (100 - p) with both in percent.")
    if expected_gap and close(gap, -expected_gap):
        return "the gap has the wrong sign: gap = err_a - err_b (positive when run a has the higher error)."
    if expected_gap and close(gap, expected_gap / 100):
        return ("the gap is in fractions; the errors come in percent, and the gap is wanted in the same "
                "percentage points: err_a - err_b.")
    if not close(gap, expected_gap):
        return "the gap is err_a - err_b, in percentage points."
    var_a, var_b = _variances(err_a, err_b, n)
    slips = [
        (expected_se / 100, f"your standard error ({se:.4g}) is in fractions while the errors and the gap are in "
                            "percentage points: multiply it by 100."),
        (expected_se * 100, "your standard error is 100 times too large: with p = err / 100 the root of "
                            "p (1 - p) / n is a fraction; times 100 once gives points."),
        (100 * (var_a + var_b), "that is the variance of the gap, not its standard error: take the square root."),
        (1e4 * (var_a + var_b), "that is the variance of the gap (in points squared), not its standard error: "
                                "take the square root."),
        (100 * math.sqrt(var_a), "that is the standard error of err_a alone. The gap is a difference of two "
                                 "measurements, each with its own scatter: add the two variances, then take "
                                 "the square root."),
        (100 * math.sqrt(var_b), "that is the standard error of err_b alone. The gap is a difference of two "
                                 "measurements, each with its own scatter: add the two variances, then take "
                                 "the square root."),
        (100 * (math.sqrt(var_a) + math.sqrt(var_b)), "standard errors do not add, variances do: "
                                                      "sqrt(se_a² + se_b²), not se_a + se_b."),
        (100 * math.sqrt(abs(var_a - var_b)), "the variances of a difference ADD: var_a + var_b, even though "
                                              "the errors are subtracted."),
        (_pooled(err_a, err_b, n), "that is the pooled standard error, sqrt(2 p (1 - p) / n) with p the mean of "
                                   "the two rates (a textbook test of 'equal rates'). Here each run keeps its "
                                   "own rate: sqrt(p_a (1 - p_a) / n + p_b (1 - p_b) / n)."),
    ]
    for value, slip in slips:
        if close(se, value) and not close(se, expected_se):
            return slip
    if se > 0 and var_a + var_b > 0:
        implied = n * 1e4 * (var_a + var_b) / se ** 2    # the number of images this standard error fits
        if not math.isclose(implied, n, rel_tol=1e-3):
            which = " (the training set's, not the images the error was measured on)" \
                if math.isclose(implied, TRAINING_SET, rel_tol=1e-3) else ""
            return (f"your standard error fits {implied:,.0f} images{which}, but these errors were measured "
                    f"on n_images = {n:,}: divide each variance by n_images.")
    return ("the standard error of the gap is 100 · sqrt(p_a (1 - p_a) / n + p_b (1 - p_b) / n), "
            "with p = err / 100 and n = n_images.")


@check("error_gap", shape_hint=SHAPE_HINT)
def check_error_gap(error_gap):
    for what, err_a, err_b, n in GAP_CASES:
        expected_gap, expected_se = gap_and_standard_error(err_a, err_b, n)
        with case(what):
            try:
                result = error_gap(err_a, err_b, n)
            except ValueError as e:
                if "math domain" not in str(e):
                    raise
                raise Mismatch(f"{what}: your code raised ValueError: {e}. p (1 - p) with p in percent "
                               f"({err_a} × (1 - {err_a})) is negative, and math.sqrt refuses it: turn the "
                               "percent into fractions first (p = err / 100).") from None
            if not isinstance(result, (tuple, list)) or len(result) != 2:
                raise Mismatch(f"{what}: error_gap must return a tuple (gap, standard_error), "
                               f"got {describe(result)}")
            gap, se = (as_number(v, "error_gap", name) for v, name in zip(result, ("gap", "standard_error")))
            if not (close(gap, expected_gap) and close(se, expected_se)):
                raise Mismatch(
                    f"{what}: error_gap({err_a}, {err_b}, {n}) returned gap {gap:.6g}, standard error {se:.6g}; "
                    f"expected {expected_gap:.6g} and {expected_se:.6g} points\n"
                    f"hint: {_gap_slip(err_a, err_b, n, gap, se, expected_gap, expected_se)}")
    return (f"{len(GAP_CASES)} pairs of errors, on 100 to 10,000 images: the gaps and their binomial "
            "standard errors are right")


# (err_a, err_b, n_images): gaps of about 0.2, 1.4, 2.6 and -2.6 standard errors on 10,000 images,
# a large gap on 1,000, and one gap that is established on 10,000 images but not on 1,000
ORDER_CASES = [(20.1, 20.0, 10_000), (20.8, 20.0, 10_000), (21.5, 20.0, 10_000), (18.5, 20.0, 10_000),
               (90.2, 62.3, 1_000), (21.5, 20.0, 1_000)]


def _order_slip(gap, se, mine):
    """Why the learner's True/False is wrong for a gap of gap/se standard errors."""
    z = gap / se
    if mine and gap < 0:
        return (f"here run a is {-gap:.1f} points BELOW run b, and you answered True. ordering_established(a, b) "
                "asks whether a is ABOVE b: keep the gap's sign (no abs()).")
    if mine and z <= 1:
        return (f"a gap of {z:.1f} standard errors counted as established: compare the gap with "
                f"{ESTABLISHED_AT} standard errors, not with 0 or with one of them. If your comparison is "
                f"right, the standard error it used is off: here it is {se:.4g} points; run error_gap's "
                "check above first.")
    if mine:
        chance = 0.5 * math.erfc(z / math.sqrt(2))   # P(a normal draw above z): the images alone
        return (f"a gap of {z:.1f} standard errors is not established: the images alone give a gap that "
                f"large about one time in {1 / chance:.0f} when the two nets are equally good. The "
                f"lesson's threshold is {ESTABLISHED_AT} standard errors.")
    return (f"a gap of {z:.1f} standard errors IS established (more than {ESTABLISHED_AT}); check that you "
            f"compare gap = err_a - err_b with {ESTABLISHED_AT} × standard_error, from error_gap.")


@check("ordering_established", shape_hint=SHAPE_HINT)
def check_ordering_established(ordering_established):
    for err_a, err_b, n in ORDER_CASES:
        gap, se = gap_and_standard_error(err_a, err_b, n)
        what = f"err_a {err_a}%, err_b {err_b}% on {n:,} images: a gap of {gap / se:.1f} standard errors"
        with case(what):
            mine = ordering_established(err_a, err_b, n)
        if type(mine).__name__ not in ("bool", "bool_"):
            raise Mismatch(f"{what}: ordering_established must return True or False, got {describe(mine)}")
        if bool(mine) != clearly_above(err_a, err_b, n):
            raise Mismatch(f"{what}: you answered {bool(mine)}\nhint: {_order_slip(gap, se, bool(mine))}")
    return (f"{len(ORDER_CASES)} pairs, from 0.2 to more than {ESTABLISHED_AT} standard errors either way: "
            "established exactly when run a is above run b by more than "
            f"{ESTABLISHED_AT} standard errors")
