"""The GPU code path without a GPU: the engine on the strict stand-in device (standin.py).

The stand-in follows CuPy's host/device rules, so these tests fail wherever
the engine would mix host and device arrays, call a NumPy function on a
device array, or make the host wait for the GPU inside a training step.
The whole engine suite also runs on it, through the `device` fixture.
"""
import subprocess
import sys
import textwrap

import numpy as np
import pytest

import standin
from cifar_fixture import write_fake_cifar
from ops_table import OPS, inputs, run
from tinyresnet import Tensor, manual_seed, nn, optim, train
from tinyresnet import device as devices
from tinyresnet import functional as F
from tinyresnet.models import cifar_resnet
from tinyresnet.run.checkpoint import load_checkpoint

pytestmark = pytest.mark.standin


@pytest.fixture
def xp(monkeypatch):
    """The stand-in, installed as tinyresnet's "gpu" for this test."""
    return standin.install(monkeypatch)


def assert_close(device_values, cpu_values, what, rtol=1e-5):
    scale = max(float(np.abs(cpu_values).max()), 1.0) if np.size(cpu_values) else 1.0
    np.testing.assert_allclose(device_values, cpu_values, rtol=rtol, atol=rtol * scale,
                               err_msg=f"{what}: the stand-in device and NumPy disagree")


# ------------------------------------------------------------ the stand-in keeps CuPy's rules

def test_implicit_conversion_to_numpy_raises_as_in_cupy(xp):
    x = xp.ones(3)
    with pytest.raises(TypeError, match="Implicit conversion to a NumPy array is not allowed"):
        np.asarray(x)
    np.testing.assert_array_equal(x.get(), [1, 1, 1])  # the explicit way


@pytest.mark.parametrize("mix", [lambda x: x + np.ones(3), lambda x: np.ones(3) * x,
                                 lambda x: x.__setitem__(slice(None), np.zeros(3)),
                                 lambda x: x[np.array([0, 1])], lambda x: x @ np.ones(3)],
                         ids=["add", "rmul", "setitem", "index", "matmul"])
def test_host_arrays_in_device_arithmetic_raise(xp, mix):
    with pytest.raises(standin.HostDeviceMix, match="host"):
        mix(xp.ones(3))


@pytest.mark.parametrize("call", [np.exp, np.sum, lambda x: np.einsum("i->", x), np.concatenate],
                         ids=["exp", "sum", "einsum", "concatenate"])
def test_numpy_functions_on_device_arrays_raise(xp, call):
    x = xp.ones(3)
    with pytest.raises(standin.HostDeviceMix, match=r"applied to a device array: write xp\."):
        call([x, x]) if call is np.concatenate else call(x)


def test_scalars_mix_as_in_cupy(xp):
    x = xp.ones(3, dtype=np.float32)
    for y in (x * 2, 2.0 * x, np.float32(2) * x, x * np.float32(2)):
        assert type(y) is standin.ndarray and y.dtype == np.float32
        np.testing.assert_array_equal(y.get(), [2, 2, 2])


def test_reductions_stay_on_the_device_as_0d_arrays(xp):
    x = xp.asarray(np.arange(6.0).reshape(2, 3))
    for r in (x.sum(), x.max(), xp.sum(x), x.argmax(), (x > 2).all()):
        assert type(r) is standin.ndarray and r.shape == ()


def test_reads_to_the_host_are_counted_and_refused_when_strict(xp):
    s = xp.asarray(np.float32(2.5))
    with standin.recording() as r:
        assert float(s) == 2.5 and int(s) == 2 and bool(s) and s.item() == 2.5
        s.get()
    assert len(r.syncs) == 5 and all("test_standin.py" in where for where in r.syncs), r.syncs
    with standin.strict():
        with pytest.raises(standin.HostSync, match=r"float\(\) at test_standin.py:\d+"):
            float(s)


def test_uploads_are_counted(xp):
    with standin.recording() as r:
        xp.asarray(np.zeros(4))
        xp.asarray(0.5)
        xp.zeros(4)  # made on the device: no upload
    assert len(r.uploads) == 1 and "array (4,)" in r.uploads[0] and len(r.scalar_uploads) == 1


def test_elementwise_results_are_c_ordered_as_in_cupy(xp):
    channels_last = xp.zeros((2, 4, 4, 3)).transpose(0, 3, 1, 2)
    assert not channels_last.flags.c_contiguous
    assert (channels_last + 1).flags.c_contiguous
    assert xp.empty_like(channels_last).strides == channels_last.strides  # *_like keeps the layout


def test_empty_memory_is_garbage(xp):
    assert np.isnan(xp.empty(3).get()).all() and np.isnan(xp.empty_like(xp.ones(2)).get()).all()


def test_what_cupy_lacks_is_missing(xp):
    x = xp.ones((2, 3))
    with pytest.raises(AttributeError, match="stand-in device has no 'random'"):
        xp.random
    with pytest.raises(TypeError, match="writeable"):
        xp.lib.stride_tricks.as_strided(x, shape=(3,), strides=(8,), writeable=False)
    with pytest.raises(TypeError, match="'out'"):
        xp.einsum("ij->i", x, out=xp.zeros(2))
    with pytest.raises(TypeError, match="casting"):
        x.astype(np.float32, casting="unsafe")


def test_duplicate_and_out_of_bounds_targets_are_refused(xp):
    a = xp.zeros(3)
    with pytest.raises(IndexError, match="undefined"):
        a[xp.asarray(np.array([0, 0]))] = xp.asarray(np.array([1.0, 2.0]))
    with pytest.raises(IndexError, match="wraps out-of-bounds"):
        a[xp.asarray(np.array([3]))]


def test_stand_in_arrays_are_the_gpu(xp):
    x = xp.ones(2)
    assert devices.device_of(x) == "gpu" and devices.xp_of(x) is xp
    assert Tensor(x).device == "gpu" and Tensor([1.0]).to("gpu").device == "gpu"
    assert type(Tensor(x).numpy()) is np.ndarray


# ------------------------------------------------------------ every op, forward and backward

@pytest.mark.parametrize("name", list(OPS))
def test_op_runs_on_the_device_without_reading_it(name, xp, rng):
    """Forward and backward stay on the device: no read to the host, no host array uploaded."""
    arrays = inputs(name, rng)
    out_cpu, grads_cpu = run(name, arrays, np)
    with standin.recording() as record:
        out_dev, grads_dev = run(name, arrays, xp, during=standin.strict)
    inside = [u for u in record.uploads if "ops_table.py" not in u]
    assert not inside, f"{name} copied host arrays to the device inside the op: {inside}"
    assert out_dev.dtype == out_cpu.dtype == np.float32, f"{name}: float32 in, float32 out"
    assert_close(out_dev, out_cpu, f"{name} output")
    for i, (g_dev, g_cpu) in enumerate(zip(grads_dev, grads_cpu)):
        assert g_dev.dtype == np.float32, f"{name}: gradient of argument {i} is {g_dev.dtype}"
        assert_close(g_dev, g_cpu, f"{name} gradient of argument {i}")


# ------------------------------------------------------------ a whole net

def step(model, x, y, xp):
    """One SGD step; returns the loss (a device scalar)."""
    opt = optim.SGD(model.parameters(), lr=0.1, momentum=0.9, weight_decay=1e-4)
    loss = F.cross_entropy(model(Tensor(x)), y)
    opt.zero_grad()
    loss.backward()
    opt.step()
    return loss


@pytest.mark.parametrize("residual, shortcut", [(True, "A"), (True, "B"), (False, "A")],
                         ids=["resnet-A", "resnet-B", "plain"])
def test_model_forward_backward_and_step_stay_on_the_device(residual, shortcut, xp, monkeypatch):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((4, 3, 32, 32)).astype(np.float32)
    y = rng.integers(0, 10, 4)
    manual_seed(0)
    cpu = cifar_resnet(8, residual, shortcut)
    manual_seed(0)
    dev = cifar_resnet(8, residual, shortcut).to("gpu")
    assert all(devices.device_of(p.data) == "gpu" for p in dev.parameters())
    assert all(devices.device_of(b) == "gpu" for _, b in dev.named_buffers())
    x_dev, y_dev = devices.to_device(x, "gpu"), devices.to_device(y, "gpu")

    asked = []
    monkeypatch.setattr(xp.cuda.runtime, "getDeviceCount", lambda: asked.append(1) or 1)
    with standin.strict(), standin.recording() as record:
        loss_dev = step(dev, x_dev, y_dev, xp)
    assert not asked, f"the step asked the CUDA runtime {len(asked)} times: xp_of must be a type lookup"
    assert not record.uploads, f"the step copied host arrays to the device: {record.uploads}"

    loss_cpu = step(cpu, x, y, np)
    assert float(loss_dev.data) == pytest.approx(float(loss_cpu.data), rel=1e-5)
    state_dev, state_cpu = dev.state_dict(), cpu.state_dict()
    assert all(type(v) is np.ndarray for v in state_dev.values()), "state_dict holds host arrays"
    for key in state_cpu:
        assert_close(state_dev[key], state_cpu[key], f"{key} after one SGD step", rtol=1e-4)


def test_state_dict_loads_onto_the_device(xp):
    manual_seed(1)
    source = cifar_resnet(8)
    target = cifar_resnet(8).to("gpu")
    target.load_state_dict(source.state_dict())
    for key, value in target.state_dict().items():
        np.testing.assert_array_equal(value, source.state_dict()[key], err_msg=key)
    assert all(devices.device_of(p.data) == "gpu" for p in target.parameters())


def test_parameter_from_a_device_array(xp):
    p = nn.Parameter(xp.ones(3, dtype=np.float64))
    assert p.device == "gpu" and p.dtype == np.float32


# ------------------------------------------------------------ a training run

def recorded(fn, records, is_strict=False):
    """fn, recording the transfers of each call into records (and refusing reads if is_strict)."""
    def wrapper(*args, **kwargs):
        with standin.recording() as record, (standin.strict() if is_strict else _nothing()):
            result = fn(*args, **kwargs)
        records.append(record)
        return result
    return wrapper


class _nothing:
    def __enter__(self):
        return None

    def __exit__(self, *exc):
        return False


def test_three_iterations_train_on_the_device_and_read_it_once_per_window(xp, tmp_path, monkeypatch):
    """The loop on the GPU: no step reads the device (no host-side label check, no host RNG, no
    sync), each logging window reads it once, evaluation once, and the checkpoint is host arrays."""
    fake = write_fake_cifar(tmp_path / "cifar", per_file=5)
    monkeypatch.setattr(train, "READ_EVERY", 2)
    epochs, steps, windows, evaluations = [], [], [], []
    monkeypatch.setattr(train, "train_one_epoch", recorded(train.train_one_epoch, epochs))
    monkeypatch.setattr(train, "train_step", recorded(train.train_step, steps, is_strict=True))
    monkeypatch.setattr(train, "read_window", recorded(train.read_window, windows))
    monkeypatch.setattr(train, "evaluate", recorded(train.evaluate, evaluations))
    argv = ["--depth", "8", "--batch-size", "8", "--iterations", "3", "--data-dir", str(fake), "--quiet"]
    on_device = train.main([*argv, "--device", "gpu", "--out", str(tmp_path / "gpu")])

    assert len(steps) == 3 and not any(r.syncs or r.uploads for r in steps), steps
    assert [len(r.syncs) for r in windows] == [1], [r.syncs for r in windows]
    in_epochs = [where for r in epochs for where in r.syncs]
    assert len(in_epochs) == len(windows), f"the epoch loop read the device outside its window reads: {in_epochs}"
    assert [len(r.syncs) for r in evaluations] == [1], [r.syncs for r in evaluations]
    checkpoint = load_checkpoint(tmp_path / "gpu" / "checkpoint.npz")
    assert all(type(v) is np.ndarray for v in checkpoint["model"].values())
    assert all(v is None or type(v) is np.ndarray for v in checkpoint["optimizer"]["velocity"])

    on_cpu = train.main([*argv, "--out", str(tmp_path / "cpu")])
    for key in ("train_loss", "train_error", "test_loss", "test_error"):
        assert on_device[key] == pytest.approx(on_cpu[key], rel=1e-4, abs=1e-6), key
    resumed = train.main(["--out", str(tmp_path / "gpu"), "--resume", "--iterations", "6", "--quiet"])
    assert resumed["iterations"] == 6 and resumed["device"] == "gpu"


# ------------------------------------------------------------ the package leaves the allocator alone

def test_importing_tinyresnet_does_not_change_the_allocator():
    """mallopt lasts for the whole process (a Jupyter kernel): only an explicit tinyresnet.cpu.install()
    (through memory.keep_freed_memory) calls it."""
    code = textwrap.dedent("""
        import ctypes, sys
        calls = []
        real = ctypes.CDLL
        def spy(name, *args, **kwargs):
            if "libc" in str(name):
                calls.append(name)
            return real(name, *args, **kwargs)
        ctypes.CDLL = spy
        import tinyresnet, tinyresnet.functional, tinyresnet.models, tinyresnet.data, tinyresnet.train
        import tinyresnet.cpu
        assert not calls, f"importing tinyresnet opened {calls} (mallopt)"
        tinyresnet.cpu.install()
        assert calls, "install() did not reach libc (keep_freed_memory)"
    """)
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
