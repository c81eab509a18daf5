"""tinyresnet/cpu/__init__.py: install() puts the speed wing in place of the core's definitions, at
one place, and a training step gives the same numbers either way."""
import numpy as np
import pytest

import tinyresnet.cpu
import tinyresnet.device
from tinyresnet import Tensor, models
from tinyresnet import functional as F
from tinyresnet.nn import manual_seed


def core_functions():
    return {name: getattr(module, name) for module, name, _, _ in tinyresnet.cpu.REPLACEMENTS}


def test_install_replaces_every_listed_function_and_uninstall_restores_them():
    plain = core_functions()
    assert all(f is tinyresnet.cpu.DEFINITIONS[m, n] for (m, n) in tinyresnet.cpu.DEFINITIONS
               for f in [getattr(m, n)]), "a test starts with the definitions (conftest)"
    assert tinyresnet.cpu.install() and tinyresnet.cpu.installed()
    assert all(core_functions()[name] is not f for name, f in plain.items())
    with tinyresnet.cpu.definitions():
        assert core_functions() == plain, "definitions() puts the plain versions back for the block"
    assert tinyresnet.cpu.installed(), "and reinstalls what was there after it"
    tinyresnet.cpu.uninstall()
    assert core_functions() == plain


def test_the_switch_keeps_the_definitions(monkeypatch):
    monkeypatch.setenv(tinyresnet.cpu.SWITCH, "1")
    assert tinyresnet.cpu.install() is False
    assert not tinyresnet.cpu.installed(), f"{tinyresnet.cpu.SWITCH}=1 must leave the definitions in place"


def test_the_core_never_imports_the_speed_wing():
    """The core is what a learner reads: none of its modules may import tinyresnet.cpu."""
    import ast
    from pathlib import Path
    package = Path(tinyresnet.cpu.__file__).resolve().parents[1]
    for path in sorted(package.glob("*.py")):
        if path.name in ("train.py", "plot.py"):   # the run wing's two commands, beside run/
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            names = []
            if isinstance(node, ast.ImportFrom):
                names = [node.module or ""] + [f"{node.module or ''}.{a.name}" for a in node.names]
            elif isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            assert not any(n.lstrip(".").startswith("cpu") or ".cpu" in n or n.startswith("run") for n in names), \
                f"{path.name} imports {names}: the core must not import the speed wing or the run wing"


def one_step(seed):
    """Logits, loss and every parameter's gradient of one ResNet-8 step on 4 random images."""
    manual_seed(seed)
    model = models.cifar_resnet(8)
    x = Tensor(np.random.default_rng(seed).standard_normal((4, 3, 32, 32)).astype(np.float32))
    logits = model(x)
    loss = F.cross_entropy(logits, np.array([0, 1, 2, 3]))
    loss.backward()
    return [logits.data, loss.data] + [p.grad for p in model.parameters()]


@pytest.mark.parametrize("seed", [0, 1])
def test_a_training_step_is_the_same_with_and_without_the_speed_wing(seed):
    plain = one_step(seed)
    tinyresnet.cpu.install()
    fast = one_step(seed)
    for i, (a, b) in enumerate(zip(plain, fast)):
        np.testing.assert_allclose(b, a, rtol=2e-4, atol=2e-5,
                                   err_msg=f"output {i} of a ResNet-8 step (0: logits, 1: loss, then the "
                                           "parameters' gradients) differs between the definitions and "
                                           "the installed speed wing")


def test_gpu_arrays_take_the_definitions(monkeypatch):
    """The fast versions are NumPy-only: on the strict stand-in GPU (tests/helpers/standin.py, which
    refuses NumPy functions on device arrays) an installed speed wing must run the definitions."""
    import standin
    plain = one_step(0)
    standin.install(monkeypatch)
    tinyresnet.cpu.install()
    manual_seed(0)
    model = models.cifar_resnet(8).to("gpu")
    x = Tensor(np.random.default_rng(0).standard_normal((4, 3, 32, 32)).astype(np.float32)).to("gpu")
    logits = model(x)
    loss = F.cross_entropy(logits, tinyresnet.device.to_device(np.array([0, 1, 2, 3]), "gpu"))
    loss.backward()
    on_gpu = [logits.data, loss.data] + [p.grad for p in model.parameters()]
    for i, (a, b) in enumerate(zip(plain, on_gpu)):
        np.testing.assert_allclose(tinyresnet.device.to_device(b, "cpu"), a, rtol=2e-4, atol=2e-5,
                                   err_msg=f"output {i} of a ResNet-8 step differs on the stand-in GPU")
