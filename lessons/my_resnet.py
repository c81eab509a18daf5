"""Your ResNet: the CIFAR net of lesson 05, computed by the functions you wrote, ready to train.

What each piece is, and which lesson has you write it:

    conv2d_forward, conv2d_backward           lesson 02   every convolution, both passes
    batch_norm_forward, batch_norm_backward   lesson 03   every batch norm, both passes
    train_epoch, evaluate                     lesson 04   the training loop
    he_normal                                 lesson 05   the initial weights
    basic_block_forward, resnet_forward       lesson 05   the architecture (with option_a_shortcut)

The library still chains the backward passes (its autograd engine, lesson 01), and provides
ReLU, average pooling, the fully connected layer, the loss and SGD.

As shipped, the imports between the two rules below take the worked solutions in solutions/,
which compute what a finished exercise computes. To train with your own functions instead,
replace an import with your function (paste it here, same name and arguments), or assign it
from a notebook before you build the net, e.g. `my_resnet.conv2d_forward = conv2d_forward`:
the code below looks each one up by name when it runs.
"""
import numpy as np

from tinyresnet import Tensor
from tinyresnet import functional as F
from tinyresnet.nn import Module, Parameter

# ==================================== YOUR PIECES ====================================
from solutions.conv import conv2d_backward, conv2d_forward                  # lesson 02
from solutions.batch_norm import batch_norm_backward, batch_norm_forward    # lesson 03
from solutions.loop import evaluate, train_epoch                            # lesson 04
from solutions.he_init import he_normal                                     # lesson 05
from solutions.block import basic_block_forward, resnet_forward             # lesson 05
# ======================================================================================


# ------------------------------------------------------------------ your passes as autograd ops

def conv2d(x, w, stride, padding):
    """x: Tensor (N, C, H, W), w: Tensor (K, C, R, S) -> Tensor (N, K, Ho, Wo).

    Your forward pass computes the output; your backward pass is what autograd calls with the
    upstream gradient g (N, K, Ho, Wo) to get (dx, dw). tinyresnet/conv.py pairs the library's
    two passes the same way."""
    out = conv2d_forward(x.data, w.data, stride, padding)

    def backward(g):
        return conv2d_backward(x.data, w.data, g, stride, padding)
    return Tensor.from_op(out, (x, w), backward, "conv2d (yours)")


def batch_norm(x, gamma, beta, running_mean, running_var, training, momentum=0.1, eps=1e-5):
    """x: Tensor (N, C, H, W), gamma and beta: Tensors (C,) -> Tensor (N, C, H, W).

    Your forward pass normalizes (and updates the running statistics in training mode); it hands
    over xhat and inv_std, which your backward pass needs. In evaluation mode the statistics are
    constants, and the gradient is that of a per-channel scale and shift."""
    out, xhat, inv_std = batch_norm_forward(x.data, gamma.data, beta.data, running_mean, running_var,
                                            training, momentum, eps)

    def backward(g):
        if training:
            return batch_norm_backward(g, xhat, gamma.data, inv_std)
        per_channel = (gamma.data * inv_std).reshape(1, -1, 1, 1)
        return g * per_channel, (g * xhat).sum(axis=(0, 2, 3)), g.sum(axis=(0, 2, 3))
    return Tensor.from_op(out, (x, gamma, beta), backward, "batch_norm (yours)")


# ------------------------------------------------------------------ layers that hold the weights

class Conv3x3(Module):
    """A 3x3 convolution with padding 1 and no bias, He-initialized by your he_normal.
    The caller chooses the stride: conv(x, stride)."""

    def __init__(self, in_channels, out_channels, rng):
        self.weight = Parameter(he_normal(out_channels, in_channels, 3, rng))

    def forward(self, x, stride):
        return conv2d(x, self.weight, stride, 1)


class BatchNorm(Module):
    """Batch norm over channels: gamma (ones) and beta (zeros) learned, running statistics kept."""
    _buffers = ("running_mean", "running_var")

    def __init__(self, channels):
        self.gamma = Parameter(np.ones(channels))
        self.beta = Parameter(np.zeros(channels))
        self.running_mean = np.zeros(channels, dtype=np.float32)
        self.running_var = np.ones(channels, dtype=np.float32)

    def forward(self, x):
        return batch_norm(x, self.gamma, self.beta, self.running_mean, self.running_var, self.training)


class Block(Module):
    """The four layers of a basic block; basic_block_forward decides what to do with them."""

    def __init__(self, in_channels, out_channels, rng):
        self.conv1, self.bn1 = Conv3x3(in_channels, out_channels, rng), BatchNorm(out_channels)
        self.conv2, self.bn2 = Conv3x3(out_channels, out_channels, rng), BatchNorm(out_channels)


class Linear(Module):
    """x (N, 64) -> (N, 10): weights and biases uniform in +-1/sqrt(64), as tinyresnet.nn.Linear."""

    def __init__(self, in_features, out_features, rng):
        bound = 1 / np.sqrt(in_features)
        self.weight = Parameter(rng.uniform(-bound, bound, (out_features, in_features)))
        self.bias = Parameter(rng.uniform(-bound, bound, out_features))

    def forward(self, x):
        return F.linear(x, self.weight, self.bias)


class MyResNet(Module):
    """The plain or residual CIFAR net of depth 6n+2: x Tensor (N, 3, 32, 32) -> logits (N, 10).

    The weights are drawn from np.random.default_rng(seed) in the library's order (each conv as
    it is built, then the fully connected layer), so MyResNet(depth, residual, seed) starts from
    exactly the weights of tinyresnet.manual_seed(seed); cifar_resnet(depth, residual). Its
    parameters have the library's names too (conv.weight, blocks.0.bn1.gamma, ..., fc.bias)."""

    def __init__(self, depth, residual=True, seed=0):
        rng = np.random.default_rng(seed)
        n = (depth - 2) // 6
        self.depth, self.residual = depth, residual
        self.conv, self.bn = Conv3x3(3, 16, rng), BatchNorm(16)
        self.blocks = []
        in_channels = 16
        for channels in (16, 32, 64):                   # the three stages, n blocks each
            for _ in range(n):
                self.blocks.append(Block(in_channels, channels, rng))
                in_channels = channels
        self.fc = Linear(64, 10, rng)

    def forward(self, x):
        return resnet_forward(self, x, self.depth, self.residual)
