"""A net that cannot fit in memory is refused before it is built (issue 31, item 4: `--depth 99998`).

The estimate (run/budget.py) is held to a measured training step, and the refusal is one line,
leaving no folder, even under an address-space limit where building the net would fail.
"""
import re
import resource
import subprocess
import sys
import time
import tracemalloc
from pathlib import Path

import numpy as np
import pytest

from tinyresnet import models, optim, train
from tinyresnet.run import budget
from tinyresnet.run.recipe import Recipe, UsageError

pytest.register_assert_rewrite("train_helpers")
from train_helpers import tiny  # noqa: E402

pytest_plugins = ["train_helpers"]  # its fixture: fake
pytestmark = pytest.mark.train

ROOT = Path(__file__).resolve().parents[2]
LIMIT = 3 << 30  # bytes of address space for the process that asks for --depth 99998


def test_the_counts_are_the_nets_own():
    """Parameters and per-image output values of ResNet-20, extended from depth 8 and 14, are
    those of the net itself (0.27M parameters, Table 6)."""
    values, parameters = budget.counts(20)
    assert parameters == models.cifar_resnet(20).num_parameters() == 269_722
    assert values == 16 * 32 * 32 * 7 + 32 * 16 * 16 * 6 + 64 * 8 * 8 * 6 + 10  # stem + 3 stages + classifier


def training_step_peak(depth, batch):
    """The most memory that NumPy arrays take during two training steps (after a first one that
    sets up the caches and threads of the CPU wing), by tracemalloc."""
    x, y = np.zeros((batch, 3, 32, 32), np.float32), np.zeros(batch, np.int64)
    model = models.cifar_resnet(depth)
    train.train_step(model, optim.SGD(model.parameters()), x, y)
    del model
    tracemalloc.start()
    try:
        model = models.cifar_resnet(depth)
        opt = optim.SGD(model.parameters())
        for _ in range(2):
            train.train_step(model, opt, x, y)
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_the_estimate_is_about_what_a_training_step_takes(installed):
    """As a run trains on the CPU: with the CPU speed wing installed."""
    measured, estimate = training_step_peak(8, 8), budget.training_bytes(8, 8)
    assert 0.8 < estimate / measured < 1.5, (f"a step of ResNet-8 at batch 8 took {measured / 1e6:.1f} MB, "
                                             f"the estimate says {estimate / 1e6:.1f} MB")


def test_a_net_that_does_not_fit_is_refused_naming_what_to_change():
    with pytest.raises(UsageError, match=r"--depth 1202 --batch-size 128: training ResNet-1202 \(19,421,274 "
                                         r"parameters\) takes about [\d.]+ GB of memory, and this machine has "
                                         r"1 GB available; give a smaller --depth or --batch-size"):
        budget.check_fits(Recipe(depth=1202), available=10**9)
    budget.check_fits(Recipe(depth=20), available=10**9)  # the paper's ResNet-20: about 0.5 GB


def test_depth_99998_is_one_line_and_leaves_nothing(fake, tmp_path):
    """Under an address-space limit (ulimit -v), where building the net raised MemoryError
    with a traceback: now refused before anything is built, in about a second."""
    out = tmp_path / "deep"
    started = time.monotonic()
    done = subprocess.run([sys.executable, "-m", "tinyresnet.train", *tiny(fake, out, "--iterations", "1"),
                           "--depth", "99998"], cwd=ROOT, capture_output=True, text=True, timeout=120,
                          preexec_fn=lambda: resource.setrlimit(resource.RLIMIT_AS, (LIMIT, LIMIT)))
    err = done.stderr.strip()
    assert done.returncode == 2 and len(err.splitlines()) == 1 and "Traceback" not in err, err
    assert re.search(r"--depth 99998 --batch-size 8: training ResNet-99998 .* takes about [\d.]+ [GT]B of "
                     r"memory, and this machine has [\d.]+ [GM]B available; give a smaller --depth", err), err
    assert not out.exists(), "the refused run left its folder"
    assert time.monotonic() - started < 60
