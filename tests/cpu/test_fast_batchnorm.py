"""tinyresnet/cpu/batchnorm.py: batch norm's four passes a block of channels-last memory at a
time, on every core, must give the numbers of the core's definitions in tinyresnet/batchnorm.py."""
import numpy as np
import pytest

from tinyresnet import Tensor, batchnorm
from tinyresnet.cpu import batchnorm as fast_batchnorm
from tinyresnet.cpu import threads
from tinyresnet.device import channels_last_zeros
from tinyresnet.functional import batch_norm

from conftest import host

pytestmark = pytest.mark.batchnorm


from bn_inputs import inputs, running_stats


@pytest.mark.parametrize("training", [True, False], ids=["train", "eval"])
def test_channels_last_input_gives_the_same_numbers(training, xp, rng, installed):
    """The nets store activations channels-last, where the speed wing's batch norm takes its fast
    passes (per-channel vectors tiled along long rows of memory); with it installed, batch_norm
    must agree with the plain (N, C, H, W) input that takes the definitions."""
    x, gamma, beta = inputs(xp, rng, (8, 4, 4, 4))
    x_cl = channels_last_zeros(xp, x.shape, x.dtype)
    x_cl[...] = x
    g = xp.asarray(rng.standard_normal(x.shape))
    results = []
    for data in (xp.ascontiguousarray(x), x_cl):
        xt, gt, bt = Tensor(data, requires_grad=True), Tensor(gamma, requires_grad=True), Tensor(beta, requires_grad=True)
        mean, var = running_stats(xp, np.random.default_rng(1), 4)
        out = batch_norm(xt, gt, bt, mean, var, training=training)
        out.backward(g)
        results.append([host(out), host(xt.grad), host(gt.grad), host(bt.grad), host(mean), host(var)])
    for what, plain, fast in zip(["output", "dx", "dgamma", "dbeta", "running mean", "running var"], *results):
        np.testing.assert_allclose(fast, plain, rtol=1e-12, atol=1e-12,
                                   err_msg=f"batch_norm {what} differs between a channels-last and a plain input")


PASSES = ["statistics", "normalize", "gradient_sums", "input_gradient"]


@pytest.mark.parametrize("shape", [(8, 4, 4, 4), (3, 16, 5, 7)], ids=["8x4x4x4", "3x16x5x7"])
@pytest.mark.parametrize("blocks", ["one block", "a block per row"])
@pytest.mark.parametrize("part", PASSES)
def test_fast_passes_equal_the_definitions(part, blocks, shape, rng, monkeypatch):
    """tinyresnet/cpu/batchnorm.py (blocks of channels-last memory, on every core) must give the
    numbers of the core's four passes as they read."""
    if blocks == "a block per row":
        monkeypatch.setattr(threads, "BLOCK_FLOATS", 1)

    def stored(values):
        a = channels_last_zeros(np, shape, np.float64)
        a[...] = values
        return a
    x, g = stored(rng.standard_normal(shape) * 2 + 1), stored(rng.standard_normal(shape))
    c = shape[1]
    vec = lambda: rng.standard_normal(c)  # noqa: E731
    args = {"statistics": (x,), "normalize": (x, vec(), vec()), "gradient_sums": (g, x),
            "input_gradient": (g, x, vec(), vec(), vec())}[part]
    fast, plain = getattr(fast_batchnorm, part)(*args), getattr(batchnorm, part)(*args)
    if not isinstance(fast, tuple):
        fast, plain = (fast,), (plain,)
    for i, (got, want) in enumerate(zip(fast, plain)):
        np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-12,
                                   err_msg=f"cpu/batchnorm.{part} differs from the core's batchnorm.{part} "
                                           f"(output {i}, shape {shape}, {blocks})")


def test_fast_passes_apply_to_channels_last_numpy_arrays_only():
    stored_cl = channels_last_zeros(np, (2, 3, 4, 4), np.float32)
    assert fast_batchnorm.applies(stored_cl)
    assert not fast_batchnorm.applies(stored_cl, np.zeros((2, 3, 4, 4))), "a plain (N, C, H, W) array"


@pytest.mark.parametrize("dtype, tol", [(np.float64, 1e-12), (np.float32, 1e-5)], ids=["float64", "float32"])
def test_ghost_batch_norm_gives_the_same_numbers_installed_or_not(dtype, tol, rng):
    """Ghost batch norm (ghost_batch=B) runs the four passes on each B-image slice; a slice of a
    channels-last batch is channels-last too, so the speed wing takes its fast passes there, and
    must give the numbers of the definitions (tinyresnet.cpu.definitions())."""
    import tinyresnet.cpu
    shape, ghost = (8, 16, 5, 5), 3
    x = channels_last_zeros(np, shape, dtype)
    x[...] = rng.standard_normal(shape) * 2 + 1
    assert fast_batchnorm.applies(x[0:ghost]), "a slice of a channels-last batch takes the fast passes"
    g = rng.standard_normal(shape).astype(dtype)
    gamma, beta = rng.uniform(0.5, 2.0, 16).astype(dtype), rng.standard_normal(16).astype(dtype)

    def run():
        xt, gt, bt = Tensor(x, requires_grad=True), Tensor(gamma, requires_grad=True), Tensor(beta, requires_grad=True)
        mean, var = np.zeros(16, dtype), np.ones(16, dtype)
        out = batch_norm(xt, gt, bt, mean, var, training=True, ghost_batch=ghost)
        out.backward(g)
        return [out.data, xt.grad, gt.grad, bt.grad, mean, var]
    with tinyresnet.cpu.definitions():
        plain = run()
    tinyresnet.cpu.install()
    try:
        fast = run()
    finally:
        tinyresnet.cpu.uninstall()
    for what, want, got in zip(["output", "dx", "dgamma", "dbeta", "running mean", "running var"], plain, fast):
        np.testing.assert_allclose(got, want, rtol=tol, atol=tol,
                                   err_msg=f"ghost batch norm's {what} differs with the speed wing installed")
    assert fast[0].strides == x.strides, "the output keeps the input's channels-last layout"
