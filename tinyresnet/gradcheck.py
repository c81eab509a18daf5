"""Check any op's backward pass against central differences.

For a scalar f(x) = sum(u * op(x)), with u a fixed random "upstream" gradient,
    df/dx[i] ≈ (f(x + eps e_i) - f(x - eps e_i)) / (2 eps)
and backprop must give the same number: op(x).backward(u) puts it in x.grad.

Why random u and not all ones? Batch norm's output sums to a constant
(beta * count) whatever x is, so with u = 1 its true gradient is zero and a
backward pass that returns zeros would pass. A random u sees every path.
Everything runs in float64 so that the finite differences are exact enough.
"""
import inspect

import numpy as np

from .autograd import Tensor, no_grad
from .device import to_device, xp_of


class GradcheckError(AssertionError):
    """The analytic and numeric gradients disagree; the message says where and why."""


def gradcheck(op, *inputs, eps=1e-6, rtol=1e-4, atol=1e-6, max_checks=64, seed=0, name=None,
              arg_names=None):
    """Compare op's backward pass with central differences for every float input.

    op: a function of Tensors returning a Tensor (use a lambda for keyword arguments).
    inputs: arrays or Tensors. Float ones are checked (as float64); integer ones
    (labels) are passed through unchanged.
    max_checks: at most this many elements per input are perturbed, chosen at random.
    name: what the messages call the op (default: op's __name__).
    arg_names: what they call each input, e.g. ("x", "gamma", "beta"), so that a failure says
    "gradient of gamma". Default: the names of op's parameters, e.g. `lambda x, w: ...`.
    Returns the worst relative error; raises GradcheckError with a hint on failure.
    """
    name = name or getattr(op, "__name__", "op")
    labels = _labels(op, len(inputs), arg_names)
    args = [_as_float64_tensor(a) for a in inputs]
    xp = xp_of(next(a.data for a in args if isinstance(a, Tensor)))
    rng = np.random.default_rng(seed)
    out = op(*args)
    upstream = xp.asarray(rng.standard_normal(out.shape))
    out.backward(upstream)

    def f():
        with no_grad():
            return float((op(*args).data * upstream).sum())

    worst = 0.0
    for k, arg in enumerate(args):
        if not isinstance(arg, Tensor):
            continue
        analytic = _analytic(arg, name, labels[k])
        flat = arg.data.reshape(-1)  # a view: writing it perturbs the input in place
        count = min(flat.size, max_checks)
        for i in rng.choice(flat.size, size=count, replace=False):
            original = float(flat[i])
            flat[i] = original + eps
            plus = f()
            flat[i] = original - eps
            minus = f()
            flat[i] = original
            numeric = (plus - minus) / (2 * eps)
            a = float(analytic.reshape(-1)[i])
            error = abs(a - numeric) / max(abs(a), abs(numeric), atol)
            if abs(a - numeric) > atol + rtol * abs(numeric):
                raise GradcheckError(_report(name, labels[k], arg.shape, i, numeric, a, error,
                                             analytic, _low_precision(out, arg)))
            worst = max(worst, error)
    return worst


def _labels(op, count, arg_names):
    """How the messages call each of the count inputs: "gamma (argument 1)", or "argument 1"
    when no name is known (op takes *args, or has no signature Python can read)."""
    if arg_names is None:
        arg_names = _parameter_names(op)
    elif len(arg_names) != count:
        raise ValueError(f"gradcheck got {count} inputs but {len(arg_names)} arg_names: {tuple(arg_names)}")
    names = list(arg_names)[:count] + [None] * max(count - len(arg_names), 0)
    return [f"{n} (argument {k})" if n else f"argument {k}" for k, n in enumerate(names)]


def _parameter_names(op):
    """The names of op's positional parameters, in order, up to a *args (which has none)."""
    try:
        parameters = inspect.signature(op).parameters.values()
    except (TypeError, ValueError):   # builtins and some callables have no readable signature
        return []
    positional = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
    names = []
    for p in parameters:
        if p.kind not in positional:
            break
        names.append(p.name)
    return names


def _as_float64_tensor(a):
    data = a.data if isinstance(a, Tensor) else a
    if not hasattr(data, "dtype"):
        data = np.asarray(data)
    if data.dtype.kind != "f":
        return data
    return Tensor(data.astype("float64", order="C"), requires_grad=True)  # C order: reshape(-1) is a view


def _analytic(arg, name, label):
    if arg.grad is None:
        raise GradcheckError(f"{name}: {label} received no gradient at all.\n"
                             "hint: is it one of the op's parents in Tensor.from_op, and does the "
                             "backward closure return a gradient (not None) for it?")
    if arg.grad.shape != arg.shape:
        raise GradcheckError(f"{name}: {label} has shape {arg.shape} but its gradient has shape "
                             f"{arg.grad.shape}.\nhint: a gradient always has its input's shape; "
                             "sum over broadcast axes, or undo a reshape/transpose.")
    return to_device(arg.grad, "cpu")


def _low_precision(out, arg):
    """The dtype below float64 that the op's output or this argument's gradient came back in, or None.

    gradcheck hands the op float64 inputs; an op that computes in float32 anyway rounds each value
    to about 7 digits, and central differences over eps = 1e-6 cannot survive that rounding.
    """
    for data in (out.data, arg.grad):
        if data.dtype.kind == "f" and data.dtype.itemsize < 8:
            return data.dtype.name
    return None


def _report(name, label, shape, i, numeric, analytic, error, grad, low_precision=None):
    index = tuple(int(j) for j in np.unravel_index(i, shape))
    return (f"{name}: gradient of {label}, shape {shape}, is wrong at index {index}\n"
            f"  numeric (central differences) = {numeric:.6g}\n"
            f"  analytic (your backward)      = {analytic:.6g}\n"
            f"  relative error                = {error:.3g}\n"
            f"hint: {_precision_hint(low_precision) if low_precision else _hint(numeric, analytic, grad)}")


def _precision_hint(dtype):
    return (f"the op computed in {dtype}, although gradcheck passed it float64 inputs, so the numeric "
            f"gradient is mostly rounding noise and this mismatch may not be a wrong formula. Look for "
            f"a dtype={dtype} (np.zeros, np.ones, np.empty) or an .astype({dtype}) in the forward or "
            f"backward pass, and make new arrays with the input's dtype (x.dtype) instead.")


def _hint(numeric, analytic, grad):
    if not np.any(grad):
        return ("the backward pass returned all zeros: is the upstream gradient g multiplied in, "
                "and is the result returned for this argument?")
    if numeric != 0 and analytic != 0:
        ratio = analytic / numeric
        if abs(ratio + 1) < 1e-3:
            return "analytic = -numeric: a sign is flipped in the backward formula."
        if abs(ratio - round(ratio)) < 1e-3 or abs(1 / ratio - round(1 / ratio)) < 1e-3:
            return (f"analytic is {ratio:.4g} × numeric: a missing or extra constant factor "
                    "(1/N in a mean, a count of broadcast copies, a factor of 2).")
    return ("the formula is off for this argument. Common causes: a matrix not transposed, "
            "a sum over the wrong axis, a term of the product rule forgotten, or (batch norm) the "
            "paths through the batch mean and variance left out.")
