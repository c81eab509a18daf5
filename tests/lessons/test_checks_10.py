"""The check cell of 10_data_parallel.ipynb rejects wrong ring allreduces, and says why.

tests/lessons/test_lessons.py proves that the worked solution passes the check. This file
proves the other half: planted wrong versions of `ring_allreduce` make the check print
"✗ FAILED" with a message that names the slip, and return False.
"""
import functools

import numpy as np
import pytest

from checks import data_parallel
from checks.harness import FAILED, PASSED
from solutions.allreduce import ring_allreduce

pytestmark = pytest.mark.lessons


def rejects(capsys, fn, says=()):
    """The check must fail and its message must contain every phrase in `says`."""
    ok = data_parallel.check_ring_allreduce(fn)
    out = capsys.readouterr().out
    assert ok is False and out.startswith(FAILED), f"the check did not reject the planted bug:\n{out}"
    for phrase in says:
        assert phrase in out, f"the message should say {phrase!r}; it said:\n{out}"
    return out


def allreduce_with(slip, buffers, send):
    """ring_allreduce as a learner might write it, with one slip planted (slip=None: right)."""
    P, n = len(buffers), len(buffers[0])
    if slip == "remainder dropped":
        size = n // P
        bounds = [(k * size, (k + 1) * size) for k in range(P)]
    else:
        bounds = [(k * n // P, (k + 1) * n // P) for k in range(P)]
    # the slips "inputs modified" and "inputs returned": the workers' data are the inputs themselves,
    # changed in place below (and returned as they are, or copied at the end)
    data = list(buffers) if slip in ("inputs modified", "inputs returned") else [b.copy() for b in buffers]

    def chunk(p, k):
        return data[p][bounds[k][0]:bounds[k][1]]

    def neighbour(p):
        return (p - 1) % P if slip == "left neighbour" else (p + 1) % P

    if slip == "whole buffers":                     # right sums, P - 1 whole buffers per worker
        passing = [b.copy() for b in buffers]
        for s in range(P - 1):
            passing = [send((p - 1) % P, p, passing[(p - 1) % P]) for p in range(P)]
            for p in range(P):
                data[p] += passing[p]
        return data
    steps = P if slip == "P steps" else P - 1
    for s in range(steps):
        for p in range(P):
            k = (p - s - 1) % P if slip == "reduce-scatter index off by one" else (p - s) % P
            arrived = send(p, neighbour(p), chunk(p, k))
            if slip == "reduce-scatter replaces":
                chunk(neighbour(p), k)[...] = arrived
            else:
                chunk(neighbour(p), k)[...] += arrived
    if slip != "no all-gather":
        for s in range(P - 1):
            for p in range(P):
                k = (p - s) % P if slip == "all-gather index off by one" else (p + 1 - s) % P
                chunk(neighbour(p), k)[...] = send(p, neighbour(p), chunk(p, k))
    if slip == "mean":
        data = [d / P for d in data]
    if slip == "inputs modified":
        data = [d.copy() for d in data]
    return data


def planted(slip):
    fn = functools.partial(allreduce_with, slip)
    fn.__name__ = "ring_allreduce"
    return fn


def test_the_check_passes_the_solution_and_the_unslipped_plant(capsys):
    for fn in (ring_allreduce, planted(None)):
        ok = data_parallel.check_ring_allreduce(fn)
        out = capsys.readouterr().out
        assert ok is True and out.startswith(PASSED), out


@pytest.mark.parametrize("slip, says", [
    ("no all-gather", ["case: P = 2 workers", "holds the sum of buffers {0} only",
                       "The all-gather phase is missing"]),
    ("left neighbour", ["case: P = 3 workers", "worker 0 sent a chunk to worker 2, its LEFT neighbour",
                        "send(p, (p + 1) % P, chunk)"]),
    ("all-gather index off by one", ["case: P = 2 workers", "holds the sum of buffers {0} only, not of all 2",
                                     "A chunk index is off by one"]),
    ("reduce-scatter index off by one", ["case: P = 2 workers", "A chunk index is off by one"]),
    ("P steps", ["case: P = 1 worker", "one was added twice", "P - 1 steps, not P"]),
    ("inputs modified", ["case: P = 2 workers", "buffers[0] changed: your function modified its input",
                         "b.copy()"]),
    ("inputs returned", ["case: P = 1 worker", "worker 0's result shares memory with buffers[0]"]),
    ("remainder dropped", ["case: P = 4 workers, buffers of n = 10", "Only the last 2 element(s) are wrong",
                           "not a multiple of P = 4"]),
    ("mean", ["the sums divided by P, the means", "returns the SUM"]),
    ("reduce-scatter replaces", ["case: P = 2 workers", "No element of any worker holds more than one buffer",
                                 "ADDS the chunk that arrives"]),
    ("whole buffers", ["case: P = 2 workers", "a message of 6 values", "at most ceil(n / P) = 3",
                       "not the whole buffer"]),
])
def test_ring_allreduce_rejects(capsys, slip, says):
    rejects(capsys, planted(slip), says=says)


def no_sends(buffers, send):
    """Reads every worker's buffer directly: the right sums, but no worker could do that."""
    return [np.sum(buffers, axis=0) for _ in buffers]


def one_array(buffers, send):
    """The sum once, not one array per worker."""
    return ring_allreduce(buffers, send)[0]


def one_array_for_all(buffers, send):
    total = ring_allreduce(buffers, send)[0]
    return [total] * len(buffers)


@pytest.mark.parametrize("fn, says", [
    (no_sends, ["case: P = 2 workers", "worker 0 sent 0 messages (it sent nothing"]),
    (one_array, ["must return a list of P = 1 arrays", "one per worker"]),
    (one_array_for_all, ["case: P = 2 workers", "workers 0 and 1 return the same array"]),
])
def test_ring_allreduce_rejects_results_no_ring_gives(capsys, fn, says):
    rejects(capsys, fn, says=says)


def test_a_traced_sum_names_its_workers():
    """The traceable buffers spell a partial sum's workers in binary: 0b101 is workers 0 and 2."""
    assert data_parallel.workers(0b101) == "{0, 2}"
    buffers = data_parallel.traceable(3, 4)
    partial = (buffers[0] + buffers[2]) / np.arange(1, 5)
    assert np.all(partial == 5)
