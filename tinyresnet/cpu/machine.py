"""The machine a run or a timing is on: its CPU, its cores, and the kernels NumPy's BLAS runs.

One source for these facts: the speed wing sizes its thread pool by CORES, and the run
folder (config.json) and the benchmarks describe the machine with cpu() and kernels().

Most of a CPU training step is matrix products (conv.py), and
OpenBLAS, NumPy's BLAS, picks its kernels for the CPU it finds when it loads.
The environment variable OPENBLAS_CORETYPE overrides that choice. Set to an
older core than the machine's (some of this kit's development machines set
"Haswell"), it keeps AVX2 kernels, 8 floats per instruction, on a CPU that
has AVX-512, 16. On such a 2-core CPU a 2048² float32 product ran at 247
GFLOP/s with Haswell kernels and at 443-506 with the SkylakeX ones OpenBLAS
picks itself. PyTorch picks its own kernels regardless, so a comparison
against it should say which ones each side ran, and on which CPU (cpu()).
"""
import os
import platform

# the cores this process may run on (a run pinned with taskset sees its own)
CORES = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)

AVX512_CORES = {"skylakex", "cooperlake", "sapphirerapids"}  # OpenBLAS's names for AVX-512 kernels


def kernels():
    """'OpenBLAS 0.3.31, SkylakeX kernels (AVX-512)', or what can be said without threadpoolctl."""
    try:
        from threadpoolctl import threadpool_info
    except ImportError:
        return "unknown BLAS kernels (pip install threadpoolctl to see them)"
    for lib in threadpool_info():
        if lib.get("user_api") == "blas":
            arch = lib.get("architecture") or "unknown"
            width = "AVX-512" if arch.lower() in AVX512_CORES else "no AVX-512"
            return f"{lib['internal_api']} {lib.get('version', '')}, {arch} kernels ({width})"
    return "no BLAS found"


def narrower_than_cpu_note(cpuinfo="/proc/cpuinfo"):
    """A hint to print when OPENBLAS_CORETYPE keeps OpenBLAS below this CPU's AVX-512; else None."""
    core = os.environ.get("OPENBLAS_CORETYPE")
    if not core or core.lower() in AVX512_CORES or not _cpu_has_avx512(cpuinfo):
        return None
    return (f"OPENBLAS_CORETYPE={core} makes NumPy's OpenBLAS use {core} kernels on a CPU with "
            "AVX-512, so matrix products run up to 2x slower than this CPU allows; unless it was set "
            "on purpose, run with `env -u OPENBLAS_CORETYPE ...`")


def cpu(cpuinfo="/proc/cpuinfo"):
    """'AMD EPYC, 2 cores, AVX2 (no AVX-512)': the CPU a timing was taken on, as far as it can be read."""
    fields = _cpu_fields(cpuinfo)
    name = fields.get("model name") or platform.processor() or "unknown CPU"
    flags = fields.get("flags", "").split()
    width = "AVX-512" if "avx512f" in flags else "AVX2 (no AVX-512)" if "avx2" in flags else None
    return ", ".join(part for part in (name, f"{CORES} core{'' if CORES == 1 else 's'}", width) if part)


def _cpu_has_avx512(cpuinfo):
    return "avx512f" in _cpu_fields(cpuinfo).get("flags", "").split()


def _cpu_fields(cpuinfo):
    """The first processor's 'key: value' lines of /proc/cpuinfo; {} where there is none (not Linux)."""
    fields = {}
    try:
        with open(cpuinfo) as f:
            for line in f:
                key, sep, value = line.partition(":")
                if not sep:
                    if fields:  # a blank line ends the first processor
                        break
                    continue
                fields.setdefault(key.strip(), value.strip())
    except OSError:
        pass
    return fields
