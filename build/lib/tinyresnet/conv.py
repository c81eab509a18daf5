"""2-D convolution as im2col plus one matrix product."""
from .autograd import Tensor
from .device import same_device, xp_of
from .im2col import col2im_of_product, im2col, output_size


def conv2d(x, w, stride=1, padding=0):
    """Cross-correlate x: (N, C, H, W) with w: (K, C, R, S) -> (N, K, Ho, Wo).

    Forward:  cols = im2col(x);  out = cols @ w2              with w2 = w unfolded to (R*S*C, K)
    Backward: dw2 = colsᵀ @ g2;  dx = col2im(g2 @ w2ᵀ)        with g2 = g as (N*Ho*Wo, K)
    (the last product and col2im are done together, one kernel offset at a time).
    """
    same_device(x.data, w.data, op="conv2d")
    _check_shapes(x.shape, w.shape, stride, padding)
    n, c, h, wid = x.shape
    k, _, r, s = w.shape
    ho, wo = output_size(h, r, stride, padding), output_size(wid, s, stride, padding)
    cols = im2col(x.data, (r, s), stride, padding)
    w2 = w.data.transpose(2, 3, 1, 0).reshape(r * s * c, k)
    out = (cols @ w2).reshape(n, ho, wo, k).transpose(0, 3, 1, 2)

    def backward(g):
        g2 = g.transpose(0, 2, 3, 1).reshape(-1, k)
        dw = (cols.T @ g2).reshape(r, s, c, k).transpose(3, 2, 0, 1)
        dx = col2im_of_product(g2, w.data, x.shape, stride, padding) if x.requires_grad else None
        return dx, xp_of(dw).ascontiguousarray(dw)
    return Tensor.from_op(out, (x, w), backward, "conv2d")


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
