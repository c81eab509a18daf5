"""Devices: which array module (`xp`) holds a tensor's numbers.

tinyresnet writes every op once, against an array module `xp`: NumPy on "cpu",
CuPy on "gpu". CuPy mirrors NumPy's API, so the same line of math runs on
either. This module is the only place that knows CuPy exists.
"""
import numpy as np

DEVICES = ("cpu", "gpu")


class DeviceError(RuntimeError):
    """A device was asked for that cannot be used, or two devices were mixed."""


def _import_cupy():
    try:
        import cupy
    except Exception:  # ImportError, or a CuPy built for another CUDA
        return None
    return cupy


def gpu_available():
    """True when CuPy imports and sees at least one CUDA device."""
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
    return cupy


def device_of(array):
    """'gpu' for a CuPy array, 'cpu' for anything else."""
    return "gpu" if type(array).__module__.startswith("cupy") else "cpu"


def xp_of(array):
    """The array module that holds `array`."""
    return xp_for(device_of(array))


def to_device(array, device):
    """A copy of `array` on `device` (the same array if it is already there)."""
    if device_of(array) == device:
        return array
    xp_for(device)  # a clear error if the device cannot be used
    if device == "cpu":
        return array.get()
    return _import_cupy().asarray(array)


def same_device(*arrays, op="op"):
    """The one device shared by `arrays`; a DeviceError naming both if they differ."""
    devices = {device_of(a) for a in arrays}
    if len(devices) > 1:
        raise DeviceError(f"{op} got arrays on two devices ({' and '.join(sorted(devices))}); "
                          "move them together with .to('cpu') or .to('gpu')")
    return devices.pop()


def channels_last_zeros(xp, shape, dtype):
    """Zeros indexed as (N, C, H, W), laid out in memory as (N, H, W, C).

    tinyresnet keeps every activation this way: a pixel's channels sit side by
    side, which is what im2col's patch rows and the convolution's matrix
    product want (see im2col.py).
    """
    n, c, h, w = shape
    return xp.zeros((n, h, w, c), dtype=dtype).transpose(0, 3, 1, 2)
