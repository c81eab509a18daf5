"""The lessons' check cells reject wrong code, and say why.

tests/test_lessons.py proves that the worked solutions pass every check. This file proves
the other half: for each exercise, planted wrong implementations (a typical slip and a
shape slip, at least) make the check print "✗ FAILED" with the message that names the
slip, and return False. A check that passed them, or failed them with the wrong words,
would leave a learner with a wrong function and a wrong idea.
"""
import numpy as np
import pytest

from checks import autograd, batch_norm, convolution_im2col, layer_responses, plain_and_residual, setup, training
from checks.harness import FAILED, NOT_WRITTEN, PASSED
from solutions import autograd as solved_autograd
from solutions import im2col as solved_im2col
from tinyresnet import Tensor, no_grad
from tinyresnet import functional as F

pytestmark = pytest.mark.lessons


def verdict(capsys, check, *fns):
    """(what the check returned, what it printed)."""
    ok = check(*fns)
    return ok, capsys.readouterr().out


def rejects(capsys, check, *fns, says=()):
    """The check must fail and its message must contain every phrase in `says`."""
    ok, out = verdict(capsys, check, *fns)
    assert ok is False and out.startswith(FAILED), f"the check did not reject the planted bug:\n{out}"
    for phrase in says:
        assert phrase in out, f"the message should say {phrase!r}; it said:\n{out}"
    return out


# ------------------------------------------------------------------ the harness

def test_a_stub_is_reported_as_not_written_yet(capsys):
    def mul_backward(a, b, g):
        raise NotImplementedError("your turn")
    ok, out = verdict(capsys, autograd.check_mul_backward, mul_backward)
    assert ok is False and NOT_WRITTEN in out and "mul_backward" in out


def test_the_solutions_pass(capsys):
    ok, out = verdict(capsys, autograd.check_mul_backward, solved_autograd.mul_backward)
    assert ok is True and out.startswith(PASSED)


# ------------------------------------------------------------------ lesson 00

def mean_not_scaled(x):
    return x.mean(axis=0)                               # forgot / 255


def mean_over_all_axes(x):
    return x.mean(axis=(0, 2, 3)) / 255                 # shape slip: one value per channel


def normalize_in_uint8(x, mean):
    return (x / 255 - mean).astype(np.float64)          # right values, float64


def normalize_shape_slip(x, mean):
    return (x.astype(np.float32) / 255 - mean)[0]       # one image instead of all


@pytest.mark.parametrize("fn, says", [
    (mean_not_scaled, ["255 times too large"]),
    (mean_over_all_axes, ["shape (3,)", "axis 0"]),
])
def test_per_pixel_mean_rejects(capsys, fn, says):
    rejects(capsys, setup.check_per_pixel_mean, fn, says=says)


@pytest.mark.parametrize("fn, says", [
    (normalize_in_uint8, ["dtype is float64"]),
    (normalize_shape_slip, ["shape (3, 32, 32)", "the same as x"]),
])
def test_normalize_rejects(capsys, fn, says):
    rejects(capsys, setup.check_normalize, fn, says=says)


# ------------------------------------------------------------------ lesson 01

def mul_swapped(a, b, g):
    return g * a, g * b


def mul_without_g(a, b, g):
    return b, a


def mul_summed(a, b, g):
    return (g * b).sum(), (g * a).sum()                 # shape slip: a number, not an array


def matmul_untransposed(a, b, g):
    return g @ b, a.T @ g                               # raises for non-square b


def matmul_db_transposed(a, b, g):
    return g @ b.T, (a.T @ g).T                         # shape slip: db is (N, K)


@pytest.mark.parametrize("fn, says", [
    (mul_swapped, ["swapped", "case: mul of two (3, 4) arrays"]),
    (mul_without_g, ["upstream gradient g is not multiplied in"]),
    (mul_summed, ["da of shape (), expected (3, 4)"]),
])
def test_mul_backward_rejects(capsys, fn, says):
    out = rejects(capsys, autograd.check_mul_backward, fn, says=says)
    assert "batch norm" not in out, "lesson 01's hints must be about mul, not batch norm"


@pytest.mark.parametrize("fn, says", [
    (matmul_untransposed, ["raised ValueError", "case: matmul (3, 4) @ (4, 5)", "Which product of g with b"]),
    (matmul_db_transposed, ["db of shape (5, 4), expected (4, 5)"]),
])
def test_matmul_backward_rejects(capsys, fn, says):
    out = rejects(capsys, autograd.check_matmul_backward, fn, says=says)
    assert "batch norm" not in out


def test_matmul_value_slip_is_named(capsys):
    """On square matrices a missing transpose raises nothing: the hint must still name it."""
    def square_only(a, b, g):
        return (g @ b, a.T @ g) if a.shape == b.shape else solved_autograd.matmul_backward(a, b, g)
    out = rejects(capsys, autograd.check_matmul_backward, square_only,
                  says=["case: matmul (3, 3) @ (3, 3)", "misses a transpose"])
    assert "the formula is off" not in out, "the generic gradcheck hint should give way to the op's own"


# ------------------------------------------------------------------ lesson 02

def im2col_channel_major(x, kernel, stride=1, padding=0):
    cols = solved_im2col.my_im2col(x, kernel, stride, padding)
    r, s = kernel
    return cols.reshape(-1, r, s, x.shape[1]).transpose(0, 3, 1, 2).reshape(cols.shape)


def im2col_transposed(x, kernel, stride=1, padding=0):
    return solved_im2col.my_im2col(x, kernel, stride, padding).T


def im2col_ignores_padding(x, kernel, stride=1, padding=0):
    n, c, h, w = x.shape
    r, s = kernel
    ho, wo = (h + 2 * padding - r) // stride + 1, (w + 2 * padding - s) // stride + 1
    cols = np.empty((n, ho, wo, r, s, c))
    for i in range(r):
        for j in range(s):   # slices the unpadded x: a broadcast error as soon as padding > 0
            cols[:, :, :, i, j, :] = x[:, :, i:i + stride * ho:stride, j:j + stride * wo:stride].transpose(0, 2, 3, 1)
    return cols.reshape(n * ho * wo, r * s * c)


def col2im_assigns(cols, x_shape, kernel, stride=1, padding=0):
    """= instead of +=: overlapping windows overwrite each other."""
    n, c, h, w = x_shape
    r, s = kernel
    ho, wo = (h + 2 * padding - r) // stride + 1, (w + 2 * padding - s) // stride + 1
    cols = cols.reshape(n, ho, wo, r, s, c)
    dx = np.zeros((n, c, h + 2 * padding, w + 2 * padding))
    for i in range(r):
        for j in range(s):
            dx[:, :, i:i + stride * ho:stride, j:j + stride * wo:stride] = cols[:, :, :, i, j, :].transpose(0, 3, 1, 2)
    return dx[:, :, padding:padding + h, padding:padding + w]


def col2im_keeps_padding(cols, x_shape, kernel, stride=1, padding=0):
    n, c, h, w = x_shape
    return np.pad(solved_im2col.my_col2im(cols, x_shape, kernel, stride, padding),
                  ((0, 0), (0, 0), (padding, padding), (padding, padding)))


@pytest.mark.parametrize("fn, says", [
    (im2col_channel_major, ["ordered (c, r, s)"]),
    (im2col_transposed, ["yours is the transpose"]),
    (im2col_ignores_padding, ["raised ValueError", "padding 1", "hint: im2col returns (N*Ho*Wo, R*S*C)"]),
])
def test_im2col_rejects(capsys, fn, says):
    out = rejects(capsys, convolution_im2col.check_im2col, fn, says=says)
    assert "(M, K) @ (K, N)" not in out, "a shape error inside im2col gets an im2col hint"


@pytest.mark.parametrize("fn, says", [
    (col2im_assigns, ["not the adjoint", "ADD (+=)"]),
    (col2im_keeps_padding, ["x's shape (2, 3, 5, 5)", "padding is cut off"]),
])
def test_col2im_rejects(capsys, fn, says):
    rejects(capsys, convolution_im2col.check_col2im, fn, says=says)


@pytest.mark.parametrize("pair, says", [
    ((solved_im2col.my_im2col, col2im_assigns), ["not adjoint"]),
    ((im2col_ignores_padding, solved_im2col.my_col2im), ["raised ValueError", "(case: x(2, 3, 5, 5)",
                                                          "hint: im2col returns"]),
])
def test_conv2d_pair_rejects(capsys, pair, says):
    rejects(capsys, convolution_im2col.check_conv2d_pair, *pair, says=says)


def test_conv2d_pair_passes_with_the_solutions(capsys):
    ok, out = verdict(capsys, convolution_im2col.check_conv2d_pair, solved_im2col.my_im2col, solved_im2col.my_col2im)
    assert ok, out


# ------------------------------------------------------------------ lesson 03

AXES = (0, 2, 3)


def bn_eval_mode_dx(g, xhat, gamma, inv_std):
    """The evaluation-mode gradient: the paths through the batch statistics are left out."""
    scale = (gamma * inv_std).reshape(1, -1, 1, 1)
    return scale * g, (g * xhat).sum(axis=AXES), g.sum(axis=AXES)


def bn_no_variance_path(g, xhat, gamma, inv_std):
    scale = (gamma * inv_std).reshape(1, -1, 1, 1)
    return scale * (g - g.mean(axis=AXES, keepdims=True)), (g * xhat).sum(axis=AXES), g.sum(axis=AXES)


def bn_keepdims(g, xhat, gamma, inv_std):
    """Right numbers, but dgamma and dbeta keep their (1, C, 1, 1) shape."""
    from solutions.batch_norm import batch_norm_backward
    dx, dgamma, dbeta = batch_norm_backward(g, xhat, gamma, inv_std)
    return dx, dgamma.reshape(1, -1, 1, 1), dbeta.reshape(1, -1, 1, 1)


@pytest.mark.parametrize("fn, says", [
    (bn_eval_mode_dx, ["evaluation-mode gradient", "case: batch_norm training (4, 3, 2, 2)"]),
    (bn_no_variance_path, ["path through the batch variance is missing"]),
    (bn_keepdims, ["dgamma of shape (1, 3, 1, 1), expected (3,)"]),
])
def test_batch_norm_backward_rejects(capsys, fn, says):
    rejects(capsys, batch_norm.check_batch_norm_backward, fn, says=says)


# ------------------------------------------------------------------ lesson 04

def sgd_no_weight_decay(w, grad, velocity, lr, momentum, weight_decay):
    v = momentum * velocity + grad
    return w - lr * v, v


def sgd_lr_in_velocity(w, grad, velocity, lr, momentum, weight_decay):
    v = momentum * velocity - lr * (grad + weight_decay * w)
    return w + v, v


def sgd_scalar_velocity(w, grad, velocity, lr, momentum, weight_decay):
    g = grad + weight_decay * w
    v = momentum * velocity + g
    return w - lr * v, float(v.sum())


@pytest.mark.parametrize("fn, says", [
    (sgd_no_weight_decay, ["ignores weight decay"]),
    (sgd_lr_in_velocity, ["includes the learning rate"]),
    (sgd_scalar_velocity, ["new_velocity = float", "array of shape (3,)"]),
])
def test_sgd_momentum_step_rejects(capsys, fn, says):
    rejects(capsys, training.check_sgd_momentum_step, fn, says=says)


# ------------------------------------------------------------------ lesson 05

def shortcut_zeros_after(x, out_channels, stride):
    if stride != 1:
        x = F.subsample(x, stride)
    return F.pad_channels(x, 0, out_channels - x.shape[1])


def shortcut_no_subsampling(x, out_channels, stride):
    extra = out_channels - x.shape[1]
    return F.pad_channels(x, extra // 2, extra - extra // 2) if extra else x


def shortcut_in_numpy(x, out_channels, stride):
    from solutions.shortcut import option_a_shortcut
    return option_a_shortcut(x, out_channels, stride).numpy()


@pytest.mark.parametrize("fn, says", [
    (shortcut_zeros_after, ["zero channels after the input's"]),
    (shortcut_no_subsampling, ["has shape (2, 32, 8, 8), expected (2, 32, 4, 4)"]),
    (shortcut_in_numpy, ["return a Tensor"]),
])
def test_option_a_shortcut_rejects(capsys, fn, says):
    rejects(capsys, plain_and_residual.check_option_a_shortcut, fn, says=says)


# ------------------------------------------------------------------ lesson 07

def responses_in_training_mode(model, x):
    responses = []
    with no_grad():
        model(Tensor(x), responses)
    return [float(r.numpy().std()) for r in responses]


def responses_per_channel(model, x):
    """Shape slip: one std per channel instead of one per layer."""
    model.eval()
    responses = []
    with no_grad():
        model(Tensor(x), responses)
    return [float(s) for r in responses for s in r.numpy().std(axis=(0, 2, 3))]


@pytest.mark.parametrize("fn, says", [
    (responses_in_training_mode, ["training-mode values", "model.eval()"]),
    (responses_per_channel, ["values; it has 6n+1 = 7 3x3 layers"]),
])
def test_layer_response_stds_rejects(capsys, fn, says):
    rejects(capsys, layer_responses.check_layer_response_stds, fn, says=says)
