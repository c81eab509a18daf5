"""Lesson 05 (05_plain_and_residual.ipynb): the option-A shortcut, the basic block's forward pass,
the forward pass of a 6n+2 net, and He initialization.

The references are tinyresnet's own: BasicBlock.shortcut, BasicBlock and cifar_resnet with the
same weights, and the std that tinyresnet.nn.Conv2d draws with. The learner's shortcut must
equal the library's, depend on no parameter and pass a gradient check; the block and the net
must give the library's outputs and gradients.
"""
from types import SimpleNamespace

import numpy as np

from tinyresnet import Tensor, gradcheck, manual_seed
from tinyresnet import functional as F
from tinyresnet.autograd import topological_order
from tinyresnet.models import BasicBlock, cifar_resnet
from tinyresnet import nn
from tinyresnet.nn import BatchNorm2d, Conv2d

from .harness import Mismatch, case, check, describe

# x shape, out_channels, stride
SHORTCUT_CONFIGS = [
    ((2, 16, 8, 8), 16, 1),     # inside a stage: the identity
    ((2, 16, 8, 8), 32, 2),     # into stage 2: 32x32x16 -> 16x16x32 in the real net
    ((1, 32, 6, 6), 64, 2),     # into stage 3
    ((2, 3, 5, 5), 6, 2),       # odd sizes: an odd image side, an odd number of new channels
]

SHORTCUT_SHAPE_HINT = ("x is (N, C, H, W); F.subsample(x, stride) gives (N, C, ceil(H / stride), "
                       "ceil(W / stride)), and F.pad_channels(x, before, after) adds before + after zero "
                       "channels on axis 1.")
SHORTCUT_VALUE_HINT = ("the gradient of a slice lands back where the kept values came from, and the zero "
                       "channels pass none: build the shortcut from F.subsample and F.pad_channels only.")


def library_shortcut(data, out_channels, stride):
    """tinyresnet's option-A shortcut of a block from data.shape[1] to out_channels channels."""
    block = BasicBlock(data.shape[1], out_channels, stride, residual=True, shortcut="A")
    return block.shortcut(Tensor(data)).numpy()


@check("option_a_shortcut", shape_hint=SHORTCUT_SHAPE_HINT, value_hint=SHORTCUT_VALUE_HINT)
def check_option_a_shortcut(option_a_shortcut):
    rng, worst = np.random.default_rng(0), 0.0
    for shape, out_channels, stride in SHORTCUT_CONFIGS:
        where = f"x of shape {shape}, out_channels {out_channels}, stride {stride}"
        data = rng.standard_normal(shape)
        x = Tensor(data.copy(), requires_grad=True)
        with case(where):
            out = option_a_shortcut(x, out_channels, stride)
        if not isinstance(out, Tensor):
            raise Mismatch(f"for {where} you returned {describe(out)}; return a Tensor, built with "
                           "F.subsample and F.pad_channels, so that the gradient can flow back to x.")
        if not out.requires_grad:
            raise Mismatch(f"for {where} your shortcut's output is not connected to x: a gradient could not "
                           "flow back through it.\nhint: apply F.subsample and F.pad_channels to the Tensor x "
                           "itself, not NumPy to x.data (which wraps a new Tensor with no history).")
        expected = library_shortcut(data, out_channels, stride)
        if out.shape != expected.shape:
            raise Mismatch(f"for {where} the shortcut has shape {out.shape}, expected {expected.shape}.\n"
                           "hint: subsample keeps every stride-th row and column (H -> ceil(H / stride)); "
                           "pad_channels adds out_channels - C zero channels.")
        mine = np.asarray(out.numpy())
        if not np.allclose(mine, expected):
            extra, c = out_channels - shape[1], shape[1]
            hint = "the input's channels go in the middle, between extra // 2 zero channels and the rest"
            if np.allclose(mine[:, :c], expected[:, extra // 2:extra // 2 + c]):
                hint = (f"you put all {extra} zero channels after the input's; tinyresnet (and the usual "
                        f"CIFAR code) puts {extra // 2} before and {extra - extra // 2} after: "
                        "F.pad_channels(x, extra // 2, extra - extra // 2)")
            shifted = library_shortcut(data[:, :, 1:, 1:], out_channels, stride)
            if stride > 1 and mine.shape == shifted.shape and np.allclose(mine, shifted):
                hint = "the subsampling starts at row and column 1; the library keeps rows 0, 2, 4, ... (F.subsample)"
            raise Mismatch(f"for {where} the values differ from tinyresnet's BasicBlock.shortcut.\nhint: {hint}.")
        leaves = [t for t in topological_order(out) if t.is_leaf and t.requires_grad and t is not x]
        if leaves:
            raise Mismatch(f"for {where} the output depends on {len(leaves)} trainable tensor(s) other than x; "
                           "option A has no parameters: only slicing and zeros.")
        with case(where):
            worst = max(worst, gradcheck(lambda t: option_a_shortcut(t, out_channels, stride), data,
                                         max_checks=32, name=f"option_a_shortcut {where}"))
    return (f"{len(SHORTCUT_CONFIGS)} shapes: values equal BasicBlock.shortcut, no parameters, "
            f"gradcheck worst relative error {worst:.1e}")


# ------------------------------------------------------------------ He initialization

# (out_channels, in_channels, kernel size): the first conv, a stage change, a 1x1 projection, stage 3
HE_CONFIGS = [(16, 3, 3), (32, 16, 3), (64, 32, 1), (64, 64, 3)]
HE_SEED = 1   # the generator both your he_normal and tinyresnet.nn.Conv2d draw from, seeded alike
HE_SHAPE_HINT = ("the weights of a convolution are (out_channels, in_channels, kernel_size, kernel_size), "
                 "as tinyresnet.nn.Conv2d's: rng.standard_normal(that shape) * std.")


def _he_slip(he_normal, out_channels, in_channels, kernel_size):
    """Name the usual init that the learner's std matches (measured on 40 draws pooled, so that
    the sampling error is small enough to tell them apart)."""
    fan_in, fan_out = in_channels * kernel_size ** 2, out_channels * kernel_size ** 2
    he = np.sqrt(2 / fan_in)
    pooled = np.concatenate([np.ravel(he_normal(out_channels, in_channels, kernel_size, np.random.default_rng(s)))
                             for s in range(40)])
    ratio = pooled.std() / he
    candidates = {
        "this is std sqrt(1 / fan_in) (LeCun's, or Xavier's for equal fans): right for a linear net, but a "
        "ReLU zeroes half of its input, so each layer would halve the signal's variance": np.sqrt(1 / fan_in),
        "fan_in is counted without the kernel: each output sums over in_channels * kernel_size^2 inputs":
            np.sqrt(2 / in_channels),
        "this uses the fan-out, out_channels * kernel_size^2, which keeps the backward pass's variance; the forward "
        "pass needs the fan-in, in_channels * kernel_size^2": np.sqrt(2 / fan_out),
        "2 / fan_in is the VARIANCE: the std is its square root": 2 / fan_in,
    }
    for slip, std in candidates.items():
        if abs(std / he - 1) > 0.05 and abs(ratio / (std / he) - 1) < 6 / np.sqrt(2 * pooled.size):
            return slip
    return "the std must be sqrt(2 / fan_in), with fan_in = in_channels * kernel_size^2"


def _conv2d_weights(in_channels, out_channels, kernel_size):
    """The weights tinyresnet.nn.Conv2d draws from a generator seeded with HE_SEED (the library's
    generator is put back as it was, so the check leaves no trace in later cells)."""
    saved = nn._rng
    manual_seed(HE_SEED)
    try:
        return Conv2d(in_channels, out_channels, kernel_size).weight.numpy()
    finally:
        nn._rng = saved


@check("he_normal", shape_hint=HE_SHAPE_HINT)
def check_he_normal(he_normal):
    for out_channels, in_channels, kernel_size in HE_CONFIGS:
        where = f"out_channels {out_channels}, in_channels {in_channels}, kernel_size {kernel_size}"
        shape = (out_channels, in_channels, kernel_size, kernel_size)
        with case(where):
            w = he_normal(out_channels, in_channels, kernel_size, np.random.default_rng(HE_SEED))
            again = he_normal(out_channels, in_channels, kernel_size, np.random.default_rng(HE_SEED))
            other = he_normal(out_channels, in_channels, kernel_size, np.random.default_rng(2))
        if not hasattr(w, "shape") or tuple(w.shape) != shape:
            got = f"shape {tuple(w.shape)}" if hasattr(w, "shape") else describe(w)
            raise Mismatch(f"for {where} the weights have {got}, expected {shape}.\nhint: {HE_SHAPE_HINT}")
        w, again, other = (np.asarray(a, dtype=np.float64) for a in (w, again, other))
        if not np.array_equal(w, again) or np.array_equal(w, other):
            raise Mismatch(f"for {where} the weights do not follow the rng you were given: the same seed must "
                           "give the same weights and another seed others.\nhint: draw with "
                           "rng.standard_normal(...), not np.random, so that manual_seed makes a run repeatable.")
        target = np.sqrt(2 / (in_channels * kernel_size ** 2))
        ratio = w.std() / target
        tolerance = 5 / np.sqrt(2 * w.size)          # five standard errors of a sample std
        if abs(w.mean()) > 5 * target / np.sqrt(w.size):
            raise Mismatch(f"for {where} the weights have mean {w.mean():.3g}; they must be centred at 0 "
                           f"(std {target:.4g}, so a mean of {w.mean() / target:.2g} stds is not chance).")
        if abs(ratio - 1) > tolerance:
            raise Mismatch(f"for {where} the weights have std {w.std():.4g}, He's is "
                           f"sqrt(2 / {in_channels * kernel_size ** 2}) = {target:.4g} ({ratio:.3g} times that).\n"
                           f"hint: {_he_slip(he_normal, out_channels, in_channels, kernel_size)}.")
        library = _conv2d_weights(in_channels, out_channels, kernel_size)
        if not np.allclose(w, library, rtol=1e-5, atol=1e-6 * target):
            raise Mismatch(f"for {where} the weights have He's statistics but are not the numbers "
                           "tinyresnet.nn.Conv2d draws from the same rng, so section 10's net would not start "
                           "from the library's weights.\nhint: one call, in float64 and in this shape: "
                           "rng.standard_normal((out_channels, in_channels, kernel_size, kernel_size)) * std.")
    return (f"{len(HE_CONFIGS)} layer shapes: zero mean, std sqrt(2 / fan_in), and the very numbers "
            "tinyresnet.nn.Conv2d draws from the same rng")


# ------------------------------------------------------------------ the basic block and the 6n+2 net
#
# The exercises get the layers and decide the architecture. The checks hand them the layers of a
# tinyresnet net, with random batch-norm scales and shifts so that every layer leaves a trace,
# and compare with that net's own forward pass: the same weights must give the same outputs and
# the same gradients. Each conv records how it was called, so that a wrong stride or a wrong
# number of blocks can be named.

# x shape, out_channels, stride, residual
BLOCK_CONFIGS = [
    ((2, 16, 8, 8), 16, 1, True),      # inside a stage: the identity shortcut
    ((2, 16, 8, 8), 32, 2, True),      # the first block of stage 2: option A
    ((2, 16, 8, 8), 16, 1, False),     # the plain block
    ((2, 16, 8, 8), 32, 2, False),     # the plain block that halves the map
    ((2, 3, 5, 5), 6, 2, True),        # odd sizes
]
NET_CONFIGS = [(8, True), (8, False), (14, True), (14, False), (20, True)]   # depth, residual
NET_INPUT = (2, 3, 16, 16)             # small images: stage 3 works on 4x4 maps

BLOCK_SHAPE_HINT = ("x is (N, C_in, H, W); block.conv1(x, stride) gives (N, C_out, H / stride, W / stride), and "
                    "so must the shortcut: option_a_shortcut(x, h.shape[1], stride) subsamples by the same "
                    "stride and adds the missing channels.")
NET_SHAPE_HINT = ("net.blocks holds 3n blocks, stage by stage, n = (depth - 2) // 6; each block's input has the "
                  "channels of the block before it (16, then 32 from stage 2, 64 from stage 3). At the end "
                  "F.global_avg_pool(h) turns (N, 64, H/4, W/4) into the (N, 64) that net.fc takes.")


def randomize_norms(model, rng):
    """Random batch-norm scales and shifts: with gamma = 1 and beta = 0 some slips would not show."""
    for m in model.modules():
        if isinstance(m, BatchNorm2d):
            m.gamma.data[...] = rng.uniform(0.5, 1.5, m.gamma.shape)
            m.beta.data[...] = rng.normal(0, 0.5, m.beta.shape)


def conv_layer(conv, calls, name):
    """The weights of a tinyresnet Conv2d as an exercise's layer, conv(x, stride): 3x3, padding 1.
    Each call is recorded in `calls` as (name, stride)."""
    def layer(x, stride):
        calls.append((name, stride))
        return F.conv2d(x, conv.weight, stride, 1)
    return layer


def block_layers(block, calls, k=0):
    """What basic_block_forward gets: the four layers of a tinyresnet BasicBlock, and nothing else."""
    return SimpleNamespace(conv1=conv_layer(block.conv1, calls, (k, "conv1")), bn1=block.bn1,
                           conv2=conv_layer(block.conv2, calls, (k, "conv2")), bn2=block.bn2)


class Blocks(list):
    """net.blocks: a list that notes an index asked for beyond its end (a wrong n does that)."""

    def __init__(self, blocks, calls):
        super().__init__(blocks)
        self.calls = calls

    def __getitem__(self, index):
        if isinstance(index, int) and index >= len(self):
            self.calls.append((("beyond", index), None))
        return super().__getitem__(index)


def net_layers(model, calls):
    """What resnet_forward gets: the layers of a tinyresnet CifarResNet."""
    return SimpleNamespace(conv=conv_layer(model.conv, calls, "first conv"), bn=model.bn, fc=model.fc,
                           blocks=Blocks([block_layers(b, calls, k) for k, b in enumerate(model.blocks)], calls))


def _same(a, b):
    return a.shape == b.shape and np.allclose(a, b, rtol=1e-4, atol=1e-5)


def _as_tensor(out, where, fn_name):
    if not isinstance(out, Tensor):
        raise Mismatch(f"for {where} {fn_name} returned {describe(out)}; return a Tensor, computed with the "
                       "layers, F.relu and +, so that the gradient can flow back.")
    return out


def _compare_gradients(where, fn_name, params, x, mine, expected, rng):
    """Backward through both outputs with one random upstream gradient; the gradients of x and of
    every parameter must agree."""
    if not mine.requires_grad:
        raise Mismatch(f"for {where} {fn_name}'s output is not connected to the weights: no gradient could "
                       "reach them. Use the Tensors the layers return, not their .data or NumPy arrays.")
    g = rng.standard_normal(expected.shape).astype(np.float32)
    grads = {}
    for label, out in (("yours", mine), ("expected", expected)):
        for p in params.values():
            p.grad = None
        if x is not None:
            x[label].grad = None
        out.backward(g)
        grads[label] = {name: p.grad for name, p in params.items()}
        if x is not None:
            grads[label]["the input x"] = x[label].grad
    for name, want in grads["expected"].items():
        got = grads["yours"][name]
        if got is None or not _same(np.asarray(got), np.asarray(want)):
            raise Mismatch(f"for {where} the outputs agree but the gradient of {name} does not: part of your "
                           "computation is not recorded for the backward pass (a .data, a NumPy array or an "
                           "in-place change of a Tensor).")


def _block_slip(block, data, stride, residual, mine):
    """Name the slip whose output equals the learner's, computed with the library block's own layers."""
    x = Tensor(data)
    h = F.relu(block.bn1(block.conv1(x)))
    before_bn2 = block.conv2(h)
    f = block.bn2(before_bn2)
    shortcut = block.shortcut(x)
    slips = {
        "the block's output has negative values: the ReLU after the addition is missing. Every block ends "
        "with a ReLU, plain or residual": f + shortcut if residual else f,
        "the second convolution goes on without its batch norm: conv2's output must pass block.bn2 before "
        "the addition (each conv is followed by its batch norm)": F.relu(before_bn2 + shortcut if residual
                                                                         else before_bn2),
        "the ReLU between the two convolutions is missing: conv1, bn1, ReLU, then conv2":
            F.relu(block.bn2(block.conv2(block.bn1(block.conv1(x)))) + (shortcut if residual else 0)),
    }
    if residual:
        slips["the ReLU comes before the addition: you add the shortcut to ReLU(BN2(...)). In the paper's "
              "block BN2's output goes straight into the addition, and the one ReLU acts on the sum: "
              "y = ReLU(BN2(conv2(h)) + shortcut(x))"] = F.relu(f) + shortcut
        slips["the ReLU is applied before the addition and again after it: BN2's output goes straight into "
              "the addition, y = ReLU(BN2(conv2(h)) + shortcut(x))"] = F.relu(F.relu(f) + shortcut)
        slips["with residual=True no shortcut was added: add option_a_shortcut(x, h.shape[1], stride) to "
              "BN2's output, before the last ReLU"] = F.relu(f)
    else:
        slips["with residual=False you still added the shortcut: the plain block is the residual block "
              "without the addition"] = F.relu(f + shortcut)
    for slip, out in slips.items():
        if _same(mine, out.numpy()):
            return slip
    return ("the order is: conv1(x, stride), bn1, ReLU, conv2(h, 1), bn2, then (residual only) + "
            "option_a_shortcut(x, h.shape[1], stride), then ReLU")


def _stride_slip(calls, stride):
    """What the recorded conv calls of a block say about its strides, or None."""
    got = dict(calls)
    if got.get((0, "conv1"), stride) != stride:
        return (f"block.conv1 got stride {got[(0, 'conv1')]}; the first conv carries the block's stride, here "
                f"{stride}")
    if got.get((0, "conv2"), 1) != 1:
        return f"block.conv2 got stride {got[(0, 'conv2')]}; the second conv keeps the size: stride 1"
    return None


@check("basic_block_forward", shape_hint=BLOCK_SHAPE_HINT)
def check_basic_block_forward(basic_block_forward):
    rng = np.random.default_rng(5)
    for k, (shape, out_channels, stride, residual) in enumerate(BLOCK_CONFIGS):
        where = (f"x of shape {shape}, {out_channels} output channels, stride {stride}, "
                 f"residual={residual}")
        manual_seed(k)
        block = BasicBlock(shape[1], out_channels, stride, residual, shortcut="A")
        randomize_norms(block, rng)
        params = dict(block.named_parameters())
        data = rng.standard_normal(shape).astype(np.float32)
        x = {"yours": Tensor(data, requires_grad=True), "expected": Tensor(data, requires_grad=True)}
        calls = []
        with case(where):
            mine = _as_tensor(basic_block_forward(block_layers(block, calls), x["yours"], stride, residual),
                              where, "basic_block_forward")
        expected = block(x["expected"])
        wrong_stride = _stride_slip(calls, stride)
        if mine.shape != expected.shape:
            raise Mismatch(f"for {where} the block's output has shape {mine.shape}, expected {expected.shape}."
                           f"\nhint: {wrong_stride or BLOCK_SHAPE_HINT}.")
        if wrong_stride:
            raise Mismatch(f"for {where}:\nhint: {wrong_stride}.")
        if not _same(mine.numpy(), expected.numpy()):
            raise Mismatch(f"for {where} the output differs from tinyresnet's BasicBlock with the same weights."
                           f"\nhint: {_block_slip(block, data, stride, residual, mine.numpy())}.")
        with case(where):
            _compare_gradients(where, "basic_block_forward", params, x, mine, expected, rng)
    return (f"{len(BLOCK_CONFIGS)} blocks, plain and residual, stride 1 and 2: outputs and gradients equal "
            "tinyresnet's BasicBlock with the same weights")


def _expected_calls(n):
    """The conv calls of a 6n+2 net in order: (name, stride)."""
    calls = [("first conv", 1)]
    for k in range(3 * n):
        calls += [((k, "conv1"), 2 if k in (n, 2 * n) else 1), ((k, "conv2"), 1)]
    return calls


def _structure_slip(calls, depth):
    """What the recorded conv calls say about the blocks run and their strides, or None."""
    n = (depth - 2) // 6
    if calls == _expected_calls(n):
        return None
    beyond = [name[1] for name, _ in calls if name[0] == "beyond"]
    ran = [name[0] for name, _ in calls if name != "first conv" and name[1] == "conv1"]
    if beyond or ran != list(range(3 * n)):
        asked = f", then asked for net.blocks[{beyond[0]}]" if beyond else ""
        return (f"your forward ran blocks {ran} of net.blocks{asked}. A net of depth {depth} has "
                f"n = (depth - 2) // 6 = {n} blocks per stage: run all 3n = {3 * n}, each once, in order")
    strides = [s for name, s in calls if name == "first conv" or name[1] == "conv1"]
    want = [s for name, s in _expected_calls(n) if name == "first conv" or name[1] == "conv1"]
    if strides != want:
        return (f"the first conv of the net and of each block got strides {strides}; expected {want}. "
                "Only the first block of stages 2 and 3 halves the map (stride 2); stage 1 keeps the first "
                "conv's size. (resnet_forward chooses each block's stride, basic_block_forward passes it to "
                "block.conv1)")
    return ("each block's second conv must get stride 1 (basic_block_forward: conv2(h, 1)); "
            f"the convs were called as {calls}")


def _net_slip(model, data, depth, residual, mine):
    """Name the slip whose logits equal the learner's, computed with the library net's own layers."""
    other = cifar_resnet(depth, not residual)
    other.load_state_dict(model.state_dict())
    if _same(mine, other(Tensor(data)).numpy()):
        return (f"with residual={residual} your logits are those of the {'plain' if residual else 'residual'} "
                "net: pass resnet_forward's residual on to every block")
    h = model.bn(model.conv(Tensor(data)))
    for block in model.blocks:
        h = block(h)
    if _same(mine, model.fc(F.global_avg_pool(h)).numpy()):
        return "the ReLU after the first conv and its batch norm is missing: h = ReLU(net.bn(net.conv(x, 1)))"
    return ("every block ran with the right stride, so look at the ends: ReLU(net.bn(net.conv(x, 1))) "
            "first, and net.fc(F.global_avg_pool(h)) last. If check_basic_block_forward above did not pass, "
            "fix the block first: resnet_forward uses it")


@check("resnet_forward", shape_hint=NET_SHAPE_HINT)
def check_resnet_forward(resnet_forward):
    rng = np.random.default_rng(6)
    for depth, residual in NET_CONFIGS:
        n = (depth - 2) // 6
        where = f"depth {depth} (n = {n}), residual={residual}, x of shape {NET_INPUT}"
        manual_seed(depth)
        model = cifar_resnet(depth, residual)
        randomize_norms(model, rng)
        params = dict(model.named_parameters())
        data = rng.standard_normal(NET_INPUT).astype(np.float32)
        calls = []
        try:
            with case(where):
                mine = resnet_forward(net_layers(model, calls), Tensor(data), depth, residual)
        except NotImplementedError:
            raise
        except Exception as e:        # a wrong number of blocks or a wrong stride often ends in an error
            slip = _structure_slip(calls, depth)
            if slip is None or not calls:    # no conv ran yet: the error itself, with its line, says most
                raise
            raise Mismatch(f"for {where} your code raised {type(e).__name__}: {e}\nhint: {slip}.") from e
        mine = _as_tensor(mine, where, "resnet_forward")
        slip = _structure_slip(calls, depth)
        if slip is not None:
            raise Mismatch(f"for {where}:\nhint: {slip}.")
        if mine.shape != (NET_INPUT[0], 10):
            raise Mismatch(f"for {where} the logits have shape {mine.shape}, expected {(NET_INPUT[0], 10)}: one "
                           f"score per class and image.\nhint: {NET_SHAPE_HINT}")
        expected = model(Tensor(data))
        if not _same(mine.numpy(), expected.numpy()):
            raise Mismatch(f"for {where} the logits differ from tinyresnet's cifar_resnet({depth}, "
                           f"residual={residual}) with the same weights.\n"
                           f"hint: {_net_slip(model, data, depth, residual, mine.numpy())}.")
        with case(where):
            _compare_gradients(where, "resnet_forward", params, None, mine, expected, rng)
    return (f"depths {sorted({d for d, _ in NET_CONFIGS})}, plain and residual: every block once with the "
            "right stride, logits and gradients equal tinyresnet's cifar_resnet with the same weights")
