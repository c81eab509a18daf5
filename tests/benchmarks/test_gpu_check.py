"""The GPU check's dry run: on a machine without a GPU, benchmarks/gpu_check.py still prints the
versions and runs its pytest part, skips each GPU part with one line, and leaves its files in
$OUT. CI runs it, so the script cannot rot between the rare runs on a borrowed GPU.

The dry run's pytest part runs one test (--tests): the whole `-m "gpu or standin"` selection
would repeat standin tests that CI runs anyway, at several times the cost.
"""
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tinyresnet.device import gpu_available
from tinyresnet.run.recipe import parse_command_line

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "benchmarks"))
import gpu_check  # noqa: E402

DRY_TEST = "tests/core/test_loss.py::test_backward"  # one test with a standin and a gpu variant
BORROWED_GPU_COMMAND = 8 * 60  # seconds one command may take on a borrowed GPU


@pytest.mark.skipif(gpu_available(), reason="a GPU is here: run the real check, python benchmarks/gpu_check.py")
def test_dry_run_skips_each_gpu_part_in_one_line_and_keeps_its_files(tmp_path):
    out = tmp_path / "out"
    done = subprocess.run([sys.executable, "benchmarks/gpu_check.py", "--tests", DRY_TEST], cwd=ROOT,
                          env=dict(os.environ, OUT=str(out)), capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, f"the dry run failed:\n{done.stdout}\n{done.stderr}"
    lines = done.stdout.splitlines()
    skipped = [line for line in lines if re.match(r"\[\w+\] skipped", line)]
    assert [line.split("]")[0] for line in skipped] == ["[step", "[train"], \
        f"without a GPU the step and train parts each skip in one line:\n{done.stdout}"
    assert all("no GPU: " in line for line in skipped), skipped
    assert any(line.startswith("[versions] finished") for line in lines)
    assert any(line.startswith("[pytest] finished") for line in lines)
    assert lines[-1].endswith("every part that ran passed; skipped: step, train"), lines[-1]
    assert sorted(path.name for path in out.iterdir()) == ["gpu_check.txt", "pytest.txt", "versions.txt"]
    assert (out / "gpu_check.txt").read_text() == done.stdout, "the transcript holds every line printed"
    versions = (out / "versions.txt").read_text()
    assert "Python " in versions and "nvidia-smi: " in versions and versions.splitlines()[-1].startswith("no GPU: ")
    report = (out / "pytest.txt").read_text()
    assert "-m 'gpu or standin' -q" in report and "1 passed, 1 skipped" in report, report


def test_a_part_that_hangs_is_stopped_at_its_limit_and_keeps_what_it_printed(tmp_path):
    hang = [sys.executable, "-c", "print('started', flush=True); import time; time.sleep(60)"]
    start = time.perf_counter()
    status, seconds = gpu_check.run_part(hang, tmp_path / "part.txt", limit=1, grace=1)
    assert status is None and time.perf_counter() - start < 10, "the part should be stopped after about 1 s"
    assert (tmp_path / "part.txt").read_text().splitlines()[-1] == "started"


def test_the_training_command_is_one_that_tinyresnet_train_accepts(tmp_path):
    recipe, _, _ = parse_command_line(gpu_check.train_arguments(tmp_path / "data", tmp_path / "run", 3))
    assert (recipe.depth, recipe.residual, recipe.device, recipe.epochs) == (20, True, "gpu", 3)
    assert (recipe.data_dir, recipe.out) == (str(tmp_path / "data"), str(tmp_path / "run"))


def test_the_parts_fit_one_command_and_their_files_can_come_back():
    worst = sum(gpu_check.LIMITS.values()) + len(gpu_check.LIMITS) * gpu_check.GRACE
    assert worst <= BORROWED_GPU_COMMAND - 30, f"every part stopped at its limit would take {worst} s"
    names = list(gpu_check.FILES.values())
    # what comes back from $OUT: at most 8 plain files named in letters, digits, '.', '_', '-'
    assert len(set(names)) == len(names) <= 8 and all(re.fullmatch(r"[\w.-]+", name) for name in names)


def test_files_go_to_out_when_it_is_set(monkeypatch, tmp_path):
    monkeypatch.setenv("OUT", str(tmp_path))
    assert gpu_check.results_folder() == tmp_path
    monkeypatch.delenv("OUT")
    assert gpu_check.results_folder() == ROOT / "benchmarks" / "results" / "gpu"
