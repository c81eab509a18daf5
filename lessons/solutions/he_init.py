"""Lesson 05: He initialization of a convolution's weights."""
import numpy as np


def he_normal(out_channels, in_channels, kernel_size, rng):
    """Weights (out_channels, in_channels, kernel_size, kernel_size), zero-mean normal with
    std sqrt(2 / fan_in), drawn from the NumPy Generator rng."""
    # 1. each output value sums over in_channels * kernel_size * kernel_size inputs: the fan-in
    fan_in = in_channels * kernel_size * kernel_size
    # 2. Var[y] = fan_in * Var[w] * E[x^2], and a ReLU keeps half of its input's second moment:
    #    Var[w] = 2 / fan_in keeps the variance of the signal the same from layer to layer
    std = np.sqrt(2.0 / fan_in)
    # 3. draw from the generator we are given, so that a seed makes the weights repeatable
    return rng.standard_normal((out_channels, in_channels, kernel_size, kernel_size)) * std
