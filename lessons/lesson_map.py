"""The lesson map: which lesson teaches what, and which tests belong to it. One table, the rest derived.

    lesson (notebook)  ->  pytest markers  ->  test files  ->  check module  ->  solutions

Only LESSONS below is written by hand: each lesson's notebook, what it teaches, and the pytest
markers of the library tests that go with it (with what those tests cover). Everything else is
read from the files themselves:

* the test files of a marker: the tests/*/test_*.py files that set `pytestmark` to it;
* the check module: lessons/NN_topic.ipynb is checked by lessons/checks/topic.py;
* the exercises: the cells tagged "exercise" in the notebook, with their "solution" module.

tests/conftest.py registers the lesson markers with these descriptions (`pytest --markers`),
and `python lessons/lesson_map.py` writes the tables of lessons/README.md and
lessons/solutions/README.md; tests/test_lesson_map.py fails when any of them disagree.

Adding a lesson: add it to LESSONS, then run `python lessons/lesson_map.py`.
"""
import ast
import json
import re
from dataclasses import dataclass, field
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
TESTS = ROOT / "tests"


@dataclass(frozen=True)
class Lesson:
    notebook: str                                  # "01_autograd" for lessons/01_autograd.ipynb
    teaches: str                                   # the "what you learn" column of lessons/README.md
    markers: dict = field(default_factory=dict)    # pytest marker -> what its tests cover

    @property
    def number(self):
        return self.notebook.split("_", 1)[0]

    @property
    def topic(self):
        return self.notebook.split("_", 1)[1]

    @property
    def path(self):
        return HERE / f"{self.notebook}.ipynb"

    @property
    def checks(self):
        """The module of the lesson's check cells ("checks.autograd"), or None if it has none."""
        return f"checks.{self.topic}" if (HERE / "checks" / f"{self.topic}.py").is_file() else None

    @property
    def run_time(self):
        """The notebook's measured run time on a 2-core CPU, from its metadata
        {"tinyresnet": {"run_time": "about 4 min"}} (written beside its opening cell), or "—"."""
        return json.loads(self.path.read_text())["metadata"].get("tinyresnet", {}).get("run_time", "—")

    def exercises(self):
        """[(solution module, [function, ...]), ...] from the notebook's exercise cells, in order."""
        found = {}
        for cell in json.loads(self.path.read_text())["cells"]:
            if cell["cell_type"] == "code" and "exercise" in cell["metadata"].get("tags", []):
                source = "".join(cell["source"])
                names = [n.name for n in ast.parse(source).body if isinstance(n, ast.FunctionDef)]
                found.setdefault(cell["metadata"].get("solution", "?"), []).extend(names)
        return list(found.items())


LESSONS = (
    Lesson("00_setup", "the kit, CPU or GPU, CIFAR-10: images, classes, the per-pixel mean and "
           "normalization, the paper's augmentation (pad by 4, a random 32×32 crop, a random horizontal flip)",
           {"device": "choosing NumPy (cpu) or CuPy (gpu), and the errors for unusable devices",
            "data": "CIFAR-10 loading, normalization, augmentation and batching"}),
    Lesson("01_autograd", "computational graphs, reverse mode, topological order, accumulation, "
           "broadcasting, `gradcheck`",
           {"autograd": "reverse-mode autodiff (Tensor, backward, broadcasting, no_grad)",
            "gradcheck": "checking a backward pass against central differences"}),
    Lesson("02_convolution_im2col", "convolution as loops, as im2col + one matrix product; col2im as the "
           "adjoint; a conv layer's forward and backward passes on your own im2col and col2im; the "
           "channels-last layout; at stride 1 the input gradient as a flipped-kernel convolution; "
           "appendix: what conv2d runs on a CPU, timed",
           {"conv": "convolution as im2col + one matrix product"}),
    Lesson("03_batch_norm", "batch norm's forward pass in training and evaluation mode, running statistics "
           "in PyTorch's convention (in place, momentum 0.1, unbiased variance), the backward pass, why "
           "gradient checks need a random upstream gradient",
           {"batchnorm": "batch normalization (training and eval mode, running statistics)"}),
    Lesson("04_training", "softmax cross-entropy, its gradient and its stable computation; SGD, momentum, "
           "weight decay, the step schedule; your own training loop (`train_epoch`, `evaluate`); the "
           "sanity check of overfitting one batch; a small conv net trained on 5,000 images, its curves "
           "read against the test error's standard error",
           {"loss": "softmax cross-entropy",
            "optim": "SGD with momentum and weight decay, learning-rate schedules",
            "train": "the training loop"}),
    Lesson("05_plain_and_residual", "the option-A shortcut, the basic block and the forward pass of a 6n+2 "
           "net (yours, checked against the library's), parameter counts against Table 6, forward hooks, He "
           "initialization and the signal through 55 layers; your pieces of lessons 02–05 train a ResNet-8 "
           "within noise of the library's run",
           {"nn": "modules, parameters, initialization, state_dict, small functional ops",
            "models": "the CIFAR ResNet architectures"}),
    Lesson("06_degradation", "the paper's Fig. 1 and Fig. 6 from committed logs: plain against residual "
           "nets of 20 and 56 layers over 30 epochs (`results/cpu-fig6-b16-30ep/`, two seeds of the deciding "
           "pair); ResNet-20 on the paper's whole schedule beside its Table 6 (`results/cpu-table6/`) and what "
           "one more JPEG pass of the data costs (`results/cpu-jpeg-pass*/`); then a CPU budget run that shows "
           "the degradation (`results/cpu-budget/`); the verdict on a gap: its binomial standard error, and "
           "when an ordering is established",
           {"plot": "training curves and figures"}),
    Lesson("07_layer_responses", "the paper's Fig. 7: the standard deviation of each layer's response, "
           "read with forward hooks from trained nets whose weights ship in `weights/`; which of its three "
           "claims hold here, and batch norm's running statistics against the batch's"),
    Lesson("08_vanishing_gradients", "is degradation caused by vanishing gradients? Forward stds, gradient "
           "norms and relative weight gradients layer by layer, with and without batch norm, at "
           "initialization and trained; reading intermediate gradients with hooks"),
    Lesson("09_imagenet_bottleneck", "the ImageNet ResNet-18/34/50/101/152 of Table 1: max pooling, the "
           "bottleneck block, parameter counts (against torchvision's), multiply-adds counted by forward "
           "hooks (against Table 1's FLOPs), one 224×224 training step timed; ResNet-1202's first step, "
           "and why the paper warms up",
           {"imagenet": "the ImageNet ResNets of Table 1: parameter counts, multiply-adds, the bottleneck"}),
    Lesson("10_data_parallel", "the paper's two GPUs: why the mean of the shards' gradients is the minibatch's, "
           "why batch norm breaks that and ghost batch norm (`--bn-batch`) restores it; the ring allreduce; "
           "`mpiexec -n 2` against one process; how many images batch norm should normalize together, measured",
           {"parallel": "data-parallel training on MPI ranks: 2 ranks against one process with --bn-batch, "
                        "stops, resume, a hung rank"}),
)


def lesson_of_marker(marker):
    return next((lesson for lesson in LESSONS if marker in lesson.markers), None)


def marker_descriptions():
    """{marker: "lesson 01 (01_autograd.ipynb): what its tests cover"} for every lesson marker."""
    return {marker: f"lesson {lesson.number} ({lesson.notebook}.ipynb): {what}"
            for lesson in LESSONS for marker, what in lesson.markers.items()}


def markers_of_test_file(path):
    """The markers a test file sets for all its tests: `pytestmark = pytest.mark.x` (or a list)."""
    match = re.search(r"^pytestmark\s*=\s*(.+)$", Path(path).read_text(), flags=re.M)
    return re.findall(r"pytest\.mark\.(\w+)", match.group(1)) if match else []


def files_with_marker(marker):
    """The tests/*/test_*.py files whose pytestmark includes `marker`, as paths under tests/."""
    return [p.relative_to(TESTS).as_posix() for p in sorted(TESTS.glob("*/test_*.py"))
            if marker in markers_of_test_file(p)]


# ------------------------------------------------------------------ the generated tables

BEGIN, END = "<!-- lesson map: written by `python lessons/lesson_map.py` -->", "<!-- end of lesson map -->"


def _code(names):
    return ", ".join(f"`{n}`" for n in names) or "—"


def lessons_table():
    """The table of lessons/README.md."""
    rows = ["| notebook | what you learn | you write | run time (2-core CPU) | checked by | library tests |",
            "|---|---|---|---|---|---|"]
    for lesson in LESSONS:
        written = [f for _, functions in lesson.exercises() for f in functions]
        tests = [f"`-m {m}` ({', '.join(files_with_marker(m)) or 'no test file'})" for m in lesson.markers]
        checks = f"`{lesson.checks.replace('.', '/')}.py`" if lesson.checks else "—"
        rows.append(f"| `{lesson.notebook}.ipynb` | {lesson.teaches} | {_code(written)} | {lesson.run_time} | {checks} | "
                    f"{'; '.join(tests) or '—'} |")
    return "\n".join(rows)


def solutions_table():
    """The table of lessons/solutions/README.md."""
    rows = ["| lesson | module | functions |", "|---|---|---|"]
    for lesson in LESSONS:
        for module, functions in lesson.exercises():
            rows.append(f"| {lesson.notebook} | `{module}.py` | {_code(functions)} |")
    return "\n".join(rows)


def lesson_list():
    """The short list of the repository's README.md: each lesson, what it teaches, its run time."""
    rows = ["| lesson | what you learn | run time (2-core CPU) |", "|---|---|---|"]
    rows += [f"| [{lesson.notebook}](lessons/{lesson.notebook}.ipynb) | {lesson.teaches} | {lesson.run_time} |"
             for lesson in LESSONS]
    return "\n".join(rows)


def with_table(text, table):
    """text with the part between its generated-table markers replaced by table."""
    begin, end = next((b, e) for b, e in MARKERS if b in text)
    start, stop = text.index(begin) + len(begin), text.index(end)
    return f"{text[:start]}\n{table}\n{text[stop:]}"


MARKERS = [(BEGIN, END), ("<!-- lesson list: written by `python lessons/lesson_map.py` -->", "<!-- end of lesson list -->")]
README_TABLES = {HERE / "README.md": lessons_table, HERE / "solutions" / "README.md": solutions_table,
                 ROOT / "README.md": lesson_list}


if __name__ == "__main__":
    for path, table in README_TABLES.items():
        path.write_text(with_table(path.read_text(), table()))
        print(f"wrote the lesson map into {path.relative_to(ROOT)}")
