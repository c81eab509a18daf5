"""Lesson 06: the verdict on two runs, a gap between final errors and its standard error."""
import math

ESTABLISHED_AT = 2   # standard errors: the lesson's threshold for calling an ordering established


def error_gap(err_a, err_b, n_images):
    """err_a, err_b: two runs' final errors in percent, each measured on n_images images ->
    (gap, standard_error) in percentage points: gap = err_a - err_b, and how much that gap
    would scatter if the n_images images had been drawn again."""
    # 1. percent -> fractions: a binomial variance is p (1 - p) with p between 0 and 1
    p_a, p_b = err_a / 100, err_b / 100
    # 2. each error rate, a count of wrong images out of n, scatters with variance p (1 - p) / n
    var_a, var_b = p_a * (1 - p_a) / n_images, p_b * (1 - p_b) / n_images
    # 3. the variance of a difference of two independent measurements is the SUM of their
    #    variances (never a difference, and not the sum of standard errors)
    standard_error = math.sqrt(var_a + var_b)
    # 4. both back in percentage points, the unit of the logs
    return err_a - err_b, 100 * standard_error


def ordering_established(err_a, err_b, n_images):
    """True when run a's error is above run b's by more than ESTABLISHED_AT standard errors."""
    gap, standard_error = error_gap(err_a, err_b, n_images)
    # one-sided: the question has a direction ("is a above b?"), so no abs() of the gap
    return bool(gap > ESTABLISHED_AT * standard_error)
