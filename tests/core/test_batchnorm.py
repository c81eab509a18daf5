"""Lesson 03: batch normalization.

In training mode each channel is normalized with the batch's own mean and
variance, so every output depends on every input of the channel: the backward
pass has two extra terms for those paths. In eval mode the running statistics
are constants and batch norm is just a per-channel affine map.
"""
import numpy as np
import pytest

from tinyresnet import GradcheckError, Tensor, gradcheck, nn
from tinyresnet.functional import batch_norm

from conftest import host

pytestmark = pytest.mark.batchnorm

EPS = 1e-5


from bn_inputs import inputs, running_stats


# ------------------------------------------------------------ backward

@pytest.mark.parametrize("shape", [(4, 3, 2, 2), (2, 2, 1, 1), (1, 2, 3, 3)],
                         ids=["4x3x2x2", "two-values-per-channel", "batch-of-one-image"])
def test_backward_training(shape, xp, rng):
    x, gamma, beta = inputs(xp, rng, shape)
    mean, var = running_stats(xp, rng, shape[1])
    gradcheck(lambda x, g, b: batch_norm(x, g, b, mean, var, training=True), x, gamma, beta,
              name=f"batch_norm training {shape}")


def test_backward_eval(xp, rng):
    x, gamma, beta = inputs(xp, rng)
    mean, var = running_stats(xp, rng, 3)
    gradcheck(lambda x, g, b: batch_norm(x, g, b, mean, var, training=False), x, gamma, beta,
              name="batch_norm eval")


def test_no_input_gradient_needed(xp, rng):
    x, gamma, beta = inputs(xp, rng)
    mean, var = running_stats(xp, rng, 3)
    g, b = Tensor(gamma, requires_grad=True), Tensor(beta, requires_grad=True)
    batch_norm(Tensor(x), g, b, mean, var, training=True).sum().backward()
    assert g.grad is not None and b.grad is not None, (
        "an input that needs no gradient must not stop gamma's and beta's from being computed")


def test_all_ones_upstream_hides_the_input_gradient(xp, rng):
    """Why gradcheck uses a random upstream gradient.

    In training mode each channel's output has mean beta whatever x is, so
    sum(output) is a constant and d sum(output) / dx = 0. A check with an
    all-ones upstream gradient cannot tell a correct dx from one that is all zeros.
    """
    x, gamma, beta = inputs(xp, rng)
    mean, var = running_stats(xp, rng, 3)
    xt = Tensor(x, requires_grad=True)
    batch_norm(xt, Tensor(gamma), Tensor(beta), mean, var, training=True).backward(xp.ones(x.shape))
    assert np.abs(host(xt.grad)).max() < 1e-12, "with upstream = 1 the true dx is ~0"

    xt.grad = None
    batch_norm(xt, Tensor(gamma), Tensor(beta), mean, var, training=True).backward(
        xp.asarray(rng.standard_normal(x.shape)))
    assert np.abs(host(xt.grad)).max() > 1e-2, "with a random upstream dx is not 0"

    def bn_with_zero_dx(x, g, b):
        """A broken batch norm whose backward returns zeros for x."""
        out = batch_norm(x, g, b, mean, var, training=True)
        correct = out._backward

        def backward(grad):
            dx, dgamma, dbeta = correct(grad)
            return 0 * dx, dgamma, dbeta
        return Tensor.from_op(out.data, (x, g, b), backward, "batch_norm with dx = 0")

    with pytest.raises(GradcheckError, match="all zeros"):
        gradcheck(bn_with_zero_dx, x, gamma, beta)


# ------------------------------------------------------------ forward and running statistics

def test_training_forward_normalizes_each_channel(xp, rng):
    x, _, _ = inputs(xp, rng, (8, 3, 4, 4))
    c = 3
    mean, var = running_stats(xp, rng, c)
    out = host(batch_norm(Tensor(x), Tensor(xp.ones(c)), Tensor(xp.zeros(c)), mean, var, training=True))
    np.testing.assert_allclose(out.mean(axis=(0, 2, 3)), 0, atol=1e-10,
                               err_msg="each channel has mean 0 after normalization")
    np.testing.assert_allclose(out.var(axis=(0, 2, 3)), 1, rtol=1e-3,
                               err_msg="each channel has variance 1 (up to eps) after normalization")


@pytest.mark.parametrize("momentum", [0.1, 0.3])
def test_running_statistics_update(momentum, xp, rng):
    """running = (1 - momentum) * running + momentum * batch statistic, variance unbiased (/(m - 1))."""
    x, gamma, beta = inputs(xp, rng)
    mean, var = running_stats(xp, rng, 3)
    old_mean, old_var = host(mean).copy(), host(var).copy()
    batch_norm(Tensor(x), Tensor(gamma), Tensor(beta), mean, var, training=True, momentum=momentum)
    xs = host(x)
    batch_mean = xs.mean(axis=(0, 2, 3))
    batch_var = xs.var(axis=(0, 2, 3), ddof=1)
    np.testing.assert_allclose(host(mean), (1 - momentum) * old_mean + momentum * batch_mean,
                               rtol=1e-12, atol=1e-12, err_msg="running_mean must be updated in place")
    np.testing.assert_allclose(host(var), (1 - momentum) * old_var + momentum * batch_var,
                               rtol=1e-12, atol=1e-12,
                               err_msg="running_var must use the unbiased batch variance (divide by m - 1)")


def test_eval_uses_running_statistics(xp, rng):
    x, gamma, beta = inputs(xp, rng)
    mean, var = running_stats(xp, rng, 3)
    before = host(mean).copy(), host(var).copy()
    out = host(batch_norm(Tensor(x), Tensor(gamma), Tensor(beta), mean, var, training=False))
    bc = lambda v: host(v).reshape(1, -1, 1, 1)
    expected = (host(x) - bc(mean)) / np.sqrt(bc(var) + EPS) * bc(gamma) + bc(beta)
    np.testing.assert_allclose(out, expected, rtol=1e-12, atol=1e-12, err_msg=(
        "eval mode normalizes with the RUNNING statistics, (x - running_mean) / sqrt(running_var + eps) "
        "* gamma + beta, not with the batch's"))
    np.testing.assert_array_equal(host(mean), before[0], err_msg="eval mode must not touch running_mean")
    np.testing.assert_array_equal(host(var), before[1], err_msg="eval mode must not touch running_var")
    # an image's output does not depend on the rest of its batch
    alone = host(batch_norm(Tensor(x[:1]), Tensor(gamma), Tensor(beta), mean, var, training=False))
    np.testing.assert_allclose(alone, out[:1], rtol=1e-12, atol=1e-12)


def test_one_value_per_channel_in_training_raises(xp):
    x = Tensor(xp.ones((1, 3, 1, 1)))
    mean, var = xp.zeros(3), xp.ones(3)
    with pytest.raises(ValueError, match="more than one value per channel"):
        batch_norm(x, Tensor(xp.ones(3)), Tensor(xp.zeros(3)), mean, var, training=True)
    out = batch_norm(x, Tensor(xp.ones(3)), Tensor(xp.zeros(3)), mean, var, training=False)
    assert out.shape == (1, 3, 1, 1), "eval mode handles a single value per channel"


@pytest.mark.parametrize("dtype", [np.int64, np.uint8])
@pytest.mark.parametrize("training", [True, False], ids=["training", "eval"])
def test_integer_input_is_normalized_as_floats(xp, dtype, training):
    """An integer batch (raw pixels, np.arange) used to come back as integers: all zeros."""
    x = np.arange(96).reshape(2, 3, 4, 4)
    layer = nn.BatchNorm2d(3).train(training).to("cpu" if xp is np else "gpu")
    out = layer(Tensor(xp.asarray(x.astype(dtype))))
    expected = nn.BatchNorm2d(3).train(training).to("cpu" if xp is np else "gpu")(Tensor(xp.asarray(x, dtype=xp.float32)))
    assert out.dtype.kind == "f", f"batch norm of {np.dtype(dtype)} input gave {out.dtype}"
    np.testing.assert_allclose(host(out), host(expected), rtol=1e-6, atol=1e-6)


BAD_SHAPES = {
    "gamma of 4 for 3 channels": ((2, 3, 4, 4), 4, r"batch_norm: gamma has shape \(4,\) but x has 3 channels"),
    "2-D input": ((2, 3), 3, r"batch_norm wants x: \(N, C, H, W\), got shape \(2, 3\)"),
}


@pytest.mark.parametrize("shape, channels, message", BAD_SHAPES.values(), ids=BAD_SHAPES.keys())
def test_shape_mistakes_name_batch_norm(xp, shape, channels, message):
    with pytest.raises(ValueError, match=message):
        batch_norm(Tensor(xp.ones(shape, dtype=xp.float32)), Tensor(xp.ones(channels)), Tensor(xp.zeros(channels)),
                   xp.zeros(channels), xp.ones(channels), training=True)


def test_module_buffers_follow_train_and_eval(rng):
    bn = nn.BatchNorm2d(3)
    x = Tensor(rng.standard_normal((4, 3, 2, 2)).astype(np.float32) + 5)
    bn(x)
    after_train = bn.running_mean.copy()
    assert np.all(after_train > 0.1), "a training-mode call moves the running mean towards the batch mean"
    bn.eval()
    bn(x)
    np.testing.assert_array_equal(bn.running_mean, after_train, err_msg="eval calls leave running stats alone")
    assert bn.running_mean.dtype == np.float32 and bn.running_var.dtype == np.float32


# ------------------------------------------------------------ ghost batch norm (ghost_batch=B)

def ghost_and_slices(xp, rng, shape, ghost, requires_grad=True):
    """batch_norm(ghost_batch=ghost) of a random batch, and plain batch_norm of each B-image slice
    on its own: ((out, dx, dgamma, dbeta, running mean, running var), [the same per slice])."""
    x, gamma, beta = inputs(xp, rng, shape)
    g = xp.asarray(rng.standard_normal(shape))
    running = running_stats(xp, rng, shape[1])

    def one(xs, gs, ghost_batch):
        xt = Tensor(xs, requires_grad=requires_grad)
        gt, bt = Tensor(gamma, requires_grad=True), Tensor(beta, requires_grad=True)
        mean, var = running[0].copy(), running[1].copy()
        out = batch_norm(xt, gt, bt, mean, var, training=True, ghost_batch=ghost_batch)
        out.backward(gs)
        return [host(out), None if xt.grad is None else host(xt.grad), host(gt.grad), host(bt.grad),
                host(mean), host(var)]
    n = shape[0]
    return one(x, g, ghost), [one(x[a:a + ghost], g[a:a + ghost], None) for a in range(0, n, ghost)]


@pytest.mark.parametrize("shape, ghost", [((8, 3, 2, 2), 4), ((8, 3, 2, 2), 2), ((7, 2, 3, 3), 3)],
                         ids=["2-slices", "4-slices", "last-slice-shorter"])
def test_ghost_batch_norm_normalizes_each_slice_on_its_own(shape, ghost, xp, rng):
    """Ghost batch norm is plain batch norm of each B-image slice: the outputs and input gradients
    of the slices side by side; gamma's and beta's gradients summed over the slices; the running
    statistics moved once, towards the slices' average mean and unbiased variance."""
    ghosted, parts = ghost_and_slices(xp, rng, shape, ghost)
    out, dx, dgamma, dbeta, mean, var = ghosted
    tight = dict(rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(out, np.concatenate([p[0] for p in parts]), **tight,
                               err_msg="each slice must be normalized with its own mean and variance")
    np.testing.assert_allclose(dx, np.concatenate([p[1] for p in parts]), **tight,
                               err_msg="dx of a slice goes through that slice's statistics only")
    np.testing.assert_allclose(dgamma, sum(p[2] for p in parts), **tight,
                               err_msg="gamma is shared by the slices: its gradient is their sum")
    np.testing.assert_allclose(dbeta, sum(p[3] for p in parts), **tight,
                               err_msg="beta is shared by the slices: its gradient is their sum")
    # each per-slice run moved the same starting running statistics once; the ghost run moves
    # them once by the average of the slices' statistics, which is the average of those results
    np.testing.assert_allclose(mean, np.mean([p[4] for p in parts], axis=0), **tight,
                               err_msg="running_mean moves once per minibatch, by the slices' average mean")
    np.testing.assert_allclose(var, np.mean([p[5] for p in parts], axis=0), **tight,
                               err_msg="running_var moves once per minibatch, by the slices' average "
                                       "unbiased variance")


def test_ghost_batch_norm_without_input_gradient(xp, rng):
    ghosted, parts = ghost_and_slices(xp, rng, (6, 2, 2, 2), 3, requires_grad=False)
    assert ghosted[1] is None
    np.testing.assert_allclose(ghosted[2], sum(p[2] for p in parts), rtol=1e-12, atol=1e-12, err_msg=(
        "ghost batch norm's dgamma is the sum of its slices' dgammas, also when x needs no gradient"))


def test_ghost_batch_as_large_as_the_batch_is_plain_batch_norm(rng):
    """ghost_batch >= N is one slice: the very same numbers as no ghost_batch, bit for bit."""
    x, gamma, beta = inputs(np, rng, (4, 3, 2, 2))
    results = []
    for ghost in (None, 4, 9):
        xt = Tensor(x, requires_grad=True)
        mean, var = running_stats(np, np.random.default_rng(1), 3)
        out = batch_norm(xt, Tensor(gamma), Tensor(beta), mean, var, training=True, ghost_batch=ghost)
        out.backward(np.ones_like(x) + x)
        results.append((out.data, xt.grad, mean, var))
    for ghost, result in zip((4, 9), results[1:]):
        for a, b in zip(result, results[0]):
            np.testing.assert_array_equal(a, b, err_msg=f"ghost_batch={ghost} on a batch of 4")


def test_ghost_batch_norm_backward(xp, rng):
    x, gamma, beta = inputs(xp, rng, (6, 2, 2, 2))
    mean, var = running_stats(xp, rng, 2)
    gradcheck(lambda x, g, b: batch_norm(x, g, b, mean, var, training=True, ghost_batch=2), x, gamma, beta,
              name="batch_norm training, ghost_batch=2")


def test_ghost_batch_is_ignored_in_eval(xp, rng):
    x, gamma, beta = inputs(xp, rng)
    mean, var = running_stats(xp, rng, 3)
    plain = host(batch_norm(Tensor(x), Tensor(gamma), Tensor(beta), mean, var, training=False))
    ghosted = host(batch_norm(Tensor(x), Tensor(gamma), Tensor(beta), mean, var, training=False, ghost_batch=1))
    np.testing.assert_array_equal(ghosted, plain, err_msg="eval mode uses the running statistics, no slices")


def test_ghost_slice_with_one_value_per_channel_raises(xp):
    x = Tensor(xp.asarray(np.arange(12.0).reshape(3, 4, 1, 1)))
    mean, var = xp.zeros(4), xp.ones(4)
    with pytest.raises(ValueError, match="slice of 1"):
        batch_norm(x, Tensor(xp.ones(4)), Tensor(xp.zeros(4)), mean, var, training=True, ghost_batch=2)
    with pytest.raises(ValueError, match="ghost_batch must be"):
        batch_norm(x, Tensor(xp.ones(4)), Tensor(xp.zeros(4)), mean, var, training=True, ghost_batch=0)


def test_set_ghost_batch_reaches_every_batch_norm():
    from tinyresnet import models
    model = nn.set_ghost_batch(models.cifar_resnet(8, shortcut="B"), 4)
    norms = [m for m in model.modules() if isinstance(m, nn.BatchNorm2d)]
    assert len(norms) == 9 and all(m.ghost_batch == 4 for m in norms)  # 7 after convs, 2 in projections


# ------------------------------------------------------------ against PyTorch

def assert_close(ours, theirs, what, rtol=1e-4):
    scale = max(float(np.abs(theirs).max()), 1.0)
    np.testing.assert_allclose(ours, theirs, rtol=rtol, atol=rtol * scale,
                               err_msg=f"{what} differs from PyTorch")


@pytest.mark.torch
@pytest.mark.parametrize("training", [True, False], ids=["train", "eval"])
def test_matches_pytorch(training, torch, xp, rng):
    f32 = lambda a: np.asarray(a, dtype=np.float32)
    x = f32(rng.standard_normal((4, 3, 5, 5)) * 3 + 2)
    gamma, beta = f32(rng.uniform(0.5, 2.0, 3)), f32(rng.standard_normal(3))
    mean, var = f32(rng.standard_normal(3)), f32(rng.uniform(0.5, 2.0, 3))
    g = f32(rng.standard_normal(x.shape))

    ox, og, ob = (Tensor(xp.asarray(a), requires_grad=True) for a in (x, gamma, beta))
    omean, ovar = xp.asarray(mean.copy()), xp.asarray(var.copy())
    out = batch_norm(ox, og, ob, omean, ovar, training=training, momentum=0.1, eps=EPS)
    out.backward(xp.asarray(g))

    tx, tg, tb = (torch.tensor(a, requires_grad=True) for a in (x, gamma, beta))
    tmean, tvar = torch.tensor(mean), torch.tensor(var)
    tout = torch.nn.functional.batch_norm(tx, tmean, tvar, tg, tb, training=training, momentum=0.1, eps=EPS)
    tout.backward(torch.tensor(g))

    mode = "train" if training else "eval"
    assert out.dtype == np.float32
    assert_close(host(out), tout.detach().numpy(), f"batch_norm ({mode}) output")
    assert_close(host(ox.grad), tx.grad.numpy(), f"batch_norm ({mode}) dx")
    assert_close(host(og.grad), tg.grad.numpy(), f"batch_norm ({mode}) dgamma")
    assert_close(host(ob.grad), tb.grad.numpy(), f"batch_norm ({mode}) dbeta")
    assert_close(host(omean), tmean.numpy(), f"batch_norm ({mode}) running_mean after one step")
    assert_close(host(ovar), tvar.numpy(), f"batch_norm ({mode}) running_var after one step")
