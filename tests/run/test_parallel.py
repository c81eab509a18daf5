"""Data-parallel training (tinyresnet/run/parallel.py): `mpiexec -n 2 python -m tinyresnet.train`.

The claim to hold: two ranks, each with half of every minibatch and its own batch norm, train
the weights that one process trains with ghost batch norm over the same halves (--bn-batch),
to float32 rounding; a signal to mpiexec stops both ranks after the same step with one
checkpoint, and the run resumes from it; a rank that hangs ends the run with one line.
The runs need mpi4py and an `mpiexec` (pip install mpi4py mpich) and skip, saying so, without
them. The rest (the recipe on N ranks, shares, the message when mpi4py is missing) needs neither.
"""
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

import standin
from conftest import HAS_GPU, NO_GPU
from tinyresnet import train
from tinyresnet.device import DeviceError
from tinyresnet.run import parallel
from tinyresnet.run.checkpoint import load_checkpoint
from tinyresnet.run.recipe import Recipe, UsageError

pytest.register_assert_rewrite("train_helpers")
from train_helpers import log_rows, tiny, weights  # noqa: E402

pytest_plugins = ["train_helpers"]  # its fixtures: fake, no_network

pytestmark = [pytest.mark.train, pytest.mark.parallel]   # lessons 04 and 10

ROOT = Path(__file__).resolve().parents[2]
MPIEXEC = shutil.which("mpiexec") or shutil.which("mpiexec", path=str(Path(sys.executable).parent))  # pip: beside python


def mpi_missing():
    """Why the multi-rank runs cannot run here, or None."""
    try:
        import mpi4py  # noqa: F401
    except ImportError:
        return "mpi4py is not installed (pip install mpi4py mpich)"
    if MPIEXEC is None:
        return "no mpiexec on PATH (pip install mpich)"
    return None


needs_mpi = pytest.mark.skipif(mpi_missing() is not None, reason=f"data-parallel runs skipped: {mpi_missing()}")

BATCH, SHARE = "16", "8"   # the fake set's 25 images: one step per epoch of 16, 8 per rank


def options(fake, out, *more):
    """A tiny run's options: depth 8, batch 16, the test set measured at the end only."""
    return ["--depth", "8", "--batch-size", BATCH, "--eval-every", "1000", "--data-dir", str(fake),
            "--out", str(out), "--quiet", *more]


def mpiexec(*argv):
    """The command line of a 2-rank run."""
    return [MPIEXEC, "-n", "2", sys.executable, "-m", "tinyresnet.train", *argv]


def environment(**more):
    env = {k: v for k, v in os.environ.items() if k not in parallel.LAUNCHERS}
    return {**env, "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", **more}


def run_ranks(*argv, timeout=120):
    return subprocess.run(mpiexec(*argv), cwd=ROOT, env=environment(), capture_output=True, text=True,
                          timeout=timeout)


@needs_mpi
def test_two_ranks_train_what_one_process_trains_with_ghost_batch_norm(fake, tmp_path):
    """Two ranks of 8 images each against one process normalizing slices of 8 (--bn-batch 8): the
    same log and the same weights to float32 rounding after a few steps."""
    two, one = tmp_path / "two", tmp_path / "one"
    done = run_ranks(*options(fake, two, "--iterations", "4", "--eval-every", "2"))
    assert done.returncode == 0, done.stderr
    assert done.stdout.count("images/s training") == 1, "rank 0 alone prints the summary"
    train.main(options(fake, one, "--iterations", "4", "--eval-every", "2", "--bn-batch", SHARE))

    config = json.loads((two / "config.json").read_text())
    assert config["args"]["bn_batch"] == 8, "a 2-rank run records the per-rank batch norm batch"
    assert config["processes"] == 2 and config["command"].startswith("mpiexec -n 2 python -m tinyresnet.train")
    assert config["test_images"] == 5, "the test set of every rank together"
    ours, theirs = log_rows(two), log_rows(one)
    assert len(ours) == 4
    assert [r[:3] + [r[4], r[6]] for r in ours] == [r[:3] + [r[4], r[6]] for r in theirs], \
        "iterations, lr, training and test errors must agree row by row"
    for column in (3, 5):  # the losses, to rounding
        np.testing.assert_allclose([float(r[column]) for r in ours], [float(r[column]) for r in theirs],
                                   rtol=1e-5, equal_nan=True)
    a, b = weights(two), weights(one)
    for k in b:
        np.testing.assert_allclose(a[k], b[k], rtol=1e-4, atol=1e-6 * max(1, np.abs(b[k]).max()),
                                   err_msg=f"{k}: 2 ranks and one process with --bn-batch {SHARE} differ "
                                           "by more than float32 rounding")


@needs_mpi
def test_ctrl_c_stops_both_ranks_after_one_step_and_the_run_resumes(fake, tmp_path):
    """Ctrl-C to mpiexec (which passes it to both ranks): they stop after the same step, rank 0
    saves one checkpoint and says how to go on; resumed, the run ends as one never stopped."""
    steps = 12
    stopped, whole = tmp_path / "stopped", tmp_path / "whole"
    run = subprocess.Popen(mpiexec(*options(fake, stopped, "--iterations", str(steps))), cwd=ROOT,
                           env=environment(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 60
    while run.poll() is None and time.monotonic() < deadline and not (
            (stopped / "log.csv").exists() and len(log_rows(stopped)) >= 1):
        time.sleep(0.01)
    run.send_signal(signal.SIGINT)
    _, err = run.communicate(timeout=60)
    finished = run.returncode == 0 and (stopped / "log.csv").exists() and log_rows(stopped)[-1:] and \
        int(log_rows(stopped)[-1][0]) == steps
    if finished:
        pytest.skip("the run finished all its steps before Ctrl-C reached it: too fast a machine")
    assert run.returncode == 130, (f"Ctrl-C to mpiexec must stop both ranks with status 130 (interrupted), "
                                   f"got {run.returncode}:\n{err}")
    at = load_checkpoint(stopped / "checkpoint.npz")["iteration"]
    assert 0 < at < steps
    assert err.count("tinyresnet.train: interrupted") == 1, err
    assert f"holds iteration {at}; go on with: mpiexec -n 2 python -m tinyresnet.train" in err, err
    resumed = run_ranks("--out", str(stopped), "--resume", "--quiet")
    assert resumed.returncode == 0, resumed.stderr
    uninterrupted = run_ranks(*options(fake, whole, "--iterations", str(steps)))
    assert uninterrupted.returncode == 0, uninterrupted.stderr
    assert log_rows(stopped) == log_rows(whole)
    a, b = weights(stopped), weights(whole)
    for k in b:
        np.testing.assert_array_equal(a[k], b[k], err_msg=f"{k}: a resumed 2-rank run must go on exactly")


@needs_mpi
def test_a_rank_that_hangs_ends_the_run_with_one_line(fake, tmp_path):
    """SIGSTOP one rank: the other waits TINYRESNET_MPI_TIMEOUT seconds, says so, and ends the run."""
    out = tmp_path / "hang"
    run = subprocess.Popen(mpiexec(*options(fake, out, "--iterations", "1000")), cwd=ROOT,
                           env=environment(TINYRESNET_MPI_TIMEOUT="3"),
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    rank1 = None
    try:
        deadline = time.monotonic() + 60
        while rank1 is None and time.monotonic() < deadline and run.poll() is None:
            logged = (out / "log.csv").exists() and len(log_rows(out)) >= 1  # a checkpoint saved
            rank1 = next(iter(ranks_of(out, "1")), None) if logged else None
            time.sleep(0.05)
        assert rank1 is not None, "rank 1 of the run was not found"
        os.kill(rank1, signal.SIGSTOP)
        _, err = run.communicate(timeout=60)
    finally:
        if rank1 is not None:
            try:
                os.kill(rank1, signal.SIGCONT)
                os.kill(rank1, signal.SIGKILL)
            except ProcessLookupError:
                pass
        if run.poll() is None:
            run.kill()
    assert run.returncode != 0
    assert "rank 0 waited 3 s for the other ranks" in err and "died or hangs" in err, err
    assert "--resume" in err


def ranks_of(out, rank):
    """Process ids of the ranks (PMI_RANK=rank) whose command line names the folder out."""
    found = []
    for proc in Path("/proc").iterdir():
        try:
            cmd = (proc / "cmdline").read_bytes().split(b"\0")
            env = (proc / "environ").read_bytes().split(b"\0")
        except (OSError, ValueError):
            continue
        if (str(out).encode() in cmd and b"tinyresnet.train" in cmd and not cmd[0].endswith(b"mpiexec")
                and f"PMI_RANK={rank}".encode() in env):
            found.append(int(proc.name))
    return found


def test_several_processes_without_mpi4py_say_so_in_one_line(fake, tmp_path):
    """A launcher started 2 processes (PMI_SIZE=2) but mpi4py cannot be imported: exit 2, one line."""
    code = ("import sys; sys.modules['mpi4py'] = None; from tinyresnet import train; "
            f"train.main({tiny(fake, tmp_path / 'run', '--iterations', '1')!r})")
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=environment(PMI_SIZE="2", PMI_RANK="0"),
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 2, done.stderr
    assert done.stderr.strip().splitlines() == [
        "tinyresnet.train: error: started on 2 processes by mpiexec, but mpi4py is not installed: "
        "pip install mpi4py mpich (or run one process without mpiexec)"]
    assert not (tmp_path / "run").exists()


@pytest.mark.skipif(mpi_missing() is not None, reason=f"needs mpi4py: {mpi_missing()}")
def test_a_launcher_whose_mpi_is_not_mpi4pys_is_refused(fake, tmp_path):
    """PMI_SIZE=2 but MPI sees one process (another MPI's mpiexec, or none): each process would
    train alone into the same folder; it stops with one line instead."""
    done = subprocess.run([sys.executable, "-m", "tinyresnet.train", *tiny(fake, tmp_path / "run", "--iterations", "1")],
                          cwd=ROOT, env=environment(PMI_SIZE="2", PMI_RANK="0"), capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 2, done.stderr
    assert "the launcher started 2 processes, but MPI here sees 1" in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1, done.stderr
    assert not (tmp_path / "run").exists()


def test_one_process_is_solo_without_touching_mpi(monkeypatch):
    for name in parallel.LAUNCHERS:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr(parallel, "_team", None)
    monkeypatch.setitem(sys.modules, "mpi4py", None)  # an import would fail
    assert isinstance(parallel.team(), parallel.Solo)


# ---------------------------------------------------------------- the recipe and the shares on N ranks

class FakeComm:
    """Just enough of an MPI communicator to check one rank's side of Ranks: what it would send
    comes back as if every rank had sent the same."""

    def __init__(self, size, rank):
        self.size, self.rank = size, rank

    def Get_size(self):
        return self.size

    def Get_rank(self):
        return self.rank

    def Split_type(self, kind):
        return self

    def allgather(self, value):
        return [value] * self.size

    def bcast(self, value, root=0):
        return value


class FakeMPI:
    COMM_TYPE_SHARED = "shared"


def ranks(size=2, rank=0):
    return parallel.Ranks(FakeComm(size, rank), FakeMPI)


def test_a_fresh_run_on_n_ranks_normalizes_each_ranks_share():
    assert ranks(2).fit(Recipe(batch_size=128), fresh=True).bn_batch == 64
    assert ranks(4).fit(Recipe(batch_size=128, bn_batch=16), fresh=True).bn_batch == 16
    assert ranks(2, rank=1).fit(Recipe(batch_size=128), fresh=True).quiet, "only rank 0 speaks"


@pytest.mark.parametrize("size, options, fresh, message", [
    (3, dict(batch_size=128), True, "--batch-size 128 does not split into 3 equal shares"),
    (2, dict(batch_size=128, bn_batch=64 * 2), True, "--bn-batch 128 does not divide each process's 64 images"),
    (2, dict(batch_size=128, out="runs/x"), False, "runs/x was trained in one process"),
], ids=["batch", "bn batch", "resuming a one-process run"])
def test_the_recipe_on_n_ranks_is_checked(size, options, fresh, message):
    with pytest.raises(UsageError, match=message):
        ranks(size).fit(Recipe(**options), fresh=fresh)


def test_each_rank_takes_its_share_in_the_global_order():
    x, y = np.arange(12).reshape(12, 1), np.arange(12)
    shares = [ranks(3, r).shard(x, y) for r in range(3)]
    np.testing.assert_array_equal(np.concatenate([s[1] for s in shares]), y)
    assert [len(s[0]) for s in shares] == [4, 4, 4]
    parts = [ranks(3, r).part(x[:10], y[:10])[1] for r in range(3)]
    np.testing.assert_array_equal(np.concatenate(parts), y[:10], err_msg="every test image, once")


# ---------------------------------------------------------------- GPUs: NCCL through CuPy

def test_ranks_on_gpus_without_cupy_or_nccl_fail_in_one_line(monkeypatch):
    """--device gpu on N ranks needs CuPy, a GPU per rank and CuPy's NCCL bindings; without them
    a DeviceError says what is missing (without CuPy: device.xp_for's message)."""
    if HAS_GPU:
        pytest.skip("a GPU is here: the failure without one cannot be seen")
    with pytest.raises(DeviceError, match="needs CuPy"):
        ranks(2).fit(Recipe(device="gpu"), fresh=True)
    standin.install(monkeypatch)  # a "gpu" that has no cupy.cuda.nccl
    with pytest.raises(DeviceError, match="needs NCCL through CuPy"):
        ranks(2).fit(Recipe(device="gpu"), fresh=True)


@pytest.mark.gpu
def test_nccl_allreduce_on_one_gpu():
    """A 1-rank NCCL communicator (NCCL refuses two ranks on one GPU): the step's allreduce sums
    in place on the GPU, so one rank's buffer comes back as it was."""
    if not HAS_GPU:
        pytest.skip(NO_GPU)
    import cupy
    _, nccl = parallel.nccl_module()
    buffer = cupy.arange(10, dtype=cupy.float32)
    parallel.Nccl(1, 0, nccl.get_unique_id()).allreduce(buffer)
    cupy.cuda.get_current_stream().synchronize()
    np.testing.assert_array_equal(cupy.asnumpy(buffer), np.arange(10, dtype=np.float32))
