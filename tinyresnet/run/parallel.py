"""Data-parallel training: the same run on N processes, each with its share of every minibatch.

    mpiexec -n 2 python -m tinyresnet.train --depth 20          # two MPI ranks (needs mpi4py)
    python -m tinyresnet.train --depth 20 --bn-batch 64          # the same arithmetic, one process

He et al. trained with 128 images per step "on two GPUs": each took 64 of them. Here every
rank builds the same net and the same loaders from the same seed, so all of them draw the same
shuffle and augmentation; rank r takes the r-th of N equal slices of each minibatch
(--batch-size stays the global batch, and the order of the images is one process's order).
Each rank computes the gradients of the mean loss over its slice; the mean over ranks of
those is the gradient of the mean loss over the whole minibatch. One allreduce per step sums
a single flat buffer that holds every gradient, the batch-norm running statistics, the
step's loss and mistakes and the ranks' stop requests; dividing by N gives the average, so
every rank takes the same SGD step and holds the same weights.

Batch norm normalizes per rank, as on the paper's GPUs: a run on N ranks sets --bn-batch to
the per-rank batch, and config.json records it, so one process (resuming it, or as a check)
computes the same numbers with ghost batch norm. Each rank moves its running statistics
towards its own slice's; the allreduce averages them, which is what ghost batch norm does
with its slices (batchnorm.py).

Rank 0 holds the run folder (lock, log, config, checkpoint) and speaks; the other ranks read
what it decides (the recipe, the checkpoint to resume) and keep quiet. A signal stops every
rank after the same whole step, because the ranks' stop requests travel in the step's
allreduce. Every collective of the training loop on CPUs waits at most TIMEOUT seconds
(TINYRESNET_MPI_TIMEOUT): a rank that died or hangs ends the run with one line, not a silent
hang. (mpiexec itself ends the others when a rank dies on one machine.)

With --device gpu each rank takes one GPU (its number among the ranks on its machine) and the
step's buffer is summed on the GPUs by NCCL through CuPy (Nccl); the stop requests then take a
small allreduce of their own on the host, so that the host never waits for the GPU in a step.

One process without mpiexec is `Solo`: nothing is imported, shared or waited for, and the run
is exactly a one-process run. This module is the run wing's: the core never imports it.
"""
import contextlib
import dataclasses
import importlib
import os
import pickle
import sys
import time

import numpy as np

from ..device import DeviceError, xp_for, xp_of
from ..nn import BatchNorm2d
from . import folder, stops
from .console import say
from .recipe import UsageError

# environment variables by which launchers tell a process how many ranks there are
LAUNCHERS = ("PMI_SIZE", "OMPI_COMM_WORLD_SIZE")  # MPICH's (and Intel MPI's, Slurm's PMI), Open MPI's
TIMEOUT = float(os.environ.get("TINYRESNET_MPI_TIMEOUT", 600))  # seconds a rank waits for the others
POLL = 0.0005  # seconds between looks at an unfinished collective

_team = None


def team():
    """The processes of this run: Solo() alone, Ranks(...) when a launcher started several. The
    same object on every call. UsageError, in one line, when mpiexec started several
    processes but mpi4py is missing."""
    global _team
    if _team is None:
        _team = _join(launched())
    return _team


def launched():
    """How many processes the launcher (mpiexec) started, from its environment variables; 1 if none."""
    for name in LAUNCHERS:
        value = os.environ.get(name, "")
        if value.isdigit() and int(value) > 0:
            return int(value)
    return 1


def _join(size):
    if size == 1:
        return Solo()
    try:
        from mpi4py import MPI
    except ImportError:
        raise UsageError(f"started on {size} processes by mpiexec, but mpi4py is not installed: "
                         "pip install mpi4py mpich (or run one process without mpiexec)") from None
    comm = MPI.COMM_WORLD
    if comm.Get_size() != size:  # each process alone in its own MPI world: they would train apart
        raise UsageError(f"the launcher started {size} processes, but MPI here sees {comm.Get_size()}: mpi4py "
                         "uses another MPI than the mpiexec that started it; start it with that MPI's "
                         "mpiexec (pip install mpi4py mpich gives a matching pair)")
    return Ranks(comm, MPI)


class Solo:
    """One process: every method leaves the run exactly as it is without data parallelism."""
    size, rank, first = 1, 0, True

    def fit(self, recipe, fresh):
        return recipe

    def start(self, state, stop):
        pass

    def holding(self, out):
        return folder.claimed(out)

    def shard(self, x, y):
        return x, y

    def part(self, x, y):
        return x, y

    def exchange(self, model, loss, wrong):
        return loss, wrong

    def total(self, *values):
        return values

    def agree(self, stop):
        pass

    def stopping(self, stop):
        return stop.requested

    def on_first(self, fn):
        return fn()

    def together(self, fn):
        return fn()

    def first_then_rest(self, fn):
        return fn()

    def describe(self, batch_size):
        return None

    def launcher(self):
        return ""


def speaks():
    """Does this process print the run's lines and errors? Rank 0 does, and a single process."""
    return _team is None or _team.first


class Ranks:
    """N MPI processes (ranks) training one model. comm: mpi4py's COMM_WORLD; MPI: the module."""

    def __init__(self, comm, MPI):
        self.comm, self.MPI = comm, MPI
        self.size, self.rank = comm.Get_size(), comm.Get_rank()
        self.first = self.rank == 0
        self.agreed = 0            # the signal every rank agreed to stop on (0: none)
        self.flat = None           # the step's buffer, made at the first exchange
        self.state = self.stop = None
        self.nccl = None           # with --device gpu: NCCL on one GPU per rank (Nccl)

    def start(self, state, stop):
        """Follow this run: its stop request travels in every step's allreduce."""
        self.state, self.stop = state, stop

    @contextlib.contextmanager
    def holding(self, out):
        """Rank 0 holds the run folder (folder.claimed) for the whole run; an error in taking it is
        raised on every rank."""
        with contextlib.ExitStack() as stack:
            self.on_first(lambda: stack.enter_context(folder.claimed(out)))
            yield out

    # ------------------------------------------------------------ the recipe and the data

    def fit(self, recipe, fresh):
        """The recipe on N ranks: the batch must split into N equal shares; a fresh run's batch
        norm normalizes each rank's share (--bn-batch per-rank batch, recorded in config.json)."""
        if recipe.batch_size % self.size:
            raise UsageError(f"--batch-size {recipe.batch_size} does not split into {self.size} equal shares, "
                             f"one per process; give a multiple of {self.size}")
        share = recipe.batch_size // self.size
        if recipe.bn_batch is None and fresh:
            recipe = dataclasses.replace(recipe, bn_batch=share)
        if not self.first:  # the other ranks keep quiet
            recipe = dataclasses.replace(recipe, quiet=True)
        if recipe.bn_batch is None:
            raise UsageError(f"{recipe.out} was trained in one process with batch norm over whole minibatches "
                             f"of {recipe.batch_size}; {self.size} processes would normalize {share} images "
                             "each: resume it in one process (without mpiexec)")
        if share % recipe.bn_batch:
            raise UsageError(f"--bn-batch {recipe.bn_batch} does not divide each process's {share} images "
                             f"(--batch-size {recipe.batch_size} on {self.size} processes) into equal slices")
        if recipe.device == "gpu" and self.nccl is None:
            self.nccl = self.use_gpus()
        return recipe

    def use_gpus(self):
        """One GPU per rank (the rank's number among the ranks on its machine), and an NCCL
        communicator over them: an Nccl. DeviceError on every rank, in one line, without CuPy,
        NCCL or enough GPUs."""
        local = self.comm.Split_type(self.MPI.COMM_TYPE_SHARED)
        here, local_rank = local.Get_size(), local.Get_rank()

        def pick():
            cupy, nccl = nccl_module()
            gpus = cupy.cuda.runtime.getDeviceCount()
            if here > gpus:
                raise DeviceError(f"{here} processes on one machine but {gpus} GPU(s) there: NCCL needs a GPU "
                                  f"per process; start at most {gpus} per machine")
            cupy.cuda.Device(local_rank).use()
            return nccl
        nccl = self.together(pick)
        unique_id = self.comm.bcast(nccl.get_unique_id() if self.first else None, root=0)
        return Nccl(self.size, self.rank, unique_id)

    def shard(self, x, y):
        """This rank's slice of a global minibatch: the rank-th of N equal parts."""
        n = len(x) // self.size
        return x[self.rank * n:(self.rank + 1) * n], y[self.rank * n:(self.rank + 1) * n]

    def part(self, x, y):
        """This rank's part of the test set (contiguous, sizes differing by at most one)."""
        bounds = np.linspace(0, len(x), self.size + 1).astype(int)
        a, b = bounds[self.rank], bounds[self.rank + 1]
        return x[a:b], y[a:b]

    # ------------------------------------------------------------ the step's one allreduce

    def exchange(self, model, loss, wrong):
        """After backward, before the SGD step: replace every gradient and running statistic by
        its mean over the ranks, in one allreduce; returns the step's global (mean loss,
        mistakes). On CPUs the ranks' stop requests travel in the same buffer (agreed, stopping);
        on GPUs (NCCL) the buffer stays on the devices and they take a small allreduce of their own
        on the host, so that the host never waits for the GPU inside a step."""
        arrays = [p.grad for p in model.parameters()] + [a for m in model.modules() if isinstance(m, BatchNorm2d)
                                                         for a in (m.running_mean, m.running_var)]
        if any(a is None for a in arrays):
            raise RuntimeError("data-parallel step: a parameter got no gradient; every rank must use every parameter")
        n = sum(a.size for a in arrays)
        stop_slots = 0 if self.nccl else self.size
        if self.flat is None or self.flat.size != n + 2 + stop_slots:
            self.flat = xp_of(arrays[0]).empty(n + 2 + stop_slots, dtype=np.float32)
        flat, start = self.flat, 0
        for a in arrays:  # pack: each array's values into its place (reshape of a 1-D slice is a view)
            flat[start:start + a.size].reshape(a.shape)[...] = a
            start += a.size
        flat[n], flat[n + 1] = loss, wrong
        if self.nccl:
            self.nccl.allreduce(flat)
            self.agree(self.stop)
        else:
            flat[n + 2:] = 0
            flat[n + 2 + self.rank] = self.stop.signum if self.stop.requested else 0
            self.allreduce(flat, "the gradients of a step")
            self._note_stops(flat[n + 2:])
        flat[:n + 1] /= self.size
        start = 0
        for a in arrays:  # unpack the means
            a[...] = flat[start:start + a.size].reshape(a.shape)
            start += a.size
        return flat[n].copy(), flat[n + 1].copy()

    def allreduce(self, buffer, what):
        """buffer summed over the ranks, in place; a rank that does not answer within TIMEOUT ends the run."""
        self.wait(self.comm.Iallreduce(self.MPI.IN_PLACE, buffer, op=self.MPI.SUM), what)

    def wait(self, request, what):
        deadline = time.monotonic() + TIMEOUT
        while not request.Test():
            if time.monotonic() > deadline:
                self.abort(f"rank {self.rank} waited {TIMEOUT:g} s for the other ranks ({what}"
                           + (f", iteration {self.state.iteration}" if self.state is not None else "")
                           + "): one of them has died or hangs; stopping all of them"
                           + (f"; {stops.resume_hint(self.state)}" if self.first and self.state is not None else ""))
            time.sleep(POLL)

    def abort(self, message):
        """Say why, then end every rank (MPI_Abort) and this process, whatever MPI does."""
        say(f"tinyresnet.train: error: {message}", sys.stderr)
        sys.stderr.flush()
        try:
            self.comm.Abort(1)
        finally:
            os._exit(1)

    # ------------------------------------------------------------ stopping together

    def _note_stops(self, signals):
        asked = [int(s) for s in signals if s > 0]
        if asked and not self.agreed:
            self.agreed = asked[0]

    def agree(self, stop):
        """A collective: every rank learns whether any rank was asked to stop (where no step's
        allreduce carries the requests: before the first step, at the end of an epoch)."""
        signals = np.zeros(self.size, dtype=np.float64)
        signals[self.rank] = stop.signum if stop.requested else 0
        self.allreduce(signals, "the decision to stop")
        self._note_stops(signals)

    def stopping(self, stop):
        """Do all ranks stop here? Only what every rank knows counts (a signal that reached this
        rank after it sent its part of the step is counted at the next step), so that no rank
        stops one step before another. The message's signal is the one agreed."""
        if self.agreed and not stop.requested:
            stop.signum = self.agreed
        return bool(self.agreed)

    # ------------------------------------------------------------ rank 0 decides, all follow

    def on_first(self, fn):
        """fn() run by rank 0 alone; its result, or the error it raised, on every rank."""
        outcome = _outcome(fn) if self.first else None
        ok, value = self.comm.bcast(outcome, root=0)
        if not ok:
            raise value
        return value

    def together(self, fn):
        """fn() run by every rank; if any raised, every rank raises the first such error (by rank)."""
        ok, value = _outcome(fn)
        outcomes = self.comm.allgather((True, None) if ok else (ok, value))
        failed = next((error for ok_, error in outcomes if not ok_), None)
        if failed is not None:
            raise failed
        return value

    def first_then_rest(self, fn):
        """fn() on rank 0, then, once it succeeded, on the others: what rank 0 makes (a download
        of the data), the others find. An error on any rank is raised on every rank."""
        ok, value = _outcome(fn) if self.first else (True, None)
        ok, error = self.comm.bcast((ok, None if ok else value), root=0)
        if not ok:
            raise error
        return self.together(lambda: value if self.first else fn())

    def total(self, *values):
        """Each value summed over the ranks (host numbers: the test set's sums)."""
        buffer = np.array([float(v) for v in values], dtype=np.float64)
        self.allreduce(buffer, "the test set's sums")
        return tuple(buffer)

    def launcher(self):
        """What goes before `python -m tinyresnet.train` to start this run again."""
        return f"mpiexec -n {self.size} "

    def describe(self, batch_size):
        """The introduction's line: 'data-parallel on 2 processes (MPI), 64 images of each minibatch each'."""
        on = "GPUs, NCCL" if self.nccl else "MPI"
        return f"data-parallel on {self.size} processes ({on}), {batch_size // self.size} images of each minibatch each"


class Nccl:
    """The step's allreduce among GPUs, with NCCL through CuPy: a sum in place, queued on the
    current stream (the host does not wait). size ranks, this one `rank`, joined by the
    unique_id that rank 0 made (nccl.get_unique_id()) and passed to every rank."""

    def __init__(self, size, rank, unique_id):
        cupy, self.nccl = nccl_module()
        self.stream = cupy.cuda.get_current_stream
        self.comm = self.nccl.NcclCommunicator(size, unique_id, rank)

    def allreduce(self, buffer):
        """buffer (a float32 CuPy array) summed over the ranks, in place."""
        self.comm.allReduce(buffer.data.ptr, buffer.data.ptr, buffer.size, self.nccl.NCCL_FLOAT32,
                            self.nccl.NCCL_SUM, self.stream().ptr)


def nccl_module():
    """(cupy, cupy.cuda.nccl), or a DeviceError that says what is missing: CuPy and a GPU
    (device.xp_for), or CuPy's NCCL bindings."""
    cupy = xp_for("gpu")
    try:
        nccl = importlib.import_module(cupy.__name__ + ".cuda.nccl")
        if not getattr(nccl, "available", True):
            raise ImportError
        nccl.get_unique_id  # noqa: B018 (present only when CuPy was built with NCCL)
    except (ImportError, AttributeError):
        raise DeviceError("data-parallel training on GPUs needs NCCL through CuPy (cupy.cuda.nccl); install "
                          "NCCL as CuPy's install guide says (optional libraries), or train on one GPU "
                          "without mpiexec") from None
    return cupy, nccl


def _outcome(fn):
    """(True, fn()) or (False, the exception it raised, made picklable)."""
    try:
        return True, fn()
    except Exception as e:  # noqa: BLE001 (passed on to every rank and raised there)
        try:
            pickle.loads(pickle.dumps(e))
        except Exception:  # noqa: BLE001
            e = RuntimeError(f"{type(e).__name__}: {e}")
        return False, e
