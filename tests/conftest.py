"""Fixtures and helpers shared by the tests.

`device` runs a test once per device: "cpu" (NumPy) always; "standin", the
strict stand-in GPU of standin.py, always (it is tinyresnet's "gpu" during the
test, so the GPU code path runs in every CI run); and "gpu" (CuPy) only when
a CUDA device is usable. So the same engine suite checks every backend.
`host(a)` brings a Tensor's or an array's values to NumPy (`from conftest import host`).
The lesson markers (`-m autograd`, ...) are registered from lessons/lesson_map.py.
"""
import sys
from pathlib import Path

import numpy as np
import pytest

import tinyresnet.cpu
from tinyresnet import Tensor
from tinyresnet import device as devices

LESSONS = Path(__file__).resolve().parents[1] / "lessons"
sys.path.insert(0, str(LESSONS))   # as the notebooks do: `checks`, `solutions`, `lesson_map`, `experiments`
sys.path.insert(0, str(Path(__file__).resolve().parent / "helpers"))  # standin, cifar_fixture, ...

import standin  # noqa: E402 (needs the paths above)
from lesson_map import marker_descriptions  # noqa: E402

NO_GPU = "no GPU: CuPy with a CUDA device is needed (pip install cupy-cuda12x)"
NO_TORCH = "PyTorch not installed: comparison against PyTorch skipped"
HAS_GPU = devices.gpu_available()


@pytest.fixture(params=["cpu", pytest.param("standin", marks=pytest.mark.standin),
                        pytest.param("gpu", marks=pytest.mark.gpu)])
def device(request, monkeypatch):
    """The device name a test runs on: "cpu", or "gpu" (the stand-in, or CuPy when one is available)."""
    if request.param == "standin":
        standin.install(monkeypatch)
        return "gpu"
    if request.param == "gpu" and not HAS_GPU:
        pytest.skip(NO_GPU)
    return request.param


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """Report every "no GPU" skip as coming from this file, so `-ra` prints it once, not once per test."""
    report = (yield).get_result()
    if report.skipped and isinstance(report.longrepr, tuple) and NO_GPU in str(report.longrepr[2]):
        report.longrepr = (__file__, None, report.longrepr[2])


@pytest.fixture
def xp(device):
    """The array module of `device`: numpy, the stand-in or cupy (make inputs with xp.asarray(...))."""
    return devices.xp_for(device)


@pytest.fixture
def rng():
    """A fresh NumPy random generator, the same numbers in every test run."""
    return np.random.default_rng(0)


@pytest.fixture
def torch():
    """PyTorch (CPU is enough) for the comparison tests; they skip without it."""
    torch = pytest.importorskip("torch", reason=NO_TORCH)
    torch.set_num_threads(1)  # small problems; do not compete for shared cores
    return torch


def host(a):
    """The values of a Tensor or an array (NumPy or CuPy) as a NumPy array."""
    return devices.to_device(a.data if isinstance(a, Tensor) else a, "cpu")


def pytest_configure(config):
    for marker, description in marker_descriptions().items():
        config.addinivalue_line("markers", f"{marker}: {description}")


@pytest.fixture(autouse=True)
def core_definitions(monkeypatch):
    """Every test starts with the core's plain definitions in place. A test that installs the CPU
    speed wing (a training run does, so do the `installed` tests) has it taken out again after.
    TINYRESNET_DEFINITIONS=1 in the environment would make install() do nothing, and the tests that
    compare the speed wing with the definitions compare the definitions with themselves: it is
    unset for each test (a test of the switch sets it again)."""
    monkeypatch.delenv(tinyresnet.cpu.SWITCH, raising=False)
    with tinyresnet.cpu.definitions():
        yield


@pytest.fixture
def installed():
    """The CPU speed wing installed for this test (tinyresnet.cpu.install)."""
    tinyresnet.cpu.install()
