"""The check cells of 05_plain_and_residual.ipynb reject wrong code, and name the slip.

For each of its exercises (option_a_shortcut, basic_block_forward,
resnet_forward, he_normal) the worked solution must pass, and planted wrong versions, each a
slip a learner makes, must make the check print "✗ FAILED" with the hint that names that slip
and not another one's. Also here: lessons/my_resnet.py, the net of the lesson's payoff, starts
from the library's weights, computes the library's function and trains as the library's net does.
"""
import numpy as np
import pytest

import my_resnet
from checks import plain_and_residual as checks
from checks.harness import FAILED, NOT_WRITTEN, PASSED
from solutions import block as solved
from solutions import loop as solved_loop
from solutions.shortcut import option_a_shortcut
from tinyresnet import Tensor, manual_seed
from tinyresnet import functional as F
from tinyresnet.models import cifar_resnet
from tinyresnet.optim import SGD

from planted import rejects, verdict

pytestmark = pytest.mark.lessons



@pytest.mark.parametrize("check, fn", [
    (checks.check_option_a_shortcut, option_a_shortcut),
    (checks.check_basic_block_forward, solved.basic_block_forward),
    (checks.check_resnet_forward, solved.resnet_forward),
])
def test_the_solutions_pass(capsys, check, fn):
    ok, out = verdict(capsys, check, fn)
    assert ok is True and out.startswith(PASSED), out


def test_a_stub_is_not_written_yet(capsys):
    def basic_block_forward(block, x, stride, residual):
        raise NotImplementedError("your turn")

    def resnet_forward(net, x, depth, residual):
        return basic_block_forward(net.blocks[0], x, 1, residual)   # a net that calls the stub block
    for check, fn in [(checks.check_basic_block_forward, basic_block_forward),
                      (checks.check_resnet_forward, resnet_forward)]:
        ok, out = verdict(capsys, check, fn)
        assert ok is False and NOT_WRITTEN in out and "basic_block_forward" in out, out


# ------------------------------------------------------------------ option_a_shortcut

def shortcut_zeros_after(x, out_channels, stride):
    if stride != 1:
        x = F.subsample(x, stride)
    return F.pad_channels(x, 0, out_channels - x.shape[1])


def shortcut_no_subsampling(x, out_channels, stride):
    extra = out_channels - x.shape[1]
    return F.pad_channels(x, extra // 2, extra - extra // 2) if extra else x


def shortcut_in_numpy(x, out_channels, stride):
    return option_a_shortcut(x, out_channels, stride).numpy()


def shortcut_on_data(x, out_channels, stride):
    return Tensor(option_a_shortcut(Tensor(x.data), out_channels, stride).numpy())   # right values, no history


@pytest.mark.parametrize("fn, says", [
    (shortcut_zeros_after, ["zero channels after the input's"]),
    (shortcut_no_subsampling, ["has shape (2, 32, 8, 8), expected (2, 32, 4, 4)"]),
    (shortcut_in_numpy, ["return a Tensor"]),
    (shortcut_on_data, ["not connected to x", "not NumPy to x.data"]),
])
def test_option_a_shortcut_rejects(capsys, fn, says):
    rejects(capsys, checks.check_option_a_shortcut, fn, says=says)


# ------------------------------------------------------------------ basic_block_forward

def block_relu_before_addition(block, x, stride, residual):
    h = F.relu(block.bn1(block.conv1(x, stride)))
    h = F.relu(block.bn2(block.conv2(h, 1)))
    return h + option_a_shortcut(x, h.shape[1], stride) if residual else h


def block_shortcut_always(block, x, stride, residual):
    h = F.relu(block.bn1(block.conv1(x, stride)))
    h = block.bn2(block.conv2(h, 1))
    return F.relu(h + option_a_shortcut(x, h.shape[1], stride))        # residual ignored


def block_without_bn2(block, x, stride, residual):
    h = F.relu(block.bn1(block.conv1(x, stride)))
    h = block.conv2(h, 1)
    if residual:
        h = h + option_a_shortcut(x, h.shape[1], stride)
    return F.relu(h)


def block_without_last_relu(block, x, stride, residual):
    h = F.relu(block.bn1(block.conv1(x, stride)))
    h = block.bn2(block.conv2(h, 1))
    return h + option_a_shortcut(x, h.shape[1], stride) if residual else h


def block_shortcut_not_subsampled(block, x, stride, residual):
    h = F.relu(block.bn1(block.conv1(x, stride)))
    h = block.bn2(block.conv2(h, 1))
    if residual:
        h = h + option_a_shortcut(x, h.shape[1], 1)                    # shape slip: stride forgotten
    return F.relu(h)


def block_stride_on_conv2(block, x, stride, residual):
    h = F.relu(block.bn1(block.conv1(x, 1)))
    h = block.bn2(block.conv2(h, stride))                               # the stride on the wrong conv
    if residual:
        h = h + option_a_shortcut(x, h.shape[1], stride)
    return F.relu(h)


def block_detached(block, x, stride, residual):
    h = F.relu(block.bn1(block.conv1(x, stride)))
    h = block.bn2(block.conv2(Tensor(h.data), 1))                       # cuts the graph
    if residual:
        h = h + option_a_shortcut(x, h.shape[1], stride)
    return F.relu(h)


def block_in_numpy(block, x, stride, residual):
    return solved.basic_block_forward(block, x, stride, residual).numpy()


@pytest.mark.parametrize("fn, says, not_says", [
    (block_relu_before_addition, ["residual=True", "the ReLU comes before the addition"], ["missing"]),
    (block_shortcut_always, ["residual=False you still added the shortcut"], []),
    (block_without_bn2, ["without its batch norm"], ["ReLU"]),
    (block_without_last_relu, ["negative values", "ReLU after the addition is missing"], []),
    (block_shortcut_not_subsampled, ["raised", "option_a_shortcut(x, h.shape[1], stride) subsamples"], []),
    (block_stride_on_conv2, ["block.conv1 got stride 1", "the first conv carries the block's stride"], []),
    (block_detached, ["gradient of", "not recorded for the backward pass"], []),
    (block_in_numpy, ["return a Tensor"], []),
])
def test_basic_block_forward_rejects(capsys, fn, says, not_says):
    rejects(capsys, checks.check_basic_block_forward, fn, says=says, not_says=not_says)


# ------------------------------------------------------------------ resnet_forward

def net(stem_relu=True, strides=None, blocks_per_stage=None, residual_always=None, pool=True):
    """A resnet_forward with one slip switched on: the worked version, parametrized."""
    def resnet_forward(layers, x, depth, residual):
        n = (depth - 2) // 6 if blocks_per_stage is None else blocks_per_stage(depth)
        h = layers.bn(layers.conv(x, 1))
        h = F.relu(h) if stem_relu else h
        k = 0
        for stage in range(3):
            for i in range(n):
                stride = (2 if stage > 0 and i == 0 else 1) if strides is None else strides(stage, i)
                block_residual = residual if residual_always is None else residual_always
                h = solved.basic_block_forward(layers.blocks[k], h, stride, block_residual)
                k += 1
        h = F.global_avg_pool(h) if pool else h.reshape(h.shape[0], -1)
        return layers.fc(h)
    return resnet_forward


def stem_without_stride(layers, x, depth, residual):
    return layers.conv(x)          # the slip: net.conv is called as net.conv(x, 1), like the blocks' convs


@pytest.mark.parametrize("fn, says, not_says", [
    (net(stem_relu=False), ["ReLU after the first conv and its batch norm is missing"], ["strides"]),
    (net(strides=lambda stage, i: 2 if i == 0 else 1),
     ["got strides [1, 2, 2, 2]", "expected [1, 1, 2, 2]", "stage 1 keeps"], []),
    (net(strides=lambda stage, i: 2 if stage > 0 else 1), ["depth 14", "got strides [1, 1, 1, 2, 2, 2, 2]", "expected [1, 1, 1, 2, 1, 2, 1]"], []),
    (net(blocks_per_stage=lambda depth: (depth - 2) // 2), ["ran blocks [0, 1, 2] of net.blocks, then asked for net.blocks[3]", "n = (depth - 2) // 6 = 1"], []),
    (net(blocks_per_stage=lambda depth: 1), ["depth 14 (n = 2)", "ran blocks [0, 1, 2] of net.blocks"], []),
    (net(residual_always=True), ["residual=False your logits are those of the residual net"], []),
    (net(pool=False), ["raised", "F.global_avg_pool(h)"], []),
    (stem_without_stride, ["raised TypeError", "stride"], ["ran blocks []"]),
])
def test_resnet_forward_rejects(capsys, fn, says, not_says):
    rejects(capsys, checks.check_resnet_forward, fn, says=says, not_says=not_says)


# ------------------------------------------------------------------ he_normal

def he_lecun(out_channels, in_channels, kernel_size, rng):
    return rng.standard_normal((out_channels, in_channels, kernel_size, kernel_size)) / np.sqrt(
        in_channels * kernel_size ** 2)


def he_fan_in_without_kernel(out_channels, in_channels, kernel_size, rng):
    return rng.standard_normal((out_channels, in_channels, kernel_size, kernel_size)) * np.sqrt(2 / in_channels)


def he_channels_swapped(out_channels, in_channels, kernel_size, rng):
    return rng.standard_normal((in_channels, out_channels, kernel_size, kernel_size)) * np.sqrt(
        2 / (in_channels * kernel_size ** 2))


def he_float32_draws(out_channels, in_channels, kernel_size, rng):
    return rng.standard_normal((out_channels, in_channels, kernel_size, kernel_size), dtype=np.float32) * np.sqrt(
        2 / (in_channels * kernel_size ** 2))        # He's statistics, but not the library's numbers


def he_global_random(out_channels, in_channels, kernel_size, rng):
    return np.random.standard_normal((out_channels, in_channels, kernel_size, kernel_size)) * np.sqrt(
        2 / (in_channels * kernel_size ** 2))


@pytest.mark.parametrize("fn, says", [
    (he_lecun, ["LeCun", "ReLU zeroes half"]),
    (he_fan_in_without_kernel, ["counted without the kernel"]),
    (he_channels_swapped, ["shape (3, 16, 3, 3), expected (16, 3, 3, 3)"]),
    (he_global_random, ["do not follow the rng"]),
    (he_float32_draws, ["not the numbers tinyresnet.nn.Conv2d draws", "in float64"]),
])
def test_he_normal_rejects(capsys, fn, says):
    rejects(capsys, checks.check_he_normal, fn, says=says)


# ------------------------------------------------------------------ the payoff's net

@pytest.mark.parametrize("residual", [True, False])
def test_my_resnet_starts_from_the_librarys_weights_and_computes_its_function(residual):
    """MyResNet(depth, residual, seed) draws the library's initial weights, under the library's
    names, and the learner's pieces (here the solutions) compute the library's logits and gradients:
    what lets the lesson compare the two training runs."""
    mine = my_resnet.MyResNet(8, residual, seed=3)
    manual_seed(3)
    library = cifar_resnet(8, residual)
    ours, theirs = mine.state_dict(), library.state_dict()
    assert ours.keys() == theirs.keys()
    assert all(np.array_equal(ours[k], theirs[k]) for k in ours), "the initial weights differ"
    x = np.random.default_rng(0).standard_normal((4, 3, 32, 32)).astype(np.float32)
    y = np.arange(4)
    logits = {}
    for name, model in (("mine", mine), ("library", library)):
        logits[name] = model(Tensor(x))
        F.cross_entropy(logits[name], y).backward()
    np.testing.assert_allclose(logits["mine"].numpy(), logits["library"].numpy(), rtol=1e-4, atol=1e-5)
    theirs = dict(library.named_parameters())
    for name, p in mine.named_parameters():
        scale = np.abs(theirs[name].grad).max()
        gap = np.abs(p.grad - theirs[name].grad).max()
        assert gap <= 1e-2 * scale, (   # a ReLU may flip on rounding: 1% of the largest gradient
            f"{name}: the worked solution's gradient differs from the library's by {gap:.3g}, more than 1% "
            f"of its largest entry {scale:.3g}")


def test_my_resnet_uses_a_function_assigned_from_a_notebook(monkeypatch):
    """The lesson tells a learner to plug in a function by assigning it to the module: the net must
    then use it (it looks each piece up by name when it runs)."""
    calls = []

    def resnet_forward(net, x, depth, residual):
        calls.append(depth)
        return solved.resnet_forward(net, x, depth, residual)
    monkeypatch.setattr(my_resnet, "resnet_forward", resnet_forward)
    my_resnet.MyResNet(8)(Tensor(np.zeros((2, 3, 32, 32), np.float32)))
    assert calls == [8]


def test_my_resnet_trains_and_evaluates_like_the_library():
    """Two SGD steps of the worked loop (lesson 04) on the same batches, from the same seed: MyResNet
    ends with the library's weights and running statistics, and evaluates as it does. The lesson's
    payoff compares a training run of each; without this they would part for a reason other than
    rounding."""
    mine = my_resnet.MyResNet(8, True, seed=1)
    manual_seed(1)
    library = cifar_resnet(8, True)
    rng = np.random.default_rng(0)
    batches = [(rng.standard_normal((8, 3, 16, 16)).astype(np.float32), rng.integers(0, 10, 8)) for _ in range(2)]
    measured = {}
    for name, model in (("mine", mine), ("library", library)):
        opt = SGD(model.parameters(), lr=0.1, momentum=0.9, weight_decay=1e-4)
        solved_loop.train_epoch(model, opt, batches)
        measured[name] = solved_loop.evaluate(model, batches)
    ours, theirs = mine.state_dict(), library.state_dict()
    for key in theirs:
        np.testing.assert_allclose(ours[key], theirs[key], rtol=1e-3, atol=1e-4,
                                   err_msg=f"{key} differs after two steps of training")
    np.testing.assert_allclose(measured["mine"], measured["library"], rtol=1e-3, atol=1e-4,
                               err_msg="evaluate (eval mode, running statistics) gives another (loss, error)")
