"""The CIFAR-10 nets of He et al. 2016 (section 4.2): sizes, shortcuts, errors, state_dict."""
import numpy as np
import pytest

from tinyresnet import Tensor, functional as F, manual_seed, models, no_grad
from tinyresnet.models import BasicBlock, cifar_resnet
from tinyresnet.nn import BatchNorm2d, Conv2d, Identity
from tinyresnet.optim import SGD

pytestmark = pytest.mark.models

# Table 6 of the paper: "# params" of the CIFAR-10 ResNets, as printed (in millions)
TABLE_6 = {20: "0.27", 32: "0.46", 44: "0.66", 56: "0.85", 110: "1.7", 1202: "19.4"}


def expected_parameters(depth, shortcut="A", classes=10):
    """Count the weights from the architecture's description, independently of models.py.

    3x3 convs have no bias; each is followed by a batch norm (gamma and beta);
    option B adds a 1x1 conv + BN where a stage doubles the channels.
    """
    n = (depth - 2) // 6
    count = 3 * 16 * 9 + 2 * 16                                 # first conv + BN
    in_channels = 16
    for channels in (16, 32, 64):
        for _ in range(n):
            count += 9 * in_channels * channels + 2 * channels  # conv1 + BN
            count += 9 * channels * channels + 2 * channels     # conv2 + BN
            if shortcut == "B" and in_channels != channels:
                count += in_channels * channels + 2 * channels  # projection + BN
            in_channels = channels
    return count + 64 * classes + classes                       # fully connected


@pytest.mark.parametrize("depth", sorted(TABLE_6))
def test_parameter_counts_match_table_6(depth):
    count = cifar_resnet(depth).num_parameters()
    printed = TABLE_6[depth]
    decimals = len(printed.split(".")[1])
    assert f"{count / 1e6:.{decimals}f}" == printed, (
        f"ResNet-{depth} has {count:,} parameters, Table 6 prints {printed}M")
    assert count == expected_parameters(depth), (
        f"ResNet-{depth}: {count:,} parameters, expected {expected_parameters(depth):,}: 3x3 convs have no "
        "bias, each batch norm adds 2 per channel, option-A shortcuts add none")


@pytest.mark.parametrize("depth", [20, 56])
def test_plain_net_has_the_same_parameters(depth):
    """Option A shortcuts are parameter-free: plain and residual twins have the same size."""
    plain, residual = cifar_resnet(depth, residual=False), cifar_resnet(depth, residual=True)
    assert plain.num_parameters() == residual.num_parameters()
    assert [p.shape for p in plain.parameters()] == [p.shape for p in residual.parameters()]


def test_option_b_adds_projections_only_where_the_shape_changes():
    a, b = cifar_resnet(20, shortcut="A"), cifar_resnet(20, shortcut="B")
    projections = [blk for blk in b.blocks if blk.projection is not None]
    assert len(projections) == 2
    assert [(blk.conv1.weight.shape[1], blk.conv1.weight.shape[0]) for blk in projections] == [(16, 32), (32, 64)]
    assert b.num_parameters() - a.num_parameters() == (16 * 32 + 2 * 32) + (32 * 64 + 2 * 64)
    assert b.num_parameters() == expected_parameters(20, "B")
    # plain nets have no shortcut, so option B changes nothing there
    assert cifar_resnet(20, residual=False, shortcut="B").num_parameters() == a.num_parameters()


@pytest.mark.parametrize("depth", [21, 0, 2, -4, "abc", 20.0])
def test_invalid_depth_lists_the_valid_ones(depth):
    with pytest.raises(ValueError, match=r"20, 32, 44, 56, 110, 1202"):
        cifar_resnet(depth)


def test_invalid_shortcut():
    with pytest.raises(ValueError, match="shortcut"):
        cifar_resnet(20, shortcut="C")


def images(n=2, seed=0):
    return Tensor(np.random.default_rng(seed).standard_normal((n, 3, 32, 32)).astype(np.float32))


@pytest.mark.parametrize("residual", [True, False])
def test_output_is_one_score_per_class(residual):
    model = cifar_resnet(8, residual=residual)
    out = model(images(2))
    assert out.shape == (2, 10) and out.dtype == np.float32
    assert np.isfinite(out.data).all()


def outputs_of(model, x, layers):
    """What each of `layers` outputs during one forward pass of model on x, read by forward hooks."""
    seen = []
    handles = [layer.register_forward_hook(lambda module, inputs, output: seen.append(output)) for layer in layers]
    with no_grad():
        out = model(x)
    for handle in handles:
        handle.remove()
    return out, seen


@pytest.mark.parametrize("depth", [8, 20])
def test_a_forward_hook_on_every_3x3_conv_sees_its_response(depth):
    """Fig. 7 needs the response of each 3x3 layer: 6n+1 of them (all weighted layers but the fc),
    in network order, 16, 32 and 64 channels at 32x32, 16x16 and 8x8, each read from outside
    the model by a forward hook."""
    model = cifar_resnet(depth)
    convs = [m for m in model.modules() if isinstance(m, Conv2d) and m.weight.shape[2:] == (3, 3)]
    _, responses = outputs_of(model, images(2), convs)
    n = (depth - 2) // 6
    assert len(responses) == depth - 1
    assert [r.shape[1:] for r in responses] == [(16, 32, 32)] * (1 + 2 * n) + [(32, 16, 16)] * (2 * n) + \
        [(64, 8, 8)] * (2 * n)


def test_block_downsamples_and_widens():
    x = Tensor(np.random.default_rng(0).standard_normal((2, 16, 32, 32)).astype(np.float32))
    for shortcut in "AB":
        assert BasicBlock(16, 32, stride=2, shortcut=shortcut)(x).shape == (2, 32, 16, 16)


def test_state_dict_round_trip_gives_the_same_outputs():
    manual_seed(0)
    trained = cifar_resnet(8)
    with no_grad():
        for seed in range(3):  # move the batch-norm running statistics away from 0 and 1
            trained(images(4, seed))
    trained.eval()
    state = trained.state_dict()
    assert any(k.endswith("running_mean") for k in state)
    manual_seed(1)
    fresh = cifar_resnet(8).eval()
    x = images(2, seed=9)
    with no_grad():
        assert not np.allclose(fresh(x).data, trained(x).data)
        fresh.load_state_dict(state)
        np.testing.assert_array_equal(fresh(x).data, trained(x).data)


@pytest.mark.parametrize("residual", [True, False])
def test_without_batch_norm_every_bn_becomes_an_identity(residual):
    """batch_norm=False: the same convs and fc, no batch norm anywhere (lesson 08's nets)."""
    manual_seed(0)
    with_bn = cifar_resnet(20, residual)
    manual_seed(0)
    without = cifar_resnet(20, residual, batch_norm=False)
    assert not any(isinstance(m, BatchNorm2d) for m in without.modules())
    assert sum(isinstance(m, Identity) for m in without.modules()) == 19
    assert without.num_parameters() == with_bn.num_parameters() - 2 * (16 * 7 + 32 * 6 + 64 * 6)
    assert "without batch norm" in repr(without)
    for a, b in zip(with_bn.blocks, without.blocks):   # the same initial conv weights, seed for seed
        np.testing.assert_array_equal(a.conv1.weight.data, b.conv1.weight.data)
    x = images(4)
    norms = [without.bn] + [norm for block in without.blocks for norm in (block.bn1, block.bn2)]
    out, responses = outputs_of(without, x, norms)
    assert out.shape == (4, 10) and len(responses) == 19
    conv = without.blocks[0].conv1
    with no_grad():  # the response is the conv's output itself: nothing normalizes it
        h = F.relu(without.conv(x))
        np.testing.assert_allclose(responses[1].data, conv(h).data, rtol=1e-6)


def test_without_batch_norm_option_b_projects_without_bn():
    net = cifar_resnet(20, shortcut="B", batch_norm=False)
    projections = [blk.projection for blk in net.blocks if blk.projection is not None]
    assert [len(p) for p in projections] == [1, 1]
    assert net.num_parameters() == cifar_resnet(20, batch_norm=False).num_parameters() + 16 * 32 + 32 * 64


def test_resnet_1202_trains_one_step():
    """The paper's deepest net (Table 6: 19.4M parameters): 1202 layers, one SGD step on 2 images.
    The engine walks the graph without recursion, so there is no RecursionError; ~10 s on 2 cores."""
    manual_seed(0)
    model = cifar_resnet(1202)
    assert f"{model.num_parameters() / 1e6:.1f}" == TABLE_6[1202]
    opt = SGD(model.parameters(), lr=0.1)
    x, y = images(2), np.array([3, 7])
    before = model.fc.weight.data.copy(), model.conv.weight.data.copy()
    loss = F.cross_entropy(model(x), y)
    loss.backward()
    assert np.isfinite(loss.item())
    missing = [name for name, p in model.named_parameters() if p.grad is None or not np.isfinite(p.grad).all()]
    assert not missing, f"{len(missing)} parameters got no finite gradient, e.g. {missing[:3]}"
    opt.step()
    assert not np.array_equal(model.fc.weight.data, before[0])
    assert not np.array_equal(model.conv.weight.data, before[1]), "the first layer, 1201 layers down, moved"


def test_activations_and_gradients_stay_channels_last():
    """Every 4-D activation of a ResNet, and every gradient that reaches one, is stored channels-last
    (see device.channels_last_zeros): a pixel's channels side by side. One op that hands back a
    plain (N, C, H, W) gradient sends every op after it in the backward pass down a slower path."""
    from tinyresnet.autograd import topological_order
    from tinyresnet.functional import cross_entropy

    def channels_last(a):
        return a.shape[1] == 1 or a.strides[1] == a.itemsize  # neighbouring channels are neighbours in memory
    model = cifar_resnet(8)
    x = Tensor(np.random.default_rng(0).standard_normal((4, 3, 8, 8)).astype(np.float32))
    loss = cross_entropy(model(x), np.zeros(4, dtype=np.int64))
    layouts = []
    for node in topological_order(loss):
        if node.ndim == 4 and not node.is_leaf:  # activations, not the images or the weights
            assert channels_last(node.data), f"the output of {node.op} is not channels-last"
            node.register_hook(lambda g, op=node.op: layouts.append((op, channels_last(g))))
    loss.backward()
    plain = sorted({op for op, ok in layouts if not ok})
    assert layouts and not plain, f"the gradients reaching the outputs of {plain} are not channels-last"


@pytest.mark.parametrize("depth, residual, shortcut, name", [
    (20, True, "A", "ResNet-20"), (110, True, "B", "ResNet-110 (B)"), (56, False, "A", "plain-56")])
def test_network_name_is_the_papers_and_every_label_uses_it(depth, residual, shortcut, name):
    from tinyresnet.run.recipe import Recipe
    assert models.network_name(depth, residual, shortcut) == name
    assert Recipe(depth=depth, residual=residual, shortcut=shortcut).label == name
    kind = models.network_name(depth, residual) + (f" (option {shortcut})" if residual else "")
    assert repr(models.cifar_resnet(depth, residual, shortcut)).startswith(kind + ":")
