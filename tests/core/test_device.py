"""Devices: NumPy on "cpu", CuPy on "gpu", and clear errors when the GPU cannot be used.

These tests run without a GPU. A fake array class whose module name starts
with "cupy" stands in for a CuPy array where only the device check matters.
"""
import types

import numpy as np
import pytest

from tinyresnet import DeviceError, Tensor, gpu_available, nn
from tinyresnet import device as devices
from tinyresnet.functional import batch_norm, conv2d, cross_entropy

pytestmark = pytest.mark.device

NO_CUPY_FIX = "pip install cupy-cuda12x"


class FakeGpuArray:
    """Just enough of an array for tinyresnet to believe it lives on the GPU."""
    __module__ = "cupy._core.core"

    def __init__(self, shape=(2, 2), dtype=np.float32):
        self.shape, self.dtype = shape, np.dtype(dtype)
        self.ndim = len(shape)
        self.size = int(np.prod(shape))


def test_cpu_is_numpy():
    assert devices.xp_for("cpu") is np
    assert devices.xp_of(np.zeros(2)) is np
    assert devices.device_of(np.zeros(2)) == "cpu" and devices.device_of(np.float32(1)) == "cpu"


def test_unknown_device_lists_the_devices():
    with pytest.raises(DeviceError, match=r"unknown device 'tpu': use one of cpu, gpu"):
        devices.xp_for("tpu")


def test_tensor_to_unknown_device_lists_the_devices():
    with pytest.raises((ValueError, DeviceError), match=r"unknown device 'tpu': use one of cpu, gpu"):
        Tensor([1.0]).to("tpu")


def test_device_error_is_a_runtime_error():
    assert issubclass(DeviceError, RuntimeError)


@pytest.mark.skipif(gpu_available(), reason="a GPU is available: the no-GPU error cannot happen here")
class TestWithoutGpu:
    """What a learner without a GPU sees: one line saying what to install, no ImportError traceback."""

    def check(self, error):
        message = str(error.value)
        assert "\n" not in message, f"the message should be one line:\n{message}"
        assert "cupy" in message.lower(), f"the message should mention CuPy: {message}"

    def test_gpu_available_is_false(self):
        assert gpu_available() is False

    def test_xp_for_gpu(self):
        with pytest.raises(DeviceError) as error:
            devices.xp_for("gpu")
        self.check(error)

    def test_tensor_to_gpu(self):
        with pytest.raises(DeviceError) as error:
            Tensor([1.0]).to("gpu")
        self.check(error)

    def test_module_to_gpu(self):
        net = nn.Sequential(nn.Conv2d(3, 4), nn.BatchNorm2d(4))
        with pytest.raises(DeviceError) as error:
            net.to("gpu")
        self.check(error)
        assert devices.device_of(net[0].weight.data) == "cpu", "a failed move leaves the module where it was"


def test_without_cupy_the_error_says_what_to_install(monkeypatch):
    """Simulated (runs on every machine): CuPy is not installed."""
    monkeypatch.setattr(devices, "_import_cupy", lambda: None)
    assert devices.gpu_available() is False
    with pytest.raises(DeviceError, match=NO_CUPY_FIX) as error:
        devices.xp_for("gpu")
    assert "\n" not in str(error.value)
    with pytest.raises(DeviceError, match=NO_CUPY_FIX):
        Tensor([1.0]).to("gpu")


@pytest.mark.parametrize("count", [0, RuntimeError("cudaErrorNoDevice")], ids=["no-device", "driver-error"])
def test_cupy_without_a_cuda_device(count, monkeypatch):
    """Simulated: CuPy imports, but there is no usable CUDA device."""
    def get_device_count():
        if isinstance(count, Exception):
            raise count
        return count
    fake_cupy = types.SimpleNamespace(cuda=types.SimpleNamespace(
        runtime=types.SimpleNamespace(getDeviceCount=get_device_count)))
    monkeypatch.setattr(devices, "_import_cupy", lambda: fake_cupy)
    assert devices.gpu_available() is False
    with pytest.raises(DeviceError, match="CuPy sees no CUDA device"):
        devices.xp_for("gpu")


def test_tensor_to_cpu_is_a_new_leaf():
    x = Tensor(np.array([1.0, 2.0]), requires_grad=True)
    y = x * 2.0
    z = y.to("cpu")
    assert z is not y and z.requires_grad and z._parents == ()
    np.testing.assert_array_equal(z.data, [2.0, 4.0])
    assert z.device == "cpu" and isinstance(z.numpy(), np.ndarray)
    assert devices.to_device(x.data, "cpu") is x.data, "already there: no copy"


# ------------------------------------------------------------ mixing devices

def test_fake_array_counts_as_gpu():
    assert devices.device_of(FakeGpuArray()) == "gpu"
    assert Tensor(FakeGpuArray()).device == "gpu"


def test_same_device():
    assert devices.same_device(np.zeros(1), np.zeros(2)) == "cpu"
    assert devices.same_device(FakeGpuArray(), FakeGpuArray()) == "gpu"
    with pytest.raises(DeviceError, match=r"my_op got arrays on two devices \(cpu and gpu\)"):
        devices.same_device(np.zeros(2), FakeGpuArray(), op="my_op")


MIXED = {
    "add": lambda cpu, gpu: cpu + gpu,
    "mul": lambda cpu, gpu: gpu * cpu,
    "matmul": lambda cpu, gpu: cpu @ gpu,
    "conv2d": lambda cpu, gpu: conv2d(Tensor(np.zeros((1, 2, 3, 3))), Tensor(FakeGpuArray((4, 2, 3, 3)))),
    "batch_norm": lambda cpu, gpu: batch_norm(Tensor(np.zeros((2, 2, 1, 1))), Tensor(FakeGpuArray((2,))),
                                              Tensor(np.zeros(2)), np.zeros(2), np.ones(2), True),
}


@pytest.mark.parametrize("op", list(MIXED))
def test_ops_on_mixed_devices_name_both(op):
    cpu, gpu = Tensor(np.zeros((2, 2)), requires_grad=True), Tensor(FakeGpuArray())
    with pytest.raises(DeviceError, match=rf"{op} got arrays on two devices \(cpu and gpu\)(.*)\.to\('gpu'\)"):
        MIXED[op](cpu, gpu)


def test_cross_entropy_on_mixed_devices_raises_device_error():
    with pytest.raises(DeviceError, match="cpu.*gpu|gpu.*cpu"):
        cross_entropy(Tensor(np.zeros((2, 3))), FakeGpuArray((2,), np.int64))


# ------------------------------------------------------------ cheap lookups, one read

def test_xp_of_never_asks_for_cupy_or_cuda(monkeypatch):
    """xp_of runs in every op: a lookup by type, no import and no CUDA call."""
    asked = []
    monkeypatch.setattr(devices, "_import_cupy", lambda: asked.append(1))
    for value in (np.zeros(2), np.float32(1), 2.0, [1.0], FakeGpuArray()):
        devices.xp_of(value)
        devices.device_of(value)
    assert devices.xp_of(np.zeros(2)) is np and devices.xp_of(np.float32(1)) is np
    assert len(asked) <= 1, f"xp_of imported CuPy {len(asked)} times"  # once, to learn FakeGpuArray's type


def test_read_scalars_reads_device_values_in_one_transfer(monkeypatch):
    import standin
    xp = standin.install(monkeypatch)
    loss, wrong = xp.asarray(np.float32(0.25)), xp.asarray(np.int64(3))
    with standin.recording() as record:
        assert devices.read_scalars(loss, wrong, 2.0) == (0.25, 3.0, 2.0)
    assert len(record.syncs) == 1, record.syncs
    assert devices.read_scalars(np.float32(0.5), 1) == (0.5, 1.0)
