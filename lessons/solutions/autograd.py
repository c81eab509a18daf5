"""Lesson 01: the backward passes of elementwise multiplication and matrix multiplication.

Each function gets the op's inputs a, b and the upstream gradient g = dL/d(out),
and returns (dL/da, dL/db), each with the shape of its input.
"""


def mul_backward(a, b, g):
    # out = a * b elementwise, so d out[i] / d a[i] = b[i] and d out[i] / d b[i] = a[i].
    # Chain rule: multiply by the upstream gradient g, element by element.
    da = g * b
    db = g * a
    return da, db


def matmul_backward(a, b, g):
    # out = a @ b, out[i, j] = sum_k a[i, k] b[k, j]   with a: (M, K), b: (K, N), g: (M, N).
    # dL/da[i, k] = sum_j g[i, j] b[k, j]  ->  g @ b.T   (M, N) @ (N, K) = (M, K), a's shape
    # dL/db[k, j] = sum_i a[i, k] g[i, j]  ->  a.T @ g   (K, M) @ (M, N) = (K, N), b's shape
    da = g @ b.T
    db = a.T @ g
    return da, db
