"""Lesson 10 (10_data_parallel.ipynb): the ring allreduce over simulated workers.

check_ring_allreduce runs the learner's ring_allreduce(buffers, send) for several numbers of
workers P (1 and 2 among them) and buffer lengths n (some not a multiple of P), with a `send`
that records every message. It compares each worker's result with NumPy's sum of the buffers,
checks that the inputs are left unchanged, that every message goes to the sender's right
neighbour, and that each worker sends 2 (P - 1) chunks of about n / P numbers, 2 (P - 1) / P * n
in all.

To name a slip, most cases use buffers whose sums tell their origin: worker p's buffer is
2**p * (1, 2, ..., n), so element i of any partial sum, divided by i + 1, is a whole number whose
binary digits are the workers it holds (7 = workers 0, 1, 2). A wrong element then says which
buffers it missed or holds twice.
"""
import math

import numpy as np

from .harness import Mismatch, case, check, describe

SHAPE_HINT = ("every worker's buffer is 1-D with n numbers; cut it into P chunks with bounds "
              "k * n // P (or np.array_split), which works when P does not divide n.")
# (P, n): one worker, two, and lengths that P does not divide
CASES = [(1, 5), (2, 6), (3, 12), (4, 10), (3, 7), (5, 13)]
RANDOM_CASE = (4, 1001)   # random gradients, compared with np.sum to rounding
STEPS_HINT = ("in the reduce-scatter, at step s = 0 .. P-2, worker p sends chunk (p - s) % P and its "
              "right neighbour ADDS it to its own; after it worker p holds chunk (p + 1) % P complete. "
              "In the all-gather, at step s worker p sends chunk (p + 1 - s) % P and its neighbour "
              "REPLACES its own with it.")


class Network:
    """The simulated wires between P workers: send(src, dst, chunk) returns the copy dst receives
    and records (src, dst, number of values) in messages, and the values themselves in carried."""

    def __init__(self, P):
        self.P, self.messages, self.carried = P, [], []

    def send(self, src, dst, chunk):
        for name, p in (("src", src), ("dst", dst)):
            if not isinstance(p, (int, np.integer)) or not 0 <= p < self.P:
                raise Mismatch(f"send({name}={p!r}): workers are numbered 0 .. P-1 = {self.P - 1}.\n"
                               "hint: send(src, dst, chunk) takes the two workers' numbers and an array.")
        chunk = np.array(chunk, dtype=float, copy=True)   # what arrives is a copy: the wire
        self.messages.append((int(src), int(dst), chunk.size))
        self.carried.append(chunk.copy())
        return chunk

    def sent_by(self, p):
        """[number of values of each message] that worker p sent."""
        return [size for src, _, size in self.messages if src == p]


def traceable(P, n):
    """buffers[p] = 2**p * (1, 2, ..., n): a sum's element i, over i + 1, spells its workers in binary."""
    return [2.0 ** p * np.arange(1, n + 1) for p in range(P)]


def workers(mask):
    """{0, 2} for the mask 0b101."""
    return "{" + ", ".join(str(p) for p in range(mask.bit_length()) if mask >> p & 1) + "}"


def run(ring_allreduce, buffers):
    """The learner's results and the network that carried their messages; the inputs must not change."""
    P, kept = len(buffers), [b.copy() for b in buffers]
    net = Network(P)
    results = ring_allreduce(buffers, net.send)
    for p, (b, k) in enumerate(zip(buffers, kept)):
        if not np.array_equal(b, k):
            raise Mismatch(f"buffers[{p}] changed: your function modified its input.\nhint: the inputs are "
                           "the workers' own gradients, and the caller still needs them; work on copies "
                           "(data = [b.copy() for b in buffers]) and return those.")
    returned_results(results, buffers)
    return results, net


def returned_results(results, buffers):
    P, n = len(buffers), len(buffers[0])
    if not isinstance(results, (list, tuple)) or len(results) != P:
        raise Mismatch(f"ring_allreduce must return a list of P = {P} arrays, one per worker; got "
                       f"{describe(results) if not isinstance(results, (list, tuple)) else f'{len(results)} items'}."
                       "\nhint: after an allreduce every worker holds the sum: return [data of worker 0, ...].")
    for p, r in enumerate(results):
        if not hasattr(r, "shape") or tuple(r.shape) != (n,):
            raise Mismatch(f"worker {p}'s result is {describe(r)}; expected an array of shape ({n},), "
                           f"the length of a buffer.\nhint: {SHAPE_HINT}")
        for q, b in enumerate(buffers):
            if np.shares_memory(r, b):
                raise Mismatch(f"worker {p}'s result shares memory with buffers[{q}], the input.\nhint: return "
                               "new arrays (copies): the caller may change a result and still need its inputs.")
        for q in range(p):
            if np.shares_memory(r, results[q]):
                raise Mismatch(f"workers {q} and {p} return the same array.\nhint: each worker holds its own "
                               "copy of the sum (on a real machine, in its own memory).")


def check_neighbours(net):
    for src, dst, _ in net.messages:
        if dst != (src + 1) % net.P:
            which = ("itself" if dst == src else
                     f"worker {dst}, its LEFT neighbour" if dst == (src - 1) % net.P else f"worker {dst}")
            raise Mismatch(f"worker {src} sent a chunk to {which}; in the ring each worker sends only to "
                           f"its right neighbour, worker (p + 1) % P = {(src + 1) % net.P}.\nhint: "
                           "send(p, (p + 1) % P, chunk). The ring is what keeps each worker's traffic "
                           "below two buffers whatever P is: every wire carries one chunk per step, all "
                           "at the same time.")


def _one_buffer(mask):
    """Does this traceable sum hold exactly one worker's buffer (one bit of its mask set)?"""
    k = int(round(mask))
    return k > 0 and k & (k - 1) == 0


def _never_adds(ring_allreduce, P=3, n=6):
    """Run on 3 workers with chunks of 2 values, where a reduce-scatter that adds sends a sum of two
    buffers in its second step: True when no message and no result ever held more than one buffer,
    i.e. nothing was added. (On traceable buffers a chunk of consecutive elements m (i+1), m (i+2)
    names its buffers by its step m; a whole result by element / (i + 1).)"""
    try:
        results, net = run(ring_allreduce, traceable(P, n))
    except Exception:
        return False
    sent = [c[1] - c[0] for c in net.carried if c.size >= 2]
    kept = [m for r in results for m in np.asarray(r) / np.arange(1, n + 1)]
    return bool(sent) and all(_one_buffer(m) for m in sent + kept)


def value_slip(results, P, n, net, ring_allreduce=None):
    """Why traceable buffers summed to `results` instead of the full sum: a hint naming the slip."""
    full = 2 ** P - 1
    scale = np.arange(1, n + 1)
    if all(np.allclose(r, full * scale / P) for r in results):
        return ("your results are the sums divided by P, the means. Here ring_allreduce returns the SUM "
                "(as MPI's Allreduce with SUM does); the training step divides by P afterwards.")
    masks = [r / scale for r in results]
    wrong = [(p, i) for p in range(P) for i in range(n) if masks[p][i] != full]
    p, i = wrong[0]
    value = masks[p][i]
    if value != round(value) or value < 0:
        where = f"worker {p}'s element {i} is {results[p][i]:g}, not a sum of buffers"
        return f"{where}. {STEPS_HINT}"
    mask = int(round(value))
    where = f"worker {p}'s element {i}"
    if mask == 0:
        said = f"{where} is 0: no chunk was ever written there."
    elif mask > full:
        return (f"{where} holds more than the sum of all {P} buffer(s): one was added twice.\nhint: the "
                "reduce-scatter has P - 1 steps, not P, and a worker adds only what arrives to its own; "
                "the all-gather replaces, it does not add.")
    else:
        said = f"{where} holds the sum of buffers {workers(mask)} only, not of all {P}."
    if P > 1 and ring_allreduce is not None and _never_adds(ring_allreduce):
        return (f"{said} No element of any worker holds more than one buffer: the arriving chunks replaced "
                "what was there instead of being added to it.\nhint: in the reduce-scatter the receiver ADDS "
                "the chunk that arrives to its own copy (+=); only the all-gather replaces.")
    sent = [len(net.sent_by(q)) for q in range(P)]
    tail = [(q, j) for q, j in wrong if j >= P * (n // P)]
    if n % P and tail == wrong:
        return (f"{said} Only the last {n % P} element(s) are wrong: n = {n} is not a multiple of "
                f"P = {P}, and the chunks leave out the remainder.\nhint: {SHAPE_HINT}")
    complete = [sum(masks[q][j] == full for j in range(n)) for q in range(P)]
    if all(0 < c <= math.ceil(n / P) for c in complete) and all(s == P - 1 for s in sent):
        return (f"{said} Each worker holds only one chunk complete (worker {p}: {complete[p]} of {n} "
                f"elements), and sent P - 1 = {P - 1} chunks: that is the state after the reduce-scatter. "
                "The all-gather phase is missing: P - 1 more steps in which the complete chunks travel "
                "round the ring, each worker sending chunk (p + 1 - s) % P and its neighbour "
                "replacing its own copy with it.")
    return (f"{said} A chunk index is off by one somewhere, so a chunk was sent on before it had "
            f"gathered every buffer (or a complete one was overwritten by a partial one).\nhint: {STEPS_HINT}")


def check_values(results, P, n, net, ring_allreduce=None):
    expected = np.sum(traceable(P, n), axis=0)
    if not all(np.array_equal(r, expected) for r in results):
        raise Mismatch(value_slip(results, P, n, net, ring_allreduce))


def check_traffic(net, n):
    """Each worker sends 2 (P - 1) chunks, at most ceil(n / P) values each; all together 2 (P - 1) n."""
    P = net.P
    per_chunk, total = math.ceil(n / P), sum(size for _, _, size in net.messages)
    for p in range(P):
        sizes = net.sent_by(p)
        if sizes and max(sizes) > per_chunk:
            raise Mismatch(f"worker {p} sent a message of {max(sizes)} values; a chunk of a buffer of "
                           f"n = {n} among P = {P} workers holds at most ceil(n / P) = {per_chunk}.\n"
                           "hint: send one chunk per step, not the whole buffer: that is what keeps the "
                           f"traffic per worker at 2 (P - 1) / P * n = {2 * (P - 1) * n / P:g} values "
                           "whatever P is.")
        if len(sizes) != 2 * (P - 1):
            missing = " (it sent nothing: a worker sees only its own buffer and what arrives)" if not sizes else ""
            raise Mismatch(f"worker {p} sent {len(sizes)} messages{missing}; in a ring allreduce each worker "
                           f"sends one chunk per step, P - 1 = {P - 1} steps in each of the two phases: "
                           f"2 (P - 1) = {2 * (P - 1)} messages.\nhint: {STEPS_HINT}")
    if total != 2 * (P - 1) * n:
        raise Mismatch(f"the workers sent {total} values in all; a ring allreduce sends each of the P "
                       f"chunks P - 1 times in each phase: 2 (P - 1) n = {2 * (P - 1) * n}.\nhint: {STEPS_HINT}")
    return total / P


@check("ring_allreduce", shape_hint=SHAPE_HINT)
def check_ring_allreduce(ring_allreduce):
    sent = {}
    for P, n in CASES:
        with case(f"P = {P} worker{'s' if P > 1 else ''}, buffers of n = {n}"):
            buffers = traceable(P, n)
            results, net = run(ring_allreduce, buffers)
            check_neighbours(net)
            check_values(results, P, n, net, ring_allreduce)
            per_worker = check_traffic(net, n)
            sent[(P, n)] = per_worker
    P, n = RANDOM_CASE
    with case(f"P = {P} workers, n = {n} random gradients"):
        rng = np.random.default_rng(0)
        buffers = [rng.standard_normal(n) for _ in range(P)]
        results, net = run(ring_allreduce, buffers)
        expected = np.sum(buffers, axis=0)
        for p, r in enumerate(results):
            if not np.allclose(r, expected, rtol=1e-12, atol=1e-12):
                i = int(np.argmax(np.abs(r - expected)))
                raise Mismatch(f"worker {p}'s element {i} is {r[i]:.6g}; the sum of the buffers is "
                               f"{expected[i]:.6g}.\nhint: {STEPS_HINT}")
        check_traffic(net, n)
    return (f"every worker holds the sum, for P = 1 to 5 workers and lengths n that P divides or not; "
            f"each sent 2 (P - 1) / P of a buffer (P = 2, n = 6: {sent[2, 6]:g} values; "
            f"P = 4, n = 10: {sent[4, 10]:g})")
