"""Inputs for batch norm tests, shared by tests/core/test_batchnorm.py and tests/cpu/test_fast_batchnorm.py."""


def inputs(xp, rng, shape=(4, 3, 2, 2)):
    """x, gamma, beta for a batch of `shape`; gamma and beta away from their 1/0 defaults."""
    c = shape[1]
    return (xp.asarray(rng.standard_normal(shape) * 2 + 1),
            xp.asarray(rng.uniform(0.5, 2.0, c)),
            xp.asarray(rng.standard_normal(c)))


def running_stats(xp, rng, c):
    """running_mean, running_var for c channels, away from their 0/1 defaults."""
    return xp.asarray(rng.standard_normal(c)), xp.asarray(rng.uniform(0.5, 2.0, c))
