"""Devices: which array module (`xp`) holds a tensor's numbers.

tinyresnet writes every op once, against an array module `xp`: NumPy on "cpu",
CuPy on "gpu". CuPy mirrors NumPy's API, so the same line of math runs on
either. This module is the only place that knows CuPy exists.

Devices are checked at the edges only: `xp_for(device)` (which asks CUDA
whether a GPU is there), `to_device` and `Module.to`. Inside the math,
`xp_of(array)` is a lookup by the array's type and never calls into CUDA,
so it costs nothing per op.

Reading a device value on the host makes the host wait for the GPU. The
training loop does that rarely and on purpose, through `read_scalars`, which
brings several values across in one transfer.
"""
import numpy as np

DEVICES = ("cpu", "gpu")

_MODULE_OF_TYPE = {np.ndarray: np}     # array type -> its array module, learned once per type
_DEVICE_OF_TYPE = {np.ndarray: "cpu"}  # array type -> "cpu" or "gpu"


class DeviceError(RuntimeError):
    """A device was asked for that cannot be used, or two devices were mixed."""


def _import_cupy():
    try:
        import cupy
    except Exception:  # ImportError, or a CuPy built for another CUDA
        return None
    return cupy


def gpu_available():
    """True when CuPy imports and sees at least one CUDA device (asks the CUDA runtime)."""
    cupy = _import_cupy()
    if cupy is None:
        return False
    try:
        return cupy.cuda.runtime.getDeviceCount() > 0
    except Exception:
        return False


def xp_for(device):
    """The array module for `device` ("cpu" -> numpy, "gpu" -> cupy).

    Asking for "gpu" without CuPy or a CUDA device raises a DeviceError whose
    message says what to install, instead of an ImportError traceback.
    """
    if device == "cpu":
        return np
    if device != "gpu":
        raise DeviceError(f"unknown device {device!r}: use one of {', '.join(DEVICES)}")
    cupy = _import_cupy()
    if cupy is None:
        raise DeviceError("device 'gpu' needs CuPy: install the build matching your CUDA, "
                          "e.g. `pip install cupy-cuda12x` (see README.md), or use --device cpu")
    if not gpu_available():
        raise DeviceError("device 'gpu' asked for, but CuPy sees no CUDA device; use --device cpu")
    _MODULE_OF_TYPE[cupy.ndarray], _DEVICE_OF_TYPE[cupy.ndarray] = cupy, "gpu"
    return cupy


def xp_of(array):
    """The array module that holds `array` (numpy for NumPy arrays, scalars and lists).

    A dictionary lookup by type: no CUDA call, so ops can ask it every time.
    """
    try:
        return _MODULE_OF_TYPE[type(array)]
    except KeyError:
        return _learn(type(array))


def _learn(kind):
    """The module of a type seen for the first time: CuPy for its arrays, else NumPy."""
    xp, on_gpu = np, kind.__module__.partition(".")[0] == "cupy"
    if on_gpu:
        cupy = _import_cupy()  # already imported: an array of it exists
        if cupy is not None and issubclass(kind, cupy.ndarray):
            xp = cupy
    _MODULE_OF_TYPE[kind], _DEVICE_OF_TYPE[kind] = xp, "gpu" if on_gpu else "cpu"
    return xp


def device_of(array):
    """'gpu' for a CuPy array, 'cpu' for anything else (NumPy arrays and scalars, lists, numbers)."""
    try:
        return _DEVICE_OF_TYPE[type(array)]
    except KeyError:
        _learn(type(array))
        return _DEVICE_OF_TYPE[type(array)]


def to_device(array, device):
    """A copy of `array` on `device` (the same array if it is already there)."""
    if device_of(array) == device:
        return array
    xp = xp_for(device)  # a clear error if the device cannot be used
    if device == "cpu":
        return array.get()  # the explicit device-to-host copy (waits for the GPU)
    return xp.asarray(array)


def read_scalars(*values):
    """Python floats of device (or host) scalars, brought to the host in one transfer.

    Each `float(gpu_scalar)` waits for the GPU separately; stacking the
    scalars first makes it one wait and one copy.
    """
    arrays = [v for v in values if hasattr(v, "dtype")]
    if not arrays:
        return tuple(float(v) for v in values)
    xp = xp_of(arrays[0])
    host = to_device(xp.stack([xp.asarray(v, dtype=xp.float64) for v in values]), "cpu")
    return tuple(float(v) for v in host.tolist())


def same_device(*arrays, op="op"):
    """The one device shared by `arrays`; a DeviceError naming both if they differ."""
    devices = {device_of(a) for a in arrays}
    if len(devices) > 1:
        raise DeviceError(f"{op} got arrays on two devices ({' and '.join(sorted(devices))}); "
                          "move them together with .to('cpu') or .to('gpu')")
    return devices.pop()


def as_float(array):
    """array itself if it holds floats, else a float32 copy: integers (uint8 pixels, np.arange)
    fed to a float formula must not come out as integers."""
    return array if array.dtype.kind == "f" else array.astype("float32")


def channels_last_zeros(xp, shape, dtype):
    """Zeros indexed as (N, C, H, W), laid out in memory as (N, H, W, C).

    tinyresnet keeps every activation this way: a pixel's channels sit side by
    side, which is what im2col's patch rows and the convolution's matrix
    product want (see im2col.py).
    """
    n, c, h, w = shape
    return xp.zeros((n, h, w, c), dtype=dtype).transpose(0, 3, 1, 2)
