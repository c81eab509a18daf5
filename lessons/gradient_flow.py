"""Lesson 08's measurements: the forward signal and the gradient, block by block and layer by layer.

    from gradient_flow import measure
    m = measure(model, x, y)      # one forward and backward pass of the cross-entropy loss on (x, y)

`measure` returns, for one batch, with the model in the mode it is in (training mode, as during
training: batch norm normalizes with the batch's own statistics):

    m["activation_std"][b]   std of block b's output h_b (all its values)        b = 0 .. 3n-1
    m["grad_norm"][b]        ||dLoss/dh_b||, the gradient reaching that output   (Frobenius norm)
    m["block_layers"][b]     the weighted layer h_b comes out of: 3, 5, ..., 6n+1
    m["weight_ratio"][l]     ||dLoss/dW_l|| / ||W_l|| for every conv, in network order (layer l + 1)
    m["loss"]                the loss of that batch

It reads the intermediate gradients with the engine's public hooks: a forward hook on each
block keeps its output and asks it to retain its gradient. The model is left as it was
(the batch-norm running statistics are restored, the parameter gradients cleared).

`grad_norms_by_cutting` gets the gradient norms a second way, as an independent reference for
the exercise's check: it cuts the graph at one block's output (a forward hook replaces the
output by a fresh leaf tensor), so that after backward the leaf's .grad is dLoss/dh_b.
"""
import numpy as np

from tinyresnet import Tensor
from tinyresnet import functional as F
from tinyresnet.nn import Conv2d


def measure(model, x, y):
    """Activation stds, gradient norms at block outputs, relative weight gradients: see the module doc.
    model: a CifarResNet; x: (N, 3, 32, 32) float32 images; y: (N,) integer labels."""
    saved = model.state_dict()
    outputs = []

    def keep(block, inputs, output):
        output.retain_grad()
        outputs.append(output)

    handles = [block.register_forward_hook(keep) for block in model.blocks]
    try:
        model.zero_grad()
        loss = F.cross_entropy(model(Tensor(x)), y)
        loss.backward()
    finally:
        for handle in handles:
            handle.remove()
    convs = [m for m in model.modules() if isinstance(m, Conv2d)]
    result = {
        "loss": loss.item(),
        "activation_std": np.array([float(out.numpy().std()) for out in outputs]),
        "grad_norm": np.array([_norm(out.grad) for out in outputs]),
        "block_layers": np.arange(3, 2 * len(outputs) + 2, 2),
        "weight_ratio": np.array([_norm(c.weight.grad) / _norm(c.weight.data) for c in convs]),
    }
    model.load_state_dict(saved)
    model.zero_grad()
    return result


def grad_norms_by_cutting(model, x, y):
    """||dLoss/dh_b|| for every block b, one forward and backward pass per block: the graph is
    cut at h_b, which becomes a leaf, so its .grad is what reaches it. The model is left as it was."""
    saved = model.state_dict()
    norms = []
    for b, block in enumerate(model.blocks):
        cut = []

        def replace(module, inputs, output):
            cut.append(Tensor(output.data, requires_grad=True))
            return cut[0]

        handle = block.register_forward_hook(replace)
        try:
            model.load_state_dict(saved)          # every pass starts from the same running statistics
            F.cross_entropy(model(Tensor(x)), y).backward()
        finally:
            handle.remove()
        norms.append(_norm(cut[0].grad))
    model.load_state_dict(saved)
    model.zero_grad()
    return norms


def first_to_last(values):
    """values[0] / values[-1]: how much larger the quantity is at the first layer than at the last."""
    return float(values[0] / values[-1])


def _norm(a):
    return float(np.linalg.norm(np.asarray(a, dtype=np.float64)))
