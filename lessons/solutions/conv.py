"""Lesson 02: conv2d's forward and backward passes, built on im2col and col2im.

x: (N, C, H, W), w: (K, C, R, S), out and its upstream gradient g: (N, K, Ho, Wo).
Both passes work on three matrices whose rows and columns line up:

    cols = my_im2col(x)   (N*Ho*Wo, R*S*C)   rows (n, i, j), columns (r, s, c)
    w2                    (R*S*C, K)         rows (r, s, c), the column order of cols
    g2                    (N*Ho*Wo, K)       rows (n, i, j), the row order of cols

    forward:      out2 = cols @ w2                   -> out (N, K, Ho, Wo)
    weight grad:  dw2  = colsᵀ @ g2                  -> dw  (K, C, R, S)
    input grad:   dx   = my_col2im(g2 @ w2ᵀ)         -> dx  (N, C, H, W)

The two gradients are lesson 01's matmul rule for out2 = cols @ w2; col2im carries the
gradient of cols back to x because it is im2col's adjoint. Lesson 05 imports these two
functions to assemble a ResNet from the learner's own pieces.
"""
from .im2col import my_col2im, my_im2col


def _unfold_kernel(w):
    """w: (K, C, R, S) -> w2: (R*S*C, K), one column per filter, rows ordered (r, s, c)."""
    k, c, r, s = w.shape
    # move K last and C after R, S, so that flattening the first three axes gives (r, s, c)
    return w.transpose(2, 3, 1, 0).reshape(r * s * c, k)


def conv2d_forward(x, w, stride=1, padding=0):
    n, c, h, wid = x.shape
    k, _, r, s = w.shape
    ho = (h + 2 * padding - r) // stride + 1
    wo = (wid + 2 * padding - s) // stride + 1
    # every patch as a row, every filter as a column: the whole layer is one product
    cols = my_im2col(x, (r, s), stride, padding)              # (N*Ho*Wo, R*S*C)
    out2 = cols @ _unfold_kernel(w)                            # (N*Ho*Wo, K), rows (n, i, j)
    # the rows are (n, i, j) and the columns k: split them, then move k to axis 1
    return out2.reshape(n, ho, wo, k).transpose(0, 3, 1, 2)    # (N, K, Ho, Wo)


def conv2d_backward(x, w, g, stride=1, padding=0):
    k, c, r, s = w.shape
    cols = my_im2col(x, (r, s), stride, padding)               # (N*Ho*Wo, R*S*C), as in the forward pass
    w2 = _unfold_kernel(w)                                     # (R*S*C, K)
    # g as the product's result: move k last, then one row per output pixel (n, i, j)
    g2 = g.transpose(0, 2, 3, 1).reshape(-1, k)                # (N*Ho*Wo, K)
    # the matmul rule for out2 = cols @ w2, for the weights ...
    dw2 = cols.T @ g2                                          # (R*S*C, K), rows (r, s, c)
    dw = dw2.reshape(r, s, c, k).transpose(3, 2, 0, 1)         # undo _unfold_kernel: (K, C, R, S)
    # ... and for the patches, which col2im adds back onto the pixels they were copied from
    dcols = g2 @ w2.T                                          # (N*Ho*Wo, R*S*C), like cols
    dx = my_col2im(dcols, x.shape, (r, s), stride, padding)    # (N, C, H, W)
    return dx, dw
