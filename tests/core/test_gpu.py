"""The GPU backend: every op gives the same numbers on CuPy as on NumPy.

The whole engine is written once against an array module `xp`; these tests run
the same float32 inputs through NumPy and CuPy and compare outputs and
gradients (to ~1e-4: float32 sums are added up in a different order on the GPU).
The rest of the engine suite also runs on the GPU through the `device` fixture.
"""
import numpy as np
import pytest

from tinyresnet import gpu_available

if not gpu_available():
    pytest.skip("no GPU: CuPy with a CUDA device is needed (pip install cupy-cuda12x)",
                allow_module_level=True)

cupy = pytest.importorskip("cupy")

from ops_table import OPS, RUNNING, inputs, run  # noqa: E402
from tinyresnet import DeviceError, Tensor, nn  # noqa: E402
from tinyresnet import functional as F  # noqa: E402
from tinyresnet.device import device_of  # noqa: E402
from tinyresnet.optim import SGD  # noqa: E402

from conftest import host  # noqa: E402

pytestmark = pytest.mark.gpu


def assert_close(gpu, cpu, what, rtol=1e-4):
    scale = max(float(np.abs(cpu).max()), 1.0) if np.size(cpu) else 1.0
    np.testing.assert_allclose(gpu, cpu, rtol=rtol, atol=rtol * scale,
                               err_msg=f"{what}: CuPy (gpu) and NumPy (cpu) disagree")


def f32(rng, *shape, scale=1.0, shift=0.0):
    return (rng.standard_normal(shape) * scale + shift).astype(np.float32)


@pytest.mark.parametrize("name", list(OPS))
def test_op_matches_numpy(name, rng):
    arrays = inputs(name, rng)
    out_cpu, grads_cpu = run(name, arrays, np)
    out_gpu, grads_gpu = run(name, arrays, cupy)
    assert out_gpu.dtype == out_cpu.dtype == np.float32, f"{name}: float32 in, float32 out on both devices"
    assert_close(out_gpu, out_cpu, f"{name} output")
    assert len(grads_gpu) == len(grads_cpu)
    for i, (g_gpu, g_cpu) in enumerate(zip(grads_gpu, grads_cpu)):
        assert g_gpu.dtype == np.float32, f"{name}: gradient of argument {i} is {g_gpu.dtype} on the gpu"
        assert_close(g_gpu, g_cpu, f"{name} gradient of argument {i}")


@pytest.mark.parametrize("training", [True, False], ids=["train", "eval"])
def test_batch_norm_running_statistics_match(training, rng):
    x, gamma, beta = f32(rng, 4, 3, 4, 4, scale=2, shift=1), f32(rng, 3), f32(rng, 3)
    stats = {}
    for device, xp in [("cpu", np), ("gpu", cupy)]:
        mean, var = xp.asarray(RUNNING[0].copy()), xp.asarray(RUNNING[1].copy())
        F.batch_norm(Tensor(xp.asarray(x)), Tensor(xp.asarray(gamma)), Tensor(xp.asarray(beta)),
                     mean, var, training)
        stats[device] = host(mean), host(var)
    assert_close(stats["gpu"][0], stats["cpu"][0], "running_mean")
    assert_close(stats["gpu"][1], stats["cpu"][1], "running_var")


# ------------------------------------------------------------ modules and optimizer on the GPU

class SmallNet(nn.Module):
    def __init__(self):
        self.body = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(),
                                  nn.Conv2d(8, 16, 3, stride=2, padding=1), nn.BatchNorm2d(16), nn.ReLU())
        self.fc = nn.Linear(16, 10)

    def forward(self, x):
        return self.fc(F.global_avg_pool(self.body(x)))


def test_training_step_matches_numpy(rng):
    cpu_net = SmallNet()
    gpu_net = SmallNet()
    gpu_net.load_state_dict(cpu_net.state_dict())
    assert gpu_net.to("gpu") is gpu_net
    assert all(device_of(p.data) == "gpu" for p in gpu_net.parameters())
    assert all(device_of(b) == "gpu" for _, b in gpu_net.named_buffers())

    x, labels = f32(rng, 8, 3, 8, 8), rng.integers(0, 10, 8)
    nets = {"cpu": (cpu_net, np), "gpu": (gpu_net, cupy)}
    losses = {}
    for device, (net, xp) in nets.items():
        opt = SGD(net.parameters(), lr=0.1, momentum=0.9, weight_decay=1e-4)
        for _ in range(2):
            opt.zero_grad()
            loss = F.cross_entropy(net(Tensor(xp.asarray(x))), xp.asarray(labels))
            loss.backward()
            opt.step()
        losses[device] = loss.item()
    assert losses["gpu"] == pytest.approx(losses["cpu"], rel=1e-4)
    cpu_state, gpu_state = cpu_net.state_dict(), gpu_net.state_dict()
    assert all(type(v) is np.ndarray for v in gpu_state.values()), "state_dict always holds host arrays"
    for key in cpu_state:
        assert_close(gpu_state[key], cpu_state[key], f"{key} after two SGD steps", rtol=1e-3)


def test_optimizer_state_moves_between_devices(rng):
    p = nn.Parameter(f32(rng, 3))
    p.data = cupy.asarray(p.data)
    opt = SGD([p])
    p.grad = cupy.ones(3, dtype=cupy.float32)
    opt.step()
    state = opt.state_dict()
    assert type(state["velocity"][0]) is np.ndarray, "optimizer state is saved as host arrays"
    q = nn.Parameter(f32(rng, 3))
    q.data = cupy.asarray(q.data)
    fresh = SGD([q])
    fresh.load_state_dict(state)
    assert device_of(fresh.velocity[0]) == "gpu", "loaded velocity goes to its parameter's device"


def test_tensor_round_trip():
    x = Tensor([1.0, 2.0, 3.0], requires_grad=True)
    g = x.to("gpu")
    assert g.device == "gpu" and g.requires_grad and g.dtype == np.float32
    back = g.to("cpu")
    assert back.device == "cpu" and type(back.numpy()) is np.ndarray
    np.testing.assert_array_equal(back.numpy(), [1.0, 2.0, 3.0])
    np.testing.assert_array_equal(g.numpy(), [1.0, 2.0, 3.0])


# ------------------------------------------------------------ mixing devices

def on(device, shape):
    data = np.ones(shape, dtype=np.float32)
    return Tensor(cupy.asarray(data) if device == "gpu" else data, requires_grad=True)


MIXED = {
    "add": lambda: on("cpu", (2, 2)) + on("gpu", (2, 2)),
    "mul": lambda: on("gpu", (2, 2)) * on("cpu", (2, 2)),
    "matmul": lambda: on("cpu", (2, 2)) @ on("gpu", (2, 2)),
    "conv2d": lambda: F.conv2d(on("gpu", (1, 2, 4, 4)), on("cpu", (3, 2, 3, 3))),
    "batch_norm": lambda: F.batch_norm(on("gpu", (2, 3, 2, 2)), on("gpu", (3,)), on("gpu", (3,)),
                                       np.zeros(3, np.float32), np.ones(3, np.float32), True),
    "linear": lambda: F.linear(on("gpu", (2, 4)), on("cpu", (3, 4))),
    "module": lambda: nn.Conv2d(3, 4).to("gpu")(on("cpu", (1, 3, 4, 4))),
}


@pytest.mark.parametrize("name", list(MIXED))
def test_mixed_devices_raise_device_error_naming_both(name):
    with pytest.raises(DeviceError, match=r"got arrays on two devices \(cpu and gpu\)"):
        MIXED[name]()


def test_cross_entropy_mixed_devices_raise_device_error():
    with pytest.raises(DeviceError, match="cpu.*gpu|gpu.*cpu"):
        F.cross_entropy(on("gpu", (2, 3)), np.array([0, 1]))
