"""im2col and col2im: turn a convolution into one matrix product.

A 3×3 convolution looks at a 3×3 patch of every channel around each output
pixel. im2col copies each patch into a row, so the unfolded matrix has one
row per output pixel (n, i, j) and one column per (kernel row, kernel column,
channel):

    cols: (N*Ho*Wo, R*S*C)        out = cols @ w.transpose(2, 3, 1, 0).reshape(R*S*C, K)

col2im is the adjoint of im2col: every entry of cols is added back to the
input pixel it was copied from (pixels shared by overlapping patches get the sum).

Memory layout is where the time goes, so activations are kept channels-last in
memory, (N, H, W, C), while being indexed as (N, C, H, W) (see
device.channels_last_zeros). Then one patch row is R runs of S*C neighbouring
floats, the product's (N*Ho*Wo, K) result already *is* the next activation,
and no transposes are copied around the product.
"""
from .device import channels_last_zeros, xp_of


def output_size(size, kernel, stride, padding):
    return (size + 2 * padding - kernel) // stride + 1


def pad_spatial(x, padding):
    """x: (N, C, H, W) -> (N, C, H+2p, W+2p), zeros around, channels-last."""
    if padding == 0:
        return x
    n, c, h, w = x.shape
    out = channels_last_zeros(xp_of(x), (n, c, h + 2 * padding, w + 2 * padding), x.dtype)
    out[:, :, padding:padding + h, padding:padding + w] = x
    return out


def patches(x, kernel, stride=1, padding=0):
    """Every patch of x: (N, C, H, W) as a view (N, Ho, Wo, R, S, C), without copying.

    view[n, i, j, r, s, c] is x_padded[n, c, i*stride + r, j*stride + s]: the
    strides of the padded input, walked twice (once per output pixel, once
    within the patch).
    """
    r, s = kernel
    xpad = pad_spatial(x, padding)
    n, c, hp, wp = xpad.shape
    ho, wo = (hp - r) // stride + 1, (wp - s) // stride + 1
    sn, sc, sh, sw = xpad.strides
    return xp_of(x).lib.stride_tricks.as_strided(
        xpad, shape=(n, ho, wo, r, s, c), strides=(sn, sh * stride, sw * stride, sh, sw, sc))


def im2col(x, kernel, stride=1, padding=0):
    """Unfold x: (N, C, H, W) into cols: (N*Ho*Wo, R*S*C) for an R×S kernel."""
    view = patches(x, kernel, stride, padding)
    n, ho, wo, r, s, c = view.shape
    return view.reshape(n * ho * wo, r * s * c)  # the one real copy: every patch, side by side


def col2im(cols, x_shape, kernel, stride=1, padding=0):
    """Adjoint of im2col: cols: (N*Ho*Wo, R*S*C) -> dx: (N, C, H, W).

    Loop over the R*S kernel offsets: the entries of cols that were copied
    from offset (i, j) of every patch are added back, all images and output
    pixels at once, to the pixels they came from.
    """
    r, s = kernel
    n, c, h, w = x_shape
    ho, wo = output_size(h, r, stride, padding), output_size(w, s, stride, padding)
    cols = cols.reshape(n, ho, wo, r, s, c)
    dx = xp_of(cols).zeros((n, h + 2 * padding, w + 2 * padding, c), dtype=cols.dtype)
    for i in range(r):
        for j in range(s):
            dx[:, i:i + stride * ho:stride, j:j + stride * wo:stride, :] += cols[:, :, :, i, j, :]
    return dx[:, padding:padding + h, padding:padding + w, :].transpose(0, 3, 1, 2)


def unfold_kernel(w):
    """w: (K, C, R, S) -> w2: (R*S*C, K), the column order of im2col."""
    k, c, r, s = w.shape
    return w.transpose(2, 3, 1, 0).reshape(r * s * c, k)


def fold_kernel(w2, w_shape):
    """The inverse of unfold_kernel, as a contiguous (K, C, R, S) array."""
    k, c, r, s = w_shape
    return xp_of(w2).ascontiguousarray(w2.reshape(r, s, c, k).transpose(3, 2, 0, 1))


def unfold_grad(g):
    """g: (N, K, Ho, Wo) -> g2: (N*Ho*Wo, K), one row per output pixel (no copy if channels-last)."""
    return g.transpose(0, 2, 3, 1).reshape(-1, g.shape[1])
