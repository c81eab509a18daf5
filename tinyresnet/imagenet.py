"""The ImageNet networks of He et al. 2016, Table 1: ResNet-18, 34, 50, 101 and 152.

    stage    output    ResNet-18, 34                 ResNet-50, 101, 152
    conv1    112×112   7×7 conv, 64 filters, stride 2
             56×56     3×3 max pool, stride 2
    conv2_x  56×56     [3×3, 64;  3×3, 64]  × n₂      [1×1, 64;  3×3, 64;  1×1, 256]  × n₂
    conv3_x  28×28     [3×3, 128; 3×3, 128] × n₃      [1×1, 128; 3×3, 128; 1×1, 512]  × n₃
    conv4_x  14×14     [3×3, 256; 3×3, 256] × n₄      [1×1, 256; 3×3, 256; 1×1, 1024] × n₄
    conv5_x  7×7       [3×3, 512; 3×3, 512] × n₅      [1×1, 512; 3×3, 512; 1×1, 2048] × n₅
             1×1       global average pooling, 1000-way fully connected layer

    blocks per stage (n₂, n₃, n₄, n₅): 18: 2 2 2 2 · 34: 3 4 6 3 · 50: 3 4 6 3 · 101: 3 4 23 3 · 152: 3 8 36 3

The deeper nets use the *bottleneck* block: a 1×1 conv reduces the channels
4-fold, the 3×3 conv works on the narrow map, a second 1×1 conv expands them
again. It costs about what a basic block costs, with 4× wider outputs.
The first block of conv3_x, conv4_x and conv5_x downsamples with stride 2.
Shortcuts are identities where the shape is kept and projections (option B:
1×1 conv + batch norm) where it changes, as in the paper's Table 3 "B".
For a 224×224 image: input (N, 3, 224, 224) -> logits (N, 1000).
"""
from . import functional as F
from .models import BasicBlock, projection
from .nn import BatchNorm2d, Conv2d, Linear, Module

# depth -> (block, blocks per stage conv2_x .. conv5_x)
LAYOUTS = {18: ("basic", (2, 2, 2, 2)), 34: ("basic", (3, 4, 6, 3)), 50: ("bottleneck", (3, 4, 6, 3)),
           101: ("bottleneck", (3, 4, 23, 3)), 152: ("bottleneck", (3, 8, 36, 3))}
WIDTHS = (64, 128, 256, 512)  # the 3×3 convs' filters in conv2_x .. conv5_x


class Bottleneck(Module):
    """1×1 conv to `width` - BN - ReLU - 3×3 conv - BN - ReLU - 1×1 conv to 4·width - BN, + shortcut, ReLU.

    x: (N, in_channels, H, W) -> (N, 4 * width, H / stride, W / stride).
    The paper (and its released models) put the stride on the first 1×1 conv;
    torchvision's "ResNet v1.5" puts it on the 3×3 (stride_on_3x3=True): the same
    parameters, more multiply-adds, a little more accurate.
    """
    expansion = 4

    def __init__(self, in_channels, width, stride=1, stride_on_3x3=False):
        out_channels = self.expansion * width
        first, middle = (1, stride) if stride_on_3x3 else (stride, 1)
        self.conv1 = Conv2d(in_channels, width, 1, first)
        self.bn1 = BatchNorm2d(width)
        self.conv2 = Conv2d(width, width, 3, middle, padding=1)
        self.bn2 = BatchNorm2d(width)
        self.conv3 = Conv2d(width, out_channels, 1)
        self.bn3 = BatchNorm2d(out_channels)
        self.stride = stride
        self.projection = None
        if stride != 1 or in_channels != out_channels:
            self.projection = projection(in_channels, out_channels, stride)

    def forward(self, x):
        h = F.relu(self.bn1(self.conv1(x)))
        h = F.relu(self.bn2(self.conv2(h)))
        h = self.bn3(self.conv3(h))
        shortcut = x if self.projection is None else self.projection(x)
        return F.relu(h + shortcut)


class ImageNetResNet(Module):
    """ResNet-18/34 (basic blocks) or ResNet-50/101/152 (bottlenecks) of Table 1.

    x: (N, 3, H, W), 224×224 in the paper -> logits (N, num_classes).
    """

    def __init__(self, depth, num_classes=1000, stride_on_3x3=False):
        block, counts = layout(depth)
        self.depth, self.kind = depth, block
        self.conv = Conv2d(3, 64, 7, stride=2, padding=3)
        self.bn = BatchNorm2d(64)
        self.blocks, self.stage_sizes = [], counts
        in_channels = 64
        for stage, (width, n) in enumerate(zip(WIDTHS, counts)):
            for i in range(n):
                stride = 2 if stage > 0 and i == 0 else 1
                if block == "basic":
                    self.blocks.append(BasicBlock(in_channels, width, stride, residual=True, shortcut="B"))
                    in_channels = width
                else:
                    self.blocks.append(Bottleneck(in_channels, width, stride, stride_on_3x3))
                    in_channels = Bottleneck.expansion * width
        self.fc = Linear(in_channels, num_classes)

    def forward(self, x):
        h = F.relu(self.bn(self.conv(x)))
        h = F.max_pool2d(h, kernel=3, stride=2, padding=1)
        for block in self.blocks:
            h = block(h)
        return self.fc(F.global_avg_pool(h))

    def __repr__(self):
        return f"ResNet-{self.depth} ({self.kind} blocks): {self.num_parameters():,} parameters"


def layout(depth):
    """(block kind, blocks per stage) of ResNet-`depth`; a clear error for a depth not in Table 1."""
    if depth not in LAYOUTS:
        raise ValueError(f"the paper's ImageNet ResNets have depth {', '.join(map(str, LAYOUTS))}; got {depth!r}")
    return LAYOUTS[depth]


def imagenet_resnet(depth, num_classes=1000, stride_on_3x3=False):
    """ResNet-`depth` of the paper's Table 1, for 224×224 images."""
    return ImageNetResNet(depth, num_classes, stride_on_3x3)
