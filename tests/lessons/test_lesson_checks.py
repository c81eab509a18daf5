"""The lessons' check cells reject wrong code, and say why.

tests/test_lessons.py proves that the worked solutions pass every check. This file proves
the other half: for each exercise, planted wrong implementations (a typical slip and a
shape slip, at least) make the check print "✗ FAILED" with the message that names the
slip, and return False. A check that passed them, or failed them with the wrong words,
would leave a learner with a wrong function and a wrong idea.
"""
import numpy as np
import pytest

from checks import autograd, batch_norm, layer_responses, setup
from checks.harness import FAILED, NOT_WRITTEN, PASSED
from checks import imagenet_bottleneck, vanishing_gradients
from experiments import response_layers
from solutions import autograd as solved_autograd
from solutions import responses as solved_responses
from tinyresnet import Tensor, no_grad
from tinyresnet import functional as F
from tinyresnet.nn import Conv2d

from planted import rejects, verdict

pytestmark = pytest.mark.lessons



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


def normalize_not_scaled(x, mean):
    return x.astype(np.float32) - mean                  # forgot / 255


def normalize_wraps(x, mean):
    return (x - (mean * 255).astype(np.uint8)).astype(np.float32) / 255   # uint8 subtraction wraps


def normalize_in_place(x, mean):
    out = x.astype(np.float32) / 255 - mean
    x[...] = 0                                          # the caller's images are gone
    return out


def mean_summed_in_uint8(x):
    return x.sum(axis=0, dtype=np.uint8) / 255 / len(x)


def mean_without_return(x):
    x.mean(axis=0) / 255


def normalize_shape_slip(x, mean):
    return (x.astype(np.float32) / 255 - mean)[0]       # one image instead of all


@pytest.mark.parametrize("fn, says", [
    (mean_not_scaled, ["255 times too large"]),
    (mean_over_all_axes, ["shape (3,)", "axis 0"]),
    (mean_summed_in_uint8, ["wrapped around in uint8"]),
    (mean_without_return, ["returned None", "forget the `return`"]),
])
def test_per_pixel_mean_rejects(capsys, fn, says):
    rejects(capsys, setup.check_per_pixel_mean, fn, says=says)


@pytest.mark.parametrize("fn, says", [
    (normalize_in_uint8, ["dtype is float64"]),
    (normalize_shape_slip, ["shape (3, 32, 32)", "the same as x"]),
    (normalize_not_scaled, ["still 0..255", "divide x by 255"]),
    (normalize_wraps, ["uint8 arithmetic wraps around", "the worst of your values"]),
    (normalize_in_place, ["changed the array it was given"]),
])
def test_normalize_rejects(capsys, fn, says):
    rejects(capsys, setup.check_normalize, fn, says=says)


# ------------------------------------------------------------------ lesson 01

def mul_swapped(a, b, g):
    return g * a, g * b


def mul_copied(a, b, g):
    return g * b, g * b                                 # da right, db copied from the line above


def mul_without_g(a, b, g):
    return b, a


def mul_g_in_place(a, b, g):
    db = g * a
    g *= b                                              # right numbers, but the caller's g is changed
    return g, db


def mul_one_gradient(a, b, g):
    return (g * b,)


def mul_summed(a, b, g):
    return (g * b).sum(), (g * a).sum()                 # shape slip: a number, not an array


def matmul_untransposed(a, b, g):
    return g @ b, a.T @ g                               # raises for non-square b


def matmul_db_transposed(a, b, g):
    return g @ b.T, (a.T @ g).T                         # shape slip: db is (N, K)


@pytest.mark.parametrize("fn, says", [
    (mul_swapped, ["swapped", "case: mul of two (3, 4) arrays"]),
    (mul_copied, ["the same expression", "db = g * a"]),
    (mul_without_g, ["upstream gradient g is not multiplied in"]),
    (mul_g_in_place, ["changed its argument g in place", "return new arrays"]),
    (mul_one_gradient, ["must return a tuple of 2 (da, db), got a tuple of 1"]),
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


# ------------------------------------------------------------------ lesson 07

def hooked_stds(model, x, layers, per_channel=False, remove=True, hook_returns=False):
    """A forward hook on each of `layers` measures its output's std; the hooks come off unless remove=False.
    hook_returns=True: the slip of a hook that returns its measurement (which replaces the output)."""
    stds = []

    def measure(module, inputs, output):
        r = output.numpy()
        stds.extend(r.std(axis=(0, 2, 3)).tolist() if per_channel else [float(r.std())])
        return float(r.std()) if hook_returns else None

    handles = [layer.register_forward_hook(measure) for layer in layers]
    with no_grad():
        model(Tensor(x))
    if remove:
        for handle in handles:
            handle.remove()
    return stds


def responses_in_training_mode(model, x):
    """Typical slip: model.eval() forgotten."""
    return hooked_stds(model, x, response_layers(model))


def responses_before_batch_norm(model, x):
    """Typical slip: the hooks on the 3x3 convolutions, before their batch norms."""
    model.eval()
    return hooked_stds(model, x, [m for m in model.modules() if isinstance(m, Conv2d)])


def responses_hooks_left_on(model, x):
    """Typical slip: the right numbers, but the hooks stay on the model."""
    model.eval()
    return hooked_stds(model, x, response_layers(model), remove=False)


def responses_reversed(model, x):
    model.eval()
    return hooked_stds(model, x, response_layers(model))[::-1]


def responses_variances(model, x):
    model.eval()
    return [s ** 2 for s in hooked_stds(model, x, response_layers(model))]


def responses_hook_returns_the_std(model, x):
    model.eval()
    return hooked_stds(model, x, response_layers(model), hook_returns=True)


def responses_per_channel(model, x):
    """Shape slip: one std per channel instead of one per layer."""
    model.eval()
    return hooked_stds(model, x, response_layers(model), per_channel=True)


@pytest.mark.parametrize("fn, says", [
    (responses_in_training_mode, ["training-mode values", "model.eval()"]),
    (responses_before_batch_norm, ["before batch norm", "response_layers(model)"]),
    (responses_hooks_left_on, ["7 forward hooks are still on the model", "handle.remove()"]),
    (responses_per_channel, ["values; it has 6n+1 = 7 3x3 layers"]),
    (responses_reversed, ["the right stds in the wrong order"]),
    (responses_variances, ["those are variances"]),
    (responses_hook_returns_the_std, ["REPLACES the module's output", "return nothing"]),
])
def test_layer_response_stds_rejects(capsys, fn, says):
    rejects(capsys, layer_responses.check_layer_response_stds, fn, says=says)


def test_layer_response_stds_solution_passes(capsys):
    ok, out = verdict(capsys, layer_responses.check_layer_response_stds, solved_responses.layer_response_stds)
    assert ok is True and out.startswith(PASSED), out


# ------------------------------------------------------------------ lesson 08

def kept_outputs(model, x, y, take_input=False, loss_scale=1.0, retain=True, remove=True):
    """A forward hook per block keeps its output (or input) and retains its gradient; then backward."""
    kept = []

    def keep(block, inputs, output):
        t = inputs[0] if take_input else output
        if retain:
            t.retain_grad()
        kept.append(t)
    handles = [block.register_forward_hook(keep) for block in model.blocks]
    loss = F.cross_entropy(model(Tensor(x)), y)
    for handle in handles if remove else ():
        handle.remove()
    (loss * loss_scale).backward()
    return kept


def grads_not_retained(model, x, y):
    """Typical slip: retain_grad() forgotten, so every block output's .grad stays None."""
    return [float(np.sqrt((t.grad * t.grad).sum())) for t in kept_outputs(model, x, y, retain=False)]


def grad_hooks_left_on(model, x, y):
    return [float(np.linalg.norm(t.grad)) for t in kept_outputs(model, x, y, remove=False)]


def norms_of_activations(model, x, y):
    """Typical slip: the norm of the output itself, not of its gradient."""
    return [float(np.linalg.norm(t.data)) for t in kept_outputs(model, x, y)]


def norms_at_block_inputs(model, x, y):
    """Typical slip: inputs[0] in the hook, one block too early."""
    return [float(np.linalg.norm(t.grad)) for t in kept_outputs(model, x, y, take_input=True)]


def squared_norms(model, x, y):
    return [float((t.grad ** 2).sum()) for t in kept_outputs(model, x, y)]


def summed_loss(model, x, y):
    return [float(np.linalg.norm(t.grad)) for t in kept_outputs(model, x, y, loss_scale=len(x))]


def norms_in_backward_order(model, x, y):
    """Typical slip with register_hook: the gradients arrive from the last block to the first."""
    norms = []

    def hook(block, inputs, output):
        output.register_hook(lambda g: norms.append(float(np.linalg.norm(g))))
    handles = [block.register_forward_hook(hook) for block in model.blocks]
    loss = F.cross_entropy(model(Tensor(x)), y)
    for handle in handles:
        handle.remove()
    loss.backward()
    return norms


def hook_as_lambda(model, x, y):
    """A lambda forward hook returns the handle of register_hook, which replaces the block's output."""
    norms = []
    handles = [block.register_forward_hook(
        lambda m, i, out: out.register_hook(lambda g: norms.append(float(np.linalg.norm(g)))))
        for block in model.blocks]
    loss = F.cross_entropy(model(Tensor(x)), y)
    for handle in handles:
        handle.remove()
    loss.backward()
    return norms[::-1]


def in_eval_mode(model, x, y):
    from solutions.gradients import block_output_grad_norms
    model.eval()
    return block_output_grad_norms(model, x, y)


def gradient_arrays(model, x, y):
    """Shape slip: the gradients themselves, not their norms."""
    return [t.grad for t in kept_outputs(model, x, y)]


def norms_per_image(model, x, y):
    """Shape slip: one norm per image."""
    return [np.linalg.norm(t.grad.reshape(len(x), -1), axis=1) for t in kept_outputs(model, x, y)]


@pytest.mark.parametrize("fn, says", [
    (norms_of_activations, ["norms of the blocks' outputs themselves", "output.grad"]),
    (norms_at_block_inputs, ["gradients at each block's input", "not inputs[0]"]),
    (squared_norms, ["squared norms"]),
    (summed_loss, ["6 times too large", "mean over the batch"]),
    (norms_in_backward_order, ["backward order", "network order"]),
    (hook_as_lambda, ["replaces the module's output", "as a def"]),
    (grads_not_retained, ["raised TypeError", "retain_grad()", "after loss.backward()"]),
    (grad_hooks_left_on, ["forward hooks are still on the model", "handle.remove()"]),
    (in_eval_mode, ["evaluation mode", "do not call model.eval()"]),
    (gradient_arrays, ["block 1: you returned an array of shape (6, 16, 32, 32)", "one float per block"]),
    (norms_per_image, ["block 1: you returned an array of shape (6,)", "np.linalg.norm(output.grad)"]),
])
def test_block_output_grad_norms_rejects(capsys, fn, says):
    rejects(capsys, vanishing_gradients.check_block_output_grad_norms, fn, says=says)


@pytest.mark.parametrize("residual, batch_norm", [(False, True), (True, True), (True, False)])
def test_the_lessons_measurement_equals_the_checks_reference(residual, batch_norm):
    """gradient_flow.measure (hooks + retain_grad) and grad_norms_by_cutting (a leaf per cut) agree,
    and both leave the model as it was."""
    from gradient_flow import grad_norms_by_cutting, measure
    from tinyresnet import manual_seed
    from tinyresnet.models import cifar_resnet
    manual_seed(0)
    model = cifar_resnet(14, residual, batch_norm=batch_norm)
    rng = np.random.default_rng(0)
    x, y = rng.standard_normal((4, 3, 32, 32)).astype(np.float32), rng.integers(0, 10, 4)
    before = model.state_dict()
    m = measure(model, x, y)
    np.testing.assert_allclose(m["grad_norm"], grad_norms_by_cutting(model, x, y), rtol=1e-5)
    assert len(m["activation_std"]) == 6 and list(m["block_layers"]) == [3, 5, 7, 9, 11, 13]
    assert len(m["weight_ratio"]) == 13 and (m["weight_ratio"] > 0).all()
    after = model.state_dict()
    assert all(np.array_equal(before[k], after[k]) for k in before), "the running statistics were changed"
    assert all(p.grad is None for p in model.parameters()) and model.training


# ------------------------------------------------------------------ lesson 09

def bottleneck_relu_before_addition(block, x):
    """Typical slip: a ReLU after the last batch norm, before the addition."""
    h = F.relu(block.bn1(block.conv1(x)))
    h = F.relu(block.bn2(block.conv2(h)))
    h = F.relu(block.bn3(block.conv3(h)))
    return F.relu(h + (x if block.projection is None else block.projection(x)))


def bottleneck_without_projection(block, x):
    """Shape slip: x added as it is where the block changes the shape."""
    h = F.relu(block.bn1(block.conv1(x)))
    h = F.relu(block.bn2(block.conv2(h)))
    return F.relu(block.bn3(block.conv3(h)) + x)


def bottleneck_without_last_relu(block, x):
    h = F.relu(block.bn1(block.conv1(x)))
    h = F.relu(block.bn2(block.conv2(h)))
    return block.bn3(block.conv3(h)) + (x if block.projection is None else block.projection(x))


def bottleneck_on_data(block, x):
    from solutions.bottleneck import bottleneck_forward
    return Tensor(bottleneck_forward(block, x).data)


@pytest.mark.parametrize("fn, says", [
    (bottleneck_relu_before_addition, ["differs from Bottleneck.forward", "none before"]),
    (bottleneck_without_projection, ["could not be broadcast", "block.projection(x)"]),
    (bottleneck_without_last_relu, ["ends with a ReLU after the addition"]),
    (bottleneck_on_data, ["has no graph"]),
])
def test_bottleneck_forward_rejects(capsys, fn, says):
    rejects(capsys, imagenet_bottleneck.check_bottleneck_forward, fn, says=says)


def parameters_without_batch_norm(in_channels, width, stride):
    """Typical slip: the convs' weights only."""
    out, projects = 4 * width, stride != 1 or in_channels != 4 * width
    return in_channels * width + 9 * width * width + width * out + (in_channels * out if projects else 0)


def parameters_always_projected(in_channels, width, stride):
    out = 4 * width
    return in_channels * width + 9 * width * width + width * out + 2 * (2 * width + out) + in_channels * out + 2 * out


def parameters_per_layer(in_channels, width, stride):
    """Shape slip: a list, one count per conv."""
    return [in_channels * width, 9 * width * width, 4 * width * width]


@pytest.mark.parametrize("fn, says", [
    (parameters_without_batch_norm, ["yours 73,728, Bottleneck has 75,008", "2 parameters per channel"]),
    (parameters_always_projected, ["in_channels 256, width 64, stride 1", "only where the block changes the shape"]),
    (parameters_per_layer, ["you returned list", "an int"]),
])
def test_bottleneck_parameters_rejects(capsys, fn, says):
    rejects(capsys, imagenet_bottleneck.check_bottleneck_parameters, fn, says=says)
