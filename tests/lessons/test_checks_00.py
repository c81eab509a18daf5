"""The augmentation check of 00_setup.ipynb rejects wrong code, and says why.

tests/lessons/test_lessons.py proves that the worked solution passes the check. This file
proves the other half: planted wrong versions of `my_augment` (pad 4, random 32x32 crop,
random horizontal flip) make the check print "✗ FAILED" with a message that names the slip,
and return False. (The planted slips of lesson 00's mean and normalization exercises are in
tests/lessons/test_lesson_checks.py.)
"""
import functools

import numpy as np
import pytest

from checks import setup
from checks.harness import FAILED, NOT_WRITTEN, PASSED
from solutions.data import my_augment
from tinyresnet.data import augment

from planted import rejects, verdict

pytestmark = pytest.mark.lessons



def augment_with(slip, x, rng):
    """my_augment as a learner might write it, with one slip planted (slip=None: right)."""
    n, c, h, w = x.shape
    if slip == "pads every axis":
        padded = np.pad(x, 4)                                   # (N + 8, C + 8, 40, 40)
    elif slip == "reflect padding":
        padded = np.pad(x, ((0, 0), (0, 0), (4, 4), (4, 4)), mode="reflect")
    elif slip == "pads 2":
        padded = np.pad(x, ((0, 0), (0, 0), (2, 2), (2, 2)))
    elif slip == "float64 padding":
        padded = np.zeros((n, c, h + 8, w + 8))                 # no dtype: float64
        padded[:, :, 4:-4, 4:-4] = x
    else:
        padded = np.pad(x, ((0, 0), (0, 0), (4, 4), (4, 4)))
    high = {"offsets 0..7": 8, "pads 2": 5}.get(slip, 9)
    if slip == "one crop for the batch":
        oy, ox = np.full(n, rng.integers(0, high)), np.full(n, rng.integers(0, high))
    elif slip == "np.random, not rng":
        oy, ox = np.random.randint(0, high, n), np.random.randint(0, high, n)
    else:
        oy, ox = rng.integers(0, high, n), rng.integers(0, high, n)
    if slip == "one offset for rows and columns":
        ox = oy
    flip = np.ones(n, bool) if slip == "flips every image" else rng.random(n) < 0.5
    if slip == "flips the input in place":
        x[flip] = x[flip][:, :, :, ::-1]
        padded = np.pad(x, ((0, 0), (0, 0), (4, 4), (4, 4)))
        flip = np.zeros(n, bool)
    if slip == "returns the padded images":
        return padded
    out = []
    for i in range(n):
        window = padded[i, :, oy[i]:oy[i] + h, ox[i]:ox[i] + w]
        if flip[i]:
            window = {"flips the rows": window[:, ::-1, :],
                      "flips the channels": window[::-1, :, ::-1]}.get(slip, window[:, :, ::-1])
        out.append(window)
    return np.stack(out)


def planted(slip):
    fn = functools.partial(augment_with, slip)
    fn.__name__ = "my_augment"
    return fn


def per_image_draws(x, rng):
    """Right, but drawing row offset, column offset and coin image by image: other views than
    tinyresnet.data.augment's for the same seed, which is fine."""
    out = np.empty_like(x)
    for i, im in enumerate(np.pad(x, ((0, 0), (0, 0), (4, 4), (4, 4)))):
        oy, ox = rng.integers(0, 9, 2)
        window = im[:, oy:oy + 32, ox:ox + 32]
        out[i] = window[:, :, ::-1] if rng.random() < 0.5 else window
    return out


def test_the_solution_and_the_unslipped_plant_pass_as_the_library_does(capsys):
    for fn in (my_augment, planted(None)):
        ok, out = verdict(capsys, setup.check_augment, fn)
        assert ok is True and out.startswith(PASSED), out
        assert "draw for draw the views of tinyresnet.data.augment" in out, out


def test_the_solution_draws_as_the_library_does():
    x = np.random.default_rng(3).standard_normal((16, 3, 32, 32)).astype(np.float32)
    assert np.array_equal(my_augment(x, np.random.default_rng(5)), augment(x, np.random.default_rng(5))), (
        "the worked solution's views differ from tinyresnet.data.augment's with the same rng: they must "
        "draw in the same order (row offsets, column offsets, then flips)")


def test_the_library_passes(capsys):
    ok, out = verdict(capsys, setup.check_augment, augment)
    assert ok is True and "draw for draw the views of tinyresnet.data.augment" in out, out


def test_rolled_images_are_named(capsys):
    """np.roll shifts an image but brings back on one side what leaves the other."""
    def my_augment(x, rng):
        out = np.empty_like(x)
        for i in range(len(x)):
            dy, dx = rng.integers(-4, 5, 2)
            out[i] = np.roll(x[i], (dy, dx), axis=(1, 2))
        return out
    rejects(capsys, setup.check_augment, my_augment, says=["mode='wrap'", "as np.roll does", "pads with zeros"])


def test_other_draws_pass_and_are_told_apart(capsys):
    ok, out = verdict(capsys, setup.check_augment, per_image_draws)
    assert ok is True and out.startswith(PASSED), out
    assert "another order than tinyresnet.data.augment's" in out, out


def test_a_stub_is_not_written_yet(capsys):
    def my_augment(x, rng):
        raise NotImplementedError("your turn")
    ok, out = verdict(capsys, setup.check_augment, my_augment)
    assert ok is False and NOT_WRITTEN in out and "my_augment" in out, out


@pytest.mark.parametrize("slip, says", [
    ("pads every axis", ["shape (128, 11, 32, 32)", "channels 3 -> 11 (padded too)",
                         "np.pad(x, 4) pads every axis"]),
    ("offsets 0..7", ["row offsets of the windows (counted in the image padded by 4) were only 0, 1, 2, 3, 4, 5, 6, 7",
                      "no window started at offset 8", "rng.integers(0, 9, n)"]),
    ("flips the rows", ["image 0 is a window of its padded image turned upside down", "the last axis: im[:, :, ::-1]"]),
    ("flips the channels", ["mirrored, with its colour channels reversed", "the colour channels stay in order"]),
    ("one crop for the batch", ["all 128 images were cut at the same offset", "one offset per image"]),
    ("flips every image", ["all of the 128 images were mirrored", "probability 1/2"]),
    ("one offset for rows and columns", ["oy == ox", "separately"]),
    ("flips the input in place", ["changed its input x", "never write into x"]),
    ("returns the padded images", ["shape (128, 3, 40, 40)", "rows 32 -> 40", "those are the padded images"]),
    ("float64 padding", ["dtype is float64", "dtype=x.dtype"]),
    ("reflect padding", ["padded with np.pad's mode='reflect'", "pads with zeros"]),
    ("pads 2", ["row offsets of the windows (counted in the image padded by 4) were only 2, 3, 4, 5, 6",
                "pad by 4 on each side"]),
    ("np.random, not rng", ["the same rng seed must give the same views", "not from np.random"]),
])
def test_augment_rejects(capsys, slip, says):
    rejects(capsys, setup.check_augment, planted(slip), says=says)


def test_padding_every_axis_then_indexing_names_the_image_axis(capsys):
    """np.pad(x, 4) indexed as the library indexes: the right shape, but image i is read from
    padded image i, which is all padding for i < 4 and image i - 4 after that."""
    def my_augment(x, rng):
        n, c, h, w = x.shape
        padded = np.pad(x, 4)
        rows = rng.integers(0, 9, n)[:, None] + np.arange(h)
        cols = rng.integers(0, 9, n)[:, None] + np.arange(w)
        cols = np.where((rng.random(n) < 0.5)[:, None], cols[:, ::-1], cols)
        return padded[np.arange(n)[:, None, None, None], np.arange(c)[None, :, None, None],
                      rows[:, None, :, None], cols[:, None, None, :]]
    rejects(capsys, setup.check_augment, my_augment,
            says=["image 0 of yours is not a 32x32 window", "all padding", "image axis (axis 0) padded too"])


def test_padding_every_axis_in_a_loop_names_the_axes(capsys):
    """The loop version of np.pad(x, 4) fails on the channel axis: a shape error with the hint."""
    def my_augment(x, rng):
        padded = np.pad(x, 4)
        out = np.empty_like(x)
        for i in range(len(x)):
            oy, ox = rng.integers(0, 9, 2)
            out[i] = padded[i, :, oy:oy + 32, ox:ox + 32]
        return out
    rejects(capsys, setup.check_augment, my_augment,
            says=["could not broadcast", "np.pad(x, 4) pads every axis", "((0, 0), (0, 0), (4, 4), (4, 4))"])
