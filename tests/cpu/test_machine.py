"""tinyresnet/cpu/machine.py: which kernels NumPy's BLAS runs, and the hint when OPENBLAS_CORETYPE holds it below the CPU."""
import builtins

import pytest

from tinyresnet.cpu import machine


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
    note = machine.narrower_than_cpu_note(cpuinfo(flags))
    assert (note is not None) == hinted, f"OPENBLAS_CORETYPE={core}, CPU flags {flags!r}: note {note!r}"
    if hinted:
        assert "OPENBLAS_CORETYPE=Haswell" in note and "env -u OPENBLAS_CORETYPE" in note


def test_no_note_where_the_cpu_cannot_be_read(monkeypatch, tmp_path):
    monkeypatch.setenv("OPENBLAS_CORETYPE", "Haswell")
    assert machine.narrower_than_cpu_note(str(tmp_path / "no such file")) is None


def test_kernels_names_the_architecture_threadpoolctl_reports(monkeypatch):
    threadpoolctl = pytest.importorskip("threadpoolctl")
    fake = [{"user_api": "blas", "internal_api": "openblas", "version": "0.3.31", "architecture": "SkylakeX"}]
    monkeypatch.setattr(threadpoolctl, "threadpool_info", lambda: fake)
    assert machine.kernels() == "openblas 0.3.31, SkylakeX kernels (AVX-512)"
    fake[0]["architecture"] = "Haswell"
    assert machine.kernels() == "openblas 0.3.31, Haswell kernels (no AVX-512)"


def test_kernels_without_threadpoolctl_says_how_to_see_them(monkeypatch):
    real_import = builtins.__import__

    def no_threadpoolctl(name, *args, **kwargs):
        if name == "threadpoolctl":
            raise ImportError(name)
        return real_import(name, *args, **kwargs)
    monkeypatch.setattr(builtins, "__import__", no_threadpoolctl)
    assert "pip install threadpoolctl" in machine.kernels()


@pytest.mark.parametrize("flags, width", [
    ("avx2 avx512f avx512bw", "AVX-512"),
    ("avx2 fma", "AVX2 (no AVX-512)"),
    ("sse2", None),                                 # neither: nothing said of the width
])
def test_cpu_names_the_model_the_cores_and_the_vector_width(flags, width, tmp_path):
    path = tmp_path / "cpuinfo"
    # two processors: only the first one's lines are read
    path.write_text(f"processor\t: 0\nmodel name\t: AMD EPYC\nflags\t\t: fpu {flags}\n\n"
                    "processor\t: 1\nmodel name\t: another name\nflags\t\t: fpu\n")
    described = machine.cpu(str(path))
    cores = f"{machine.CORES} core{'' if machine.CORES == 1 else 's'}"
    assert described.startswith(f"AMD EPYC, {cores}, ") or described == f"AMD EPYC, {cores}", described
    if width:
        assert described.endswith(", " + width), f"CPU flags {flags!r}: {described!r}"
    else:
        assert "AVX" not in described, f"CPU flags {flags!r}: {described!r}"


def test_cpu_still_says_something_where_cpuinfo_cannot_be_read(tmp_path):
    described = machine.cpu(str(tmp_path / "no such file"))
    assert f"{machine.CORES} core" in described, described


def test_one_core_is_said_in_the_singular(monkeypatch, tmp_path):
    monkeypatch.setattr(machine, "CORES", 1)
    assert ", 1 core" in machine.cpu(str(tmp_path / "no such file")) and "1 cores" not in machine.cpu(str(tmp_path / "x"))
