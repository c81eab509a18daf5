"""Lesson 01: reverse-mode automatic differentiation.

Every op's backward pass is checked with `gradcheck` (central differences in
float64). The other tests pin down how the engine walks the graph: gradients
summed over broadcast axes, a tensor used twice, no_grad, freeing the graph,
very deep graphs, and the error for a non-scalar loss.
"""
import sys

import numpy as np
import pytest

import tinyresnet
from tinyresnet import Tensor, gradcheck, no_grad

pytestmark = pytest.mark.autograd


def away_from_zero(a, margin=0.1):
    """Values pushed at least `margin` away from 0, so that finite differences
    never straddle relu's kink (where the derivative jumps from 0 to 1)."""
    return a + np.sign(a) * margin


# ------------------------------------------------------------ every op's backward

BINARY_OPS = {
    "add": lambda a, b: a + b,
    "sub": lambda a, b: a - b,
    "mul": lambda a, b: a * b,
}


@pytest.mark.parametrize("name", list(BINARY_OPS))
def test_binary_op_backward(name, xp, rng):
    a = xp.asarray(rng.standard_normal((3, 4)))
    b = xp.asarray(rng.standard_normal((3, 4)))
    gradcheck(BINARY_OPS[name], a, b, name=name)


def test_neg_backward(xp, rng):
    gradcheck(lambda a: -a, xp.asarray(rng.standard_normal((3, 4))), name="neg")


@pytest.mark.parametrize("shape_a, shape_b", [
    ((3, 4), (4, 5)),           # plain matrix product
    ((2, 3, 4), (2, 4, 5)),     # a batch of matrix products
    ((2, 3, 4), (4, 5)),        # batch @ one shared matrix: dB is summed over the batch
    ((3, 4), (4,)),             # matrix @ vector
], ids=["2d", "batched", "batched-shared", "matrix-vector"])
def test_matmul_backward(shape_a, shape_b, xp, rng):
    a = xp.asarray(rng.standard_normal(shape_a))
    b = xp.asarray(rng.standard_normal(shape_b))
    gradcheck(lambda a, b: a @ b, a, b, name=f"matmul {shape_a} @ {shape_b}")


@pytest.mark.parametrize("shape", [(6, 4), (2, 12), (2, 3, 4), (24,)])
def test_reshape_backward(shape, xp, rng):
    x = xp.asarray(rng.standard_normal((2, 3, 4)))
    gradcheck(lambda x: x.reshape(*shape), x, name=f"reshape to {shape}")


@pytest.mark.parametrize("axes", [(), (1, 0, 2), (2, 0, 1)], ids=["reversed", "swap01", "cyclic"])
def test_transpose_backward(axes, xp, rng):
    x = xp.asarray(rng.standard_normal((2, 3, 4)))
    gradcheck(lambda x: x.transpose(*axes), x, name=f"transpose{axes}")


AXES = [None, 0, -1, (0, 2), (1, 2, 3)]


@pytest.mark.parametrize("keepdims", [False, True])
@pytest.mark.parametrize("axis", AXES)
@pytest.mark.parametrize("reduction", ["sum", "mean"])
def test_reduction_backward(reduction, axis, keepdims, xp, rng):
    x = xp.asarray(rng.standard_normal((2, 3, 2, 2)))
    gradcheck(lambda x: getattr(x, reduction)(axis=axis, keepdims=keepdims), x,
              name=f"{reduction}(axis={axis}, keepdims={keepdims})")


def test_mean_value_and_gradient_is_one_over_count(xp):
    x = Tensor(xp.ones((2, 3, 4)), requires_grad=True)
    m = x.mean(axis=(0, 2))
    assert m.shape == (3,)
    m.sum().backward()
    np.testing.assert_allclose(tinyresnet.device.to_device(x.grad, "cpu"), np.full((2, 3, 4), 1 / 8),
                               err_msg="mean over 8 values: each gets gradient 1/8")


def test_relu_backward(xp, rng):
    x = xp.asarray(away_from_zero(rng.standard_normal((4, 5))))
    gradcheck(lambda x: x.relu(), x, name="relu")


def test_relu_passes_gradient_only_where_positive(xp):
    x = Tensor(xp.asarray([-2.0, -0.5, 0.5, 3.0]), requires_grad=True)
    y = x.relu()
    np.testing.assert_array_equal(y.numpy(), [0, 0, 0.5, 3.0], err_msg="relu(x) = max(x, 0)")
    y.backward(xp.asarray([10.0, 10.0, 10.0, 10.0]))
    np.testing.assert_array_equal(tinyresnet.device.to_device(x.grad, "cpu"), [0, 0, 10, 10], err_msg=(
        "relu's backward passes g where x > 0 and 0 elsewhere (mask g by out > 0; do not multiply by out)"))


@pytest.mark.parametrize("index", [
    (slice(None), slice(1, 3)),
    (slice(None), slice(None), slice(None, None, 2), slice(None, None, 2)),
    (0,),
    (Ellipsis, -1),
], ids=["x[:, 1:3]", "x[:, :, ::2, ::2]", "x[0]", "x[..., -1]"])
def test_getitem_backward(index, xp, rng):
    x = xp.asarray(rng.standard_normal((2, 3, 5, 4)))
    gradcheck(lambda x: x[index], x, name=f"getitem {index}")


def test_getitem_gradient_lands_in_place_and_zero_elsewhere(xp):
    x = Tensor(xp.zeros((4, 4)), requires_grad=True)
    x[1:3, ::2].backward(xp.ones((2, 2)))
    expected = np.zeros((4, 4))
    expected[1:3, ::2] = 1
    np.testing.assert_array_equal(tinyresnet.device.to_device(x.grad, "cpu"), expected, err_msg=(
        "x[1:3, ::2]'s backward scatters g into zeros of x's shape at the same index"))


def test_composite_expression_backward(xp, rng):
    """Several ops chained: the chain rule through the whole graph."""
    def f(x, w, b):
        return ((x @ w + b).relu() * x.sum(axis=1, keepdims=True)).mean(axis=0)
    x = xp.asarray(rng.standard_normal((5, 3)))
    w = xp.asarray(rng.standard_normal((3, 4)))
    b = xp.asarray(rng.standard_normal((4,)))
    gradcheck(f, x, w, b, name="((x @ w + b).relu() * x.sum(1)).mean(0)")


# ------------------------------------------------------------ broadcasting

@pytest.mark.parametrize("bias_shape", [(1, 3, 1, 1), (3, 1, 1), (1, 1, 1, 4), (4,)])
@pytest.mark.parametrize("name", ["add", "mul", "sub"])
def test_broadcast_backward(name, bias_shape, xp, rng):
    x = xp.asarray(rng.standard_normal((2, 3, 2, 4)))
    b = xp.asarray(rng.standard_normal(bias_shape))
    gradcheck(BINARY_OPS[name], x, b, name=f"{name} (2, 3, 2, 4) with {bias_shape}")


def test_broadcast_gradient_is_summed_over_the_copies(xp, rng):
    """A per-channel bias (1, C, 1, 1) is used N*H*W times: its gradient is the sum."""
    x = Tensor(xp.asarray(rng.standard_normal((2, 3, 4, 5))), requires_grad=True)
    b = Tensor(xp.zeros((1, 3, 1, 1)), requires_grad=True)
    g = rng.standard_normal((2, 3, 4, 5))
    (x + b).backward(xp.asarray(g))
    assert b.grad.shape == (1, 3, 1, 1), f"bias gradient has shape {b.grad.shape}, want (1, 3, 1, 1)"
    np.testing.assert_allclose(tinyresnet.device.to_device(b.grad, "cpu"),
                               g.sum(axis=(0, 2, 3), keepdims=True), rtol=1e-12, atol=1e-12,
                               err_msg="d(x + b)/db must sum the upstream gradient over N, H and W")
    np.testing.assert_allclose(tinyresnet.device.to_device(x.grad, "cpu"), g, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("expr, dx", [
    (lambda x: 2.0 + x, 1.0),
    (lambda x: x + 2.0, 1.0),
    (lambda x: 3.0 * x, 3.0),
    (lambda x: x * 3.0, 3.0),
    (lambda x: 1.0 - x, -1.0),
    (lambda x: x - 1.0, 1.0),
], ids=["2+x", "x+2", "3*x", "x*3", "1-x", "x-1"])
def test_python_number_and_tensor(expr, dx, xp):
    x = Tensor(xp.asarray([1.0, 2.0, 3.0], dtype=xp.float32), requires_grad=True)
    y = expr(x)
    assert y.dtype == np.float32, f"a Python number must not promote float32 to {y.dtype}"
    assert y.device == x.device
    y.sum().backward()
    np.testing.assert_allclose(tinyresnet.device.to_device(x.grad, "cpu"), [dx] * 3, err_msg=(
        f"d/dx of this expression is {dx} everywhere: a reflected op (2 + x, 3 * x, 1 - x) must keep "
        "its operands' order (1 - x has slope -1)"))


def test_scalar_tensor_broadcast_gradient_is_a_sum(xp, rng):
    s = Tensor(xp.asarray(0.5), requires_grad=True)
    x = Tensor(xp.asarray(rng.standard_normal((3, 4))), requires_grad=True)
    (s * x).sum().backward()
    assert s.grad.shape == (), f"gradient of a 0-d tensor should be 0-d, got shape {s.grad.shape}"
    np.testing.assert_allclose(float(s.grad), float(x.data.sum()), rtol=1e-12, atol=1e-12, err_msg=(
        "a 0-d tensor broadcast over x gets the SUM of the gradients of all the places it was used"))
    gradcheck(lambda s, x: s * x + s, xp.asarray(0.5), xp.asarray(rng.standard_normal((3, 4))),
              name="scalar * x + scalar")


# ------------------------------------------------------------ graph bookkeeping

def test_node_used_twice_accumulates(xp):
    x = Tensor(xp.asarray([1.0, -2.0, 3.0]), requires_grad=True)
    (x * x).sum().backward()
    np.testing.assert_allclose(tinyresnet.device.to_device(x.grad, "cpu"), [2.0, -4.0, 6.0],
                               err_msg="d(x*x)/dx = 2x: both uses of x must add their gradient")
    x.grad = None
    (x + x).sum().backward()
    np.testing.assert_allclose(tinyresnet.device.to_device(x.grad, "cpu"), [2.0, 2.0, 2.0],
                               err_msg="d(x+x)/dx = 2")


def test_diamond_graph(xp):
    """y feeds two branches that meet again: y's gradient is the sum of both."""
    x = Tensor(xp.asarray([1.0, 2.0]), requires_grad=True)
    y = x * 3.0
    z = y * y + y          # dz/dy = 2y + 1, dz/dx = 3 (2y + 1) = 18x + 3
    z.sum().backward()
    np.testing.assert_allclose(tinyresnet.device.to_device(x.grad, "cpu"), [21.0, 39.0], err_msg=(
        "dz/dx = 3 (2y + 1): y must collect the gradients of both its uses before passing them on "
        "(a reversed topological order; visiting y too early loses a branch)"))


def test_leaf_gradients_accumulate_until_zeroed(xp):
    """Like PyTorch: each backward adds into .grad; optimizers call zero_grad() between steps."""
    x = Tensor(xp.asarray([1.0, 2.0]), requires_grad=True)
    (x * 2.0).sum().backward()
    (x * 2.0).sum().backward()
    np.testing.assert_allclose(tinyresnet.device.to_device(x.grad, "cpu"), [4.0, 4.0], err_msg=(
        "two backward calls of d(2x)/dx = 2 each: a leaf's .grad must ADD across calls, not be overwritten"))


def test_no_grad_builds_no_graph(xp):
    x = Tensor(xp.asarray([1.0, 2.0]), requires_grad=True)
    with no_grad():
        assert not tinyresnet.is_grad_enabled()
        y = (x * x).sum()
    assert tinyresnet.is_grad_enabled(), "no_grad() must switch gradients back on when it exits"
    assert not y.requires_grad, "a result computed under no_grad() must not require grad"
    assert y._parents == () and y._backward is None, "no_grad() must not record parents"
    with pytest.raises(RuntimeError, match="does not require grad"):
        y.backward()


def test_no_grad_restores_state_after_an_exception():
    with pytest.raises(ZeroDivisionError):
        with no_grad():
            1 / 0
    assert tinyresnet.is_grad_enabled()


def test_constants_build_no_graph(xp):
    a, b = Tensor(xp.ones(3)), Tensor(xp.ones(3))
    c = a * b + 1.0
    assert not c.requires_grad and c._parents == ()


def test_graph_is_released_after_backward(xp):
    x = Tensor(xp.asarray([1.0, 2.0, 3.0]), requires_grad=True)
    h = x * 2.0
    kept = (h + 1.0).retain_grad()
    loss = (kept * h).sum()
    loss.backward()
    for node, what in [(h, "h = x * 2"), (kept, "kept = h + 1"), (loss, "loss")]:
        assert node._parents == () and node._backward is None, \
            f"{what}: the graph must be released after backward (parents and closure dropped)"
    assert h.grad is None, "an intermediate's gradient is freed after backward (unless retain_grad())"
    assert kept.grad is not None, "retain_grad() keeps an intermediate's gradient for inspection"
    np.testing.assert_allclose(tinyresnet.device.to_device(kept.grad, "cpu"), [2.0, 4.0, 6.0], err_msg=(
        "d loss / d kept = h = 2x: retain_grad() must keep the gradient the sweep computed for it"))
    np.testing.assert_allclose(tinyresnet.device.to_device(x.grad, "cpu"), [10.0, 18.0, 26.0], err_msg=(
        "leaves keep their gradient: d/dx sum((2x + 1) * 2x) = 8x + 2"))


def test_very_deep_graph_needs_no_recursion(xp):
    """A 1202-layer ResNet makes graphs thousands of nodes deep: backward must be iterative."""
    depth = 3000
    assert depth > sys.getrecursionlimit(), "the test only means something beyond the recursion limit"
    x = Tensor(xp.asarray([1.0, 2.0]), requires_grad=True)
    y = x
    for _ in range(depth):
        y = y * 1.0 + 0.0
    y.sum().backward()   # a RecursionError here means backward recurses over the graph
    np.testing.assert_allclose(tinyresnet.device.to_device(x.grad, "cpu"), [1.0, 1.0])


def test_backward_of_a_non_scalar_needs_a_gradient(xp):
    y = Tensor(xp.ones((2, 3)), requires_grad=True) * 2.0
    with pytest.raises(RuntimeError, match=r"needs a scalar.*\(2, 3\)"):
        y.backward()
    y.backward(xp.ones((2, 3)))   # with an explicit upstream gradient it is fine


@pytest.mark.parametrize("grad_shape", [(5, 5), (3, 3), (1, 3)], ids=["unrelated", "broadcastable", "one-row"])
def test_backward_refuses_a_gradient_of_another_shape(xp, grad_shape):
    """The parameter's .grad used to take the shape of whatever gradient was passed in."""
    w = Tensor(xp.ones(3, dtype=xp.float32), requires_grad=True)
    with pytest.raises(ValueError, match=r"grad must have the tensor's shape \(3,\), got \(%d, %d\)" % grad_shape):
        (w * 2.0).backward(xp.ones(grad_shape, dtype=xp.float32))
    assert w.grad is None


def test_relu_of_integers_is_float(xp):
    out = Tensor(xp.arange(-3, 3)).relu()
    assert out.dtype.kind == "f", f"relu kept the integer dtype {out.dtype}"
    np.testing.assert_array_equal(tinyresnet.device.to_device(out.data, "cpu"), [0, 0, 0, 0, 1, 2])


def test_backward_on_a_constant_raises(xp):
    with pytest.raises(RuntimeError, match="does not require grad"):
        Tensor(xp.ones(())).backward()


# ------------------------------------------------------------ dtypes and construction

def test_python_lists_and_numbers_become_float32():
    assert Tensor([1, 2, 3]).dtype == np.float32
    assert Tensor([[1.5, 2.5]]).dtype == np.float32
    assert Tensor(2.0).dtype == np.float32 and Tensor(2.0).shape == ()


def test_arrays_keep_their_dtype():
    assert Tensor(np.zeros(3, dtype=np.float64)).dtype == np.float64
    assert Tensor(np.zeros(3, dtype=np.int64)).dtype == np.int64


def test_float32_stays_float32_through_ops(xp):
    x = Tensor(xp.ones((2, 3), dtype=xp.float32), requires_grad=True)
    w = Tensor(xp.ones((3, 4), dtype=xp.float32), requires_grad=True)
    y = ((x @ w).relu() * 0.5 + 1.0 - 2.0).mean()
    assert y.dtype == np.float32
    y.backward()
    assert x.grad.dtype == np.float32 and w.grad.dtype == np.float32


def test_ops_stay_on_the_inputs_device(device, xp):
    x = Tensor(xp.ones((2, 2)), requires_grad=True)
    y = (x @ x + x * 2.0).sum()
    assert x.device == device and y.device == device
    y.backward()
    assert tinyresnet.device.device_of(x.grad) == device


# ------------------------------------------------------------ two backward passes through one graph

def test_second_backward_through_a_shared_subgraph_raises(xp):
    """Two losses share h; each has its own backward(). The first releases h, so the second
    must raise, never return a gradient that silently misses the shared part."""
    x = Tensor(xp.asarray([1.0, 2.0]), requires_grad=True)
    h = x * 2.0
    (h * 1.0).sum().backward()
    with pytest.raises(RuntimeError, match="backward\\(\\) called twice through the same graph.*retain_graph"):
        (h * 2.0).sum().backward()
    np.testing.assert_allclose(tinyresnet.device.to_device(x.grad, "cpu"), [2.0, 2.0],
                               err_msg="the refused backward must leave the gradients as they were")


def test_retain_graph_lets_two_losses_share_a_subgraph(xp):
    """d/dx of sum(2x) + sum(4x) is 6: with retain_graph=True both passes reach x through h."""
    x = Tensor(xp.asarray([1.0, 2.0]), requires_grad=True)
    h = x * 2.0
    (h * 1.0).sum().backward(retain_graph=True)
    (h * 2.0).sum().backward()
    np.testing.assert_allclose(tinyresnet.device.to_device(x.grad, "cpu"), [6.0, 6.0],
                               err_msg="x.grad must be 2 + 4 = 6 after the two backward passes")
    assert h.grad is None, "an intermediate's gradient is still dropped once used"


def test_backward_twice_on_the_same_loss_raises(xp):
    x = Tensor(xp.asarray([1.0, 2.0]), requires_grad=True)
    loss = (x * x).sum()
    loss.backward()
    with pytest.raises(RuntimeError, match="called twice"):
        loss.backward()


# ------------------------------------------------------------ looking inside the graph

def test_op_and_parents_walk_the_graph(xp):
    x = Tensor(xp.asarray([1.0, 2.0]), requires_grad=True)
    y = x * 3.0
    z = (y + x).sum()
    assert z.op == "sum" and z.parents[0].op == "add"
    assert z.parents[0].parents[0] is y and y.op == "mul" and y.parents[0] is x
    assert x.is_leaf and x.op == "" and x.parents == () and not y.is_leaf
    from tinyresnet.autograd import topological_order
    order = topological_order(z)
    assert order[0] is x and order[-1] is z and order.index(y) < order.index(z.parents[0])


def test_hook_sees_the_gradient_of_an_intermediate(xp):
    """register_hook(fn): fn gets dLoss/dh as soon as it is complete, without retain_grad."""
    x = Tensor(xp.asarray([1.0, 2.0, 3.0]), requires_grad=True)
    h = x * 2.0
    seen = []
    h.register_hook(lambda g: seen.append(tinyresnet.device.to_device(g, "cpu").copy()))
    (h * h).sum().backward()  # dLoss/dh = 2h = 4x
    assert len(seen) == 1, "a hook runs once per backward pass"
    np.testing.assert_allclose(seen[0], [4.0, 8.0, 12.0], err_msg="the hook must see dLoss/dh = 2h")


def test_hook_can_replace_the_gradient_and_be_removed(xp):
    x = Tensor(xp.asarray([1.0, 2.0]), requires_grad=True)
    h = x * 1.0
    loss = h.sum()
    handle = h.register_hook(lambda g: g * 0.0)
    loss.backward(retain_graph=True)
    np.testing.assert_allclose(tinyresnet.device.to_device(x.grad, "cpu"), [0.0, 0.0],
                               err_msg="a hook that returns an array replaces the gradient")
    handle.remove()
    x.grad = None
    loss.backward()
    np.testing.assert_allclose(tinyresnet.device.to_device(x.grad, "cpu"), [1.0, 1.0],
                               err_msg="after handle.remove() the hook must not run")


def test_hook_on_a_leaf_sees_this_pass_only(xp):
    x = Tensor(xp.asarray([1.0, 2.0]), requires_grad=True)
    seen = []
    x.register_hook(lambda g: seen.append(tinyresnet.device.to_device(g, "cpu").copy()))
    (x * 2.0).sum().backward()
    (x * 3.0).sum().backward()
    np.testing.assert_allclose(seen[1], [3.0, 3.0], err_msg="the hook gets this pass's gradient")
    np.testing.assert_allclose(tinyresnet.device.to_device(x.grad, "cpu"), [5.0, 5.0],
                               err_msg=".grad of a leaf still accumulates over passes")


# ------------------------------------------------------------ dtype promotion with Python numbers

@pytest.mark.parametrize("expr, expected, dtype", [
    (lambda t: t + 0.5, [0.5, 1.5, 2.5], np.float64),
    (lambda t: t * 0.5, [0.0, 0.5, 1.0], np.float64),
    (lambda t: 0.5 - t, [0.5, -0.5, -1.5], np.float64),
    (lambda t: t + 2, [2, 3, 4], np.int64),
    (lambda t: t * True, [0, 1, 2], np.int64),
], ids=["int+0.5", "int*0.5", "0.5-int", "int+2", "int*True"])
def test_python_numbers_promote_as_in_numpy(expr, expected, dtype, xp):
    t = Tensor(xp.asarray([0, 1, 2], dtype=xp.int64))
    out = expr(t)
    assert out.dtype == dtype, f"NumPy gives {np.dtype(dtype)} here; the tensor op gave {out.dtype}"
    np.testing.assert_allclose(out.numpy(), expected)


def test_float32_times_python_float_stays_float32(xp):
    t = Tensor(xp.ones(3, dtype=xp.float32))
    assert (t * 0.1).dtype == np.float32 and (t + 1).dtype == np.float32


def test_matmul_lifts_a_list_like_add_and_mul(xp):
    w = Tensor(xp.asarray([[1.0, 2.0], [3.0, 4.0]], dtype=xp.float32), requires_grad=True)
    np.testing.assert_allclose((w @ [1.0, 1.0]).numpy(), [3.0, 7.0])
    np.testing.assert_allclose(([1.0, 1.0] @ w).numpy(), [4.0, 6.0])
