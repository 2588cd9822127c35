import shutil
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


def test_grade_runs_student_notebooks_and_reads_their_checks(tmp_path):
    root = make_root(tmp_path)
    course.build(run_solutions=False, root=root)
    submissions = tmp_path / "submissions"
    submissions.mkdir()
    unfinished = root / "notebooks" / "99_tiny.ipynb"
    shutil.copy(unfinished, submissions / "alice.ipynb")
    finished = nbformat.read(str(unfinished), as_version=4)
    for cell in finished.cells:
        cell.source = cell.source.replace("# YOUR CODE HERE\n    raise NotImplementedError", "return x + x")
    nbformat.write(finished, str(submissions / "bob.ipynb"))
    table = course.grade(submissions)
    statuses = dict(zip(table.notebook, table.status))
    assert statuses == {"alice.ipynb": "todo", "bob.ipynb": "passed"}
