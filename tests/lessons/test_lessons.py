"""The lesson notebooks (lessons/[0-9]*.ipynb), run end to end with the worked solutions.

How a lesson is put together, and what is checked here:

* A cell tagged "exercise" holds stub functions whose bodies only
  `raise NotImplementedError`; its metadata names the solution module,
  {"tags": ["exercise"], "solution": "autograd"} -> lessons/solutions/autograd.py.
* A cell tagged "check" calls a function of lessons/checks/<topic>.py that prints
  "✓ PASSED ..." when the learner's functions are right.
* A notebook that reads CIFAR-10 says so in its metadata: {"tinyresnet": {"needs_data": true}}.

The execution test replaces every exercise cell by an import of its functions
from the solution module, runs the notebook top to bottom in lessons/ (as a
learner would), and requires every check cell to print "✓ PASSED". It runs in
quick mode (TINYRESNET_QUICK=1) unless that variable is set otherwise, and
skips notebooks that need CIFAR-10 when no copy is found. The static tests
make sure the committed notebooks are exercises (stubs, not solutions) and
carry the outputs of a real run.
"""
import ast
import copy
import os
import re
from pathlib import Path

import pytest

from tinyresnet.data import FOLDER, find_data_dir

nbformat = pytest.importorskip("nbformat", reason="nbformat not installed: pip install -r requirements.txt")

pytestmark = pytest.mark.lessons

ROOT = Path(__file__).resolve().parents[2]
LESSONS = ROOT / "lessons"
SOLUTIONS = LESSONS / "solutions"
NOTEBOOKS = sorted(LESSONS.glob("[0-9]*.ipynb"))
FIRST_LESSONS = ["00_setup", "01_autograd", "02_convolution_im2col", "03_batch_norm"]
PASSED, FAILED, NOT_WRITTEN = "✓ PASSED", "✗ FAILED", "not written yet"
CELL_TIMEOUT = 600   # seconds per cell; quick mode needs a few at most
MAX_BYTES = 1_000_000
ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")


def read(path):
    return nbformat.read(path, as_version=4)


def tags(cell):
    return cell.get("metadata", {}).get("tags", [])


def cells_tagged(nb, tag):
    return [(i, cell) for i, cell in enumerate(nb.cells) if cell.cell_type == "code" and tag in tags(cell)]


def stub_functions(source):
    """The function definitions of an exercise cell."""
    return [node for node in ast.parse(source).body if isinstance(node, ast.FunctionDef)]


def needs_data(nb):
    return bool(nb.metadata.get("tinyresnet", {}).get("needs_data", False))


def have_cifar():
    return (find_data_dir() / FOLDER).is_dir()


def printed(cell):
    """Everything a cell printed (stdout and stderr streams)."""
    return "".join(o.get("text", "") for o in cell.get("outputs", []) if o.get("output_type") == "stream")


def with_solutions(nb):
    """A copy of nb whose exercise cells import the worked solutions instead of raising."""
    nb = copy.deepcopy(nb)
    for _, cell in cells_tagged(nb, "exercise"):
        names = ", ".join(f.name for f in stub_functions(cell.source))
        module = cell.metadata["solution"]
        cell.source = f"# filled in by tests/test_lessons.py\nfrom solutions.{module} import {names}"
    return nb


def describe_error(path, nb):
    """The first cell with an error output: its index, source and traceback."""
    for i, cell in enumerate(nb.cells):
        for out in cell.get("outputs", []):
            if out.get("output_type") == "error":
                trace = ANSI.sub("", "\n".join(out.get("traceback", [])))
                return (f"{path.name}: cell {i} raised {out['ename']}: {out['evalue']}\n"
                        f"--- cell source ---\n{cell.source}\n--- traceback ---\n{trace}")
    return None


def notebook_params():
    return [pytest.param(p, id=p.stem) for p in NOTEBOOKS]


# ------------------------------------------------------------ static checks of the committed notebooks

def test_first_lessons_are_there():
    missing = [name for name in FIRST_LESSONS if not (LESSONS / f"{name}.ipynb").exists()]
    assert not missing, f"lesson notebooks missing from lessons/: {missing}"
    assert (LESSONS / "checks" / "harness.py").is_file() and (SOLUTIONS / "README.md").is_file()


@pytest.mark.parametrize("path", notebook_params())
def test_exercise_cells_are_stubs_with_a_solution(path):
    """Exercise cells hold only stubs (docstring + raise NotImplementedError) and name a solution
    module that defines the same functions with the same arguments."""
    nb = read(path)
    for i, cell in cells_tagged(nb, "exercise"):
        where = f"{path.name} cell {i}"
        module = cell.metadata.get("solution")
        assert module, f"{where}: an exercise cell needs metadata 'solution' naming lessons/solutions/<module>.py"
        solution_file = SOLUTIONS / f"{module}.py"
        assert solution_file.is_file(), f"{where}: solution module {solution_file} does not exist"
        tree = ast.parse(cell.source)
        others = [type(n).__name__ for n in tree.body if not isinstance(n, ast.FunctionDef)]
        assert not others, f"{where}: an exercise cell may hold only function stubs, found {others}"
        stubs = stub_functions(cell.source)
        assert stubs, f"{where}: an exercise cell needs at least one stub function"
        solved = {f.name: f for f in ast.parse(solution_file.read_text()).body if isinstance(f, ast.FunctionDef)}
        for stub in stubs:
            body = stub.body[1:] if ast.get_docstring(stub) is not None else stub.body
            raises = (len(body) == 1 and isinstance(body[0], ast.Raise) and body[0].exc is not None
                      and "NotImplementedError" in ast.unparse(body[0].exc))
            assert raises, (f"{where}: {stub.name} must be a stub whose body only raises "
                            f"NotImplementedError (is a solution committed in the lesson?)")
            assert stub.name in solved, f"{where}: {solution_file.name} does not define {stub.name}"
            stub_args = [a.arg for a in stub.args.args]
            solution_args = [a.arg for a in solved[stub.name].args.args]
            assert stub_args == solution_args, (f"{where}: {stub.name}{tuple(stub_args)} in the lesson, "
                                                f"{stub.name}{tuple(solution_args)} in {solution_file.name}")


@pytest.mark.parametrize("path", notebook_params())
def test_the_setup_cell_is_the_same_in_every_lesson(path):
    """The first code cell is 01_autograd's, word for word (paths, QUICK, figures, one-line errors)."""
    first = next(c for c in read(LESSONS / "01_autograd.ipynb").cells if c.cell_type == "code")
    mine = next(c for c in read(path).cells if c.cell_type == "code")
    assert mine.source == first.source, (f"{path.name}: the first code cell differs from 01_autograd's setup "
                                         f"cell; copy it from there:\n{first.source}")


@pytest.mark.parametrize("path", notebook_params())
def test_the_opening_states_the_measured_run_time(path):
    """The run time in the notebook's metadata (the one lessons/README.md's table shows) is the one
    its opening cell tells the learner."""
    nb = read(path)
    run_time = nb.metadata.get("tinyresnet", {}).get("run_time")
    assert run_time, (f"{path.name}: no run time in its metadata; execute it in normal mode on a 2-core CPU and "
                      f"write {{\"tinyresnet\": {{\"run_time\": \"about N min\"}}}} into the notebook's metadata")
    opening = " ".join(" ".join(c.source.split()) for c in nb.cells[:3] if c.cell_type == "markdown")
    assert run_time in opening, (f"{path.name}: its metadata says the notebook runs in {run_time!r}, but its opening "
                                 f"cell does not say so; write the measured time into both")


@pytest.mark.parametrize("path", notebook_params())
def test_every_exercise_is_followed_by_a_check(path):
    nb = read(path)
    exercises = [i for i, _ in cells_tagged(nb, "exercise")]
    checks = [i for i, _ in cells_tagged(nb, "check")]
    if exercises:
        assert checks and checks[-1] > exercises[-1], f"{path.name}: no check cell after the last exercise"


@pytest.mark.parametrize("path", notebook_params())
def test_committed_notebook_has_outputs(path):
    """Committed lessons carry the outputs of a real run, with the exercises left unsolved."""
    assert path.stat().st_size < MAX_BYTES, f"{path.name} is {path.stat().st_size:,} bytes; keep it under 1 MB"
    nb = read(path)
    code_cells = [c for c in nb.cells if c.cell_type == "code"]
    unrun = [i for i, c in enumerate(nb.cells) if c.cell_type == "code" and c.execution_count is None]
    assert not unrun, f"{path.name}: cells {unrun} were never executed; run the notebook and save it"
    assert any(c.outputs for c in code_cells), f"{path.name} has no outputs at all"
    error = describe_error(path, nb)
    assert error is None, f"the committed notebook shows an error:\n{error}"
    for i, cell in cells_tagged(nb, "check"):
        assert NOT_WRITTEN in printed(cell), (f"{path.name} cell {i}: a committed check cell should show "
                                              f"'{NOT_WRITTEN}' (the exercises are left for the learner)")


# ------------------------------------------------------------ running the lessons

@pytest.mark.parametrize("path", notebook_params())
def test_lesson_runs_with_the_solutions(path, monkeypatch):
    nbclient = pytest.importorskip("nbclient", reason="nbclient not installed: pip install -r requirements.txt")
    nb = read(path)
    if needs_data(nb) and not have_cifar():
        pytest.skip(f"{path.name} needs CIFAR-10: no {FOLDER}/ in {find_data_dir()} "
                    "(set TINYRESNET_DATA to the folder that contains it)")
    if "TINYRESNET_QUICK" not in os.environ:
        monkeypatch.setenv("TINYRESNET_QUICK", "1")
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])))

    nb = with_solutions(nb)
    client = nbclient.NotebookClient(nb, timeout=CELL_TIMEOUT, kernel_name="python3",
                                     resources={"metadata": {"path": str(LESSONS)}})
    try:
        client.execute()
    except Exception as e:  # CellExecutionError, a timeout, a dead kernel
        pytest.fail(describe_error(path, nb) or f"{path.name}: {type(e).__name__}: {ANSI.sub('', str(e))}",
                    pytrace=False)
    checks = cells_tagged(nb, "check")
    for i, cell in checks:
        out = printed(cell)
        assert PASSED in out and FAILED not in out and NOT_WRITTEN not in out, (
            f"{path.name} cell {i}: with the worked solutions every check must pass.\n"
            f"--- cell source ---\n{cell.source}\n--- printed ---\n{out}")


def test_a_missing_data_set_is_one_line_in_a_notebook(tmp_path):
    """No CIFAR-10: the lesson shows one line that says how to point a notebook at the data
    (not a traceback, and not the command line's --data-dir), and the run stops there."""
    nbclient = pytest.importorskip("nbclient", reason="nbclient not installed: pip install -r requirements.txt")
    setup = next(c for c in read(LESSONS / "01_autograd.ipynb").cells if c.cell_type == "code")
    nb = nbformat.v4.new_notebook(cells=[
        nbformat.v4.new_code_cell(setup.source),
        nbformat.v4.new_code_cell(f"from tinyresnet.data import load_cifar10\n"
                                  f"load_cifar10({str(tmp_path)!r}, download=False)"),
        nbformat.v4.new_code_cell("print('not reached')")])
    client = nbclient.NotebookClient(nb, timeout=CELL_TIMEOUT, kernel_name="python3",
                                     resources={"metadata": {"path": str(LESSONS)}})
    with pytest.raises(nbclient.exceptions.CellExecutionError):
        client.execute()
    outputs = nb.cells[1].outputs
    assert not [o for o in outputs if o.get("output_type") == "error"], "a traceback was shown"
    shown = printed(nb.cells[1]).strip()
    assert shown.startswith("DataError:") and "\n" not in shown, f"not one line:\n{shown}"
    assert "TINYRESNET_DATA" in shown and "--data-dir" not in shown, shown
    assert not nb.cells[2].outputs, "the notebook went on after the error"
