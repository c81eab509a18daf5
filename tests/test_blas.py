"""blas.py: which kernels NumPy's BLAS runs, and the hint when OPENBLAS_CORETYPE holds it below the CPU."""
import builtins

import pytest

from tinyresnet import blas


@pytest.fixture
def cpuinfo(tmp_path):
    def write(flags):
        path = tmp_path / "cpuinfo"
        path.write_text(f"processor\t: 0\nflags\t\t: fpu sse2 {flags}\n")
        return str(path)
    return write


@pytest.mark.parametrize("core, flags, hinted", [
    ("Haswell", "avx2 avx512f avx512bw", True),     # pinned below the CPU: say so
    ("Haswell", "avx2", False),                     # an AVX2 CPU: Haswell is right
    ("SkylakeX", "avx2 avx512f", False),            # pinned to AVX-512 kernels already
    (None, "avx2 avx512f", False),                  # OpenBLAS picks for itself
])
def test_note_only_when_openblas_is_pinned_below_the_cpu(core, flags, hinted, cpuinfo, monkeypatch):
    if core is None:
        monkeypatch.delenv("OPENBLAS_CORETYPE", raising=False)
    else:
        monkeypatch.setenv("OPENBLAS_CORETYPE", core)
    note = blas.narrower_than_cpu_note(cpuinfo(flags))
    assert (note is not None) == hinted, f"OPENBLAS_CORETYPE={core}, CPU flags {flags!r}: note {note!r}"
    if hinted:
        assert "OPENBLAS_CORETYPE=Haswell" in note and "env -u OPENBLAS_CORETYPE" in note


def test_no_note_where_the_cpu_cannot_be_read(monkeypatch, tmp_path):
    monkeypatch.setenv("OPENBLAS_CORETYPE", "Haswell")
    assert blas.narrower_than_cpu_note(str(tmp_path / "no such file")) is None


def test_kernels_names_the_architecture_threadpoolctl_reports(monkeypatch):
    threadpoolctl = pytest.importorskip("threadpoolctl")
    fake = [{"user_api": "blas", "internal_api": "openblas", "version": "0.3.31", "architecture": "SkylakeX"}]
    monkeypatch.setattr(threadpoolctl, "threadpool_info", lambda: fake)
    assert blas.kernels() == "openblas 0.3.31, SkylakeX kernels (AVX-512)"
    fake[0]["architecture"] = "Haswell"
    assert blas.kernels() == "openblas 0.3.31, Haswell kernels (no AVX-512)"


def test_kernels_without_threadpoolctl_says_how_to_see_them(monkeypatch):
    real_import = builtins.__import__

    def no_threadpoolctl(name, *args, **kwargs):
        if name == "threadpoolctl":
            raise ImportError(name)
        return real_import(name, *args, **kwargs)
    monkeypatch.setattr(builtins, "__import__", no_threadpoolctl)
    assert "pip install threadpoolctl" in blas.kernels()
