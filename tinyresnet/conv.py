"""2-D convolution as im2col plus one matrix product.

With cols = im2col(x): (N*Ho*Wo, R*S*C), the kernel unfolded to w2: (R*S*C, K)
and the upstream gradient as g2: (N*Ho*Wo, K):

    forward:       out = cols @ w2
    weight grad:   dw2 = colsᵀ @ g2
    input grad:    dx  = col2im(g2 @ w2ᵀ)

conv2d's forward and backward passes call `forward` and `backward` below, which
are exactly these definitions (backward only pairs the two gradients). The CPU
speed wing (tinyresnet/cpu/conv.py) computes the same numbers a few images at a
time, in cache, on every core; tinyresnet.cpu.install() puts its versions in
the place of these two names, and tests/cpu/ checks that they are equal.
"""
from .autograd import Tensor
from .device import same_device
from .im2col import col2im, fold_kernel, im2col, output_size, unfold_grad, unfold_kernel


def conv2d(x, w, stride=1, padding=0):
    """Cross-correlate x: (N, C, H, W) with w: (K, C, R, S) -> (N, K, Ho, Wo)."""
    same_device(x.data, w.data, op="conv2d")
    _check_shapes(x.shape, w.shape, stride, padding)
    out = forward(x.data, w.data, stride, padding)
    return Tensor.from_op(out, (x, w), lambda g: backward(x.data, g, w.data, stride, padding, x.requires_grad),
                          "conv2d")


def forward(x, w, stride, padding):
    """out = im2col(x) @ w2, as (N, K, Ho, Wo) (laid out channels-last, as the product gives it)."""
    n, c, h, wid = x.shape
    k, _, r, s = w.shape
    ho, wo = output_size(h, r, stride, padding), output_size(wid, s, stride, padding)
    out = im2col(x, (r, s), stride, padding) @ unfold_kernel(w)
    return out.reshape(n, ho, wo, k).transpose(0, 3, 1, 2)


def weight_grad(x, g, w_shape, stride, padding):
    """dw = im2col(x)ᵀ @ g2, folded back to the kernel's shape (K, C, R, S)."""
    k, c, r, s = w_shape
    dw2 = im2col(x, (r, s), stride, padding).T @ unfold_grad(g)
    return fold_kernel(dw2, w_shape)


def input_grad(g, w, x_shape, stride, padding):
    """dx = col2im(g2 @ w2ᵀ): each patch's share of the gradient, added back where it came from."""
    return col2im(unfold_grad(g) @ unfold_kernel(w).T, x_shape, w.shape[2:], stride, padding)


def backward(x, g, w, stride, padding, need_dx=True):
    """(dx, dw): both gradients by their definitions (dx is None when x needs none)."""
    dx = input_grad(g, w, x.shape, stride, padding) if need_dx else None
    return dx, weight_grad(x, g, w.shape, stride, padding)


def _check_shapes(x_shape, w_shape, stride, padding):
    """Readable errors for the usual conv2d mistakes."""
    if len(x_shape) != 4 or len(w_shape) != 4:
        raise ValueError(f"conv2d wants x: (N, C, H, W) and w: (K, C, R, S), "
                         f"got x{tuple(x_shape)} and w{tuple(w_shape)}")
    if x_shape[1] != w_shape[1]:
        raise ValueError(f"conv2d: x has {x_shape[1]} channels but w expects {w_shape[1]} "
                         f"(x{tuple(x_shape)}, w{tuple(w_shape)})")
    if stride < 1 or padding < 0:
        raise ValueError(f"conv2d: stride must be >= 1 and padding >= 0, got {stride}, {padding}")
    if min(output_size(x_shape[2], w_shape[2], stride, padding),
           output_size(x_shape[3], w_shape[3], stride, padding)) < 1:
        raise ValueError(f"conv2d: a {w_shape[2]}x{w_shape[3]} kernel does not fit a "
                         f"{x_shape[2]}x{x_shape[3]} input with padding {padding}")
