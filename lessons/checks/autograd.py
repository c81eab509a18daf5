"""Lesson 01 (01_autograd.ipynb): the backward passes of elementwise and matrix multiplication.

Each check turns the learner's backward function into a Tensor op with `Tensor.from_op`
and runs `tinyresnet.gradcheck` on it, on the shapes of tests/test_autograd.py.
"""
import numpy as np

from tinyresnet import Tensor, gradcheck

from .harness import Mismatch, case, check, returned

MUL_SHAPES = [(3, 4), (5,), (2, 3, 4)]
MATMUL_SHAPES = [((3, 4), (4, 5)), ((5, 2), (2, 3)), ((1, 6), (6, 1)), ((3, 3), (3, 3))]


def op_from(forward, backward_fn, name):
    """A Tensor op of two inputs whose forward is `forward` and whose backward is yours."""
    def op(a, b):
        ad, bd = a.data, b.data
        return Tensor.from_op(forward(ad, bd), (a, b), lambda g: backward_fn(ad, bd, g), name)
    return op


def _same(x, y):
    return np.shape(x) == np.shape(y) and np.allclose(x, y)


def _leaving_inputs_alone(backward_fn, fn_name, a, b, g, formula):
    """backward_fn(a, b, g), failing if it changed one of its arguments in place: the engine may
    hand the same g to several parents (an addition does), and a and b are the forward's values."""
    kept = [x.copy() for x in (a, b, g)]
    result = backward_fn(a, b, g)
    for name, before, after in zip("abg", kept, (a, b, g)):
        if not np.array_equal(before, after):
            raise Mismatch(f"{fn_name} changed its argument {name} in place (as `{name} *= ...` does).\n"
                           f"hint: return new arrays ({formula}) and leave a, b and g as they came: the "
                           f"engine may pass the same g on to other parents too.")
    return result


def mul_slip(mul_backward):
    """The usual slip in mul_backward, found by trying it on a small input."""
    a, b, g = np.array([2.0, 3.0]), np.array([5.0, 7.0]), np.array([11.0, 13.0])
    da, db = mul_backward(a, b, g)
    if _same(da, g * a) and _same(db, g * b):
        return ("da and db are swapped: out_i = a_i b_i changes with a_i at the rate b_i, so the "
                "gradient of each input carries the OTHER input.")
    if _same(da, db):
        return ("da and db are the same expression (copied from one line to the other?): each input's "
                "gradient carries the OTHER input, da = g * b and db = g * a.")
    if _same(da, b) or _same(db, a):
        return "the upstream gradient g is not multiplied in: the chain rule multiplies the local slope by g."
    if _same(da, g) or _same(db, g):
        return ("that is the gradient of a sum (a + b); in a product each input's gradient carries "
                "the other input as its slope.")
    return "for out = a * b each out_i depends on a_i alone, with slope b_i: the chain rule needs no sum."


def matmul_slip(matmul_backward):
    """The usual slip in matmul_backward, found by trying it on square matrices (no shape error)."""
    rng = np.random.default_rng(5)
    a, b, g = rng.standard_normal((3, 3, 3))
    da, db = matmul_backward(a, b, g)
    if _same(da, g @ b):
        return "da = g @ b misses a transpose: in the sum over j, g[i, j] meets b[k, j] (b's second index)."
    if _same(db, g.T @ a) or _same(da, b.T @ g) or _same(db, g @ a.T):
        return ("the right factors, in the wrong order or transposed: write the sum over the shared index, "
                "then check that da has a's shape (M, K) and db b's shape (K, N).")
    if _same(db, a @ g):
        return "db = a @ g misses a transpose: in the sum over i, a[i, k] meets g[i, j] (a's first index)."
    return ("write dL/da[i, k] = Σ_j g[i, j] · d out[i, j]/d a[i, k] and read the sum as a matrix product; "
            "then the same for b.")


MUL_SHAPE_HINT = ("in an elementwise product every array has the shape of a: "
                  "no @ and no sums are needed.")
MATMUL_SHAPE_HINT = ("g is (M, N), a is (M, K), b is (K, N); da must be (M, K) and db (K, N). "
                     "Which product of g with b gives (M, K), and which of a with g gives (K, N)?")


@check("mul_backward", shape_hint=MUL_SHAPE_HINT, value_hint=mul_slip)
def check_mul_backward(mul_backward):
    rng, worst = np.random.default_rng(0), 0.0
    op = op_from(np.multiply, mul_backward, "mul")
    for shape in MUL_SHAPES:
        where = f"mul of two {shape} arrays"
        a, b, g = rng.standard_normal((3, *shape))
        with case(where):
            returned(_leaving_inputs_alone(mul_backward, "mul_backward", a, b, g, "da = g * b, not g *= b"),
                     "mul_backward",
                     [("da", shape), ("db", shape)])
            worst = max(worst, gradcheck(op, a, b, name=where))
    return f"gradcheck on {len(MUL_SHAPES)} shapes, worst relative error {worst:.1e}"


@check("matmul_backward", shape_hint=MATMUL_SHAPE_HINT, value_hint=matmul_slip)
def check_matmul_backward(matmul_backward):
    rng, worst = np.random.default_rng(0), 0.0
    op = op_from(np.matmul, matmul_backward, "matmul")
    for sa, sb in MATMUL_SHAPES:
        where = f"matmul {sa} @ {sb}"
        a, b = rng.standard_normal(sa), rng.standard_normal(sb)
        g = rng.standard_normal((sa[0], sb[1]))
        with case(where):
            returned(_leaving_inputs_alone(matmul_backward, "matmul_backward", a, b, g, "da = g @ ..., not g @= ..."),
                     "matmul_backward",
                     [("da", sa), ("db", sb)])
            worst = max(worst, gradcheck(op, a, b, name=where))
    return f"gradcheck on {len(MATMUL_SHAPES)} shapes, worst relative error {worst:.1e}"
