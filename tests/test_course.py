import json
from pathlib import Path

import nbformat
import pytest

from tpsep import course

SOURCE = '''# %% [markdown]
# # A tiny TP

# %%
def double(x):
    """Twice x."""
    ### BEGIN SOLUTION
    return 2 * x
    ### END SOLUTION

# %% tags=["instructor"]
print("only for instructors")

# %% [markdown]
# Why? 
# ### BEGIN SOLUTION
# Because.
# ### END SOLUTION

# %%
from tpsep.exercises import check, register
register("99.double", reference=lambda x: 2 * x, make_inputs=lambda rng: ((rng.standard_normal(3),), {}))
double = check("99.double", double)
print(double(21))
'''


def test_strip_solutions_keeps_indentation_and_refuses_top_level_blocks():
    code = "def f():\n    ### BEGIN SOLUTION\n    return 1\n    ### END SOLUTION\n"
    assert course.strip_solutions(code) == "def f():\n    # YOUR CODE HERE\n    raise NotImplementedError"
    with pytest.raises(ValueError, match="top level"):
        course.strip_solutions("### BEGIN SOLUTION\nx = 1\n### END SOLUTION")
    with pytest.raises(ValueError, match="without"):
        course.strip_solutions("def f():\n    ### BEGIN SOLUTION\n    return 1\n")
    text = "Why?\n### BEGIN SOLUTION\nBecause.\n### END SOLUTION"
    assert course.strip_solutions(text, markdown=True) == "Why?\n" + course.ANSWER_STUB


def make_root(tmp_path: Path) -> Path:
    (tmp_path / "course").mkdir()
    (tmp_path / "course" / "99_tiny.py").write_text(SOURCE)
    return tmp_path


def test_build_writes_student_and_solution_and_detects_staleness(tmp_path):
    root = make_root(tmp_path)
    assert course.stale_notebooks(root) == [
        "notebooks/99_tiny.ipynb is missing", "solutions/99_tiny.ipynb is missing"]
    course.build(run_solutions=False, root=root)
    assert course.stale_notebooks(root) == []
    student = nbformat.read(str(root / "notebooks" / "99_tiny.ipynb"), as_version=4)
    solution = nbformat.read(str(root / "solutions" / "99_tiny.ipynb"), as_version=4)
    student_text = "\n".join(c.source for c in student.cells)
    assert "raise NotImplementedError" in student_text and "return 2 * x" not in student_text
    assert "only for instructors" not in student_text and "Because." not in student_text
    assert len(solution.cells) == len(student.cells) + 1
    assert "return 2 * x" in "\n".join(c.source for c in solution.cells)
    (root / "course" / "99_tiny.py").write_text(SOURCE.replace("Twice x.", "Two times x."))
    assert course.stale_notebooks(root) == [
        "notebooks/99_tiny.ipynb differs from course/99_tiny.py",
        "solutions/99_tiny.ipynb differs from course/99_tiny.py"]


def test_rebuilding_is_byte_for_byte_stable(tmp_path):
    root = make_root(tmp_path)
    course.build(run_solutions=False, root=root)
    first = (root / "notebooks" / "99_tiny.ipynb").read_bytes()
    course.build(run_solutions=False, root=root)
    assert (root / "notebooks" / "99_tiny.ipynb").read_bytes() == first


def test_the_repository_notebooks_are_up_to_date_with_course():
    stale = course.stale_notebooks()
    assert stale == [], "run `tpsep build` (make notebooks):\n" + "\n".join(stale)


# ---- grading ----

# Registered in the notebook's kernel (there is no tpsep/exercises/nb99.py) and, by the
# `registered` fixture, in the grader's process, as tpsep.exercises.nb99 would be.
REGISTRATIONS = """\
from tpsep.exercises import register
register("99.double", reference=lambda x: 2 * x, make_inputs=lambda rng: ((rng.standard_normal(3),), {}))
register("99.halve", reference=lambda x: x / 2, make_inputs=lambda rng: ((rng.standard_normal(3),), {}), points=3)
"""

GRADED_SOURCE = f'''# %% [markdown]
# # A tiny graded TP

# %%
{REGISTRATIONS}
# %%
def double(x):
    ### BEGIN SOLUTION
    return 2 * x
    ### END SOLUTION

# %%
from tpsep.exercises import check
double = check("99.double", double)

# %% [markdown]
# **Question 1.** Why twice?
#
# ### BEGIN SOLUTION
# Because.
# ### END SOLUTION
#
# ## 2. Halving

# %%
def halve(x):
    ### BEGIN SOLUTION
    return x / 2
    ### END SOLUTION

# %%
halve = check("99.halve", halve)

# %% [markdown]
# **Question 2.** (3 points) Why half?
#
# ### BEGIN SOLUTION
# Because.
# ### END SOLUTION
#
# ## 3. The end
'''

STUDENT_CODE = "# YOUR CODE HERE\n    raise NotImplementedError"


@pytest.fixture
def registered(monkeypatch):
    """The grader's registry holds the tiny notebook's two exercises and nothing else: other test
    modules register exercises of their own under 99 at collection time."""
    from tpsep import exercises

    monkeypatch.setattr(exercises, "REGISTRY", {})
    exec(REGISTRATIONS, {})
    yield


@pytest.fixture
def untouched(tmp_path) -> nbformat.NotebookNode:
    """The student notebook of GRADED_SOURCE, as `tpsep build` writes it."""
    root = tmp_path / "built"
    (root / "course").mkdir(parents=True)
    (root / "course" / "99_graded.py").write_text(GRADED_SOURCE)
    course.build(run_solutions=False, root=root)
    return nbformat.read(str(root / "notebooks" / "99_graded.ipynb"), as_version=4)


def attempt(notebook, double: str | None = None, halve: str | None = None, answers: dict | None = None,
            added_answer: str | None = None):
    """A copy of ``notebook`` with the exercises and questions a student did.

    ``answers`` maps a question number to ("replace", text): the stub replaced by text, or
    ("below", text): text written under the stub; ``added_answer`` goes in a new cell
    after question 2's cell, as JupyterLab inserts one (with a random id)."""
    notebook = nbformat.from_dict(json.loads(json.dumps(notebook)))
    solutions = {"def double": double, "def halve": halve}
    for cell in notebook.cells:
        for start, code in solutions.items():
            if code and cell.source.startswith(start):
                cell.source = cell.source.replace(STUDENT_CODE, code)
        for number, (how, text) in (answers or {}).items():
            if f"**Question {number}.**" in cell.source:
                stub = course.ANSWER_STUB
                cell.source = cell.source.replace(stub, text if how == "replace" else f"{stub}\n{text}")
    if added_answer:
        question_2 = next(i for i, c in enumerate(notebook.cells) if "**Question 2.**" in c.source)
        notebook.cells.insert(question_2 + 1, nbformat.v4.new_markdown_cell(added_answer, id="a3f9c2e1"))
    return notebook


def save(notebook, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(notebook, str(path))
    return path


def totals_of(grades) -> dict:
    return {row.student: (row.checks_passed, row.checks, row.exercise_points, row.exercise_max,
                          row.questions_answered, row.questions, row.written_max, row.status)
            for row in grades.totals.itertuples()}


def test_written_questions_are_counted_with_their_points_and_answers(untouched, tmp_path):
    solution_of_untouched = tmp_path / "built" / "solutions" / "99_graded.ipynb"
    assert course.written_questions(untouched) == [
        {"number": 1, "cell": 5, "points": 2, "answered": False},
        {"number": 2, "cell": 8, "points": 3, "answered": False}]
    replaced = attempt(untouched, answers={1: ("replace", "Twice is double."), 2: ("below", "Half.")})
    assert [q["answered"] for q in course.written_questions(replaced)] == [True, True]
    emptied = attempt(untouched, answers={1: ("replace", "")}, added_answer="Half is half.")
    assert [q["answered"] for q in course.written_questions(emptied)] == [False, True]
    # text the course itself puts after the answer (the next heading and its section) is no answer
    assert "## 2. Halving" in untouched.cells[4].source
    solution = nbformat.read(str(solution_of_untouched), as_version=4)
    assert [q["answered"] for q in course.written_questions(solution)] == [True, True]


def test_grade_totals_points_and_questions_per_student(tmp_path, untouched, registered, capsys):
    from tpsep.cli import main

    submissions = tmp_path / "submissions"
    save(attempt(untouched, double="return x + x", halve="return x * 0.5",
                 answers={1: ("replace", "So that it doubles.")}, added_answer="To halve."),
         submissions / "ada.ipynb")
    save(attempt(untouched, double="return x + x", answers={1: ("below", "No idea yet, but twice.")}),
         submissions / "ben.ipynb")
    save(untouched, submissions / "cleo.ipynb")
    (submissions / "runs").mkdir()   # what a notebook run leaves there is no student
    csv, checks = tmp_path / "grades.csv", tmp_path / "checks.csv"
    assert main(["grade", str(submissions), "--csv", str(csv), "--checks", str(checks)]) == 0
    printed = capsys.readouterr().out
    assert printed.splitlines()[-1] == "grade: students=3 notebooks=3 checks=6 passed=3 stopped=0"
    assert "ada" in printed and "5/5" in printed and "2/5" in printed and "0/5" in printed

    import pandas as pd
    totals = pd.read_csv(csv, dtype={"notebook": str}, keep_default_na=False)
    assert list(totals.columns) == course.TOTAL_COLUMNS
    assert totals_of(course.Grades(totals, None)) == {
        "ada": (2, 2, 5, 5, 2, 2, 5, "ok"),
        "ben": (1, 2, 2, 5, 1, 2, 5, "ok"),
        "cleo": (0, 2, 0, 5, 0, 2, 5, "ok")}
    assert set(totals.notebook) == {"99"} and set(totals.written_points) == {""}
    per_check = pd.read_csv(checks)
    ben = per_check[per_check.student == "ben"]
    assert list(zip(ben.exercise, ben.status, ben.points, ben.max_points)) == [
        ("99.double", "passed", 2, 2), ("99.halve", "todo", 0, 3)]


def test_a_crashed_notebook_keeps_its_maximum(tmp_path, untouched, registered):
    crashed = attempt(untouched, double="return x + x")
    crashed.cells.insert(1, nbformat.v4.new_code_cell("1 / 0", id="0b1c2d3e"))
    # no check runs and the file is named by the student: the ids the build gave its cells say which notebook it is
    save(crashed, tmp_path / "submissions" / "dan.ipynb")
    grades = course.grade(tmp_path / "submissions")
    assert totals_of(grades) == {"dan": (0, 2, 0, 5, 0, 2, 5, "crashed at cell 2: ZeroDivisionError: division by zero")}
    assert list(grades.checks.status) == ["not run", "not run"]
    assert list(grades.checks.max_points) == [2, 3]


def test_grade_takes_one_subfolder_per_student(tmp_path, untouched, registered):
    submissions = tmp_path / "submissions"
    save(attempt(untouched, double="return x + x", halve="return x * 0.5"), submissions / "eve" / "99_graded.ipynb")
    save(untouched, submissions / "finn" / "99_graded.ipynb")
    save(untouched, submissions / "finn" / ".ipynb_checkpoints" / "99_graded-checkpoint.ipynb")
    grades = course.grade(submissions)
    assert list(grades.totals.student) == ["eve", "finn"]
    assert list(grades.totals.exercise_points) == [5, 0] and list(grades.totals.exercise_max) == [5, 5]
    assert list(grades.totals.file) == ["99_graded.ipynb", "99_graded.ipynb"]
    save(untouched, submissions / "loose.ipynb")
    with pytest.raises(ValueError, match="both notebooks .* and student folders"):
        course.grade(submissions)
    with pytest.raises(FileNotFoundError, match="no .ipynb files"):
        (tmp_path / "empty").mkdir()
        course.grade(tmp_path / "empty")
