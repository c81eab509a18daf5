"""tinyresnet/cpu/threads.py: chunks of work spread over the CPU's cores (what the fast convolution rests on)."""
import threading
import time

import numpy as np
import pytest

from tinyresnet.cpu import conv as fast_conv
from tinyresnet.cpu import threads

pytestmark = pytest.mark.conv


@pytest.mark.parametrize("n, chunk", [(10, 3), (8, 8), (1, 4), (7, 1)])
def test_map_chunks_covers_every_index_once_in_order(n, chunk):
    ranges = threads.map_chunks(lambda a, b: (a, b), n, chunk)
    assert ranges == [(a, min(a + chunk, n)) for a in range(0, n, chunk)], \
        "map_chunks must return fn's results in the order of the chunks, covering 0..n-1 once"


def test_chunks_run_on_several_threads_when_there_are_several():
    if threads.THREADS < 2 or threads.ThreadpoolController is None:
        pytest.skip("one core, or threadpoolctl not installed: chunks run one after the other")
    def slow(a, b):
        time.sleep(0.05)  # long enough that one thread cannot take every chunk
        return threading.current_thread().name
    names = threads.map_chunks(slow, 8, 1)
    assert len(set(names)) > 1, f"8 chunks all ran on one thread ({names[0]})"


def test_a_free_thread_takes_the_next_chunk():
    """Chunks are handed out one at a time: while one thread is stuck on a slow chunk, the others
    take all the rest (a fixed split would leave half of them waiting behind it)."""
    if threads.THREADS < 2 or threads.ThreadpoolController is None:
        pytest.skip("one core, or threadpoolctl not installed: chunks run one after the other")
    def chunk(a, b):
        if a == 0:
            time.sleep(0.3)
        return threading.current_thread().name
    names = threads.map_chunks(chunk, 8, 1)
    assert names[0] not in names[1:], f"a thread ran more chunks while stuck on the slow one: {names}"


def test_an_error_in_a_chunk_reaches_the_caller():
    def chunk(a, b):
        if a == 5:
            raise ValueError("chunk 5 failed")
        return a
    with pytest.raises(ValueError, match="chunk 5 failed"):
        threads.map_chunks(chunk, 8, 1)


def test_without_threadpoolctl_chunks_run_in_order_here(monkeypatch):
    """threadpoolctl is optional: without it the same chunks run one after the other."""
    monkeypatch.setattr(threads, "ThreadpoolController", None)
    names = threads.map_chunks(lambda a, b: threading.current_thread().name, 8, 1)
    assert set(names) == {threading.current_thread().name}


def test_fast_conv_without_threads_gives_the_same_numbers(monkeypatch, rng):
    x = rng.standard_normal((6, 3, 8, 8))
    w = rng.standard_normal((4, 3, 3, 3))
    monkeypatch.setattr(fast_conv, "CHUNK_BYTES", 1)        # a chunk per image
    threaded = fast_conv.forward(x, w, 1, 1)
    monkeypatch.setattr(threads, "ThreadpoolController", None)
    np.testing.assert_array_equal(fast_conv.forward(x, w, 1, 1), threaded)


def test_scratch_is_reused_per_thread_and_kept_apart_by_kind():
    a = threads.scratch((3, 4), np.float32)
    assert threads.scratch((3, 4), np.float32) is a, "the same shape and dtype: the same buffer"
    padded = threads.scratch((3, 4), np.float32, kind="padded by 1")
    assert padded is not a and not padded.any(), "another kind gets its own buffer, starting as zeros"
    elsewhere = []
    thread = threading.Thread(target=lambda: elsewhere.append(threads.scratch((3, 4), np.float32)))
    thread.start()
    thread.join()
    assert elsewhere[0] is not a, "each thread has buffers of its own (chunks run side by side)"
