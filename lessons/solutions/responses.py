"""Lesson 07: the standard deviation of every 3x3 layer's response (the paper's Fig. 7)."""
from tinyresnet import Tensor, no_grad

from experiments import response_layers


def layer_response_stds(model, x):
    """model: a CifarResNet; x: normalized images (N, 3, 32, 32) -> list of 6n+1 floats."""
    # 1. evaluation mode: batch norm uses its running statistics, not this batch's
    model.eval()
    # 2. a forward hook on each 3x3 layer's batch norm measures its output as it passes:
    #    one number per layer, the std over all its values (images, channels, pixels).
    #    The hook returns None (list.append does), so the output goes on unchanged.
    stds = []

    def measure(module, inputs, output):
        stds.append(float(output.numpy().std()))

    handles = [layer.register_forward_hook(measure) for layer in response_layers(model)]
    # 3. one forward pass, without a graph (we only look); the hooks come off again, even on an error
    try:
        with no_grad():
            model(Tensor(x))
    finally:
        for handle in handles:
            handle.remove()
    return stds
