"""Lesson 09 (09_imagenet_bottleneck.ipynb): the bottleneck block, its forward pass and its size.

The reference is tinyresnet.imagenet.Bottleneck itself: the learner's forward pass must give
its output and its gradients on three blocks (a projection that widens, the identity, a
projection that also halves the map), and then run a whole ResNet-50; the parameter count
must equal the block's on every block shape of ResNet-50.
"""
import numpy as np

from tinyresnet import Tensor
from tinyresnet import functional as F
from tinyresnet.imagenet import Bottleneck, imagenet_resnet
from tinyresnet.nn import manual_seed

from .harness import Mismatch, case, check, describe

FORWARD_SHAPE_HINT = ("the residual branch ends with 4 * width channels at H / stride; where the block "
                      "changes the shape (stride 2, or in_channels != 4 * width) x must go through "
                      "block.projection(x) before the addition; block.projection is None where it does not.")
# in_channels, width, stride: conv2_1 (64 -> 256 at the same size), conv2_2 (the identity), conv3_1
FORWARD_CONFIGS = ((8, 4, 1), (16, 4, 1), (16, 8, 2))
# every block shape of ResNet-50, (in_channels, width, stride)
RESNET50_BLOCKS = ((64, 64, 1), (256, 64, 1), (256, 128, 2), (512, 128, 1),
                   (512, 256, 2), (1024, 256, 1), (1024, 512, 2), (2048, 512, 1))


def _variants(block, x):
    """What the usual slips compute, from the block's own layers: name -> output array."""
    a = F.relu(block.bn1(block.conv1(x)))
    b = F.relu(block.bn2(block.conv2(a)))
    c = block.bn3(block.conv3(b))
    s = x if block.projection is None else block.projection(x)
    no_middle = block.bn3(block.conv3(block.bn2(block.conv2(block.bn1(block.conv1(x))))))
    return {
        "relu before the addition": F.relu(F.relu(c) + s),
        "no ReLU after the addition": c + s,
        "no ReLU inside the branch": F.relu(no_middle + s),
        "no shortcut": F.relu(c),
    }


SLIP_HINTS = {
    "relu before the addition": "the branch's last batch norm goes into the addition as it is: "
                                "relu(bn3(conv3(h)) + shortcut), one ReLU after the addition, none before",
    "no ReLU after the addition": "the block ends with a ReLU after the addition: relu(branch + shortcut)",
    "no ReLU inside the branch": "each of the first two convs is followed by batch norm and a ReLU",
    "no shortcut": "add the shortcut (x, or block.projection(x)) before the last ReLU: without it this is "
                   "a plain block",
}


def _named_slip(block, x, mine):
    for name, variant in _variants(block, Tensor(x)).items():
        if variant.shape == mine.shape and np.allclose(variant.numpy(), mine, rtol=1e-4, atol=1e-5):
            return SLIP_HINTS[name]
    return "conv1-bn1-ReLU, conv2-bn2-ReLU, conv3-bn3, then + shortcut, then ReLU"


def _gradients(block, x_tensor, out, upstream):
    out.backward(upstream)
    grads = {"x": x_tensor.grad}
    grads.update({name: p.grad for name, p in block.named_parameters()})
    block.zero_grad()
    return grads


@check("bottleneck_forward", shape_hint=FORWARD_SHAPE_HINT)
def check_bottleneck_forward(bottleneck_forward):
    rng = np.random.default_rng(0)
    for in_channels, width, stride in FORWARD_CONFIGS:
        where = f"in_channels {in_channels}, width {width}, stride {stride}"
        manual_seed(in_channels + width + stride)
        block = Bottleneck(in_channels, width, stride)
        x = rng.standard_normal((2, in_channels, 6, 6)).astype(np.float32)
        reference_x = Tensor(x.copy(), requires_grad=True)
        expected = block(reference_x)
        upstream = rng.standard_normal(expected.shape).astype(np.float32)
        expected_grads = _gradients(block, reference_x, expected, upstream)
        learner_x = Tensor(x.copy(), requires_grad=True)
        with case(where):
            out = bottleneck_forward(block, learner_x)
        if not isinstance(out, Tensor):
            raise Mismatch(f"for {where} you returned {describe(out)}; return a Tensor built from the block's "
                           "layers and F.relu, so that the gradient flows back through it.")
        if out.shape != expected.shape:
            raise Mismatch(f"for {where} the output has shape {out.shape}, expected {expected.shape}.\n"
                           f"hint: {FORWARD_SHAPE_HINT}")
        mine = out.numpy()
        if not np.allclose(mine, expected.numpy(), rtol=1e-4, atol=1e-5):
            raise Mismatch(f"for {where} the output differs from Bottleneck.forward's.\n"
                           f"hint: {_named_slip(block, x, mine)}.")
        if not out.requires_grad:
            raise Mismatch(f"for {where} the output has no graph: compute it with Tensor ops (the block's "
                           "modules, F.relu, +), not on .data.")
        grads = _gradients(block, learner_x, out, upstream)
        for name, g in expected_grads.items():
            if grads[name] is None or not np.allclose(grads[name], g, rtol=1e-3, atol=1e-5):
                raise Mismatch(f"for {where} the gradient of {name} differs from Bottleneck's: the output "
                               "is right but its graph is not; use each layer once, as Tensor ops.")
    _whole_resnet50(bottleneck_forward)
    return (f"{len(FORWARD_CONFIGS)} blocks (projection, identity, projection with stride 2): outputs and "
            "gradients equal Bottleneck's; a whole ResNet-50 with your blocks gives the same logits")


def _whole_resnet50(bottleneck_forward):
    """ResNet-50 (10 classes, 32x32 images) with every block's forward replaced by the learner's."""
    manual_seed(50)
    model = imagenet_resnet(50, num_classes=10).eval()
    x = Tensor(np.random.default_rng(50).standard_normal((1, 3, 32, 32)).astype(np.float32))
    expected = model(x).numpy()
    for block in model.blocks:
        block.forward = lambda h, block=block: bottleneck_forward(block, h)   # this instance only
    with case("a whole ResNet-50 on one 32x32 image"):
        mine = model(x).numpy()
    if not np.allclose(mine, expected, rtol=1e-3, atol=1e-4):
        raise Mismatch("ResNet-50 built from your blocks gives other logits than tinyresnet's.")


PARAMETER_SLIPS = {
    "no batch norm": "each of the three convs (and the projection's) is followed by a batch norm with 2 "
                     "parameters per channel (gamma and beta)",
    "always a projection": "the projection exists only where the block changes the shape: stride 2, or "
                           "in_channels != 4 * width; elsewhere the shortcut is the identity (no parameters)",
    "never a projection": "where the block changes the shape (stride 2, or in_channels != 4 * width) the "
                          "shortcut is a 1x1 conv from in_channels to 4 * width, plus its batch norm",
    "biases": "the convs have no bias (the batch norm after each has its own shift beta)",
}


def _parameter_slips(in_channels, width, stride):
    out = 4 * width
    convs = in_channels * width + 9 * width * width + width * out
    norms = 2 * (2 * width + out)
    projection = in_channels * out + 2 * out
    projects = stride != 1 or in_channels != out
    return {
        "no batch norm": convs + (in_channels * out if projects else 0),
        "always a projection": convs + norms + projection,
        "never a projection": convs + norms,
        "biases": convs + norms + 2 * width + out + ((projection + out) if projects else 0),
    }


@check("bottleneck_parameters")
def check_bottleneck_parameters(bottleneck_parameters):
    for in_channels, width, stride in RESNET50_BLOCKS:
        where = f"in_channels {in_channels}, width {width}, stride {stride}"
        expected = Bottleneck(in_channels, width, stride).num_parameters()
        with case(where):
            mine = bottleneck_parameters(in_channels, width, stride)
        if np.ndim(mine) != 0 or not float(mine).is_integer():
            raise Mismatch(f"for {where} you returned {describe(mine)}; return the number of parameters, "
                           "an int.")
        if int(mine) != expected:
            slips = _parameter_slips(in_channels, width, stride)
            hint = next((PARAMETER_SLIPS[name] for name, value in slips.items() if value == int(mine) != expected),
                        "count each conv's weights (in * out * k * k) and each batch norm's 2 per channel")
            raise Mismatch(f"for {where}: yours {int(mine):,}, Bottleneck has {expected:,}.\nhint: {hint}.")
    return f"the {len(RESNET50_BLOCKS)} block shapes of ResNet-50: the counts equal Bottleneck.num_parameters()"
