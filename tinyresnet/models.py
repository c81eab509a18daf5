"""The CIFAR-10 networks of He et al. 2016, Section 4.2: plain and residual, depth 6n+2.

    3×3 conv, 16 filters                                    32×32
    stage 1: n blocks of two 3×3 convs, 16 filters         32×32
    stage 2: n blocks, 32 filters (first conv has stride 2) 16×16
    stage 3: n blocks, 64 filters (first conv has stride 2)  8×8
    global average pooling, 10-way fully connected layer

That is 6n + 2 weighted layers. A residual block adds its input back before
the last ReLU; the plain block is the same block without that addition.
batch_norm=False builds the same nets with every batch norm left out (lesson 08
looks at their gradients); the convolutions still have no bias.
"""
from . import functional as F
from .nn import BatchNorm2d, Conv2d, Identity, Linear, Module, Sequential

PAPER_DEPTHS = (20, 32, 44, 56, 110, 1202)
SHORTCUTS = ("A", "B")


class BasicBlock(Module):
    """conv-BN-ReLU-conv-BN, then (+ shortcut), then ReLU. x: (N, in, H, W) -> (N, out, H/stride, W/stride)."""

    def __init__(self, in_channels, out_channels, stride=1, residual=True, shortcut="A", batch_norm=True):
        self.conv1 = Conv2d(in_channels, out_channels, 3, stride, padding=1)
        self.bn1 = norm(out_channels, batch_norm)
        self.conv2 = Conv2d(out_channels, out_channels, 3, 1, padding=1)
        self.bn2 = norm(out_channels, batch_norm)
        self.residual, self.stride = residual, stride
        self.extra_channels = out_channels - in_channels
        changes_shape = stride != 1 or in_channels != out_channels
        self.projection = None
        if residual and shortcut == "B" and changes_shape:
            self.projection = projection(in_channels, out_channels, stride, batch_norm)

    def forward(self, x):
        h = self.bn1(self.conv1(x))
        h = self.bn2(self.conv2(F.relu(h)))
        if self.residual:
            h = h + self.shortcut(x)
        return F.relu(h)

    def shortcut(self, x):
        """Identity where shapes match; else option A (subsample + zero channels) or B (1×1 conv + BN)."""
        if self.projection is not None:
            return self.projection(x)
        if self.stride != 1:
            x = F.subsample(x, self.stride)
        if self.extra_channels:
            half = self.extra_channels // 2
            x = F.pad_channels(x, half, self.extra_channels - half)
        return x


class CifarResNet(Module):
    """A plain or residual net of depth 6n+2 for 32×32 images. x: (N, 3, 32, 32) -> logits (N, classes)."""

    def __init__(self, depth, residual=True, shortcut="A", num_classes=10, batch_norm=True):
        n = blocks_per_stage(depth)
        if shortcut not in SHORTCUTS:
            raise ValueError(f"shortcut must be 'A' (identity + zero padding) or 'B' (projection), got {shortcut!r}")
        self.depth, self.residual, self.shortcut, self.batch_norm = depth, residual, shortcut, batch_norm
        self.conv = Conv2d(3, 16, 3, padding=1)
        self.bn = norm(16, batch_norm)
        self.blocks = []
        in_channels = 16
        for stage, channels in enumerate((16, 32, 64)):
            for i in range(n):
                stride = 2 if stage > 0 and i == 0 else 1
                self.blocks.append(BasicBlock(in_channels, channels, stride, residual, shortcut, batch_norm))
                in_channels = channels
        self.fc = Linear(64, num_classes)

    def forward(self, x):
        h = F.relu(self.bn(self.conv(x)))
        for block in self.blocks:
            h = block(h)
        return self.fc(F.global_avg_pool(h))

    def __repr__(self):
        kind = network_name(self.depth, self.residual)
        kind += f" (option {self.shortcut})" if self.residual else ""
        without = "" if self.batch_norm else " without batch norm"
        return f"{kind}{without}: {self.num_parameters():,} parameters"


def network_name(depth, residual, shortcut="A"):
    """The paper's name of a CIFAR net, as in its figures: ResNet-20, ResNet-110 (B), plain-56."""
    if not residual:
        return f"plain-{depth}"
    return f"ResNet-{depth}" + (" (B)" if shortcut == "B" else "")


def blocks_per_stage(depth):
    """n for depth = 6n + 2; a clear error for any other depth."""
    if not isinstance(depth, int) or depth < 8 or (depth - 2) % 6:
        raise ValueError(f"depth must be 6n+2 for n >= 1 (8, 14, 20, 26, ...); the paper uses "
                         f"{', '.join(map(str, PAPER_DEPTHS))}. Got {depth!r}")
    return (depth - 2) // 6


def cifar_resnet(depth, residual=True, shortcut="A", num_classes=10, batch_norm=True):
    """The paper's CIFAR-10 net: ResNet-`depth` (residual=True) or its plain twin;
    batch_norm=False leaves out every batch norm (not a net of the paper)."""
    return CifarResNet(depth, residual, shortcut, num_classes, batch_norm)


def norm(channels, batch_norm=True):
    """The layer after each convolution: BatchNorm2d(channels), or Identity() without batch norm."""
    return BatchNorm2d(channels) if batch_norm else Identity()


def projection(in_channels, out_channels, stride, batch_norm=True):
    """The option-B shortcut: a 1×1 convolution with `stride`, then batch norm (x: (N, in, H, W)
    -> (N, out, H/stride, W/stride)). The ImageNet nets use it wherever a block changes the shape."""
    conv = Conv2d(in_channels, out_channels, 1, stride)
    return Sequential(conv, BatchNorm2d(out_channels)) if batch_norm else Sequential(conv)
