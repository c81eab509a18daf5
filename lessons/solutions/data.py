"""Lesson 00: the per-pixel mean, normalization and augmentation of CIFAR-10 images."""
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


def my_augment(x, rng):
    n, c, h, w = x.shape
    # Pad the rows and columns only (axes 2 and 3) with 4 zeros on each side: (N, C, 40, 40).
    # The images are normalized, so 0 is the average pixel, not black.
    padded = np.pad(x, ((0, 0), (0, 0), (4, 4), (4, 4)))
    # One window per image: a 32-pixel window fits at 9 offsets, 0..8, in a 40-pixel row, and
    # rng.integers excludes its upper bound, hence 9. Row offsets, column offsets, then the coins:
    # the order in which tinyresnet.data.augment draws, so that one seed gives the same views.
    oy = rng.integers(0, 9, n)
    ox = rng.integers(0, 9, n)
    flip = rng.random(n) < 0.5                 # each image is mirrored with probability 1/2
    out = np.empty_like(x)                     # a new array: x itself stays as it was
    for i in range(n):
        window = padded[i, :, oy[i]:oy[i] + h, ox[i]:ox[i] + w]          # (C, 32, 32)
        # A horizontal flip reverses the columns, the last axis (reversing axis 1 would
        # turn the picture upside down).
        out[i] = window[:, :, ::-1] if flip[i] else window
    return out
