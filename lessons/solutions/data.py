"""Lesson 00: the per-pixel mean and normalization of CIFAR-10 images."""
import numpy as np


def my_per_pixel_mean(x_train):
    # Average over the images only (axis 0): one mean value per channel, row and column.
    # dtype=float64 makes the sum of 50,000 values exact enough; /255 puts pixels in [0, 1].
    return (x_train.mean(axis=0, dtype=np.float64) / 255).astype(np.float32)


def my_normalize(x, mean):
    # Convert first: uint8 arithmetic would wrap around (200 + 100 == 44 in uint8).
    # float32 is what the network computes in, and half the memory of float64.
    # mean (3, 32, 32) broadcasts against x (N, 3, 32, 32): the same mean image for every image.
    return x.astype(np.float32) / 255 - mean
