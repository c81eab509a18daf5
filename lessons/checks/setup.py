"""Lesson 00 (00_setup.ipynb): the per-pixel mean, the normalization and the augmentation of CIFAR-10 images."""
import numpy as np

from tinyresnet.data import PAD, augment, normalize, per_pixel_mean

from .harness import Mismatch, case, check, describe

IMAGES_SHAPE = "images are (N, 3, 32, 32), the mean image is (3, 32, 32): average over axis 0 only."


@check("my_per_pixel_mean", shape_hint=IMAGES_SHAPE)
def check_per_pixel_mean(my_per_pixel_mean):
    x = np.random.default_rng(0).integers(0, 256, size=(20, 3, 32, 32), dtype=np.uint8)
    with case("20 random uint8 images"):
        mine = my_per_pixel_mean(x)
    if mine is None:
        raise Mismatch("my_per_pixel_mean returned None: did you forget the `return`?")
    mine, expected = np.asarray(mine), per_pixel_mean(x)
    if mine.shape != expected.shape:
        raise Mismatch(f"the mean image has shape {mine.shape}, expected {expected.shape}.\n"
                       "hint: average over the images only (axis 0), keep channels, rows and columns.")
    if not np.allclose(mine, expected, atol=1e-5):
        wrapped = x.sum(axis=0, dtype=np.uint8) / 255 / len(x)      # a sum kept in uint8 wraps at 256
        hint = ("your values are 255 times too large: scale the pixels to [0, 1]"
                if np.allclose(mine, expected * 255, atol=1e-3) else
                "your sum wrapped around in uint8 (it keeps only the sum modulo 256): take "
                "x.mean(axis=0), or convert to float before you add"
                if np.all(mine <= wrapped + 1e-6) and np.allclose(mine, wrapped, atol=1e-3) else
                "average the images pixel by pixel (axis 0), then divide by 255")
        raise Mismatch(f"pixel (0, 0, 0): yours {mine[0, 0, 0]:.6g}, expected {expected[0, 0, 0]:.6g}.\n"
                       f"hint: {hint}.")
    return "the mean of 20 random images matches tinyresnet.data.per_pixel_mean"


@check("my_normalize", shape_hint=IMAGES_SHAPE)
def check_normalize(my_normalize):
    x = np.random.default_rng(1).integers(0, 256, size=(8, 3, 32, 32), dtype=np.uint8)
    mean = per_pixel_mean(x)
    expected, x_given, mean_given = normalize(x, mean), x.copy(), mean.copy()
    with case("8 random uint8 images and their mean image"):
        mine = np.asarray(my_normalize(x, mean))
    if not (np.array_equal(x, x_given) and np.array_equal(mean, mean_given)):
        raise Mismatch("my_normalize changed the array it was given (x or mean): return a new array, "
                       "x.astype(np.float32) / 255 - mean, and leave the images as they are; the loader "
                       "normalizes the same stored images again every epoch.")
    if mine.shape != expected.shape:
        raise Mismatch(f"the result has shape {mine.shape}, expected {expected.shape} (the same as x)")
    if not np.allclose(mine, expected, atol=1e-5):
        at = np.unravel_index(np.argmax(np.abs(mine - expected)), mine.shape)
        if np.allclose(mine, (x.astype(np.float64) - mean), atol=1e-3):
            hint = "the pixels are still 0..255: divide x by 255 before subtracting the mean image"
        else:
            hint = ("convert to float before any arithmetic (uint8 arithmetic wraps around: 3 - 5 is 254), "
                    "then x / 255 - mean")
        raise Mismatch(f"x{list(map(int, at))} = {x[at]} became {mine[at]:.6g}, expected {expected[at]:.6g} = "
                       f"{x[at]}/255 - {mean[at[1:]]:.4f} (the worst of your values).\nhint: {hint}.")
    if mine.dtype != np.float32:
        raise Mismatch(f"the values are right but the dtype is {mine.dtype}; the network computes in "
                       "float32, which also halves memory: use x.astype(np.float32).")
    return "matches tinyresnet.data.normalize (float32, x/255 - mean)"


# ------------------------------------------------------------------ augmentation

AUGMENT_SHAPE = ("x is (N, C, 32, 32); pad only the rows and columns (axes 2 and 3) by 4 (np.pad(x, 4) pads "
                 "every axis, the images and channels too): np.pad(x, ((0, 0), (0, 0), (4, 4), (4, 4))) is "
                 "(N, C, 40, 40); then cut one 32x32 window per image, padded[i, :, oy:oy + 32, ox:ox + 32], "
                 "and return (N, C, 32, 32).")
SHIFTS = 2 * PAD + 1          # a 32-pixel window fits at 9 offsets, 0..8, in a 40-pixel padded row
VIEWS = {  # how an image can come out of a window of its padded self; each undoes itself
    "right": lambda im: im,
    "mirrored": lambda im: im[:, :, ::-1],
    "turned upside down": lambda im: im[:, ::-1, :],
    "turned upside down and mirrored": lambda im: im[:, ::-1, ::-1],
    "with its colour channels reversed": lambda im: im[::-1],
    "mirrored, with its colour channels reversed": lambda im: im[::-1, :, ::-1],
}


def distinct_images(n, seed):
    """(n, 3, 32, 32) float32 whose values are all different and non-zero, so that every
    pixel of an augmented view says where it came from (zero: the padding)."""
    values = np.random.default_rng(seed).permutation(n * 3 * 32 * 32) + 1.0
    return values.astype(np.float32).reshape(n, 3, 32, 32)


PAD_MODES = {  # np.pad's other modes, and what each puts around the image
    "edge": "repeats the border pixels",
    "reflect": "mirrors the image at its border",
    "symmetric": "mirrors the image at its border",
    "wrap": "brings back the pixels of the opposite side, as np.roll does",
}


def read_views(x, out, mode="constant"):
    """For every image of out: (kind, oy, ox), the window of its padded input x[i] that it is
    (kind "right" or "mirrored"; any other VIEWS kind is a slip), or None where it is none of them.
    mode: how x is padded, as np.pad's mode (the right one, "constant", pads with zeros)."""
    n, h, w = len(x), *x.shape[2:]
    padded = np.pad(x, ((0, 0), (0, 0), (PAD, PAD), (PAD, PAD)), mode=mode)
    windows = np.lib.stride_tricks.sliding_window_view(padded, (h, w), axis=(2, 3))  # (N, C, 9, 9, h, w)
    found = [None] * n
    for kind, undo in VIEWS.items():
        for i in range(n):
            if found[i] is None:
                hit = np.argwhere((windows[i] == undo(out[i])[:, None, None]).all(axis=(0, 3, 4)))
                if len(hit):
                    found[i] = (kind, int(hit[0][0]), int(hit[0][1]))
    return found


def not_a_view(x, out, i):
    """Why image i of out is no window of its padded input, as far as we can tell."""
    if not out[i].any():
        return ("it is all zeros, i.e. all padding: was the image axis (axis 0) padded too? "
                "Pad only axes 2 and 3.")
    others = [j for j, view in enumerate(read_views(x, np.broadcast_to(out[i], x.shape))) if view and j != i]
    if others:
        return (f"it is a window of image {others[0]}, not of image {i}: was the image axis (axis 0) padded "
                "too, or the images reordered? Each output image comes from its own input image.")
    for mode, what in PAD_MODES.items():
        if read_views(x[i:i + 1], out[i:i + 1], mode) != [None]:
            return (f"it is a window of the image padded with np.pad's mode={mode!r}, which {what}; the paper "
                    "pads with zeros (after normalization, the average pixel): np.pad's default mode.")
    if not np.isin(out[i], np.append(x[i].ravel(), 0)).all():
        return ("it holds values that are neither pixels of the image nor 0: pad with zeros (after "
                "normalization 0 is the average pixel) and copy pixels, do not compute new ones.")
    return ("its pixels are the image's, but not as one 32x32 window of the padded image, mirrored or not: "
            "cut padded[i, :, oy:oy + 32, ox:ox + 32] with the same oy and ox for every channel.")


def offsets_hint(axis, seen):
    """What is wrong with the offsets seen along one axis, or None when all of 0..8 occur."""
    if set(seen) == set(range(SHIFTS)):
        return None
    listed = ", ".join(map(str, sorted(set(seen))))
    if max(seen) < SHIFTS - 1 and min(seen) > 0:
        why = ("neither end of the padding was ever reached: pad by 4 on each side and draw the offsets from "
               "0..8, rng.integers(0, 9, n) (a padding of p gives offsets 0..2p, which are 4 - p to 4 + p here).")
    elif max(seen) < SHIFTS - 1:
        why = ("no window started at offset 8, so the 4 padded pixels on the "
               f"{'bottom' if axis == 'row' else 'right'} were never shown: rng.integers(low, high) excludes "
               "high, and a 32-pixel window fits at 9 offsets, 0..8, in a row of 40: draw "
               "rng.integers(0, 9, n) (that is, 2*4 + 1).")
    elif min(seen) > 0:
        why = ("no window started at offset 0, so the 4 padded pixels on the "
               f"{'top' if axis == 'row' else 'left'} were never shown: the offsets run from 0 (the "
               "padded image's corner) to 8.")
    else:
        why = "every offset from 0 to 8 should occur, each about equally often."
    return f"the {axis} offsets of the windows (counted in the image padded by 4) were only {listed}: {why}"


@check("my_augment", shape_hint=AUGMENT_SHAPE)
def check_augment(my_augment):
    n = 128
    x = distinct_images(n, seed=2)
    before = x.copy()
    with case(f"{n} images (3, 32, 32) with distinct values, rng = np.random.default_rng(0)"):
        mine = my_augment(x, np.random.default_rng(0))
    if not np.array_equal(x, before):
        raise Mismatch("your function changed its input x: a caller may still need x as it was (this lesson "
                       "shows the original beside its views).\nhint: pad into a new array "
                       "(np.pad or np.zeros plus assignment) and never write into x.")
    if not hasattr(mine, "shape"):
        raise Mismatch(f"my_augment returned {describe(mine)}; it must return the augmented images as an array")
    mine = np.asarray(mine)
    if mine.shape != x.shape:
        grown = [f"{name} {a} -> {b}" + (" (padded too)" if b == a + 2 * PAD and name in ("images", "channels")
                                          else "")
                 for name, a, b in zip(("images", "channels", "rows", "columns"), x.shape, mine.shape) if a != b]
        hint = ("those are the padded images: cut a 32x32 window out of each." if mine.shape[2:] == (40, 40)
                and mine.shape[:2] == x.shape[:2] else AUGMENT_SHAPE)
        raise Mismatch(f"the result has shape {mine.shape}, expected {x.shape} (the same as x)"
                       + (f": {', '.join(grown)}" if grown and len(mine.shape) == 4 else "") + f".\nhint: {hint}")
    views = read_views(x, mine)
    wrong = next((i for i, view in enumerate(views) if view is None), None)
    if wrong is not None:
        raise Mismatch(f"image {wrong} of yours is not a 32x32 window of its zero-padded image: "
                       f"{not_a_view(x, mine, wrong)}")
    slips = [(i, view[0]) for i, view in enumerate(views) if view[0] not in ("right", "mirrored")]
    if slips:
        i, kind = slips[0]
        fix = ("a horizontal flip reverses the columns, the last axis: im[:, :, ::-1]"
               if "upside down" in kind else "the colour channels stay in order; reverse the columns only")
        raise Mismatch(f"image {i} is a window of its padded image {kind}, which is not what a horizontal "
                       f"flip does: {fix}.")
    if mine.dtype != x.dtype:
        raise Mismatch(f"the views are right but their dtype is {mine.dtype}, not x's {x.dtype}: the network "
                       "computes in float32.\nhint: make the padded array with x's dtype, "
                       "np.zeros(..., dtype=x.dtype) (np.pad keeps it by itself).")
    kinds = np.array([view[0] == "mirrored" for view in views])
    oy = np.array([view[1] for view in views])
    ox = np.array([view[2] for view in views])
    if len(set(zip(oy, ox))) == 1:
        raise Mismatch(f"all {n} images were cut at the same offset (row {oy[0]}, column {ox[0]}): "
                       "each image gets its own random window.\nhint: draw one offset per image, "
                       "rng.integers(0, 9, n), not one number for the whole batch.")
    if kinds.all() or not kinds.any():
        raise Mismatch(f"{'all' if kinds.all() else 'none'} of the {n} images {'were' if kinds.all() else 'was'} "
                       "mirrored: flip each image with probability 1/2, e.g. flip = rng.random(n) < 0.5, "
                       "and mirror only the images where flip is True.")
    if not 0.3 < kinds.mean() < 0.7:
        raise Mismatch(f"{kinds.sum()} of {n} images were mirrored, far from half: "
                       "flip each with probability 1/2 (rng.random(n) < 0.5).")
    if (oy == ox).all():
        raise Mismatch("every image was cut at the same row and column offset (oy == ox): the window then "
                       "only moves along the diagonal. Draw the row and the column offsets separately.")
    hint = offsets_hint("row", oy) or offsets_hint("column", ox)
    if hint:
        raise Mismatch(hint)
    with case("the same images again, with rng = np.random.default_rng(0) again"):
        again = np.asarray(my_augment(x, np.random.default_rng(0)))
    with case("the same images, with rng = np.random.default_rng(1)"):
        other = np.asarray(my_augment(x, np.random.default_rng(1)))
    if not np.array_equal(again, mine) or np.array_equal(other, mine):
        raise Mismatch("the same rng seed must give the same views, and another seed other views: draw every "
                       "random number from the rng argument (rng.integers, rng.random), not from np.random "
                       "or a generator made inside the function.")
    same = np.array_equal(mine, augment(x, np.random.default_rng(0)))
    return (f"{n} images each cut at their own offsets (all of 0..8 occur), {kinds.sum()} of them mirrored"
            + ("; draw for draw the views of tinyresnet.data.augment" if same else
               "; your draws come in another order than tinyresnet.data.augment's, so a seed gives "
               "other views than the library's (as good for training)"))
