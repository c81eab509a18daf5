"""Lesson 07: the standard deviation of every 3x3 layer's response (the paper's Fig. 7)."""
from tinyresnet import Tensor, no_grad


def layer_response_stds(model, x):
    """model: a CifarResNet; x: normalized images (N, 3, 32, 32) -> list of 6n+1 floats."""
    # 1. evaluation mode: batch norm uses its running statistics, not this batch's
    model.eval()
    # 2. no graph is needed: we only look at the forward pass
    responses = []
    with no_grad():
        model(Tensor(x), responses)      # appends each 3x3 layer's output after BN
    # 3. one number per layer: the std over all its values (images, channels, pixels)
    return [float(r.numpy().std()) for r in responses]
