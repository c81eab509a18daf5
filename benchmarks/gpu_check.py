"""Prove the GPU path on a real GPU in one prepared run, and bring everything back.

    python benchmarks/gpu_check.py [--epochs 3] [--data-dir DIR] [--tests PATH ...]

Made for a borrowed GPU machine that has CuPy, PyTorch with CUDA and pytest but reaches no
package registry. It runs four parts from the repository root, one after the other:

  versions  the GPU, driver, CUDA, CuPy, PyTorch and the commit         -> versions.txt
  pytest    python -m pytest -m "gpu or standin" -q                      -> pytest.txt
  step      benchmarks/step.py --device gpu: a ResNet-20 and ResNet-56 training step and
            evaluation at batch 128 against PyTorch (cuDNN) on the same GPU, alternating -> step.txt
  train     ResNet-20 on real CIFAR-10 for a few epochs with --device gpu
                                                   -> train.txt, log.csv, config.json

Each part has its own time limit (LIMITS, well inside 8 minutes together), so one hang cannot
eat the others' time; each writes its file as it goes, so a crash keeps what came before. Every line
printed is also saved in gpu_check.txt. The files go to $OUT when it is set, else to
benchmarks/results/gpu/.

Nothing is downloaded. The real CIFAR-10 comes from the folder .gpu_carry/ (ignored by git),
filled once from the repository root with

    mkdir -p .gpu_carry && cp ../shared/data/cifar10-jpeg.tar.xz ../shared/data/prepare_cifar10.py .gpu_carry/

and prepared into a temporary folder on the GPU machine (prepare_cifar10.py needs Pillow).
--data-dir DIR uses a folder that already holds cifar-10-batches-py/ instead.

Without a GPU, each GPU part is skipped with one line and the rest still runs: that dry run
is a test (tests/benchmarks/test_gpu_check.py), so the script cannot rot between GPU runs.
Exit status 0 when every part that ran passed, 1 when one failed or was stopped.
"""
import argparse
import importlib.metadata
import importlib.util
import os
import platform
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CARRY = ROOT / ".gpu_carry"
ARCHIVE, PREPARER = CARRY / "cifar10-jpeg.tar.xz", CARRY / "prepare_cifar10.py"
FILL = ("mkdir -p .gpu_carry && cp ../shared/data/cifar10-jpeg.tar.xz ../shared/data/prepare_cifar10.py "
        ".gpu_carry/")

# seconds each part may run before it is asked to stop; with GRACE for each, well inside the
# 8 minutes that one command on a borrowed GPU may take
LIMITS = {"versions": 30, "pytest": 90, "step": 110, "prepare": 40, "train": 130}
GRACE = 10  # seconds between asking a part to stop (SIGTERM: training saves its log) and killing it
ECHO = 15   # the last lines of each part's file, repeated on the screen
FILES = {"transcript": "gpu_check.txt", "versions": "versions.txt", "pytest": "pytest.txt",
         "step": "step.txt", "train": "train.txt", "log": "log.csv", "config": "config.json"}
STEP = ["benchmarks/step.py", "--device", "gpu", "--depths", "20", "56", "--pairs", "2", "--steps", "10",
        "--eval-batch", "128"]


def results_folder():
    """Where the files go: $OUT (the GPU machine's folder that comes back), else benchmarks/results/gpu."""
    return Path(os.environ["OUT"]) if os.environ.get("OUT") else ROOT / "benchmarks" / "results" / "gpu"


def train_arguments(data_dir, out, epochs):
    """The training run's options: the paper's ResNet-20 recipe on the GPU, for `epochs` epochs."""
    return ["--depth", "20", "--residual", "--device", "gpu", "--epochs", str(epochs),
            "--data-dir", str(data_dir), "--out", str(out), "--quiet"]


def run_part(cmd, path, limit, mode="w", grace=GRACE):
    """Run cmd from the repository root, its output going straight into the file `path` (so a
    crash or a stop keeps what it printed). At `limit` seconds the part is asked to stop, and
    is killed `grace` seconds later, with every process it started.
    Returns (exit status, or None when it was stopped; seconds)."""
    start = time.perf_counter()
    with open(path, mode) as log:
        log.write(f"$ {shlex.join(str(word) for word in cmd)}\n")
        log.flush()
        # a process group of its own, so that stopping the part stops its children too
        proc = subprocess.Popen(cmd, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
                                env=dict(os.environ, PYTHONUNBUFFERED="1"))
        try:
            status = proc.wait(timeout=limit)
        except subprocess.TimeoutExpired:
            status = None
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=grace)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
        except BaseException:  # Ctrl-C: take the part down with the check
            os.killpg(proc.pid, signal.SIGKILL)
            raise
    return status, time.perf_counter() - start


class Check:
    """The results folder, the transcript (every line printed, also in gpu_check.txt) and the tally."""

    def __init__(self, out):
        self.out = out
        out.mkdir(parents=True, exist_ok=True)
        self.transcript = open(out / FILES["transcript"], "w")
        self.failed, self.skipped = [], []

    def say(self, line):
        print(line, flush=True)
        self.transcript.write(line + "\n")
        self.transcript.flush()

    def skip(self, part, why):
        self.say(f"[{part}] skipped: {why}")
        self.skipped.append(part)

    def run(self, part, cmd, file, mode="w"):
        """Run one part into out/file within its limit, say how it ended, and repeat its last lines."""
        path = self.out / file
        status, seconds = run_part(cmd, path, LIMITS[part], mode)
        verdict = ("finished" if status == 0 else f"stopped at its {LIMITS[part]} s limit" if status is None
                   else f"failed (exit status {status})")
        self.say(f"[{part}] {verdict} in {seconds:.1f} s -> {file}")
        for line in path.read_text(errors="replace").splitlines()[-ECHO:]:
            self.say("  " + line)
        if status != 0:
            self.failed.append(part)
        return status


def versions(check):
    """The versions part, in a child with a time limit (asking CUDA can hang). Returns why there is
    no usable GPU, or None when there is one."""
    if check.run("versions", [sys.executable, __file__, "--versions"], FILES["versions"]) != 0:
        return "the versions part did not finish, so the GPU parts would not either"
    last = (check.out / FILES["versions"]).read_text(errors="replace").splitlines()[-1]
    return last if last.startswith("no GPU") else None


def print_versions():
    """The versions child: what the GPU parts run on, and last, whether a GPU is usable
    ('GPU usable' or 'no GPU: why')."""
    print(f"Python {platform.python_version()}; NumPy {importlib.metadata.version('numpy')}; "
          f"tinyresnet at {commit()}")
    print(f"nvidia-smi: {nvidia_smi()}")
    sys.path.insert(0, str(ROOT))
    from tinyresnet.device import DeviceError, xp_for
    try:
        cupy = xp_for("gpu")
    except DeviceError as e:
        print(f"CuPy: {installed('cupy')}; PyTorch: {installed('torch')}")
        print(f"no GPU: {e}")
        return
    props = cupy.cuda.runtime.getDeviceProperties(0)
    print(f"CuPy {cupy.__version__}: CUDA runtime {cuda_version(cupy.cuda.runtime.runtimeGetVersion())}, "
          f"the driver supports CUDA {cuda_version(cupy.cuda.runtime.driverGetVersion())}; "
          f"device 0: {props['name'].decode()}, {props['totalGlobalMem'] / 2**30:.0f} GiB")
    print(f"PyTorch: {torch_on_gpu()}")
    print("GPU usable")


def commit():
    """The commit these files were checked out at, marked when tracked files were changed since."""
    try:
        head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True,
                              text=True, timeout=10)
        changed = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=ROOT,
                                 capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return "an unknown commit (git not found)"
    if head.returncode != 0:
        return "an unknown commit (not a git checkout)"
    return head.stdout.strip() + (" with uncommitted changes" if changed.stdout.strip() else "")


def nvidia_smi():
    """The GPUs as the driver lists them: name, driver version, memory."""
    if shutil.which("nvidia-smi") is None:
        return "not found"
    try:
        done = subprocess.run(["nvidia-smi", "--query-gpu=name,driver_version,memory.total", "--format=csv,noheader"],
                              capture_output=True, text=True, timeout=15)
    except subprocess.TimeoutExpired:
        return "no answer in 15 s"
    return "; ".join(done.stdout.strip().splitlines()) or done.stderr.strip() or f"exit status {done.returncode}"


def installed(module):
    """A package's version as its installer recorded it, without importing it (PyTorch takes seconds)."""
    if importlib.util.find_spec(module) is None:
        return "not installed"
    names = importlib.metadata.packages_distributions().get(module, [])
    return ", ".join(f"{name} {importlib.metadata.version(name)}" for name in names) or "installed"


def cuda_version(number):
    """CUDA's version number as people write it: 12040 -> '12.4'."""
    return f"{number // 1000}.{number % 1000 // 10}"


def torch_on_gpu():
    """PyTorch's version, the CUDA and cuDNN it was built with, and the GPU it sees."""
    try:
        import torch
    except ImportError:
        return "not installed (the step part times tinyresnet alone)"
    if not torch.cuda.is_available():
        return f"{torch.__version__}, which sees no CUDA device (the step part times tinyresnet alone)"
    return (f"{torch.__version__}: CUDA {torch.version.cuda}, cuDNN {torch.backends.cudnn.version()}; "
            f"sees {torch.cuda.get_device_name(0)}")


def pytest_part(check, tests):
    """The GPU tests (they skip without one) and the stand-in GPU's, which run anywhere."""
    check.run("pytest", [sys.executable, "-m", "pytest", "-m", "gpu or standin", "-q", *tests], FILES["pytest"])


def step_part(check, why_no_gpu):
    """tinyresnet's training step and evaluation against PyTorch's, both on the GPU (step.py)."""
    if why_no_gpu:
        return check.skip("step", why_no_gpu)
    check.run("step", [sys.executable, *STEP], FILES["step"])


def train_part(check, why_no_gpu, data_dir, epochs):
    """Prepare the real CIFAR-10 (unless --data-dir), train on the GPU, and keep log.csv and config.json."""
    if why_no_gpu:
        return check.skip("train", why_no_gpu)
    with tempfile.TemporaryDirectory(prefix="gpu_check_") as scratch:
        scratch = Path(scratch)
        data_dir = data_dir or prepare(check, scratch / "data")
        if data_dir is None:
            return
        run = scratch / "run"
        command = [sys.executable, "-m", "tinyresnet.train", *train_arguments(data_dir, run, epochs)]
        check.run("train", command, FILES["train"], mode="a")
        kept = []
        for name, file in ((FILES["log"], run / "log.csv"), (FILES["config"], run / "config.json")):
            if file.exists():
                shutil.copyfile(file, check.out / name)
                kept.append(name)
        check.say(f"[train] kept {', '.join(kept) or 'no log.csv or config.json: the run wrote none'}")


def prepare(check, folder):
    """The official CIFAR-10 layout in folder, made from the carried archive; None (said why) if it cannot be."""
    if not (ARCHIVE.exists() and PREPARER.exists()):
        return check.skip("train", f"no CIFAR-10 archive in .gpu_carry/: fill it with `{FILL}`, then carry it")
    if importlib.util.find_spec("PIL") is None:
        return check.skip("train", "Pillow is missing, and prepare_cifar10.py needs it to read the archive")
    if check.run("prepare", [sys.executable, PREPARER, folder], FILES["train"]) != 0:
        return check.skip("train", "the data could not be prepared (see above)")
    return folder


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=3, help="of the training run (default 3)")
    parser.add_argument("--data-dir", type=Path, help="a folder holding cifar-10-batches-py/, instead of "
                                                      "preparing .gpu_carry/'s archive")
    parser.add_argument("--tests", nargs="+", default=["tests"],
                        help="the test files, folders or node ids the pytest part runs (default: tests); "
                             "the CI dry run names one test")
    parser.add_argument("--versions", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.versions:
        return print_versions()
    start = time.perf_counter()
    check = Check(results_folder())
    check.say(f"benchmarks/gpu_check.py: files in {check.out}; limits "
              + ", ".join(f"{part} {seconds} s" for part, seconds in LIMITS.items()))
    why_no_gpu = versions(check)
    pytest_part(check, args.tests)
    step_part(check, why_no_gpu)
    train_part(check, why_no_gpu, args.data_dir, args.epochs)
    check.say(f"benchmarks/gpu_check.py: done in {time.perf_counter() - start:.0f} s; "
              + (f"failed: {', '.join(check.failed)}" if check.failed else "every part that ran passed")
              + (f"; skipped: {', '.join(check.skipped)}" if check.skipped else ""))
    return 1 if check.failed else 0


if __name__ == "__main__":
    sys.exit(main())
