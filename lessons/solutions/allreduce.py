"""Lesson 10: the ring allreduce, over simulated workers.

P workers each hold a buffer of n numbers (their gradients). Afterwards every worker must hold
the elementwise SUM of all P buffers (data-parallel training then divides by P for the mean).
A worker sees only its own buffer and what its left neighbour sends it: the only way to move
numbers is `send(src, dst, chunk)`, which returns the copy of `chunk` that worker dst receives.

The buffer is cut into P chunks. In the reduce-scatter phase (P - 1 steps) each worker passes one
chunk to its right neighbour, which adds it to its own copy of that chunk; after it, worker p
holds the complete sum of chunk (p + 1) % P. In the all-gather phase (P - 1 more steps) those
complete chunks travel once around the ring, overwriting the partial ones. Each worker sends
2 (P - 1) chunks of about n / P numbers: 2 (P - 1) / P * n in all, less than twice its buffer
whatever the number of workers.
"""


def chunk_bounds(n, P):
    """[(start, stop)] of the P chunks of a buffer of n: sizes differ by at most one when P does
    not divide n (k * n // P puts the boundaries as evenly as whole numbers allow)."""
    return [(k * n // P, (k + 1) * n // P) for k in range(P)]


def ring_allreduce(buffers, send):
    """buffers: a list of P 1-D arrays of equal length n, buffers[p] held by worker p (left unchanged).
    send(src, dst, chunk): worker src sends chunk to worker dst; returns the copy dst receives.
    Returns a list of P new arrays, each the elementwise sum of all the buffers."""
    P = len(buffers)
    bounds = chunk_bounds(len(buffers[0]), P)
    data = [b.copy() for b in buffers]         # each worker works on its own copy: inputs stay as they are

    def chunk(p, k):
        """Worker p's chunk k, a view: writing into it writes into data[p]."""
        start, stop = bounds[k]
        return data[p][start:stop]

    # Reduce-scatter. At step s worker p sends chunk (p - s) % P to its right neighbour, which adds
    # it to its own. Chunk k starts at worker k and gathers one more buffer at every hop, so after
    # P - 1 steps worker (k - 1) % P, the last on its way, holds its complete sum: worker p holds
    # chunk (p + 1) % P complete.
    for s in range(P - 1):
        for p in range(P):
            right, k = (p + 1) % P, (p - s) % P
            chunk(right, k)[...] += send(p, right, chunk(p, k))
    # (One worker after the other in this loop, yet as if all sent at once: at each step a worker
    # sends one chunk and receives a different one, so no send reads a chunk changed in the same step.)

    # All-gather. At step s worker p sends chunk (p + 1 - s) % P, complete, to its right neighbour,
    # which replaces its partial copy: after P - 1 steps every worker holds every chunk complete.
    for s in range(P - 1):
        for p in range(P):
            right, k = (p + 1) % P, (p + 1 - s) % P
            chunk(right, k)[...] = send(p, right, chunk(p, k))
    return data
