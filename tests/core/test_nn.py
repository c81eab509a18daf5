"""Lesson 05: modules and the small functional ops of a CIFAR ResNet.

A Module finds its parameters by looking at its attributes, saves and loads
them by name, and initializes convolutions the way He et al. prescribe.
"""
import pickle

import numpy as np
import pytest

import tinyresnet
from tinyresnet import Tensor, gradcheck, nn
from tinyresnet import functional as F
from tinyresnet.device import device_of

from conftest import host

pytestmark = pytest.mark.nn


class Block(nn.Module):
    def __init__(self, channels):
        self.conv = nn.Conv2d(channels, channels, 3, padding=1)
        self.bn = nn.BatchNorm2d(channels)

    def forward(self, x):
        return F.relu(self.bn(self.conv(x)) + x)


class TinyNet(nn.Module):
    """stem -> a list of blocks -> pool -> linear: the shape of a CIFAR ResNet, in miniature."""

    def __init__(self, channels=4, blocks=2, classes=3):
        self.stem = nn.Sequential(nn.Conv2d(3, channels, 3, padding=1), nn.BatchNorm2d(channels), nn.ReLU())
        self.blocks = [Block(channels) for _ in range(blocks)]
        self.fc = nn.Linear(channels, classes)
        self.not_a_parameter = Tensor(np.ones(3), requires_grad=True)
        self.scale = 2.0

    def forward(self, x):
        x = self.stem(x)
        for block in self.blocks:
            x = block(x)
        return self.fc(F.global_avg_pool(x))


EXPECTED_NAMES = [
    "stem.layers.0.weight", "stem.layers.1.gamma", "stem.layers.1.beta",
    "blocks.0.conv.weight", "blocks.0.bn.gamma", "blocks.0.bn.beta",
    "blocks.1.conv.weight", "blocks.1.bn.gamma", "blocks.1.bn.beta",
    "fc.weight", "fc.bias",
]


def images(rng, n=4, size=6):
    return rng.standard_normal((n, 3, size, size)).astype(np.float32)


# ------------------------------------------------------------ finding parameters

def test_named_parameters_are_found_in_nested_modules_and_lists():
    net = TinyNet()
    names = [name for name, _ in net.named_parameters()]
    assert sorted(names) == sorted(EXPECTED_NAMES), (
        "parameters must be found in attributes, sub-modules and lists of sub-modules; "
        f"found {names}")
    assert all(isinstance(p, nn.Parameter) and p.requires_grad for p in net.parameters())
    assert len(net.parameters()) == len(EXPECTED_NAMES), "each parameter is listed exactly once"
    params = dict(net.named_parameters())
    assert params["blocks.1.conv.weight"] is net.blocks[1].conv.weight
    assert net.num_parameters() == 3 * 4 * 9 + 2 * 4 + 2 * (4 * 4 * 9 + 2 * 4) + 4 * 3 + 3


def test_named_buffers_are_the_running_statistics():
    names = [name for name, _ in TinyNet().named_buffers()]
    assert sorted(names) == sorted(
        f"{layer}.{stat}" for layer in ("stem.layers.1", "blocks.0.bn", "blocks.1.bn")
        for stat in ("running_mean", "running_var"))


def test_plain_tensors_are_not_parameters():
    net = TinyNet()
    assert all(p is not net.not_a_parameter for p in net.parameters()), \
        "only nn.Parameter attributes are trained, not every Tensor"


def test_train_and_eval_reach_every_module():
    net = TinyNet()
    assert all(m.training for m in net.modules())
    assert net.eval() is net
    assert not any(m.training for m in net.modules()), "eval() must reach modules inside lists too"
    net.train()
    assert all(m.training for m in net.modules())


def test_zero_grad(rng):
    net = TinyNet()
    F.cross_entropy(net(Tensor(images(rng))), np.array([0, 1, 2, 0])).backward()
    assert all(p.grad is not None for p in net.parameters())
    net.zero_grad()
    assert all(p.grad is None for p in net.parameters())


def test_sequential_indexing():
    seq = nn.Sequential(nn.ReLU(), nn.Linear(2, 3))
    assert len(seq) == 2 and isinstance(seq[1], nn.Linear)


# ------------------------------------------------------------ state_dict

def trained_net(rng):
    """A net whose parameters and running statistics moved away from their initial values."""
    net = TinyNet()
    opt = tinyresnet.optim.SGD(net.parameters(), lr=0.1)
    for _ in range(2):
        opt.zero_grad()
        F.cross_entropy(net(Tensor(images(rng))), np.array([0, 1, 2, 0])).backward()
        opt.step()
    return net


def test_state_dict_round_trip_gives_identical_outputs(rng):
    net = trained_net(rng)
    state = net.state_dict()
    assert set(state) == set(EXPECTED_NAMES) | {n for n, _ in net.named_buffers()}
    assert all(type(v) is np.ndarray for v in state.values()), "state_dict holds host NumPy arrays"

    tinyresnet.manual_seed(123)  # the fresh net starts from other weights
    fresh = TinyNet()
    fresh.load_state_dict(pickle.loads(pickle.dumps(state)))   # as if saved to disk and read back
    x = Tensor(images(rng))
    np.testing.assert_array_equal(fresh.eval()(x).numpy(), net.eval()(x).numpy(),
                                  err_msg="a module loaded from a state_dict must compute the same outputs")


def test_state_dict_is_a_snapshot(rng):
    net = trained_net(rng)
    state = net.state_dict()
    saved = state["fc.weight"].copy()
    net.fc.weight.data += 1
    net.blocks[0].bn.running_mean += 1
    np.testing.assert_array_equal(state["fc.weight"], saved,
                                  err_msg="state_dict must copy, not alias, the live parameters")
    assert not np.array_equal(state["blocks.0.bn.running_mean"], net.blocks[0].bn.running_mean)


def test_load_state_dict_writes_in_place():
    """Optimizers hold the parameter objects: loading must not replace them."""
    net = TinyNet()
    weight, running_mean = net.fc.weight, net.blocks[0].bn.running_mean
    state = {k: v + 1 for k, v in net.state_dict().items()}
    net.load_state_dict(state)
    assert net.fc.weight is weight and net.blocks[0].bn.running_mean is running_mean
    np.testing.assert_array_equal(weight.data, state["fc.weight"])
    assert weight.dtype == np.float32


def test_load_state_dict_with_wrong_keys_names_them():
    net = TinyNet()
    state = net.state_dict()
    state["fc.wieght"] = state.pop("fc.weight")
    with pytest.raises(KeyError, match=r"missing \['fc.weight'\], unexpected \['fc.wieght'\]"):
        net.load_state_dict(state)


def test_load_state_dict_with_wrong_shape_names_the_key():
    net = TinyNet()
    state = TinyNet(classes=5).state_dict()
    with pytest.raises(ValueError, match=r"state_dict\['fc.weight'\] has shape \(5, 4\), the module has \(3, 4\)"):
        net.load_state_dict(state)


# ------------------------------------------------------------ initialization

def test_conv_he_init():
    """He et al. 2015: std = sqrt(2 / fan_in) keeps activations' variance constant through ReLUs."""
    conv = nn.Conv2d(64, 128, 3)
    w = conv.weight.data
    assert w.shape == (128, 64, 3, 3) and w.dtype == np.float32
    fan_in = 64 * 3 * 3
    want = np.sqrt(2 / fan_in)
    # 73728 samples: the sample std is within 1% of the true one with overwhelming probability
    assert w.std() == pytest.approx(want, rel=0.01), f"Conv2d init std {w.std():.5f}, He init is {want:.5f}"
    assert abs(w.mean()) < 5 * want / np.sqrt(w.size), "Conv2d init should have mean 0"


def test_linear_init_is_uniform_within_one_over_sqrt_fan_in():
    fc = nn.Linear(256, 64)
    bound = 1 / np.sqrt(256)
    assert fc.weight.shape == (64, 256) and fc.bias.shape == (64,)
    assert np.abs(fc.weight.data).max() <= bound and np.abs(fc.weight.data).max() > 0.9 * bound
    assert np.abs(fc.bias.data).max() <= bound


def test_batchnorm_init():
    bn = nn.BatchNorm2d(5)
    np.testing.assert_array_equal(bn.gamma.data, np.ones(5))
    np.testing.assert_array_equal(bn.beta.data, np.zeros(5))
    np.testing.assert_array_equal(bn.running_mean, np.zeros(5))
    np.testing.assert_array_equal(bn.running_var, np.ones(5))


def test_manual_seed_makes_init_repeatable():
    tinyresnet.manual_seed(7)
    a = TinyNet().state_dict()
    tinyresnet.manual_seed(7)
    b = TinyNet().state_dict()
    tinyresnet.manual_seed(8)
    c = TinyNet().state_dict()
    for key in a:
        np.testing.assert_array_equal(a[key], b[key], err_msg=f"{key}: same seed, different init")
    assert not np.array_equal(a["fc.weight"], c["fc.weight"]), "different seeds should give different weights"


# ------------------------------------------------------------ small functional ops

@pytest.mark.parametrize("bias", [True, False], ids=["with-bias", "no-bias"])
def test_linear_backward(bias, xp, rng):
    x = xp.asarray(rng.standard_normal((5, 4)))
    w = xp.asarray(rng.standard_normal((3, 4)))
    b = xp.asarray(rng.standard_normal(3))
    if bias:
        gradcheck(F.linear, x, w, b, name="linear")
    else:
        gradcheck(F.linear, x, w, name="linear without bias")


def test_linear_forward(xp, rng):
    x, w, b = rng.standard_normal((5, 4)), rng.standard_normal((3, 4)), rng.standard_normal(3)
    out = F.linear(Tensor(xp.asarray(x)), Tensor(xp.asarray(w)), Tensor(xp.asarray(b)))
    np.testing.assert_allclose(host(out), x @ w.T + b, rtol=1e-12, atol=1e-12)


def test_global_avg_pool(xp, rng):
    x = rng.standard_normal((2, 3, 4, 5))
    out = F.global_avg_pool(Tensor(xp.asarray(x)))
    assert out.shape == (2, 3)
    np.testing.assert_allclose(host(out), x.mean(axis=(2, 3)), rtol=1e-12, atol=1e-12)
    gradcheck(F.global_avg_pool, xp.asarray(x), name="global_avg_pool")


@pytest.mark.parametrize("size", [4, 5], ids=["even", "odd"])
def test_subsample(size, xp, rng):
    x = rng.standard_normal((2, 3, size, size))
    out = F.subsample(Tensor(xp.asarray(x)))
    half = (size + 1) // 2
    assert out.shape == (2, 3, half, half)
    np.testing.assert_array_equal(host(out), x[:, :, ::2, ::2], err_msg=(
        f"subsample keeps every second pixel from (0, 0): x[:, :, ::2, ::2], {half}x{half} for {size}x{size}"))
    gradcheck(F.subsample, xp.asarray(x), name=f"subsample {size}x{size}")


@pytest.mark.parametrize("before, after", [(2, 2), (0, 3), (1, 0)])
def test_pad_channels(before, after, xp, rng):
    x = rng.standard_normal((2, 3, 2, 2))
    out = host(F.pad_channels(Tensor(xp.asarray(x)), before, after))
    assert out.shape == (2, before + 3 + after, 2, 2)
    np.testing.assert_array_equal(out[:, before:before + 3], x, err_msg="the old channels sit in the middle")
    assert not out[:, :before].any() and not out[:, before + 3:].any(), "the new channels are zeros"
    gradcheck(lambda x: F.pad_channels(x, before, after), xp.asarray(x), name=f"pad_channels({before}, {after})")


def test_option_a_shortcut_backward(xp, rng):
    """The parameter-free shortcut where a stage halves the size and doubles the channels."""
    x = xp.asarray(rng.standard_normal((2, 2, 4, 4)))
    gradcheck(lambda x: F.pad_channels(F.subsample(x), 1, 1), x, name="pad_channels(subsample(x))")


def max_pool_by_loops(x, kernel, stride, padding):
    """The definition, one window at a time: the max over the window's real (unpadded) pixels."""
    n, c, h, w = x.shape
    ho, wo = (h + 2 * padding - kernel) // stride + 1, (w + 2 * padding - kernel) // stride + 1
    out = np.empty((n, c, ho, wo))
    for i in range(ho):
        for j in range(wo):
            top, left = i * stride - padding, j * stride - padding
            rows = slice(max(top, 0), top + kernel)
            cols = slice(max(left, 0), left + kernel)
            out[:, :, i, j] = x[:, :, rows, cols].max(axis=(2, 3))
    return out


@pytest.mark.parametrize("kernel, stride, padding, size", [(3, 2, 1, 9), (3, 2, 1, 8), (2, 2, 0, 6), (3, 1, 1, 5)],
                         ids=["stem 3x3/2 odd", "stem 3x3/2 even", "2x2/2", "3x3/1"])
def test_max_pool2d(kernel, stride, padding, size, xp, rng):
    x = rng.standard_normal((2, 3, size, size + 1))
    out = F.max_pool2d(Tensor(xp.asarray(x)), kernel, stride, padding)
    np.testing.assert_array_equal(host(out), max_pool_by_loops(x, kernel, stride, padding), err_msg=(
        f"max_pool2d {kernel}x{kernel} stride {stride} padding {padding} differs from the loops: padding "
        "must be -inf (not 0), so a padded pixel never wins a window"))
    gradcheck(lambda t: F.max_pool2d(t, kernel, stride, padding), xp.asarray(x),
              name=f"max_pool2d {kernel}x{kernel} stride {stride} padding {padding}")


def test_max_pool2d_gradient_goes_to_the_winner_of_each_window():
    """A pixel that is the max of two overlapping windows gets both windows' gradients."""
    x = np.zeros((1, 1, 3, 3))
    x[0, 0, 1, 1] = 5.0                      # the centre wins all four 2x2 windows of stride 1
    t = Tensor(x, requires_grad=True)
    out = F.max_pool2d(t, kernel=2, stride=1, padding=0)
    out.backward(np.array([[[[1.0, 2.0], [3.0, 4.0]]]]))
    expected = np.zeros((3, 3))
    expected[1, 1] = 10.0
    np.testing.assert_array_equal(t.grad[0, 0], expected, err_msg=(
        "the centre wins all four windows, so its gradient is 1 + 2 + 3 + 4 = 10: scatter with np.add.at "
        "(accumulate), not with an assignment that keeps only the last window"))


def test_max_pool2d_rejects_windows_of_only_padding():
    with pytest.raises(ValueError, match="padding must be at most"):
        F.max_pool2d(Tensor(np.zeros((1, 1, 4, 4))), kernel=3, stride=2, padding=2)


@pytest.mark.torch
def test_max_pool2d_matches_pytorch(torch, rng):
    x, g = rng.standard_normal((2, 4, 11, 10)), rng.standard_normal((2, 4, 6, 5))
    t = Tensor(x, requires_grad=True)
    out = F.max_pool2d(t, 3, 2, 1)
    out.backward(g)
    tx = torch.tensor(x, requires_grad=True)
    tout = torch.nn.functional.max_pool2d(tx, 3, 2, 1)
    tout.backward(torch.tensor(g))
    np.testing.assert_array_equal(out.data, tout.detach().numpy())
    np.testing.assert_allclose(t.grad, tx.grad.numpy(), rtol=1e-12, atol=1e-12)


def test_relu_module(xp):
    out = nn.ReLU()(Tensor(xp.asarray([-1.0, 2.0])))
    np.testing.assert_array_equal(host(out), [0.0, 2.0])


# ------------------------------------------------------------ end to end

def test_small_network_forward_and_backward(device, xp, rng):
    net = TinyNet().to(device)
    x = Tensor(xp.asarray(images(rng)))
    logits = net(x)
    assert logits.shape == (4, 3) and logits.dtype == np.float32 and logits.device == device
    loss = F.cross_entropy(logits, xp.asarray(np.array([0, 1, 2, 0])))
    loss.backward()
    for name, p in net.named_parameters():
        assert p.grad is not None, f"{name} received no gradient"
        assert p.grad.shape == p.shape, f"{name}: gradient shape {p.grad.shape} != parameter shape {p.shape}"
        assert device_of(p.grad) == device
        g = host(p.grad)
        assert np.all(np.isfinite(g)) and np.any(g != 0), f"{name}: gradient is not finite or all zero"


def test_small_network_input_gradient(device, xp, rng):
    """The whole chain conv -> bn -> relu -> ... -> linear -> loss, checked end to end."""
    net = TinyNet().to(device)
    labels = xp.asarray(np.array([0, 1, 2]))
    gradcheck(lambda x: F.cross_entropy(net(x), labels), xp.asarray(rng.standard_normal((3, 3, 4, 4))),
              max_checks=16, name="TinyNet + cross_entropy, d loss / d images")


def test_module_to_cpu_is_a_no_op():
    net = TinyNet()
    weight = net.fc.weight.data
    assert net.to("cpu") is net and net.fc.weight.data is weight


def test_forward_hook_sees_each_call_and_its_output_gradient():
    """register_forward_hook + Tensor.register_hook: the gradient reaching a block's output."""
    from tinyresnet.models import cifar_resnet
    model = cifar_resnet(8)
    block = model.blocks[1]
    outputs, grads = [], []

    def hook(module, inputs, out):
        assert module is block and len(inputs) >= 1
        outputs.append(out)
        out.register_hook(lambda g: grads.append(g.copy()))
    handle = block.register_forward_hook(hook)
    x = Tensor(np.random.default_rng(0).standard_normal((4, 3, 8, 8)).astype(np.float32))
    model(x).sum().backward()
    assert len(outputs) == 1 and len(grads) == 1, "one forward and one backward: one call each"
    assert grads[0].shape == outputs[0].shape and np.abs(grads[0]).sum() > 0
    handle.remove()
    model(x)
    assert len(outputs) == 1, "a removed hook is not called again"
