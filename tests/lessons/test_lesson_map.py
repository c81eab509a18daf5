"""The lesson map (lessons/lesson_map.py) agrees with the notebooks, the tests and the READMEs.

The map is the one place that says which lesson teaches what and which pytest markers go
with it; these tests fail, saying what to change, wherever another file disagrees.
"""
import ast
import json
import re
from pathlib import Path

import pytest

import lesson_map
from lesson_map import LESSONS, README_TABLES, TESTS, markers_of_test_file, with_table

pytestmark = pytest.mark.lessons

REGENERATE = "run `python lessons/lesson_map.py` to write it"


def test_every_notebook_is_in_the_map_and_back():
    on_disk = sorted(p.stem for p in lesson_map.HERE.glob("[0-9]*.ipynb"))
    in_map = sorted(lesson.notebook for lesson in LESSONS)
    assert on_disk == in_map, (f"lessons/ holds {on_disk} but lessons/lesson_map.py lists {in_map}: "
                               "add every lesson to LESSONS (and remove gone ones)")


@pytest.mark.parametrize("path", list(README_TABLES), ids=lambda p: p.parent.name + "/" + p.name)
def test_readme_tables_are_the_generated_ones(path):
    text = path.read_text()
    assert any(begin in text and end in text for begin, end in lesson_map.MARKERS), (
        f"{path} lost its generated-table markers, one of {lesson_map.MARKERS}")
    assert text == with_table(text, README_TABLES[path]()), f"{path}'s lesson table is out of date: {REGENERATE}"


def test_every_lesson_marker_is_used_and_described(pytestconfig):
    registered = {line.split(":")[0].strip() for line in pytestconfig.getini("markers")}
    used = {m for p in TESTS.glob("*/test_*.py") for m in markers_of_test_file(p)}
    for lesson in LESSONS:
        for marker in lesson.markers:
            assert marker in registered, f"marker {marker!r} of {lesson.notebook} is not registered"
    unknown = used - registered - set(lesson_map.marker_descriptions())
    assert not unknown, (f"test files use markers {sorted(unknown)} that neither lessons/lesson_map.py "
                         "nor pytest.ini describes")
    orphans = sorted(m for lesson in LESSONS for m in lesson.markers if not lesson_map.files_with_marker(m))
    assert not orphans, f"lesson markers {orphans} are set by no tests/test_*.py file (pytestmark)"


def _lesson_said(path):
    """The lesson number a test file's docstring opens with ("Lesson 05: ..." -> "05"), or None."""
    said = re.match(r"Lesson (\d+)\b", ast.get_docstring(ast.parse(path.read_text())) or "")
    return said and said.group(1)


SAY_THEIR_LESSON = [p for p in sorted(TESTS.glob("*/test_*.py")) if _lesson_said(p)]


def test_some_test_files_say_their_lesson():
    assert SAY_THEIR_LESSON, "no tests/*/test_*.py docstring opens with 'Lesson NN': the check below checks nothing"


@pytest.mark.parametrize("path", SAY_THEIR_LESSON, ids=lambda p: p.name)
def test_a_test_file_names_the_lesson_of_its_marker(path):
    """A test file whose docstring starts "Lesson NN:" belongs to lesson NN in the map."""
    said = re.match(r"(\d+)", _lesson_said(path))
    owners = [lesson_map.lesson_of_marker(m) for m in markers_of_test_file(path)]
    numbers = sorted({lesson.number for lesson in owners if lesson is not None})
    assert said.group(1) in numbers, (f"{path.name} says 'Lesson {said.group(1)}', but its markers "
                                      f"{markers_of_test_file(path)} belong to lesson(s) {numbers} in "
                                      "lessons/lesson_map.py")


@pytest.mark.parametrize("lesson", LESSONS, ids=lambda lesson: lesson.notebook)
def test_check_cells_import_from_the_lessons_own_module(lesson):
    cells = json.loads(lesson.path.read_text())["cells"]
    checks = ["".join(c["source"]) for c in cells if "check" in c["metadata"].get("tags", [])]
    if not checks:
        return
    assert lesson.checks, (f"{lesson.notebook} has check cells but no lessons/checks/{lesson.topic}.py; "
                           f"a lesson's checks live in the module named after it")
    for source in checks:
        imports = re.findall(r"^from (checks\S*) import", source, flags=re.M)
        assert imports and all(m == lesson.checks for m in imports), (
            f"{lesson.notebook}: a check cell imports from {imports}; it should import from {lesson.checks}\n"
            f"{source}")


@pytest.mark.parametrize("lesson", LESSONS, ids=lambda lesson: lesson.notebook)
def test_solutions_define_the_exercises(lesson):
    for module, functions in lesson.exercises():
        path = lesson_map.HERE / "solutions" / f"{module}.py"
        assert path.is_file(), f"{lesson.notebook}: solution module {path} does not exist"
        defined = {n.name for n in ast.parse(path.read_text()).body if isinstance(n, ast.FunctionDef)}
        missing = sorted(set(functions) - defined)
        assert not missing, f"{path.name} does not define {missing} (asked for in {lesson.notebook})"


def test_pytest_ini_leaves_lesson_markers_to_the_map():
    ini = (Path(lesson_map.ROOT) / "pytest.ini").read_text()
    twice = sorted(m for m in lesson_map.marker_descriptions() if re.search(rf"^\s+{m}:", ini, flags=re.M))
    assert not twice, (f"pytest.ini describes the lesson markers {twice} again; their descriptions come "
                       "from lessons/lesson_map.py (tests/conftest.py registers them)")


def _numbers(words):
    """"00, 04 and 06" -> ["00", "04", "06"]."""
    return re.findall(r"\d\d", words)


def test_the_readme_says_which_lessons_read_cifar10():
    """lessons/README.md names the lessons that read CIFAR-10 and those that need no data; each
    notebook says which it is in its metadata ({"tinyresnet": {"needs_data": true}})."""
    text = " ".join((lesson_map.HERE / "README.md").read_text().split())
    said = re.search(r"Lessons ([\d, and]+) read CIFAR-10 .*?; lessons ([\d, and]+) need no data", text)
    assert said, "lessons/README.md no longer says 'Lessons ... read CIFAR-10 (...); lessons ... need no data'"
    reading = sorted(lesson.number for lesson in LESSONS if json.loads(lesson.path.read_text())["metadata"]
                     .get("tinyresnet", {}).get("needs_data", False))
    others = sorted(lesson.number for lesson in LESSONS if lesson.number not in reading)
    assert (_numbers(said.group(1)), _numbers(said.group(2))) == (reading, others), (
        f"lessons/README.md says lessons {_numbers(said.group(1))} read CIFAR-10 and {_numbers(said.group(2))} "
        f"need none; the notebooks' metadata says {reading} read it and {others} do not")
