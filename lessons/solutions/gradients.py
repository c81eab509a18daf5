"""Lesson 08: the norm of the gradient that reaches each block's output."""
import numpy as np

from tinyresnet import Tensor
from tinyresnet import functional as F


def block_output_grad_norms(model, x, y):
    """model: a CifarResNet; x: images (N, 3, 32, 32); y: labels (N,) -> one float per block."""
    # 1. a forward hook on every block keeps its output and asks the engine to keep its
    #    gradient (an intermediate tensor's gradient is dropped after use otherwise)
    outputs = []

    def keep(block, inputs, output):
        output.retain_grad()
        outputs.append(output)

    handles = [block.register_forward_hook(keep) for block in model.blocks]
    # 2. one forward pass and the training loss; the hooks come off again, even on an error
    try:
        loss = F.cross_entropy(model(Tensor(x)), y)
    finally:
        for handle in handles:
            handle.remove()
    # 3. backward fills output.grad = dLoss/d(output) for every kept output
    loss.backward()
    # 4. one number per block, in network order: the norm over all values (images, channels, pixels)
    return [float(np.linalg.norm(output.grad)) for output in outputs]
