"""benchmarks/parallel.py runs both settings (1 process × 2 threads, 2 MPI ranks × 1 thread) and
prints one table row per net; skipped without mpi4py and mpiexec."""
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
MPIEXEC = shutil.which("mpiexec") or shutil.which("mpiexec", path=str(Path(sys.executable).parent))


def test_the_benchmark_prints_a_row_with_both_settings():
    pytest.importorskip("mpi4py", reason="benchmarks/parallel.py needs mpi4py (pip install mpi4py mpich)")
    if MPIEXEC is None:
        pytest.skip("no mpiexec (pip install mpich)")
    done = subprocess.run([sys.executable, "benchmarks/parallel.py", "--depths", "8", "--batch", "8", "--steps", "1",
                           "--pairs", "1", "--mpiexec", MPIEXEC], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    row = next(line for line in done.stdout.splitlines() if line.startswith("| ResNet-8 |"))
    cells = [c.strip() for c in row.strip("|").split("|")]
    assert len(cells) == 5 and all(c for c in cells), row
    assert cells[3].endswith(")") and "×" in cells[3] and cells[4].endswith(" ms"), row
