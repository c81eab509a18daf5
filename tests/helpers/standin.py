"""A strict stand-in GPU for the tests: CuPy's rules, NumPy's arithmetic.

No GPU is lent to CI, yet `--device gpu` must keep working. This module is an
array library that behaves like a separate device: its arrays hold NumPy
arrays inside, so every number is computed exactly as on the CPU, but they
follow CuPy's rules at the boundary between host and device, and a little
more strictly, so that a test run on it fails wherever real CuPy would fail
or would make the host wait for the GPU.

    install(monkeypatch)      makes it tinyresnet's "gpu" for one test
    recording() as r          r.syncs / r.uploads: every transfer in the block, with file:line
    strict()                  any device-to-host read inside the block raises HostSync

What it refuses, and why (CuPy behaviour from its source, cupy/_core/core.pyx,
_kernel.pyx and _routines_indexing.pyx, and its user guide "Differences
between CuPy and NumPy"):

- Implicit conversion to a host array. `np.asarray(x)`, `np.testing...(x)`:
  CuPy's `ndarray.__array__` raises TypeError("Implicit conversion to a NumPy
  array is not allowed..."); so does this one. Use `x.get()` or `to_device`.
- Host arrays inside device arithmetic. `x + np_array`, `x[...] = np_array`:
  CuPy's ufuncs accept only CuPy arrays and scalars ("Unsupported type
  <class 'numpy.ndarray'>"), and `__setitem__` with a host array fails too
  (CuPy calls `fill`, which refuses non-scalar NumPy arrays). Lists are refused
  the same way. Python numbers and NumPy scalars are fine, as in CuPy.
- NumPy functions applied to device arrays. `np.exp(x)`, `np.sum(x)`: CuPy
  forwards these through `__array_ufunc__`/`__array_function__` when it has
  the function, and fails when it does not. Stricter here: they always raise,
  because the engine must write `xp.exp` (xp = xp_of(x)) for the line to be
  one code path. Only `numpy_scalar * x` (NumPy's scalar on the left of an
  operator) goes through, as it does in CuPy.
- Host arrays and lists as indices. CuPy uploads them on every call; a hidden
  transfer, so they raise here. Boolean-mask indexing is allowed but counted
  as a sync (CuPy reads the mask's count back to size the result).
- Duplicate targets in an integer-array assignment: CuPy stores an undefined
  one of them; refused. Out-of-bounds integer-array indices: CuPy wraps them
  around silently; they raise IndexError here (as in NumPy), saying so.
- Functions CuPy lacks, or arguments it lacks: only the functions listed
  below exist (any other `xp.name` raises AttributeError saying so), with
  CuPy's narrower signatures where they differ: `as_strided(x, shape,
  strides)` has no subok/writeable; `einsum` takes no out/order/casting;
  `astype` takes no casting/subok. There is no `xp.random`: tinyresnet draws
  every random number on the host (initialisation, shuffling, augmentation),
  which is why an exact resume needs no device RNG state.

What it does like CuPy, to expose code that assumes NumPy's details:
- Reductions return 0-d device arrays, never host scalars (CuPy's scalars
  would need a sync), so `x.sum()` stays on the device.
- Elementwise results are C-contiguous whatever the inputs' layout (CuPy
  allocates every ufunc output in C order; NumPy keeps the inputs' order).
- `empty` and `empty_like` are filled with NaN (or the smallest integer):
  CuPy's pool hands back used memory, so nothing may read them before writing.

What it counts rather than refuses: reads to the host that CuPy allows but
that make the host wait for the GPU: `float()`, `int()`, `bool()`,
`complex()`, `.item()`, `.tolist()`, `.get()`, `asnumpy`, boolean masks,
`repr()`/`str()`. Inside `strict()` each of them raises (repr and str excepted,
so that a failing assertion can still show values). Uploads (`asarray` of host
data) are counted too, split into host arrays and Python numbers.
"""
import builtins
import contextlib
import sys
import types
import warnings
from pathlib import Path

import numpy as np

__all__ = ["ndarray", "install", "recording", "strict", "HostDeviceMix", "HostSync"]

CUPY_IMPLICIT = ("Implicit conversion to a NumPy array is not allowed. "
                 "Please use `.get()` to construct a NumPy array explicitly.")


class HostDeviceMix(TypeError):
    """Host data met device data where CuPy would refuse it, or a NumPy function met a device array."""


class HostSync(RuntimeError):
    """A device value was read on the host inside strict()."""


# ------------------------------------------------------------ counting transfers

class Record:
    """What crossed between host and device while recording: lists of "what at file:line"."""

    def __init__(self):
        self.syncs, self.uploads, self.scalar_uploads = [], [], []

    def __repr__(self):
        return (f"Record({len(self.syncs)} syncs, {len(self.uploads)} array uploads, "
                f"{len(self.scalar_uploads)} scalar uploads)")


_recorders = []
_strict = [0]


def _caller():
    """file:line of the first frame outside this module: the code that asked for the transfer."""
    frame = sys._getframe(1)
    while frame is not None and frame.f_code.co_filename == __file__:
        frame = frame.f_back
    if frame is None:
        return "?"
    return f"{Path(frame.f_code.co_filename).name}:{frame.f_lineno}"


def _sync(what, may_raise=True):
    where = f"{what} at {_caller()}"
    if _strict[0] and may_raise:
        raise HostSync(f"{where}: a device value was read on the host, which makes the host wait "
                       "for the GPU; keep it on the device (use xp), or read it once, outside the step")
    for r in _recorders:
        r.syncs.append(where)


def _upload(host):
    scalar = np.ndim(host) == 0 and not isinstance(host, np.ndarray)
    where = f"{'scalar' if scalar else f'array {np.shape(host)}'} at {_caller()}"
    for r in _recorders:
        (r.scalar_uploads if scalar else r.uploads).append(where)


@contextlib.contextmanager
def recording():
    """Record every transfer in the block: `with recording() as r: ...; r.syncs`."""
    record = Record()
    _recorders.append(record)
    try:
        yield record
    finally:
        _recorders.remove(record)


@contextlib.contextmanager
def strict():
    """Inside the block, any read of a device value on the host raises HostSync."""
    _strict[0] += 1
    try:
        yield
    finally:
        _strict[0] -= 1


# ------------------------------------------------------------ operands

_SCALARS = (bool, int, float, complex, np.generic)


def _mix(what):
    return HostDeviceMix(f"{what}: host data met a device array (CuPy raises TypeError: Unsupported "
                         "type <class 'numpy.ndarray'>); move it first with xp.asarray / to_device")


def _operand(x, op):
    """The NumPy value behind an operand of device arithmetic: a device array or a scalar."""
    if type(x) is ndarray:
        return x._a
    if isinstance(x, _SCALARS):
        return x
    if isinstance(x, np.ndarray):
        raise _mix(f"{op} of a NumPy array {x.shape}")
    raise TypeError(f"{op}: Unsupported type {type(x)} (CuPy's ufuncs take device arrays and "
                    "scalars only, not lists)")


def _device(x, op):
    """x must be a device array (a function argument that CuPy wants as cupy.ndarray)."""
    if type(x) is ndarray:
        return x._a
    if isinstance(x, np.ndarray):
        raise _mix(f"{op} got a NumPy array {x.shape}")
    raise TypeError(f"{op}: expected a device array, got {type(x).__name__}")


def _wrap(result):
    """Device arrays for NumPy results; NumPy scalars become 0-d device arrays, as in CuPy."""
    if isinstance(result, np.ndarray):
        return ndarray(result)
    if isinstance(result, np.generic):
        return ndarray(np.asarray(result))
    if isinstance(result, tuple):
        return tuple(_wrap(r) for r in result)
    return result


def _ufunc(uf, *args, out=None, dtype=None):
    """An elementwise op: device arrays and scalars in, a C-ordered device array out (as CuPy)."""
    values = [_operand(a, uf.__name__) for a in args]
    if out is not None:
        uf(*values, out=_device(out, uf.__name__), dtype=dtype)
        return out
    return _wrap(uf(*values, order="C", dtype=dtype))


def _index(index):
    """The NumPy index behind a device index; refuses host arrays and lists (hidden uploads)."""
    items = index if isinstance(index, tuple) else (index,)
    out = []
    for s in items:
        if type(s) is ndarray:
            if s.dtype.kind == "b":
                _sync("boolean-mask indexing (the result's size is read back)")
            elif s.dtype.kind not in "iu":
                raise IndexError(f"arrays used as indices must be of integer or boolean type, got {s.dtype}")
            out.append(s._a)
        elif s is None or s is Ellipsis or isinstance(s, (slice, int, np.integer)):
            out.append(s)
        elif isinstance(s, (np.ndarray, list, tuple)):
            raise _mix("indexing a device array with a host array or list (CuPy uploads it on every "
                       "call); build the index on the device with xp.arange or xp.asarray, once")
        else:
            raise IndexError(f"only integers, slices, ellipsis, None and device integer or boolean "
                             f"arrays are valid indices, got {type(s).__name__}")
    return tuple(out) if isinstance(index, tuple) else out[0]


def _check_unique_targets(shape, index):
    """CuPy stores an undefined one of several values aimed at one element; refuse that."""
    items = index if isinstance(index, tuple) else (index,)
    if not builtins.any(isinstance(s, np.ndarray) and s.dtype.kind in "iu" for s in items):
        return
    hits = np.zeros(shape, dtype=np.int64)
    np.add.at(hits, index, 1)
    if hits.max(initial=0) > 1:
        raise IndexError("integer-array assignment writes one element twice: CuPy stores an undefined "
                         "one of the values (NumPy the last); make the indices unique")


@contextlib.contextmanager
def _wraps_around(index):
    """NumPy's IndexError for an out-of-bounds integer-array index, saying that CuPy would not raise."""
    try:
        yield
    except IndexError as e:
        items = index if isinstance(index, tuple) else (index,)
        if builtins.any(isinstance(s, np.ndarray) for s in items):
            raise IndexError(f"{e}: CuPy would not raise here, it wraps out-of-bounds integer-array "
                             "indices around and gives a wrong value silently") from None
        raise


def _empty_fill(a):
    """What CuPy's reused memory might hold: NaN for floats, the smallest integer for integers."""
    if a.dtype.kind in "fc":
        a.fill(np.nan)
    elif a.dtype.kind in "iu":
        a.fill(np.iinfo(a.dtype).min)
    return a


# ------------------------------------------------------------ the array

def _binary(uf):
    def op(self, other):
        return _ufunc(uf, self, other)

    def rop(self, other):
        return _ufunc(uf, other, self)

    def iop(self, other):
        return _ufunc(uf, self, other, out=self)
    return op, rop, iop


def _compare(uf):
    def op(self, other):
        if not isinstance(other, (ndarray, np.ndarray) + _SCALARS):
            return NotImplemented
        return _ufunc(uf, self, other)
    return op


def _reduction(name):
    def method(self, *args, **kwargs):
        if kwargs.get("out") is not None:
            kwargs["out"] = _device(kwargs["out"], name)
        return _wrap(getattr(self._a, name)(*args, **kwargs))
    method.__name__ = name
    return method


_OPERATOR_UFUNCS = {np.add, np.subtract, np.multiply, np.true_divide, np.floor_divide, np.power,
                    np.remainder, np.equal, np.not_equal, np.less, np.less_equal, np.greater,
                    np.greater_equal, np.matmul}


class ndarray:
    """A device array: a NumPy array behind CuPy's host/device rules (see the module docstring)."""
    __slots__ = ("_a",)
    __array_priority__ = 100  # CuPy's value: operators with NumPy arrays come to us
    __hash__ = None

    def __init__(self, a):
        if not isinstance(a, np.ndarray):
            raise TypeError("standin.ndarray wraps a NumPy array; make device arrays with asarray()")
        self._a = a

    # -- facts (no transfer: CuPy keeps them on the host) --------------------
    shape = property(lambda self: self._a.shape)
    dtype = property(lambda self: self._a.dtype)
    ndim = property(lambda self: self._a.ndim)
    size = property(lambda self: self._a.size)
    strides = property(lambda self: self._a.strides)
    itemsize = property(lambda self: self._a.itemsize)
    nbytes = property(lambda self: self._a.nbytes)
    flags = property(lambda self: self._a.flags)
    T = property(lambda self: ndarray(self._a.T))

    def __len__(self):
        if self._a.ndim == 0:
            raise TypeError("len() of unsized object")
        return len(self._a)

    def __iter__(self):
        if self._a.ndim == 0:
            raise TypeError("iteration over a 0-d array")
        return (self[i] for i in range(len(self._a)))

    # -- reading values on the host (counted) --------------------------------
    def __array__(self, dtype=None, copy=None):
        raise TypeError(CUPY_IMPLICIT)

    def __array_ufunc__(self, ufunc, method, *inputs, **kwargs):
        operands = inputs + tuple(kwargs.get("out", ()))
        if builtins.any(isinstance(x, np.ndarray) for x in operands):
            raise _mix(f"numpy.{ufunc.__name__} with a NumPy array and a device array")
        if method == "__call__" and ufunc in _OPERATOR_UFUNCS and builtins.any(isinstance(x, np.generic) for x in inputs):
            return _ufunc(ufunc, *inputs)  # np.float32(2) * x: allowed, as in CuPy
        raise HostDeviceMix(f"numpy.{ufunc.__name__} applied to a device array: write "
                            f"xp.{ufunc.__name__} with xp = xp_of(array), so the line runs on both devices")

    def __array_function__(self, func, types, args, kwargs):
        raise HostDeviceMix(f"numpy.{func.__name__} applied to a device array: write xp.{func.__name__} "
                            "with xp = xp_of(array), so the line runs on both devices")

    def get(self, stream=None, order="C", out=None):
        """The explicit copy to the host (a sync)."""
        _sync(".get()")
        if out is not None:
            out[...] = self._a
            return out
        return np.array(self._a, order=order)

    def item(self):
        if self._a.size != 1:
            raise ValueError("can only convert an array of size 1 to a Python scalar")
        _sync(".item()")
        return self._a.item()

    def tolist(self):
        _sync(".tolist()")
        return self._a.tolist()

    def __float__(self):
        _sync("float()")
        return float(self._a)

    def __int__(self):
        _sync("int()")
        return int(self._a)

    def __complex__(self):
        _sync("complex()")
        return complex(self._a)

    def __bool__(self):
        if self._a.size == 0:
            warnings.warn("The truth value of an empty array is ambiguous. Returning False",
                          DeprecationWarning, stacklevel=2)
            return False
        if self._a.size > 1:
            raise ValueError("The truth value of an array with more than one element is ambiguous. "
                             "Use a.any() or a.all()")
        _sync("bool()")
        return bool(self._a)

    def __repr__(self):
        _sync("repr()", may_raise=False)
        return f"standin.{self._a!r}"

    def __str__(self):
        _sync("str()", may_raise=False)
        return str(self._a)

    def __format__(self, spec):
        _sync("format()")
        return format(self._a, spec)

    # -- arithmetic ----------------------------------------------------------
    __add__, __radd__, __iadd__ = _binary(np.add)
    __sub__, __rsub__, __isub__ = _binary(np.subtract)
    __mul__, __rmul__, __imul__ = _binary(np.multiply)
    __truediv__, __rtruediv__, __itruediv__ = _binary(np.true_divide)
    __floordiv__, __rfloordiv__, __ifloordiv__ = _binary(np.floor_divide)
    __mod__, __rmod__, __imod__ = _binary(np.remainder)
    __pow__, __rpow__, __ipow__ = _binary(np.power)
    __and__, __rand__, __iand__ = _binary(np.bitwise_and)
    __or__, __ror__, __ior__ = _binary(np.bitwise_or)
    __eq__, __ne__ = _compare(np.equal), _compare(np.not_equal)
    __lt__, __le__ = _compare(np.less), _compare(np.less_equal)
    __gt__, __ge__ = _compare(np.greater), _compare(np.greater_equal)

    def __matmul__(self, other):
        return _wrap(np.matmul(self._a, _device(other, "matmul")))

    def __rmatmul__(self, other):
        return _wrap(np.matmul(_device(other, "matmul"), self._a))

    def __neg__(self):
        return _ufunc(np.negative, self)

    def __pos__(self):
        return self

    def __abs__(self):
        return _ufunc(np.absolute, self)

    def __invert__(self):
        return _ufunc(np.invert, self)

    # -- indexing ------------------------------------------------------------
    def __getitem__(self, index):
        index = _index(index)
        with _wraps_around(index):
            return _wrap(self._a[index])

    def __setitem__(self, index, value):
        index = _index(index)
        with _wraps_around(index):
            _check_unique_targets(self._a.shape, index)
            self._a[index] = _operand(value, "assignment")

    # -- shape and copies ----------------------------------------------------
    def reshape(self, *shape, order="C"):
        return ndarray(self._a.reshape(*shape, order=order))

    def transpose(self, *axes):
        return ndarray(self._a.transpose(*axes))

    def swapaxes(self, axis1, axis2):
        return ndarray(self._a.swapaxes(axis1, axis2))

    def ravel(self, order="C"):
        return ndarray(self._a.ravel(order))

    def flatten(self):
        return ndarray(self._a.flatten())

    def squeeze(self, axis=None):
        return ndarray(self._a.squeeze(axis))

    def astype(self, dtype, order="K", casting=None, subok=None, copy=True):
        if casting is not None or subok is not None:
            raise TypeError("casting and subok are not supported by CuPy's astype")
        return ndarray(self._a.astype(dtype, order=order, copy=copy))

    def copy(self, order="C"):
        return ndarray(self._a.copy(order))

    def view(self, dtype=None):
        return ndarray(self._a.view() if dtype is None else self._a.view(dtype))

    def fill(self, value):
        self._a.fill(_operand(value, "fill"))

    def dot(self, other):
        return _wrap(self._a.dot(_device(other, "dot")))

    sum, mean, prod, max, min = map(_reduction, ("sum", "mean", "prod", "max", "min"))
    argmax, argmin, all, any = map(_reduction, ("argmax", "argmin", "all", "any"))
    var, std, cumsum, clip = map(_reduction, ("var", "std", "cumsum", "clip"))


# ------------------------------------------------------------ the module's functions

def asarray(a, dtype=None, order=None):
    """To the device: an upload for host data (counted); device arrays pass through."""
    if type(a) is ndarray:
        return a if dtype is None or a.dtype == dtype else a.astype(dtype)
    _upload(a)
    return ndarray(np.array(a, dtype=dtype, order=order or "K"))


def array(obj, dtype=None, copy=True, order="K", ndmin=0):
    if type(obj) is ndarray:
        return ndarray(np.array(obj._a, dtype=dtype, copy=copy, order=order, ndmin=ndmin))
    _upload(obj)
    return ndarray(np.array(obj, dtype=dtype, order=order, ndmin=ndmin))


def ascontiguousarray(a, dtype=None):
    return ndarray(np.ascontiguousarray(_device(a, "ascontiguousarray"), dtype=dtype))


def asnumpy(a, stream=None, order="C", out=None):
    return a.get(order=order, out=out) if type(a) is ndarray else np.asarray(a, order=order)


def zeros(shape, dtype=float, order="C"):
    return ndarray(np.zeros(shape, dtype, order))


def ones(shape, dtype=float, order="C"):
    return ndarray(np.ones(shape, dtype, order))


def full(shape, fill_value, dtype=None, order="C"):
    return ndarray(np.full(shape, _operand(fill_value, "full"), dtype, order))


def empty(shape, dtype=float, order="C"):
    return ndarray(_empty_fill(np.empty(shape, dtype, order)))


def _like(np_like, name):
    def like(a, *args, dtype=None, order="K", shape=None):
        return ndarray(np_like(_device(a, name), *args, dtype=dtype, order=order, shape=shape))
    like.__name__ = name
    return like


zeros_like, ones_like = _like(np.zeros_like, "zeros_like"), _like(np.ones_like, "ones_like")
full_like = _like(np.full_like, "full_like")


def empty_like(prototype, dtype=None, order="K", shape=None):
    return ndarray(_empty_fill(np.empty_like(_device(prototype, "empty_like"), dtype, order, shape=shape)))


def arange(start, stop=None, step=1, dtype=None):
    return ndarray(np.arange(start, stop, step, dtype) if stop is not None else np.arange(start, dtype=dtype))


def _elementwise(uf):
    def f(*args, out=None, dtype=None):
        return _ufunc(uf, *args, out=out, dtype=dtype)
    f.__name__ = uf.__name__
    return f


def _function(np_func, name=None):
    """A NumPy function on device arrays: array arguments (also inside a list) must be on the device."""
    name = name or np_func.__name__

    def unwrap(x):
        if type(x) is ndarray:
            return x._a
        if isinstance(x, np.ndarray):
            raise _mix(f"{name} got a NumPy array {x.shape}")
        if isinstance(x, (list, tuple)) and builtins.any(isinstance(v, (ndarray, np.ndarray)) for v in x):
            return type(x)(unwrap(v) for v in x)
        return x

    def f(*args, **kwargs):
        return _wrap(np_func(*map(unwrap, args), **{k: unwrap(v) for k, v in kwargs.items()}))
    f.__name__ = name
    return f


for _name in ("add", "subtract", "multiply", "divide", "true_divide", "negative", "power", "maximum",
              "minimum", "exp", "log", "log1p", "expm1", "sqrt", "square", "sign", "absolute", "tanh",
              "isfinite", "isnan", "isinf", "equal", "not_equal", "less", "less_equal", "greater",
              "greater_equal", "logical_and", "logical_or", "logical_not"):
    globals()[_name] = _elementwise(getattr(np, _name))
abs = globals()["absolute"]

for _name in ("sum", "mean", "prod", "amax", "amin", "max", "min", "argmax", "argmin", "all", "any",
              "var", "std", "count_nonzero", "where", "clip", "reshape", "transpose", "swapaxes",
              "expand_dims", "squeeze", "stack", "concatenate", "broadcast_to", "moveaxis", "ravel",
              "flip", "tile", "repeat", "matmul", "dot", "tensordot"):
    globals()[_name] = _function(getattr(np, _name))


def einsum(subscripts, *operands, dtype=None, optimize=False):
    """CuPy's einsum: no out/order/casting; the result is a new array (never a view of an operand)."""
    values = [_device(x, "einsum") for x in operands]
    return _wrap(np.array(np.einsum(subscripts, *values, dtype=dtype, optimize=optimize), order="C"))


def _as_strided(x, shape=None, strides=None):
    """cupy.lib.stride_tricks.as_strided: a view with the given shape and strides (no subok, writeable)."""
    return ndarray(np.lib.stride_tricks.as_strided(_device(x, "as_strided"), shape, strides))


lib = types.SimpleNamespace(stride_tricks=types.SimpleNamespace(as_strided=_as_strided))


def get_array_module(*args):
    return sys.modules[__name__] if builtins.any(type(a) is ndarray for a in args) else np


class _Device:
    def __init__(self, device=0):
        self.id = device

    def synchronize(self):
        _sync("Device.synchronize()")


def _device_properties(device):
    return {"name": b"stand-in GPU (NumPy inside)", "major": 0, "minor": 0}  # CuPy's name is bytes too


cuda = types.SimpleNamespace(Device=_Device, runtime=types.SimpleNamespace(
    getDeviceCount=lambda: 1, getDeviceProperties=_device_properties))
__version__ = "0+standin"

# CuPy's dtypes and constants are NumPy's own objects
float16, float32, float64 = np.float16, np.float32, np.float64
int8, int16, int32, int64, uint8 = np.int8, np.int16, np.int32, np.int64, np.uint8
bool_, dtype, result_type, finfo, iinfo = np.bool_, np.dtype, np.result_type, np.finfo, np.iinfo
newaxis, nan, inf, pi, e = None, np.nan, np.inf, np.pi, np.e


def __getattr__(name):
    raise AttributeError(f"the stand-in device has no {name!r}: if CuPy has it (check its docs for "
                         "the signature), add it to tests/standin.py; if not, the engine cannot use it")


# ------------------------------------------------------------ plugging it in

def install(monkeypatch):
    """Make the stand-in tinyresnet's "gpu" for the current test: xp_for("gpu") returns this module."""
    from tinyresnet import device as devices
    module = sys.modules[__name__]
    monkeypatch.setattr(devices, "_import_cupy", lambda: module)
    assert devices.xp_for("gpu") is module  # registers standin.ndarray as a GPU array type
    return module
