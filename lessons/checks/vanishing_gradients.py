"""Lesson 08 (08_vanishing_gradients.ipynb): the norm of the gradient reaching each block's output.

The reference is gradient_flow.grad_norms_by_cutting, which needs no hook that keeps a
gradient: it cuts the graph at each block's output in turn and reads the leaf's .grad.
The likely slips are named from what the learner's numbers equal instead: the norms of the
activations, the gradients at the blocks' inputs, squared norms, a summed loss, the blocks
in backward order, or a model switched to evaluation mode.
"""
import numpy as np

from gradient_flow import grad_norms_by_cutting
from tinyresnet import Tensor, no_grad
from tinyresnet.models import cifar_resnet
from tinyresnet.nn import manual_seed

from .harness import HOOKS_LEFT_HINT, Mismatch, case, check, describe, hooks_left_on

SHAPE_HINT = ("x is a NumPy array (N, 3, 32, 32) and y (N,) integer labels: the loss is "
              "F.cross_entropy(model(Tensor(x)), y); each block's output is a Tensor (N, C, H, W) and, "
              "after loss.backward(), its .grad an array of that shape: np.linalg.norm(grad) is one float.")
# depth, residual, batch_norm: two architectures, and a net whose gradients nothing normalizes
NETS = ((8, True, True), (14, False, True), (8, True, False))


def _name(depth, residual, batch_norm):
    return f"{'ResNet' if residual else 'plain'}-{depth}{'' if batch_norm else ' without batch norm'}"


def _activation_norms(model, x):
    """The norms of the blocks' outputs (what a learner who forgets .grad gets)."""
    outputs = []
    handles = [b.register_forward_hook(lambda m, i, out: outputs.append(float(np.linalg.norm(out.data))))
               for b in model.blocks]
    with no_grad():
        model(Tensor(x))
    for h in handles:
        h.remove()
    return np.array(outputs)


def _slip(mine, expected, model, x, y, saved):
    """The name of the slip that explains `mine`, or a general hint."""
    n = len(x)
    if np.allclose(mine, expected[::-1], rtol=1e-3):
        return ("your list is in backward order: the gradient reaches the last block first, so hooks "
                "on the gradients fire from the last block to the first; return them in network order "
                "(block 1 first), e.g. keep the outputs during the forward pass and read .grad afterwards")
    if np.allclose(mine, expected ** 2, rtol=1e-3):
        return "these are squared norms (sums of squares): take the square root, np.linalg.norm(grad)"
    if np.allclose(mine, expected * n, rtol=1e-3):
        return (f"these are {n} times too large: the loss was summed over the batch; use "
                "F.cross_entropy(logits, y), the mean over the batch, as in training")
    if len(mine) > 1 and np.allclose(mine[1:], expected[:-1], rtol=1e-3):
        return ("these are the gradients at each block's input, one block too early: in "
                "fn(module, inputs, output) use output, not inputs[0]")
    model.load_state_dict(saved)
    if np.allclose(mine, _activation_norms(model, x), rtol=1e-3):
        return ("these are the norms of the blocks' outputs themselves, not of their gradients: "
                "after loss.backward(), take the norm of output.grad (call output.retain_grad() in "
                "the hook so that the engine keeps it)")
    model.load_state_dict(saved)
    model.eval()
    try:
        in_eval = np.array(grad_norms_by_cutting(model, x, y))
    finally:
        model.train()
        model.load_state_dict(saved)
    if np.allclose(mine, in_eval, rtol=1e-3):
        return ("these are evaluation-mode gradients: leave the model in the mode it is given (training "
                "mode, as during training, where batch norm uses the batch's statistics); do not call model.eval()")
    return ("take the norm over all values of dLoss/d(output) of each block (images, channels, pixels "
            "together), from one forward and one backward pass of the mean cross-entropy loss")


@check("block_output_grad_norms", shape_hint=SHAPE_HINT)
def check_block_output_grad_norms(block_output_grad_norms):
    rng = np.random.default_rng(0)
    checked = []
    for depth, residual, batch_norm in NETS:
        manual_seed(depth)
        model = cifar_resnet(depth, residual, batch_norm=batch_norm)
        x = rng.standard_normal((6, 3, 32, 32)).astype(np.float32)
        y = rng.integers(0, 10, size=6)
        saved = model.state_dict()
        expected = np.array(grad_norms_by_cutting(model, x, y))
        name = _name(depth, residual, batch_norm)
        with case(f"{name} on 6 random images"):
            try:
                mine = block_output_grad_norms(model, x, y)
            except AttributeError as e:
                if "HookHandle" not in str(e) and "'tuple' object" not in str(e):
                    raise
                raise Mismatch(f"for {name} your code raised AttributeError: {e}.\nhint: a forward hook "
                               "that returns something replaces the module's output with it; a lambda "
                               "returns the value of its expression (a hook handle from register_hook, a "
                               "tuple of several calls): write the hook as a def that returns nothing.") from None
            except TypeError as e:
                if "NoneType" not in str(e):
                    raise
                raise Mismatch(f"for {name} your code raised TypeError: {e}.\nhint: a block output's .grad "
                               "is None: call output.retain_grad() inside the forward hook (an intermediate "
                               "Tensor keeps no gradient otherwise), and read .grad only after "
                               "loss.backward().") from None
        left = hooks_left_on(model)
        if left:
            raise Mismatch(f"for {name}: {left} forward hooks are still on the model after your function "
                           f"returned; the next call would run them again.\nhint: {HOOKS_LEFT_HINT}")
        blocks = len(model.blocks)
        if not hasattr(mine, "__len__") or len(mine) != blocks:
            got = f"{len(mine)} values" if hasattr(mine, "__len__") else describe(mine)
            raise Mismatch(f"for {name} you returned {got}; it has {blocks} blocks (3n for depth 6n+2).\n"
                           "hint: one forward hook per block in model.blocks, one float per block.")
        for b, value in enumerate(mine):
            if np.ndim(value) != 0:
                raise Mismatch(f"for {name}, block {b + 1}: you returned {describe(value)}; return one float "
                               "per block, the norm over all its values: np.linalg.norm(output.grad).")
        mine = np.asarray(mine, dtype=np.float64)
        if not model.training:
            raise Mismatch(f"for {name}: the model was left in evaluation mode; measure in the mode you are "
                           "given (do not call model.eval()).")
        if not np.allclose(mine, expected, rtol=1e-4, atol=1e-9):
            k = int(np.argmax(np.abs(mine - expected) / np.maximum(expected, 1e-12)))
            hint = _slip(mine, expected, model, x, y, saved)
            raise Mismatch(f"for {name}, block {k + 1}: yours {mine[k]:.6g}, expected {expected[k]:.6g}.\n"
                           f"hint: {hint}.")
        checked.append(f"{name} ({blocks} blocks)")
    return f"{', '.join(checked)}: the gradient norms match a graph cut at each block's output"
