"""The one timing rule the benchmarks share."""
import time

import numpy as np


def median_seconds(step, repeats, sync=lambda: None, warmup=1):
    """Median wall time of `step()` over `repeats` runs, after `warmup` untimed runs.

    sync() waits for the device (a no-op on the CPU), so GPU work is timed, not queued.
    """
    for _ in range(warmup):
        step()
    sync()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        step()
        sync()
        times.append(time.perf_counter() - start)
    return float(np.median(times))
