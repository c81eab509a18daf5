"""Lesson 00 (00_setup.ipynb): the per-pixel mean and the normalization of CIFAR-10 images."""
import numpy as np

from tinyresnet.data import normalize, per_pixel_mean

from .harness import Mismatch, case, check

IMAGES_SHAPE = "images are (N, 3, 32, 32), the mean image is (3, 32, 32): average over axis 0 only."


@check("my_per_pixel_mean", shape_hint=IMAGES_SHAPE)
def check_per_pixel_mean(my_per_pixel_mean):
    x = np.random.default_rng(0).integers(0, 256, size=(20, 3, 32, 32), dtype=np.uint8)
    with case("20 random uint8 images"):
        mine = np.asarray(my_per_pixel_mean(x))
    expected = per_pixel_mean(x)
    if mine.shape != expected.shape:
        raise Mismatch(f"the mean image has shape {mine.shape}, expected {expected.shape}.\n"
                       "hint: average over the images only (axis 0), keep channels, rows and columns.")
    if not np.allclose(mine, expected, atol=1e-5):
        hint = ("your values are 255 times too large: scale the pixels to [0, 1]"
                if np.allclose(mine, expected * 255, atol=1e-3) else
                "average the images pixel by pixel (axis 0), then divide by 255")
        raise Mismatch(f"pixel (0, 0, 0): yours {mine[0, 0, 0]:.6g}, expected {expected[0, 0, 0]:.6g}.\n"
                       f"hint: {hint}.")
    return "the mean of 20 random images matches tinyresnet.data.per_pixel_mean"


@check("my_normalize", shape_hint=IMAGES_SHAPE)
def check_normalize(my_normalize):
    x = np.random.default_rng(1).integers(0, 256, size=(8, 3, 32, 32), dtype=np.uint8)
    mean = per_pixel_mean(x)
    with case("8 random uint8 images and their mean image"):
        mine = np.asarray(my_normalize(x, mean))
    expected = normalize(x, mean)
    if mine.shape != expected.shape:
        raise Mismatch(f"the result has shape {mine.shape}, expected {expected.shape} (the same as x)")
    if not np.allclose(mine, expected, atol=1e-5):
        raise Mismatch(f"x[0, 0, 0, 0] = {x[0, 0, 0, 0]} became {mine[0, 0, 0, 0]:.6g}, expected "
                       f"{expected[0, 0, 0, 0]:.6g} = {x[0, 0, 0, 0]}/255 - {mean[0, 0, 0]:.4f}.\n"
                       "hint: convert to float before dividing (uint8 arithmetic wraps around), "
                       "then subtract the mean image.")
    if mine.dtype != np.float32:
        raise Mismatch(f"the values are right but the dtype is {mine.dtype}; the network computes in "
                       "float32, which also halves memory: use x.astype(np.float32).")
    return "matches tinyresnet.data.normalize (float32, x/255 - mean)"
