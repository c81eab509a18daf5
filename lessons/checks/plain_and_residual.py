"""Lesson 05 (05_plain_and_residual.ipynb): the option-A shortcut of a residual block.

The reference is tinyresnet's own BasicBlock.shortcut; the learner's shortcut must equal
it, depend on no parameter, and pass a gradient check.
"""
import numpy as np

from tinyresnet import Tensor, gradcheck
from tinyresnet.autograd import topological_order
from tinyresnet.models import BasicBlock

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


@check("he_normal", shape_hint=HE_SHAPE_HINT)
def check_he_normal(he_normal):
    for out_channels, in_channels, kernel_size in HE_CONFIGS:
        where = f"out_channels {out_channels}, in_channels {in_channels}, kernel_size {kernel_size}"
        shape = (out_channels, in_channels, kernel_size, kernel_size)
        with case(where):
            w = he_normal(out_channels, in_channels, kernel_size, np.random.default_rng(1))
            again = he_normal(out_channels, in_channels, kernel_size, np.random.default_rng(1))
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
    return (f"{len(HE_CONFIGS)} layer shapes: zero mean, std sqrt(2 / fan_in) within sampling error, "
            "repeatable from the rng, as tinyresnet.nn.Conv2d draws them")
