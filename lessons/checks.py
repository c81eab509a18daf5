"""The check cells of the lessons: your exercise functions, run through the library's own tests.

Every check_* function takes the function(s) you wrote, builds from them what the
library would build (usually a Tensor op via `Tensor.from_op`), and runs
`tinyresnet.gradcheck` or compares the result with tinyresnet's implementation,
on the same shapes as the tests in tests/. It never raises into the notebook;
it prints one of

    ✓ PASSED <what was checked>                       and returns True
    … <function> not written yet: fill in the cell ... (the stub still raises NotImplementedError)
    ✗ FAILED <what>: where it went wrong, numeric vs analytic, and a hint

and returns False in the last two cases.
"""
import functools
import traceback
from pathlib import Path

import numpy as np

from tinyresnet import GradcheckError, Tensor, gradcheck
from tinyresnet.data import normalize, per_pixel_mean
from tinyresnet.functional import batch_norm
from tinyresnet.im2col import col2im, im2col, output_size

PASSED = "✓ PASSED"
FAILED = "✗ FAILED"
NOT_WRITTEN = "not written yet: fill in the cell above, then run this cell again"


class Mismatch(AssertionError):
    """Your result differs from the expected one; the message says where and why."""


def _check(title):
    """Turn a function that raises on failure into a check that prints and returns True/False."""
    def wrap(check):
        @functools.wraps(check)
        def run(*fns):
            try:
                summary = check(*fns)
            except NotImplementedError as e:
                print(f"… {_raiser(e) or title} {NOT_WRITTEN}")
                return False
            except GradcheckError as e:  # first: a GradcheckError is an AssertionError too
                print(f"{FAILED} {title}: your backward pass disagrees with central differences.\n{e}")
                return False
            except Mismatch as e:
                print(f"{FAILED} {title}:\n{e}")
                return False
            except Exception as e:  # a bug in the learner's code: show it, do not crash the notebook
                print(f"{FAILED} {title}: your code raised {type(e).__name__}: {e}{_where(e)}{_shape_hint(e)}")
                return False
            print(f"{PASSED} {title}: {summary}")
            return True
        return run
    return wrap


def _shape_hint(e):
    if isinstance(e, ValueError) and any(w in str(e) for w in ("shape", "dimension", "broadcast")):
        return ("\nhint: write the shape next to every factor; a product (M, K) @ (K, N) needs the "
                "inner sizes to agree, and each gradient has the shape of its input.")
    return ""


def _learner_frames(e):
    """Traceback frames outside this file, tinyresnet and NumPy: the learner's own lines."""
    here = Path(__file__).resolve()
    skip = (str(here), str(here.parent.parent / "tinyresnet"))
    return [f for f in traceback.extract_tb(e.__traceback__)
            if not f.filename.startswith(skip) and "/numpy/" not in f.filename]


def _raiser(e):
    frames = _learner_frames(e)
    return frames[-1].name if frames else None


def _where(e):
    frames = _learner_frames(e)
    if not frames:
        return ""
    f = frames[-1]
    line = f"\n    {f.line.strip()}" if f.line else ""
    return f"\n  in {f.name}, line {f.lineno}:{line}"


def _describe(value):
    if hasattr(value, "shape"):
        return f"an array of shape {tuple(value.shape)}"
    return f"{type(value).__name__} {value!r}"[:80]


def _returned(result, fn_name, expected):
    """result must be a tuple of arrays with the (name, shape) pairs in `expected`."""
    names = ", ".join(name for name, _ in expected)
    if len(expected) == 1:
        result = (result,)
    elif not isinstance(result, (tuple, list)) or len(result) != len(expected):
        raise Mismatch(f"{fn_name} must return a tuple ({names}), got {_describe(result)}")
    for value, (name, shape) in zip(result, expected):
        if not hasattr(value, "shape"):
            raise Mismatch(f"{fn_name} returned {name} = {_describe(value)}; "
                           f"it must be an array of shape {shape}")
        if tuple(value.shape) != tuple(shape):
            raise Mismatch(f"{fn_name} returned {name} of shape {tuple(value.shape)}, expected {shape}.\n"
                           "hint: a gradient always has the shape of what it is the gradient of.")
    return result


# ---------------------------------------------------------------- lesson 00: the data

@_check("my_per_pixel_mean")
def check_per_pixel_mean(my_per_pixel_mean):
    x = np.random.default_rng(0).integers(0, 256, size=(20, 3, 32, 32), dtype=np.uint8)
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


@_check("my_normalize")
def check_normalize(my_normalize):
    x = np.random.default_rng(1).integers(0, 256, size=(8, 3, 32, 32), dtype=np.uint8)
    mean = per_pixel_mean(x)
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


# ---------------------------------------------------------------- lesson 01: autograd

def _binary_op(forward, backward_fn, name):
    """A Tensor op whose forward is `forward` and whose backward is the learner's function."""
    def op(a, b):
        ad, bd = a.data, b.data
        return Tensor.from_op(forward(ad, bd), (a, b), lambda g: backward_fn(ad, bd, g), name)
    return op


MUL_SHAPES = [(3, 4), (5,), (2, 3, 4)]
MATMUL_SHAPES = [((3, 4), (4, 5)), ((5, 2), (2, 3)), ((1, 6), (6, 1))]


@_check("mul_backward")
def check_mul_backward(mul_backward):
    rng, worst = np.random.default_rng(0), 0.0
    for shape in MUL_SHAPES:
        a, b, g = rng.standard_normal((3, *shape))
        _returned(mul_backward(a, b, g), "mul_backward", [("da", shape), ("db", shape)])
        op = _binary_op(np.multiply, mul_backward, "mul")
        worst = max(worst, gradcheck(op, a, b, name=f"mul of two {shape} arrays"))
    return f"gradcheck on {len(MUL_SHAPES)} shapes, worst relative error {worst:.1e}"


@_check("matmul_backward")
def check_matmul_backward(matmul_backward):
    rng, worst = np.random.default_rng(0), 0.0
    for sa, sb in MATMUL_SHAPES:
        a, b = rng.standard_normal(sa), rng.standard_normal(sb)
        g = rng.standard_normal((sa[0], sb[1]))
        _returned(matmul_backward(a, b, g), "matmul_backward", [("da", sa), ("db", sb)])
        op = _binary_op(np.matmul, matmul_backward, "matmul")
        worst = max(worst, gradcheck(op, a, b, name=f"matmul {sa} @ {sb}"))
    return f"gradcheck on {len(MATMUL_SHAPES)} shapes, worst relative error {worst:.1e}"


# ---------------------------------------------------------------- lesson 02: im2col

# x shape (N, C, H, W), kernel (R, S), stride, padding
IM2COL_CONFIGS = [
    ((1, 1, 4, 4), (3, 3), 1, 0),    # the smallest case: one image, one channel
    ((2, 3, 5, 5), (3, 3), 1, 1),    # ResNet's 3x3 conv, "same" padding
    ((1, 2, 7, 5), (3, 3), 2, 0),    # non-square input, stride 2
    ((2, 3, 8, 8), (3, 3), 2, 1),    # ResNet's downsampling conv
    ((2, 2, 6, 6), (1, 1), 2, 0),    # 1x1, stride 2 (a projection shortcut)
    ((2, 3, 6, 5), (3, 2), 1, 1),    # non-square kernel
]
# the conv2d gradient checks of tests/test_conv.py: x shape, w shape, stride, padding
CONV_GRAD_CONFIGS = [
    ((1, 1, 5, 5), (2, 1, 3, 3), 1, 0),
    ((2, 3, 7, 5), (4, 3, 3, 3), 1, 1),
    ((2, 3, 7, 5), (4, 3, 3, 3), 2, 1),
    ((1, 3, 6, 6), (2, 3, 3, 3), 2, 0),
    ((1, 16, 3, 3), (16, 16, 3, 3), 1, 1),
    ((2, 2, 4, 4), (3, 2, 1, 1), 2, 0),
]


def _config(x_shape, kernel, stride, padding):
    return f"x{x_shape} kernel {kernel} stride {stride} padding {padding}".replace(" ,", ",")


def _cols_shape(x_shape, kernel, stride, padding):
    n, c, h, w = x_shape
    r, s = kernel
    return n * output_size(h, r, stride, padding) * output_size(w, s, stride, padding), r * s * c


def _row_col_names(x_shape, kernel, stride, padding, row, col):
    """(n, i, j) of a row and (r, s, c) of a column of cols."""
    n, c, h, w = x_shape
    r, s = kernel
    ho, wo = output_size(h, r, stride, padding), output_size(w, s, stride, padding)
    return np.unravel_index(row, (n, ho, wo)), np.unravel_index(col, (r, s, c))


def _channel_major_columns(cols, x_shape, kernel):
    """cols with its columns reordered (c, r, s) instead of (r, s, c): a common slip."""
    r, s = kernel
    return cols.reshape(-1, r, s, x_shape[1]).transpose(0, 3, 1, 2).reshape(cols.shape)


@_check("my_im2col")
def check_im2col(my_im2col):
    rng = np.random.default_rng(0)
    for x_shape, kernel, stride, padding in IM2COL_CONFIGS:
        where = _config(x_shape, kernel, stride, padding)
        x = rng.standard_normal(x_shape)
        expected = im2col(x, kernel, stride, padding)
        mine = np.asarray(my_im2col(x.copy(), kernel, stride, padding))
        if mine.shape != expected.shape:
            hint = ("hint: yours is the transpose; put one patch per ROW."
                    if mine.shape == expected.shape[::-1] else
                    "Ho = (H + 2*padding - R) // stride + 1, and the same for Wo.")
            raise Mismatch(f"for {where} the unfolded matrix has shape {mine.shape}, expected "
                           f"{expected.shape} = (N*Ho*Wo, R*S*C):\none row per output pixel "
                           f"(n, i, j), one column per (r, s, c).\n{hint}")
        if not np.allclose(mine, expected, rtol=1e-12, atol=1e-12) and np.allclose(
                mine, _channel_major_columns(expected, x_shape, kernel), rtol=1e-12, atol=1e-12):
            raise Mismatch(f"for {where} every row holds the right patch, but its columns are ordered "
                           "(c, r, s).\nhint: order them (r, s, c), channel fastest: build an array of "
                           "shape (N, Ho, Wo, R, S, C) and reshape it.")
        wrong = np.argwhere(~np.isclose(mine, expected, rtol=1e-12, atol=1e-12))
        if len(wrong):
            row, col = wrong[0]
            (n, i, j), (r, s, c) = _row_col_names(x_shape, kernel, stride, padding, row, col)
            hh, ww = i * stride + r - padding, j * stride + s - padding
            source = (f"x[{n}, {c}, {hh}, {ww}]" if 0 <= hh < x_shape[2] and 0 <= ww < x_shape[3]
                      else "0, a padding pixel")
            raise Mismatch(
                f"for {where}, {len(wrong)} of {mine.size} entries are wrong; the first is\n"
                f"  cols[{row}, {col}], i.e. row (n, i, j) = ({n}, {i}, {j}), column (r, s, c) = ({r}, {s}, {c})\n"
                f"  yours {mine[row, col]:.6g}, expected {expected[row, col]:.6g} = {source}\n"
                "hint: entry [(n, i, j), (r, s, c)] is x_padded[n, c, i*stride + r, j*stride + s]; "
                "rows are ordered n, then i, then j; columns r, then s, then c.")
    return f"matches tinyresnet.im2col.im2col on {len(IM2COL_CONFIGS)} shapes (stride 1/2, padding 0/1, non-square)"


@_check("my_col2im")
def check_col2im(my_col2im):
    rng = np.random.default_rng(1)
    for x_shape, kernel, stride, padding in IM2COL_CONFIGS:
        where = _config(x_shape, kernel, stride, padding)
        cols = rng.standard_normal(_cols_shape(x_shape, kernel, stride, padding))
        x = rng.standard_normal(x_shape)
        expected = col2im(cols, x_shape, kernel, stride, padding)
        mine = np.asarray(my_col2im(cols.copy(), x_shape, kernel, stride, padding))
        if mine.shape != tuple(x_shape):
            raise Mismatch(f"for {where} col2im returned shape {mine.shape}; it must give back x's "
                           f"shape {tuple(x_shape)} (the padding is cut off again at the end).")
        lhs, rhs = float((im2col(x, kernel, stride, padding) * cols).sum()), float((x * mine).sum())
        wrong = np.argwhere(~np.isclose(mine, expected, rtol=1e-10, atol=1e-10))
        if len(wrong):
            n, c, h, w = wrong[0]
            copies = col2im(np.ones_like(cols), x_shape, kernel, stride, padding)[n, c, h, w]
            raise Mismatch(
                f"for {where} col2im is not the adjoint of im2col:\n"
                f"  <im2col(x), cols> = {lhs:.6g}   but   <x, col2im(cols)> = {rhs:.6g}\n"
                f"{len(wrong)} of {mine.size} pixels are wrong; the first is dx[{n}, {c}, {h}, {w}]:\n"
                f"  yours {mine[n, c, h, w]:.6g}, expected {expected[n, c, h, w]:.6g}, the sum of the "
                f"{copies:.0f} entries of cols that im2col copied from this pixel\n"
                "hint: walk the same (n, i, j) x (r, s, c) positions as im2col and ADD (+=) each entry "
                "back into x_padded[n, c, i*stride + r, j*stride + s]; overlapping windows must sum.")
    return (f"matches tinyresnet.im2col.col2im on {len(IM2COL_CONFIGS)} shapes, "
            "so <im2col(x), c> = <x, col2im(c)> holds")


def conv2d_from(im2col_fn, col2im_fn):
    """A conv2d Tensor op built from an im2col/col2im pair (what check_conv2d_pair gradchecks).

    forward:  out = im2col(x) @ w2                 with w2 = w unfolded to (R*S*C, K)
    backward: dw2 = colsᵀ @ g2,  dx = col2im(g2 @ w2ᵀ)   with g2 = g as (N*Ho*Wo, K)
    """
    def conv2d(x, w, stride=1, padding=0):
        n, c, h, wid = x.shape
        k, _, r, s = w.shape
        ho, wo = output_size(h, r, stride, padding), output_size(wid, s, stride, padding)
        cols = im2col_fn(x.data, (r, s), stride, padding)              # (N*Ho*Wo, R*S*C)
        w2 = w.data.transpose(2, 3, 1, 0).reshape(r * s * c, k)        # (R*S*C, K), rows (r, s, c)
        out = (cols @ w2).reshape(n, ho, wo, k).transpose(0, 3, 1, 2)  # (N, K, Ho, Wo)

        def backward(g):
            g2 = g.transpose(0, 2, 3, 1).reshape(-1, k)                # (N*Ho*Wo, K)
            dw = (cols.T @ g2).reshape(r, s, c, k).transpose(3, 2, 0, 1)  # back to (K, C, R, S)
            dx = col2im_fn(g2 @ w2.T, x.shape, (r, s), stride, padding)
            return dx, dw
        return Tensor.from_op(out, (x, w), backward, "conv2d")
    return conv2d


@_check("conv2d built from my_im2col and my_col2im")
def check_conv2d_pair(my_im2col, my_col2im):
    rng, worst = np.random.default_rng(2), 0.0
    for x_shape, kernel, stride, padding in IM2COL_CONFIGS:
        x = rng.standard_normal(x_shape)
        cols = rng.standard_normal(_cols_shape(x_shape, kernel, stride, padding))
        lhs = float((np.asarray(my_im2col(x.copy(), kernel, stride, padding)) * cols).sum())
        rhs = float((x * np.asarray(my_col2im(cols.copy(), x_shape, kernel, stride, padding))).sum())
        if not np.isclose(lhs, rhs, rtol=1e-10, atol=1e-10):
            raise Mismatch(f"for {_config(x_shape, kernel, stride, padding)} your pair is not adjoint:\n"
                           f"  <my_im2col(x), c> = {lhs:.10g}\n  <x, my_col2im(c)> = {rhs:.10g}\n"
                           "hint: run the two checks above first; each says which entry is off.")
    conv2d = conv2d_from(my_im2col, my_col2im)
    for x_shape, w_shape, stride, padding in CONV_GRAD_CONFIGS:
        x, w = rng.standard_normal(x_shape), rng.standard_normal(w_shape)
        name = f"conv2d x{x_shape} w{w_shape} stride {stride} padding {padding}"
        worst = max(worst, gradcheck(lambda x, w: conv2d(x, w, stride, padding), x, w,
                                     max_checks=32, name=name))
    return (f"adjoint on {len(IM2COL_CONFIGS)} shapes; conv2d gradcheck on "
            f"{len(CONV_GRAD_CONFIGS)} shapes, worst relative error {worst:.1e}")


# ---------------------------------------------------------------- lesson 03: batch norm

BN_SHAPES = [(4, 3, 2, 2), (2, 2, 1, 1), (1, 2, 3, 3)]  # as tests/test_batchnorm.py
BN_EPS = 1e-5


def _per_channel(v):
    return v.reshape(1, -1, 1, 1)


def _normalized(x):
    """xhat and inv_std (C,) of x: (N, C, H, W) with the batch's own statistics."""
    mean = x.mean(axis=(0, 2, 3))
    inv_std = 1 / np.sqrt(x.var(axis=(0, 2, 3)) + BN_EPS)
    return (x - _per_channel(mean)) * _per_channel(inv_std), inv_std


def batch_norm_from(backward_fn):
    """A training-mode batch norm Tensor op whose backward is backward_fn(g, xhat, gamma, inv_std)."""
    def bn(x, gamma, beta):
        xhat, inv_std = _normalized(x.data)
        out = _per_channel(gamma.data) * xhat + _per_channel(beta.data)
        return Tensor.from_op(out, (x, gamma, beta),
                              lambda g: backward_fn(g, xhat, gamma.data, inv_std), "batch_norm")
    return bn


def _bn_inputs(rng, shape):
    c = shape[1]
    return rng.standard_normal(shape) * 2 + 1, rng.uniform(0.5, 2.0, c), rng.standard_normal(c)


@_check("batch_norm_backward")
def check_batch_norm_backward(batch_norm_backward):
    rng, worst = np.random.default_rng(0), 0.0
    x, gamma, beta = _bn_inputs(rng, (2, 3, 4, 4))
    xhat, inv_std = _normalized(x)
    _returned(batch_norm_backward(rng.standard_normal(x.shape), xhat, gamma, inv_std),
              "batch_norm_backward", [("dx", x.shape), ("dgamma", gamma.shape), ("dbeta", beta.shape)])
    op = batch_norm_from(batch_norm_backward)
    for shape in BN_SHAPES:
        worst = max(worst, gradcheck(op, *_bn_inputs(rng, shape), name=f"batch_norm training {shape}"))
    # the same gradients as the library's batch_norm, on a bigger batch
    x, gamma, beta = _bn_inputs(rng, (8, 4, 5, 5))
    u = rng.standard_normal(x.shape)
    tx, tg, tb = (Tensor(a, requires_grad=True) for a in (x, gamma, beta))
    batch_norm(tx, tg, tb, np.zeros(4), np.ones(4), training=True, eps=BN_EPS).backward(u)
    xhat, inv_std = _normalized(x)
    for name, mine, theirs in zip(("dx", "dgamma", "dbeta"),
                                  batch_norm_backward(u, xhat, gamma, inv_std),
                                  (tx.grad, tg.grad, tb.grad)):
        if not np.allclose(mine, theirs, rtol=1e-6, atol=1e-8):
            raise Mismatch(f"{name} differs from tinyresnet's batch_norm on a (8, 4, 5, 5) batch: "
                           f"largest difference {np.abs(mine - theirs).max():.3g}")
    return (f"gradcheck on {len(BN_SHAPES)} shapes (worst relative error {worst:.1e}); "
            "dx, dgamma, dbeta equal tinyresnet's batch_norm")


# ---------------------------------------------------------------- lesson 04: SGD with momentum

SGD_SHAPES = [(3,), (4, 5), (2, 3, 3, 3)]
SGD_LRS = [0.1, 0.1, 0.1, 0.01, 0.01, 0.001]     # a step schedule: two formulations part at a drop
SGD_SETTINGS = [(0.9, 1e-4), (0.9, 0.05), (0.0, 0.0), (0.5, 0.01)]   # (momentum, weight_decay)


def _sgd_hint(w, g, v, lr, momentum, wd, new_w, new_v, step):
    """Which common slip reproduces the learner's numbers, if any."""
    def near(a, b):
        return np.allclose(a, b, rtol=1e-7, atol=1e-10)
    full = g + wd * w
    if near(new_v, momentum * v + g) and not near(new_v, momentum * v + full):
        return "new_velocity ignores weight decay: add weight_decay * w to the gradient first (g = grad + weight_decay * w)."
    if near(new_w, w - lr * full) and momentum and step:
        return "new_w = w - lr * g does not use the velocity: step with the new velocity, w - lr * new_velocity."
    if near(new_v, momentum * v - lr * full) and not near(new_v, momentum * v + full):
        return ("your velocity includes the learning rate (v = momentum * v - lr * g, w = w + v). That is the "
                "other common form; here, as in PyTorch and tinyresnet, v = momentum * v + g is a sum of "
                "gradients and lr multiplies it at the step: w = w - lr * v. The two agree until the "
                "learning rate changes, and differ after every drop of the schedule.")
    if near(new_w, w + lr * (momentum * v + full)):
        return "the step goes uphill: subtract lr * new_velocity from w."
    if near(new_w, w - lr * (momentum * v + g) - lr * wd * w) and wd:
        return ("weight decay is applied to w outside the velocity; in this optimizer it is part of the "
                "gradient, so it goes into the velocity too: g = grad + weight_decay * w, v = momentum * v + g.")
    return ("write the three lines one by one: g = grad + weight_decay * w; "
            "new_velocity = momentum * velocity + g; new_w = w - lr * new_velocity.")


@_check("sgd_momentum_step")
def check_sgd_momentum_step(sgd_momentum_step):
    from tinyresnet.optim import SGD
    rng, steps = np.random.default_rng(0), 0
    for momentum, wd in SGD_SETTINGS:
        for shape in SGD_SHAPES:
            w = rng.standard_normal(shape)
            v = np.zeros(shape)
            p = Tensor(w.copy(), requires_grad=True)      # float64, so that both sides agree to rounding
            opt = SGD([p], lr=SGD_LRS[0], momentum=momentum, weight_decay=wd)
            for step, lr in enumerate(SGD_LRS):
                g = rng.standard_normal(shape)
                result = sgd_momentum_step(w.copy(), g.copy(), v.copy(), lr, momentum, wd)
                new_w, new_v = (np.asarray(a, dtype=np.float64) for a in _returned(
                    result, "sgd_momentum_step", [("new_w", shape), ("new_velocity", shape)]))
                p.grad, opt.lr = g.copy(), lr
                opt.step()
                expected_w, expected_v = p.data.copy(), opt.velocity[0].copy()
                for name, mine, theirs in (("new_velocity", new_v, expected_v), ("new_w", new_w, expected_w)):
                    if not np.allclose(mine, theirs, rtol=1e-9, atol=1e-12):
                        i = np.unravel_index(np.argmax(np.abs(mine - theirs)), shape)
                        raise Mismatch(
                            f"step {step + 1} (lr {lr}, momentum {momentum}, weight_decay {wd}, shape {shape}): "
                            f"{name}[{', '.join(map(str, i))}] is {mine[i]:.8g}, tinyresnet.optim.SGD has "
                            f"{theirs[i]:.8g}\nhint: {_sgd_hint(w, g, v, lr, momentum, wd, new_w, new_v, step)}")
                w, v = new_w, new_v
                steps += 1
    return (f"{steps} steps on {len(SGD_SHAPES)} shapes, {len(SGD_SETTINGS)} (momentum, weight decay) "
            "settings and an LR schedule with drops: identical to tinyresnet.optim.SGD")


# ---------------------------------------------------------------- lesson 05: the option-A shortcut

# x shape, out_channels, stride
SHORTCUT_CONFIGS = [
    ((2, 16, 8, 8), 16, 1),     # inside a stage: the identity
    ((2, 16, 8, 8), 32, 2),     # into stage 2: 32x32x16 -> 16x16x32 in the real net
    ((1, 32, 6, 6), 64, 2),     # into stage 3
    ((2, 3, 5, 5), 6, 2),       # odd sizes: an odd image side, an odd number of new channels
]


def _option_a_reference(x, out_channels, stride):
    sub = x[:, :, ::stride, ::stride]
    extra = out_channels - x.shape[1]
    out = np.zeros((x.shape[0], out_channels) + sub.shape[2:], dtype=x.dtype)
    out[:, extra // 2:extra // 2 + x.shape[1]] = sub
    return out


@_check("option_a_shortcut")
def check_option_a_shortcut(option_a_shortcut):
    from tinyresnet.autograd import topological_order
    from tinyresnet.models import BasicBlock
    rng, worst = np.random.default_rng(0), 0.0
    for shape, out_channels, stride in SHORTCUT_CONFIGS:
        where = f"x of shape {shape}, out_channels {out_channels}, stride {stride}"
        data = rng.standard_normal(shape)
        x = Tensor(data.copy(), requires_grad=True)
        out = option_a_shortcut(x, out_channels, stride)
        if not isinstance(out, Tensor):
            raise Mismatch(f"for {where} you returned {_describe(out)}; return a Tensor, built with "
                           "F.subsample and F.pad_channels, so that the gradient can flow back to x.")
        expected = _option_a_reference(data, out_channels, stride)
        if out.shape != expected.shape:
            raise Mismatch(f"for {where} the shortcut has shape {out.shape}, expected {expected.shape}.\n"
                           "hint: subsample keeps every stride-th row and column (H -> ceil(H / stride)); "
                           "pad_channels adds out_channels - C zero channels.")
        mine = np.asarray(out.numpy())
        if not np.allclose(mine, expected):
            extra, c = out_channels - shape[1], shape[1]
            hint = "the input's channels go in the middle, between extra // 2 zero channels and the rest"
            if np.allclose(mine[:, :c], expected[:, extra // 2:extra // 2 + c]):
                hint = (f"you put all {extra} zero channels after the input's; tinyresnet (and the usual "
                        f"CIFAR code) puts {extra // 2} before and {extra - extra // 2} after: "
                        "F.pad_channels(x, extra // 2, extra - extra // 2)")
            elif stride > 1 and np.allclose(mine, _option_a_reference(data[:, :, 1:, 1:], out_channels, stride)):
                hint = "the subsampling starts at row and column 1; the library keeps rows 0, 2, 4, ... (F.subsample)"
            raise Mismatch(f"for {where} the values differ from the expected shortcut.\nhint: {hint}.")
        block = BasicBlock(shape[1], out_channels, stride, residual=True, shortcut="A")
        if not np.array_equal(mine, block.shortcut(Tensor(data.copy())).numpy()):
            raise Mismatch(f"for {where} your shortcut differs from tinyresnet's BasicBlock.shortcut")
        leaves = [t for t in topological_order(out) if t.is_leaf and t.requires_grad and t is not x]
        if leaves:
            raise Mismatch(f"for {where} the output depends on {len(leaves)} trainable tensor(s) other than x; "
                           "option A has no parameters: only slicing and zeros.")
        worst = max(worst, gradcheck(lambda t: option_a_shortcut(t, out_channels, stride), data,
                                     max_checks=32, name=f"option_a_shortcut {where}"))
    return (f"{len(SHORTCUT_CONFIGS)} shapes: values equal BasicBlock.shortcut, no parameters, "
            f"gradcheck worst relative error {worst:.1e}")


# ---------------------------------------------------------------- lesson 07: layer responses

def _response_stds_reference(model, x):
    from tinyresnet import no_grad
    was_training = model.training
    model.eval()
    responses = []
    with no_grad():
        model(Tensor(x), responses)
    model.train(was_training)
    return [float(r.numpy().std()) for r in responses]


@_check("layer_response_stds")
def check_layer_response_stds(layer_response_stds):
    from tinyresnet import no_grad
    from tinyresnet.models import cifar_resnet
    from tinyresnet.nn import manual_seed
    rng = np.random.default_rng(0)
    checked = []
    for depth, residual in ((8, True), (14, False)):
        manual_seed(depth)
        model = cifar_resnet(depth, residual)
        with no_grad():  # a few training-mode passes: running statistics unlike any one batch
            for _ in range(3):
                model(Tensor((2 + 3 * rng.standard_normal((8, 3, 32, 32))).astype(np.float32)))
        x = rng.standard_normal((6, 3, 32, 32)).astype(np.float32)
        expected = _response_stds_reference(model, x)          # leaves the model in training mode
        train_mode = [float(np.std(r.numpy())) for r in _responses_in_training_mode(model, x)]
        mine = layer_response_stds(model, x)
        name = f"{'ResNet' if residual else 'plain'}-{depth}"
        if not hasattr(mine, "__len__") or len(mine) != len(expected):
            got = len(mine) if hasattr(mine, "__len__") else _describe(mine)
            raise Mismatch(f"for {name} you returned {got} values; it has 6n+1 = {len(expected)} 3x3 layers.\n"
                           "hint: pass a list as model(Tensor(x), responses): the model appends one "
                           "tensor per 3x3 layer; return one float per entry.")
        mine = np.asarray(mine, dtype=np.float64)
        if not np.allclose(mine, expected, rtol=1e-4, atol=1e-6):
            k = int(np.argmax(np.abs(mine - expected)))
            hint = "take the std over all values of each response: images, channels and pixels together"
            if np.allclose(mine, train_mode, rtol=1e-3):
                hint = ("these are training-mode values: call model.eval() first, so that batch norm uses its "
                        "running statistics; in training mode it normalizes with the batch's own, and every "
                        "response comes out with std close to its gamma")
            raise Mismatch(f"for {name}, layer {k + 1}: yours {mine[k]:.6g}, expected {expected[k]:.6g}.\n"
                           f"hint: {hint}.")
        checked.append(f"{name} ({len(expected)} layers)")
    return f"{' and '.join(checked)}: the stds match, measured in eval mode"


def _responses_in_training_mode(model, x):
    """What a forgotten model.eval() gives (on a copy of the running statistics, restored after)."""
    from tinyresnet import no_grad
    saved = model.state_dict()
    responses = []
    with no_grad():
        model.train()
        model(Tensor(x), responses)
    model.load_state_dict(saved)
    return responses
