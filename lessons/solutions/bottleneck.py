"""Lesson 09: the bottleneck block of ResNet-50/101/152, its forward pass and its parameter count."""
from tinyresnet import functional as F


def bottleneck_forward(block, x):
    """block: a tinyresnet.imagenet.Bottleneck; x: Tensor (N, in, H, W) -> Tensor (N, 4*width, H/s, W/s)."""
    # 1. reduce: the 1x1 conv shrinks the channels 4-fold (and carries the stride, as in the paper)
    h = F.relu(block.bn1(block.conv1(x)))
    # 2. the 3x3 conv works on the narrow map
    h = F.relu(block.bn2(block.conv2(h)))
    # 3. expand: the second 1x1 conv restores 4*width channels; no ReLU before the addition
    h = block.bn3(block.conv3(h))
    # 4. the shortcut: the identity, or the projection (1x1 conv + BN) where the shape changes
    shortcut = x if block.projection is None else block.projection(x)
    # 5. add, then the block's last ReLU
    return F.relu(h + shortcut)


def bottleneck_parameters(in_channels, width, stride):
    """The number of parameters of Bottleneck(in_channels, width, stride): an int."""
    out = 4 * width
    # three convs without bias: 1x1 in -> width, 3x3 width -> width, 1x1 width -> 4*width
    convs = in_channels * width + 9 * width * width + width * out
    # a batch norm after each one: gamma and beta per channel
    norms = 2 * (width + width + out)
    # a projection (1x1 conv + BN) only where the block changes the shape
    projects = stride != 1 or in_channels != out
    return convs + norms + (in_channels * out + 2 * out if projects else 0)
