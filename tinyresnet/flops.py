"""Counting a network's multiply-adds: the "FLOPs" of the paper's Table 1.

The paper counts multiply-adds of the weighted layers: ResNet-50 has "3.8 × 10⁹ FLOPs".
A convolution computes, for every output value, a dot product of length C·R·S,
and a fully connected layer one of length `in` per output:

    conv2d (N, K, Ho, Wo) output, w: (K, C, R, S):   Ho · Wo · K · C · R · S  per image
    linear (N, out) output,       w: (out, in):      out · in                 per image

Batch norm, ReLU, pooling and the shortcut additions cost one operation per
value, a fraction of a percent of the convolutions' work, and are not counted.
Rather than derive every layer's output size by hand, `multiply_adds` runs the
net once with a forward hook on each Conv2d and Linear that reads the size of
its output.
"""
from .autograd import Tensor, no_grad
from .nn import Conv2d, Linear


def layer_multiply_adds(module, output):
    """Multiply-adds per image of one Conv2d or Linear, given its output Tensor."""
    per_output = module.weight.data.size // module.weight.shape[0]   # C·R·S, or `in`
    return (output.data.size // output.shape[0]) * per_output


def multiply_adds(model, x):
    """[(layer name, output shape, multiply-adds per image)] for every Conv2d and Linear in
    `model`, in the order they run on x: an array or Tensor (N, C, H, W). The total is
    sum(row[2] for row in rows). Runs the model once, in eval mode, without a graph."""
    rows, handles = [], []

    def hook(name):
        def record(module, inputs, output):
            rows.append((name, tuple(output.shape[1:]), layer_multiply_adds(module, output)))
        return record

    for name, module in model.named_modules():
        if isinstance(module, (Conv2d, Linear)):
            handles.append(module.register_forward_hook(hook(name)))
    was_training = model.training
    try:
        model.eval()     # eval: the batch-norm running statistics are not touched
        with no_grad():
            model(x if isinstance(x, Tensor) else Tensor(x))
    finally:
        model.train(was_training)
        for handle in handles:
            handle.remove()
    return rows
