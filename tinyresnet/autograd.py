"""Reverse-mode automatic differentiation, one closure per op.

A `Tensor` wraps an array (`.data`, NumPy or CuPy) and remembers the op that
made it: its parents and a `backward` closure that maps the gradient of the
output to the gradients of each parent. `loss.backward()` visits the graph in
reverse topological order and lets each node hand gradients to its parents.

Every op below follows the same pattern:

    out_data = <forward math>
    def backward(g):             # g = dLoss/dout, same shape as out
        return (dLoss/dparent_1, dLoss/dparent_2, ...)
    return Tensor.from_op(out_data, (parents...), backward, "name")

To look inside a graph: `t.op` and `t.parents` walk it (`topological_order(t)` lists it),
`t.retain_grad()` keeps an intermediate gradient, and `t.register_hook(fn)` calls
fn(gradient) the moment t's gradient is complete during backward.
"""
import contextlib

import numpy as np

from .device import as_float, device_of, same_device, to_device, xp_of

_grad_enabled = True


@contextlib.contextmanager
def no_grad():
    """Run ops without building a graph (evaluation, optimizer steps)."""
    global _grad_enabled
    previous, _grad_enabled = _grad_enabled, False
    try:
        yield
    finally:
        _grad_enabled = previous


def is_grad_enabled():
    return _grad_enabled


def unbroadcast(grad, shape):
    """Sum `grad` down to `shape`, undoing NumPy broadcasting.

    If x of shape (1, C, 1, 1) was broadcast against (N, C, H, W) in the forward
    pass, each element of x was used N*H*W times, so its gradient is the sum.
    """
    while grad.ndim > len(shape):
        grad = grad.sum(axis=0)
    axes = tuple(i for i, n in enumerate(shape) if n == 1 and grad.shape[i] != 1)
    return grad.sum(axis=axes, keepdims=True) if axes else grad


class Tensor:
    """An array plus what is needed to differentiate through it.

    data: the array (numpy.ndarray on "cpu", cupy.ndarray on "gpu").
    grad: dLoss/d(this tensor), same shape as data, filled by `backward()`.
    Lists and Python numbers become float32 arrays; arrays keep their dtype.
    """

    def __init__(self, data, requires_grad=False):
        if isinstance(data, Tensor):
            data = data.data
        if not hasattr(data, "dtype"):
            data = np.asarray(data, dtype=np.float32)
        self.data = data
        self.requires_grad = requires_grad
        self.grad = None
        self._parents = ()
        self._backward = None
        self._op = ""
        self._retain = False
        self._hooks = []

    @classmethod
    def from_op(cls, data, parents, backward, op):
        """The output of an op; records the graph edge only when a parent needs it."""
        out = cls(data)
        if _grad_enabled and any(p.requires_grad for p in parents):
            out.requires_grad = True
            out._parents, out._backward, out._op = parents, backward, op
        return out

    # -- the graph -----------------------------------------------------------
    @property
    def op(self):
        """The name of the op that made this tensor ("conv2d", "add", ...); "" for a leaf."""
        return self._op

    @property
    def parents(self):
        """The tensors this one was computed from (empty for a leaf, or after backward)."""
        return self._parents

    @property
    def is_leaf(self):
        """True for tensors no recorded op made: inputs, parameters, constants."""
        return not self._op

    # -- array facts ---------------------------------------------------------
    shape = property(lambda self: self.data.shape)
    ndim = property(lambda self: self.data.ndim)
    dtype = property(lambda self: self.data.dtype)
    device = property(lambda self: device_of(self.data))

    def __len__(self):
        return len(self.data)

    def __repr__(self):
        grad = ", requires_grad=True" if self.requires_grad else ""
        op = f", op={self._op!r}" if self._op else ""
        return f"Tensor(shape={self.shape}, dtype={self.dtype}, device={self.device!r}{grad}{op})"

    def item(self):
        return float(self.data)

    def numpy(self):
        """The values as a NumPy array on the host."""
        return to_device(self.data, "cpu")

    def to(self, device):
        """This tensor on `device` ("cpu" or "gpu"), as a new leaf."""
        return Tensor(to_device(self.data, device), requires_grad=self.requires_grad)

    def detach(self):
        return Tensor(self.data)

    # -- reverse mode --------------------------------------------------------
    def retain_grad(self):
        """Keep .grad on this intermediate tensor after backward (for inspection)."""
        self._retain = True
        return self

    def register_hook(self, fn):
        """Call fn(grad) when this tensor's gradient is complete during backward.

        grad is dLoss/d(this tensor) from this backward pass, an array of this
        tensor's shape. fn may return a new array to use instead, or None to
        leave it. Returns a handle; handle.remove() takes the hook off again.
        """
        self._hooks.append(fn)
        return HookHandle(self._hooks, fn)

    def backward(self, grad=None, retain_graph=False):
        """Fill `.grad` of every leaf (parameter, input) that this tensor depends on.

        grad: dLoss/d(self); defaults to 1 for a scalar. The graph is walked
        iteratively (no recursion), so a 1202-layer net is fine. Leaves add
        into .grad (zero it between steps); intermediate gradients are dropped
        once used, unless retain_grad() asked to keep them.

        Afterwards the graph is released, so memory does not grow from one
        training step to the next. A second backward() through any released
        node raises, rather than silently missing that part of the gradient;
        retain_graph=True keeps the graph for another backward (e.g. two losses
        that share a subgraph, each with its own backward).
        """
        if not self.requires_grad:
            raise RuntimeError("backward() on a tensor that does not require grad: "
                               "no parameter with requires_grad=True was used to compute it")
        if grad is None:
            if self.data.size != 1:
                raise RuntimeError(f"backward() without a gradient needs a scalar, got shape "
                                   f"{self.shape}; pass grad= of the same shape")
            grad = xp_of(self.data).ones_like(self.data)
        grad = grad.data if isinstance(grad, Tensor) else grad
        if getattr(grad, "shape", None) != self.data.shape:
            raise ValueError(f"backward(grad): grad must have the tensor's shape {self.shape}, "
                             f"got {getattr(grad, 'shape', type(grad).__name__)}")
        order = topological_order(self)
        released = next((node for node in order if node._op and node._backward is None), None)
        if released is not None:
            raise RuntimeError(f"backward() called twice through the same graph (at a {released._op!r} "
                               "node): the graph is released after the first backward; recompute the "
                               "forward pass, or pass retain_graph=True to the first backward()")
        grads = {id(self): grad}  # dLoss/dnode, this pass
        for node in reversed(order):  # every node after all the nodes that use it
            g = grads.pop(id(node), None)
            if g is None:
                continue
            for hook in node._hooks:
                replaced = hook(g)
                g = g if replaced is None else replaced
            if node._backward is None or node._retain or node is self:  # leaves keep their gradient
                node.grad = g if node.grad is None else node.grad + g
            if node._backward is None:
                continue
            for parent, pg in zip(node._parents, node._backward(g)):
                if pg is not None and parent.requires_grad:
                    pg = unbroadcast(pg, parent.shape)
                    grads[id(parent)] = pg if id(parent) not in grads else grads[id(parent)] + pg
            if not retain_graph:
                node._parents, node._backward = (), None

    # -- elementary ops ------------------------------------------------------
    def _lift(self, other):
        """Wrap a Python number, a list or an array as a constant tensor on our device.

        Dtypes promote as NumPy's do: a Python number takes our dtype unless its
        kind is higher (int_tensor * 0.5 is float64, float32_tensor * 2 stays
        float32); a list becomes float32, like Tensor(list); arrays keep theirs.
        """
        if isinstance(other, Tensor):
            return other
        xp = xp_of(self.data)
        if isinstance(other, (bool, int, float)):
            return Tensor(xp.asarray(other, dtype=np.result_type(self.dtype, other)))
        if isinstance(other, (list, tuple)):
            return Tensor(xp.asarray(np.asarray(other, dtype=np.float32)))
        return Tensor(other)

    def __add__(self, other):
        other = self._lift(other)
        same_device(self.data, other.data, op="add")
        return Tensor.from_op(self.data + other.data, (self, other), lambda g: (g, g), "add")

    def __mul__(self, other):
        other = self._lift(other)
        same_device(self.data, other.data, op="mul")
        a, b = self.data, other.data
        return Tensor.from_op(a * b, (self, other), lambda g: (g * b, g * a), "mul")

    def __neg__(self):
        return Tensor.from_op(-self.data, (self,), lambda g: (-g,), "neg")

    def __sub__(self, other):
        return self + (-self._lift(other))

    def __matmul__(self, other):
        """(…, M, K) @ (…, K, N): dA = g @ Bᵀ, dB = Aᵀ @ g (summed over broadcast batches)."""
        other = self._lift(other)
        same_device(self.data, other.data, op="matmul")
        a, b = self.data, other.data
        xp = xp_of(a)

        def backward(g):
            # vector operands: treat them as a column / a row; the engine sums extra batch axes
            if b.ndim == 1:
                return xp.expand_dims(g, -1) * b, a * xp.expand_dims(g, -1)
            if a.ndim == 1:
                return (b @ xp.expand_dims(g, -1))[..., 0], xp.expand_dims(a, -1) * xp.expand_dims(g, -2)
            return g @ xp.swapaxes(b, -1, -2), xp.swapaxes(a, -1, -2) @ g
        return Tensor.from_op(a @ b, (self, other), backward, "matmul")

    __radd__ = __add__
    __rmul__ = __mul__

    def __rsub__(self, other):
        return self._lift(other) - self

    def __rmatmul__(self, other):
        return self._lift(other) @ self

    def reshape(self, *shape):
        old = self.shape
        return Tensor.from_op(self.data.reshape(*shape), (self,),
                              lambda g: (g.reshape(old),), "reshape")

    def transpose(self, *axes):
        if len(axes) == 1 and isinstance(axes[0], (tuple, list)):
            axes = tuple(axes[0])
        axes = axes or tuple(reversed(range(self.ndim)))
        inverse = tuple(np.argsort(axes))
        return Tensor.from_op(self.data.transpose(axes), (self,),
                              lambda g: (g.transpose(inverse),), "transpose")

    def sum(self, axis=None, keepdims=False):
        """Each input element contributes once, so its gradient is g broadcast back."""
        xp, data = xp_of(self.data), self.data

        def backward(g):
            if axis is not None and not keepdims:
                g = xp.expand_dims(g, axis)
            full = xp.empty_like(data)  # same memory layout as the input
            full[...] = g
            return (full,)
        return Tensor.from_op(self.data.sum(axis=axis, keepdims=keepdims), (self,), backward, "sum")

    def mean(self, axis=None, keepdims=False):
        axes = range(self.ndim) if axis is None else np.atleast_1d(axis)
        count = int(np.prod([self.shape[a] for a in axes]))
        return self.sum(axis=axis, keepdims=keepdims) * (1.0 / count)

    def relu(self):
        """max(x, 0); relu'(x) is 1 where the output is positive, else 0."""
        out = relu_forward(as_float(self.data))
        return Tensor.from_op(out, (self,), lambda g: (relu_backward(g, out),), "relu")

    def __getitem__(self, index):
        """Basic slicing, e.g. x[:, :, ::2, ::2]; the gradient lands back in place."""
        xp, data = xp_of(self.data), self.data

        def backward(g):
            full = xp.zeros_like(data)  # laid out like the input (channels-last stays channels-last)
            full[index] = g
            return (full,)
        return Tensor.from_op(self.data[index], (self,), backward, "getitem")


def relu_forward(a):
    """max(a, 0), elementwise."""
    return xp_of(a).maximum(a, 0)


def relu_backward(g, out):
    """g * (out > 0): the gradient passes where the output was positive, and stops elsewhere.
    (The CPU speed wing, tinyresnet/cpu/relu.py, puts faster versions of both in place.)"""
    return g * (out > 0)


class HookHandle:
    """What register_hook returns: handle.remove() takes the hook off again."""

    def __init__(self, hooks, fn):
        self._hooks, self._fn = hooks, fn

    def remove(self):
        if self._fn in self._hooks:
            self._hooks.remove(self._fn)


def topological_order(root):
    """Nodes reachable from `root`, each after all of its parents (iterative DFS)."""
    order, visited, stack = [], set(), [(root, False)]
    while stack:
        node, parents_done = stack.pop()
        if parents_done:
            order.append(node)
            continue
        if id(node) in visited:
            continue
        visited.add(id(node))
        stack.append((node, True))
        stack.extend((p, False) for p in node._parents if id(p) not in visited)
    return order
