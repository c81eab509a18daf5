"""gradcheck: how a wrong backward pass is caught, and what the error message tells you.

Each broken op below is a classic mistake. gradcheck must fail on it with a
message naming the op and the argument (by its name, such as "gamma", not only its
position), the numeric and analytic values, the relative error and a hint that points at
the kind of mistake.
"""
import numpy as np
import pytest

from tinyresnet import GradcheckError, Tensor, gradcheck

pytestmark = pytest.mark.gradcheck


def square(x):
    """x ** 2, elementwise, with a correct backward pass: 2 x g."""
    return Tensor.from_op(x.data * x.data, (x,), lambda g: (2 * x.data * g,), "square")


def square_with(backward_of):
    """x ** 2 whose backward is backward_of(x, g): a place to plant a bug."""
    def op(x):
        return Tensor.from_op(x.data * x.data, (x,), lambda g: backward_of(x.data, g), "square")
    return op


BROKEN = {
    # name: (backward(x, g), what the hint must say)
    "factor-2": (lambda x, g: (4 * x * g,), r"analytic is 2 × numeric: a missing or extra constant factor"),
    "factor-half": (lambda x, g: (x * g,), r"analytic is 0\.5 × numeric: a missing or extra constant factor"),
    "sign-flipped": (lambda x, g: (-2 * x * g,), r"analytic = -numeric: a sign is flipped"),
    "zeros": (lambda x, g: (0 * x,), r"returned all zeros: is the upstream gradient g multiplied in"),
    "upstream-ignored": (lambda x, g: (2 * x,), r"the formula is off for this argument"),
}


def test_passes_on_a_correct_op(xp, rng):
    worst = gradcheck(square, xp.asarray(rng.standard_normal((3, 4))), name="square")
    assert 0 <= worst < 1e-6, f"gradcheck returns the worst relative error it saw, got {worst}"


@pytest.mark.parametrize("bug", list(BROKEN))
def test_catches_a_broken_backward(bug, xp, rng):
    backward, hint = BROKEN[bug]
    with pytest.raises(GradcheckError) as info:
        gradcheck(square_with(backward), xp.asarray(rng.standard_normal((3, 4))), name="my_square")
    message = str(info.value)
    for part in ["my_square", "gradient of x (argument 0), shape (3, 4)", "numeric (central differences)",
                 "analytic (your backward)", "relative error"]:
        assert part in message, f"the message should contain {part!r}:\n{message}"
    assert "hint:" in message
    assert info.match(hint), f"wrong hint for the '{bug}' bug:\n{message}"


def square_in_float32(x):
    """x ** 2 with a correct backward, computed in float32 whatever the input: a learner's np.zeros(..., float32)."""
    x32 = x.data.astype(np.float32)
    return Tensor.from_op(x32 * x32, (x,), lambda g: (2 * x32 * g,), "square")


def test_an_op_computing_in_float32_is_named_as_the_likely_cause(rng):
    """The formula is right but the op rounds to float32: the hint must say so, not blame the formula."""
    with pytest.raises(GradcheckError) as info:
        gradcheck(square_in_float32, rng.standard_normal((3, 4)) * 10, name="my_square")
    assert info.match(r"computed in float32.*rounding noise"), (
        f"an op that computes in float32 should be told so, not that its formula is off:\n{info.value}")
    assert "the formula is off" not in str(info.value)


def test_message_reports_the_actual_numbers(rng):
    with pytest.raises(GradcheckError) as info:
        gradcheck(square_with(lambda x, g: (-2 * x * g,)), np.array([1.5]), name="neg_square")
    # x = 1.5 and upstream u: numeric is 3u, analytic is -3u, relative error |6u| / |3u| = 2
    upstream = np.random.default_rng(0).standard_normal(1)[0]
    message = str(info.value)
    assert f"numeric (central differences) = {3 * upstream:.6g}" in message, message
    assert f"analytic (your backward)      = {-3 * upstream:.6g}" in message, message
    assert "relative error                = 2" in message, message


def mul_bad_db(a, b):
    """a * b whose gradient for b is wrong (it carries b, not a)."""
    return Tensor.from_op(a.data * b.data, (a, b), lambda g: (g * b.data, g * b.data), "mul")


def test_names_the_wrong_argument(rng):
    """Only the second argument's gradient is wrong: the message names it, from op's signature."""
    with pytest.raises(GradcheckError, match=r"^mul_bad_db: gradient of b \(argument 1\), shape \(2, 3\), is wrong"):
        gradcheck(mul_bad_db, rng.standard_normal((2, 3)), rng.standard_normal((2, 3)))


def test_arg_names_name_the_arguments(rng):
    """arg_names say what each input is, e.g. batch norm's ("x", "gamma", "beta")."""
    with pytest.raises(GradcheckError, match=r"^mul: gradient of gamma \(argument 1\), shape \(2, 3\)"):
        gradcheck(mul_bad_db, rng.standard_normal((2, 3)), rng.standard_normal((2, 3)), name="mul",
                  arg_names=("x", "gamma"))
    with pytest.raises(ValueError, match=r"2 inputs but 3 arg_names"):
        gradcheck(mul_bad_db, rng.standard_normal(2), rng.standard_normal(2), arg_names=("x", "gamma", "beta"))


def test_an_op_without_parameter_names_says_argument_k(rng):
    """An op taking *args has no names for its inputs: the message falls back to their positions."""
    def star_args(*ts):
        return mul_bad_db(*ts)
    with pytest.raises(GradcheckError, match=r"^star_args: gradient of argument 1, shape \(2, 3\), is wrong"):
        gradcheck(star_args, rng.standard_normal((2, 3)), rng.standard_normal((2, 3)))


def test_default_name_is_the_function_name(rng):
    def my_broken_op(x):
        return Tensor.from_op(x.data * 2, (x,), lambda g: (g,), "times2")
    with pytest.raises(GradcheckError, match=r"^my_broken_op: "):
        gradcheck(my_broken_op, rng.standard_normal(3))


def test_wrong_gradient_shape():
    def transposed(x):
        return Tensor.from_op(x.data * 3, (x,), lambda g: ((3 * g).T,), "times3")
    with pytest.raises(GradcheckError, match=r"x \(argument 0\) has shape \(2, 3\) but its gradient has shape \(3, 2\)"
                       r"(.|\n)*hint: a gradient always has its input's shape"):
        gradcheck(transposed, np.ones((2, 3)), name="transposed")


def test_backward_returning_none():
    def forgot(x, y):
        return Tensor.from_op(x.data * y.data, (x, y), lambda g: (g * y.data, None), "mul")
    with pytest.raises(GradcheckError, match=r"forgot: y \(argument 1\) received no gradient at all"
                       r"(.|\n)*does the backward closure return a gradient \(not None\)"):
        gradcheck(forgot, np.ones(3), np.ones(3))


def test_input_not_a_parent():
    """An op that forgets to list an input as a parent: no gradient can reach it."""
    def detached(x, y):
        return Tensor.from_op(x.data + y.data, (x,), lambda g: (g,), "add")
    with pytest.raises(GradcheckError, match=r"y \(argument 1\) received no gradient(.|\n)*one of the op's parents"):
        gradcheck(detached, np.ones(3), np.ones(3), name="detached")


def test_is_an_assertion_error():
    """So that pytest shows a failed gradcheck as a failed assertion with its message."""
    assert issubclass(GradcheckError, AssertionError)


# ------------------------------------------------------------ what gradcheck does with inputs

def test_integer_inputs_pass_through_untouched(rng):
    labels = np.array([2, 0, 1])
    seen = []

    def op(x, y):
        seen.append(y)
        return x * 2.0

    gradcheck(op, rng.standard_normal(3), labels, name="labels")
    assert all(y is labels for y in seen), "integer inputs (labels) must reach the op unchanged"
    np.testing.assert_array_equal(labels, [2, 0, 1])

    seen.clear()
    gradcheck(op, rng.standard_normal(3), Tensor(labels), name="labels as a Tensor")
    assert all(y is labels for y in seen), "an integer Tensor is passed on as its array"


def test_float_inputs_become_float64_tensors(xp, rng):
    seen = []

    def op(x):
        seen.append(x)
        return x * 2.0

    gradcheck(op, xp.asarray(rng.standard_normal(3).astype(np.float32)))
    assert all(isinstance(x, Tensor) and x.dtype == np.float64 and x.requires_grad for x in seen), \
        "float inputs are checked as float64 Tensors (float32 finite differences are too noisy)"


def test_callers_arrays_are_not_modified(xp, rng):
    x = xp.asarray(rng.standard_normal((2, 3)))
    before = x.copy()
    t = Tensor(x)
    gradcheck(square, t)
    assert bool((x == before).all()), "gradcheck perturbs private copies, never the caller's array"
    assert t.grad is None


def test_checks_at_most_max_checks_elements_per_input(rng):
    calls = []

    def op(x, y):
        calls.append(1)
        return x * y

    gradcheck(op, rng.standard_normal(100), rng.standard_normal(100), max_checks=5)
    # one call for the analytic gradient, then 2 per checked element (x + eps, x - eps), for each input
    assert len(calls) == 1 + 2 * 5 * 2

    calls.clear()
    gradcheck(op, rng.standard_normal(3), rng.standard_normal(3), max_checks=64)
    assert len(calls) == 1 + 2 * 3 * 2, "small inputs are checked element by element, in full"


def test_non_contiguous_input(rng):
    """A transposed array, or a channel-major activation, is a perfectly good input."""
    gradcheck(square, rng.standard_normal((4, 3)).T, name="square of a transposed array")


def test_index_in_message_is_plain(rng):
    with pytest.raises(GradcheckError) as info:
        gradcheck(square_with(lambda x, g: (-2 * x * g,)), rng.standard_normal((3, 4)), name="neg_square")
    assert "np.int64" not in str(info.value), str(info.value)
    assert info.match(r"is wrong at index \(\d, \d\)")
