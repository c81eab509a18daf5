"""The ImageNet ResNets of He et al. 2016, Table 1: parameter counts, multiply-adds, blocks, shapes."""
import math

import numpy as np
import pytest

from tinyresnet import Tensor, functional as F, manual_seed
from tinyresnet.flops import multiply_adds
from tinyresnet.imagenet import Bottleneck, imagenet_resnet
from tinyresnet.nn import Conv2d

pytestmark = pytest.mark.imagenet

# torchvision.models.resnetNN().parameters(), counted; torchvision's documentation rounds them to
# 11.7M ... 60.2M (the paper's Table 1 gives no parameter counts, only FLOPs)
TORCHVISION_PARAMETERS = {18: 11_689_512, 34: 21_797_672, 50: 25_557_032, 101: 44_549_160, 152: 60_192_808}
# Table 1, bottom row: "FLOPs", multiply-adds of the convolutions and the fc layer, in units of 1e9
TABLE_1_FLOPS = {18: 1.8, 34: 3.6, 50: 3.8, 101: 7.6, 152: 11.3}
LAYOUT = {18: (2, 2, 2, 2), 34: (3, 4, 6, 3), 50: (3, 4, 6, 3), 101: (3, 4, 23, 3), 152: (3, 8, 36, 3)}
IMAGE = np.zeros((1, 3, 224, 224), dtype=np.float32)


def expected_multiply_adds(depth, stride_on_3x3=False):
    """Table 1's architecture, counted by hand at 224x224 (independently of imagenet.py).

    A conv with output s x s x k and a c x r x r kernel does s*s*k*c*r*r multiply-adds per image.
    Stages conv2_x..conv5_x work on 56, 28, 14, 7; their first block takes the map of the stage
    before (twice the size) and, from conv3_x on, halves it.
    """
    bottleneck = depth >= 50
    total = 112 * 112 * 64 * 3 * 7 * 7                         # conv1, 7x7/2
    c_in = 64
    for stage, (width, size, n) in enumerate(zip((64, 128, 256, 512), (56, 28, 14, 7), LAYOUT[depth])):
        out = 4 * width if bottleneck else width
        for i in range(n):
            s2 = size * size
            if bottleneck:
                # the first 1x1 runs at the input's size when the stride sits on the 3x3 (v1.5)
                first_size = 2 * size if stride_on_3x3 and stage > 0 and i == 0 else size
                total += first_size ** 2 * width * c_in + s2 * width * width * 9 + s2 * out * width
            else:
                total += s2 * width * c_in * 9 + s2 * width * width * 9
            if c_in != out or (stage > 0 and i == 0):
                total += s2 * out * c_in                           # projection shortcut (option B)
            c_in = out
    return total + c_in * 1000                                     # fc


@pytest.fixture(scope="module")
def counted():
    """depth -> (model, multiply_adds rows at 224x224): built and run once for all the tests here."""
    result = {}
    for depth in TORCHVISION_PARAMETERS:
        manual_seed(0)
        model = imagenet_resnet(depth)
        result[depth] = model, multiply_adds(model, IMAGE)
    return result


@pytest.mark.parametrize("depth", sorted(TORCHVISION_PARAMETERS))
def test_parameter_counts_match_torchvision(depth, counted):
    model, _ = counted[depth]
    count = model.num_parameters()
    assert count == TORCHVISION_PARAMETERS[depth], (
        f"ResNet-{depth}: {count:,} parameters, torchvision has {TORCHVISION_PARAMETERS[depth]:,} "
        f"(difference {count - TORCHVISION_PARAMETERS[depth]:+,})")
    assert f"{count / 1e6:.1f}" == f"{TORCHVISION_PARAMETERS[depth] / 1e6:.1f}"  # the paper's 11.7M, 21.8M, ...


@pytest.mark.parametrize("depth", sorted(TABLE_1_FLOPS))
def test_multiply_adds_match_table_1(depth, counted):
    """The paper's figures are ours cut to one decimal (1.81 -> 1.8, 3.66 -> 3.6, 3.86 -> 3.8,
    7.57 -> 7.6, 11.28 -> 11.3): rounded or truncated, so we accept either."""
    _, rows = counted[depth]
    total = sum(macs for _, _, macs in rows)
    assert total == expected_multiply_adds(depth), f"ResNet-{depth}: the hook count differs from the hand count"
    giga = total / 1e9
    paper = TABLE_1_FLOPS[depth]
    assert paper in (round(giga, 1), math.floor(giga * 10) / 10), (
        f"ResNet-{depth}: {giga:.3f}e9 multiply-adds, Table 1 says {paper}e9")


def test_the_layers_counted_are_every_conv_and_the_fc(counted):
    model, rows = counted[50]
    convs = [m for m in model.modules() if isinstance(m, Conv2d)]
    assert len(rows) == len(convs) + 1 and rows[-1][0] == "fc" and rows[-1][1] == (1000,)
    assert rows[0] == ("conv", (64, 112, 112), 112 * 112 * 64 * 3 * 49)
    # 49 weighted layers + fc = "50-layer": the projections are not counted as layers
    assert len([r for r in rows if "projection" not in r[0]]) == 50


def test_stride_on_the_3x3_costs_more_multiply_adds_for_the_same_parameters():
    """torchvision's v1.5 moves the stride to the 3x3 conv: 4.09e9 for ResNet-50, not Table 1's 3.8."""
    manual_seed(0)
    paper, v15 = imagenet_resnet(50), imagenet_resnet(50, stride_on_3x3=True)
    assert paper.num_parameters() == v15.num_parameters()
    total = sum(macs for _, _, macs in multiply_adds(v15, IMAGE))
    assert total == expected_multiply_adds(50, stride_on_3x3=True)
    assert round(total / 1e9, 1) == 4.1


@pytest.mark.parametrize("in_channels, width, stride, projects", [
    (64, 64, 1, True),       # conv2_1: 64 -> 256 channels, same size
    (256, 64, 1, False),     # conv2_2: the identity
    (256, 128, 2, True),     # conv3_1: 256 -> 512 channels, half the size
])
def test_bottleneck_shapes_and_shortcuts(in_channels, width, stride, projects):
    block = Bottleneck(in_channels, width, stride)
    x = Tensor(np.random.default_rng(0).standard_normal((2, in_channels, 8, 8)).astype(np.float32))
    out = block(x)
    assert out.shape == (2, 4 * width, 8 // stride, 8 // stride)
    assert (block.projection is not None) == projects
    assert [c.weight.shape for c in (block.conv1, block.conv2, block.conv3)] == [
        (width, in_channels, 1, 1), (width, width, 3, 3), (4 * width, width, 1, 1)]
    assert block.conv1.stride == stride and block.conv2.stride == 1, "the paper strides the first 1x1"
    assert (out.data >= 0).all(), "the block ends with a ReLU"


def test_bottleneck_is_cheaper_than_a_basic_block_of_the_same_output_width():
    """The point of the design: a 256-channel bottleneck has 70k weights; two 3x3 convs of 256 have 1.2M."""
    bottleneck = Bottleneck(256, 64).num_parameters()
    assert bottleneck == 256 * 64 + 9 * 64 * 64 + 64 * 256 + 2 * (64 + 64 + 256)
    assert bottleneck * 15 < 2 * 9 * 256 * 256


@pytest.mark.parametrize("depth", [18, 50])
def test_forward_and_backward_on_a_small_image(depth):
    """Any size that survives five halvings works (32x32 ends at 1x1); gradients reach the stem."""
    manual_seed(0)
    model = imagenet_resnet(depth, num_classes=5)
    x = Tensor(np.random.default_rng(0).standard_normal((2, 3, 32, 32)).astype(np.float32))
    logits = model(x)
    assert logits.shape == (2, 5)
    F.cross_entropy(logits, np.array([0, 3])).backward()
    assert all(p.grad is not None and np.isfinite(p.grad).all() for p in model.parameters())
    assert np.abs(model.conv.weight.grad).sum() > 0


@pytest.mark.parametrize("depth", [20, 0, 200])
def test_invalid_depth_lists_the_valid_ones(depth):
    with pytest.raises(ValueError, match="18, 34, 50, 101, 152"):
        imagenet_resnet(depth)
