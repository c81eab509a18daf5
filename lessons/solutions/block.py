"""Lesson 05: the basic block's forward pass, plain and residual, and the forward pass of a whole
6n+2 net built from it.

The layers are given; the architecture is yours. A block is its four layers,

    block.conv1, block.conv2   3x3 convolutions with padding 1, called as conv(x, stride)
    block.bn1, block.bn2       batch norms, called as bn(h)

and a net is net.conv and net.bn (the first 3x3 conv, 3 -> 16 channels, and its batch norm),
net.blocks (its 3n blocks, stage by stage) and net.fc (the fully connected layer, 64 -> 10).
Which stride each convolution gets, where the ReLUs go and whether a shortcut is added: that
is decided here.
"""
from tinyresnet import functional as F

from .shortcut import option_a_shortcut


def basic_block_forward(block, x, stride, residual):
    """x: Tensor (N, C_in, H, W) -> Tensor (N, C_out, H / stride, W / stride):
    conv-BN-ReLU-conv-BN, plus option_a_shortcut(x) if residual, then ReLU."""
    # 1. the first conv carries the block's stride (2 halves the map), then batch norm and a ReLU
    h = F.relu(block.bn1(block.conv1(x, stride)))
    # 2. the second conv keeps the size; its batch norm comes before the addition, no ReLU yet
    h = block.bn2(block.conv2(h, 1))
    # 3. residual block: add x, made to fit h's shape by option A (the identity inside a stage)
    if residual:
        h = h + option_a_shortcut(x, h.shape[1], stride)
    # 4. the ReLU comes after the addition, in the plain block as in the residual one
    return F.relu(h)


def resnet_forward(net, x, depth, residual):
    """x: Tensor (N, 3, H, W) -> logits Tensor (N, 10) of the plain (residual=False) or residual
    net of depth 6n+2."""
    # 1. depth = 6n + 2: the first conv, 3 stages of n blocks of 2 convs, the fully connected layer
    n = (depth - 2) // 6
    # 2. the first 3x3 conv (3 -> 16 channels), its batch norm and a ReLU
    h = F.relu(net.bn(net.conv(x, 1)))
    # 3. three stages of n blocks; only the first block of stages 2 and 3 halves the map
    for stage in range(3):
        for i in range(n):
            stride = 2 if stage > 0 and i == 0 else 1
            h = basic_block_forward(net.blocks[stage * n + i], h, stride, residual)
    # 4. global average pooling, (N, 64, H/4, W/4) -> (N, 64), then one score per class
    return net.fc(F.global_avg_pool(h))
