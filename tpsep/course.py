"""Build the student and solution notebooks from ``course/``, and grade students.

``course/NN_topic.py`` (jupytext percent format) is the only source of a TP.
Inside it, nbgrader-style markers delimit each solution::

    def stft(x, n_fft, hop):
        ### BEGIN SOLUTION
        ...
        ### END SOLUTION

:func:`build` writes two notebooks per source:

- ``notebooks/NN_topic.ipynb``: each solution replaced by ``# YOUR CODE HERE`` and
  ``raise NotImplementedError`` (in a markdown cell: "*Your answer here.*"),
  cells tagged ``instructor`` removed, outputs cleared;
- ``solutions/NN_topic.ipynb``: everything, executed, outputs stored so that
  ``pytest --nbval`` re-checks them.

:func:`grade` runs a folder of student notebooks (one subfolder per student, or
one notebook per student) and totals, per student and notebook, the points of
their exercise checks (see :mod:`tpsep.exercises`) and their written questions,
which the instructor grades by hand.
"""

from __future__ import annotations

import json
import os
import re
import tempfile
import time
from pathlib import Path
from typing import NamedTuple

import jupytext
import nbformat

ROOT = Path(__file__).resolve().parent.parent
BEGIN, END = "### BEGIN SOLUTION", "### END SOLUTION"
CODE_STUB = ("# YOUR CODE HERE", "raise NotImplementedError")
ANSWER_STUB = "*Your answer here.*"
KERNELSPEC = {"display_name": "Python 3 (ipykernel)", "language": "python", "name": "python3"}


def course_sources(course_dir: Path | str = ROOT / "course", only: list[str] | None = None) -> list[Path]:
    """The notebook sources ``course/NN_*.py``, sorted, optionally only the numbers in ``only``."""
    sources = sorted(Path(course_dir).glob("[0-9][0-9]_*.py"))
    if only:
        sources = [s for s in sources if s.name[:2] in only]
    return sources


def strip_solutions(source: str, markdown: bool = False, where: str = "") -> str:
    """Replace every ``### BEGIN SOLUTION ... ### END SOLUTION`` block by a stub.

    In code the stub keeps the marker's indentation; a block at the top level of
    a cell is refused, because ``raise NotImplementedError`` there would stop the
    student's notebook: put the solution inside a function the next cell checks.
    """
    lines, out, inside = source.splitlines(), [], False
    for number, line in enumerate(lines, 1):
        stripped = line.strip()
        if stripped == BEGIN:
            if inside:
                raise ValueError(f"{where} line {number}: nested {BEGIN}")
            inside = True
            indent = line[: len(line) - len(line.lstrip())]
            if markdown:
                out.append(ANSWER_STUB)
            elif not indent:
                raise ValueError(f"{where} line {number}: a solution block at the top level of a cell "
                                 "would stop the student notebook; put it inside a function")
            else:
                out.extend(indent + stub for stub in CODE_STUB)
        elif stripped == END:
            if not inside:
                raise ValueError(f"{where} line {number}: {END} without {BEGIN}")
            inside = False
        elif not inside:
            out.append(line)
    if inside:
        raise ValueError(f"{where}: {BEGIN} without {END}")
    return "\n".join(out)


def _clean(notebook: nbformat.NotebookNode, stem: str) -> nbformat.NotebookNode:
    """Deterministic metadata and cell ids, so that a rebuild changes nothing."""
    notebook.metadata = nbformat.NotebookNode(
        kernelspec=KERNELSPEC, language_info={"name": "python"})
    for index, cell in enumerate(notebook.cells):
        cell.id = f"{stem[:2]}-{index:03d}"
        cell.metadata = nbformat.NotebookNode(
            {k: v for k, v in cell.metadata.items() if k == "tags"})
        if cell.cell_type == "code":
            cell.outputs, cell.execution_count = [], None
    notebook.nbformat, notebook.nbformat_minor = 4, 5
    return notebook


def make_notebooks(source: Path) -> tuple[nbformat.NotebookNode, nbformat.NotebookNode]:
    """Read one course source and return ``(student, solution)`` notebooks, unexecuted."""
    solution = _clean(jupytext.read(source, fmt="py:percent"), source.stem)
    student = nbformat.from_dict(json.loads(json.dumps(solution)))
    student.cells = [cell for cell in student.cells if "instructor" not in cell.metadata.get("tags", [])]
    for cell in student.cells:
        cell.source = strip_solutions(cell.source, cell.cell_type == "markdown", f"{source.name}")
    return student, solution


def execute(notebook: nbformat.NotebookNode, cwd: Path, timeout: int = 900) -> nbformat.NotebookNode:
    """Run every cell of ``notebook`` in a fresh kernel, in folder ``cwd``."""
    from nbclient import NotebookClient

    # progress bars would store run-dependent text (rates, times) that nbval then compares
    os.environ.setdefault("TQDM_DISABLE", "1")
    NotebookClient(notebook, timeout=timeout, kernel_name="python3",
                   resources={"metadata": {"path": str(cwd)}}).execute()
    # the widgets' saved state repeats every image and sound they showed; a re-run rebuilds it
    notebook.metadata.pop("widgets", None)
    for cell in notebook.cells:  # execution metadata holds timestamps: keep diffs quiet
        cell.metadata.pop("execution", None)
    return notebook


def write(notebook: nbformat.NotebookNode, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(notebook, str(path))


def build(only: list[str] | None = None, run_solutions: bool = True, root: Path = ROOT) -> list[dict]:
    """Write ``notebooks/`` and ``solutions/`` from ``course/``.

    Returns one record per notebook: its name and the seconds its solution took to run.
    """
    records = []
    for source in course_sources(root / "course", only):
        student, solution = make_notebooks(source)
        write(student, root / "notebooks" / f"{source.stem}.ipynb")
        seconds = None
        if run_solutions:
            start = time.perf_counter()
            execute(solution, root / "solutions")
            seconds = time.perf_counter() - start
        write(solution, root / "solutions" / f"{source.stem}.ipynb")
        records.append({"notebook": source.stem, "solution_seconds": seconds})
        print(f"built {source.stem}" + (f" (solution ran in {seconds:.0f} s)" if seconds is not None else ""))
    return records


def stale_notebooks(root: Path = ROOT) -> list[str]:
    """The generated notebooks that no longer match ``course/`` (missing ones included).

    Student notebooks must match exactly; solutions must have the same cells
    (their stored outputs are checked by nbval, not here).
    """
    def cells(notebook):
        return [(c.cell_type, c.source) for c in notebook.cells]

    stale = []
    for source in course_sources(root / "course"):
        student, solution = make_notebooks(source)
        for expected, folder in ((student, "notebooks"), (solution, "solutions")):
            path = root / folder / f"{source.stem}.ipynb"
            if not path.exists():
                stale.append(f"{folder}/{path.name} is missing")
                continue
            written = nbformat.read(str(path), as_version=4)
            if cells(written) != cells(expected):
                stale.append(f"{folder}/{path.name} differs from course/{source.name}")
            elif folder == "notebooks" and any(c.get("outputs") for c in written.cells):
                stale.append(f"{folder}/{path.name} has stored outputs (students get clean notebooks)")
    names = {s.stem for s in course_sources(root / "course")}
    for folder in ("notebooks", "solutions"):
        for path in sorted((root / folder).glob("*.ipynb")):
            if path.stem not in names:
                stale.append(f"{folder}/{path.name} has no source in course/")
    return stale


# A figure a run produced: a number with a unit of result (dB, %), or any number in a markdown table.
_NUMBER = r"[-−+]?\d+(?:[.,]\d+)?"
_FIGURE_WITH_UNIT = re.compile(rf"(?<![\w.])({_NUMBER})\s?(?:dB\b|%)")
_ANY_NUMBER = re.compile(rf"(?<![\w.])({_NUMBER})(?:[eE][-+]?\d+)?(?![\w])")
_CITATION = re.compile(r"\b(?:19|20)\d\d\b|et al\.")
_IGNORED_SPANS = re.compile(r"```.*?```|`[^`\n]*`|\$\$.*?\$\$|\$[^$\n]*\$|\]\([^)]*\)", re.DOTALL)


def _numbers(text: str) -> list[float]:
    return [float(m.group(1).replace("−", "-").replace(",", "."))
            for m in _ANY_NUMBER.finditer(text.replace("−", "-"))]


def _output_text(cell) -> str:
    parts = []
    for output in cell.get("outputs", []):
        if "text" in output:
            parts.append(output["text"])
        for kind in ("text/plain", "text/html", "text/markdown"):
            parts.append(output.get("data", {}).get(kind, ""))
    return re.sub(r"<[^>]+>", " ", "\n".join(parts))


def _prose_figures(markdown: str) -> list[str]:
    """The figures in a markdown cell that a run would have to print, as written there."""
    figures = []
    paragraphs = re.split(r"\n\s*\n", _IGNORED_SPANS.sub(" ", markdown))
    # a heading belongs to the paragraph under it, which may hold the citation
    for heading, paragraph in zip(paragraphs, paragraphs[1:]):
        if heading.lstrip().startswith("#") and len(heading.strip().splitlines()) == 1:
            paragraphs[paragraphs.index(paragraph)] = heading + "\n" + paragraph
    paragraphs = [p for p in paragraphs if not (p.lstrip().startswith("#") and len(p.strip().splitlines()) == 1)]
    for paragraph in paragraphs:
        if _CITATION.search(paragraph):  # a published figure, with its citation
            continue
        for line in paragraph.splitlines():
            if line.lstrip().startswith("|"):
                if set(line.replace(" ", "")) <= set("|-:"):
                    continue
                figures += [m.group(1) for m in _ANY_NUMBER.finditer(line)]
            else:
                figures += [m.group(1) for m in _FIGURE_WITH_UNIT.finditer(line)]
    return figures


def _is_printed(figure: str, printed: list[float]) -> bool:
    """``figure`` as written (``"4.1"``) matches a printed number to the precision shown."""
    value = abs(float(figure.replace("−", "-").replace(",", ".")))
    decimals = len(figure.replace(",", ".").split(".")[1]) if "." in figure.replace(",", ".") else 0
    tolerance = 0.5 * 10 ** -decimals + 1e-9
    # a share may be printed as a fraction (0.712) or a percentage (71.2)
    return any(abs(abs(p) - value) <= tolerance or abs(abs(p) * 100 - value) <= tolerance for p in printed)


def unprinted_figures(source: Path | str, solution: Path | str) -> list[str]:
    """Figures that the prose of ``source`` quotes but no cell of the notebook prints or sets.

    A number typed in a markdown cell goes stale silently when a run changes:
    nbval re-checks outputs, not prose. So every figure in the prose with a
    unit of result (dB, %), and every number in a markdown table, must appear,
    to the precision written, in a stored output of the executed ``solution``
    notebook, or in the code of the notebook (a setting such as ``target=-20``).
    Paragraphs with a citation (a year, "et al.") quote published figures and
    are exempt; so are ``code spans`` and ``$math$``.

    Returns:
        one line per unprinted figure, naming the notebook and the cell; empty when all is well.
    """
    source, solution = Path(source), Path(solution)
    if not solution.exists():
        return [f"{solution} is missing: run `tpsep build`"]
    executed = nbformat.read(str(solution), as_version=4)
    printed = []
    for cell in executed.cells:
        if cell.cell_type == "code":
            printed += _numbers(_output_text(cell)) + _numbers(cell.source)
    problems = []
    markdown_cells = [c for c in jupytext.read(source, fmt="py:percent").cells if c.cell_type == "markdown"]
    for index, cell in enumerate(markdown_cells, start=1):
        heading = next((line.strip("# ").strip() for line in cell.source.splitlines() if line.startswith("#")),
                       cell.source.strip().splitlines()[0][:50] if cell.source.strip() else "")
        for figure in _prose_figures(cell.source):
            if not _is_printed(figure, printed):
                problems.append(f"{source.name}, markdown cell {index} ({heading!r}): {figure!r} is printed "
                                f"by no cell; print it from a code cell and refer to it in the prose")
    return problems


def strip_colours(text: str) -> str:
    """``text`` without the terminal colour codes (ANSI escapes) that tracebacks carry."""
    import re
    return re.sub(r"\x1b\[[0-9;]*[A-Za-z]", "", text)


# ---- grading: tpsep grade FOLDER ----

# "**Question 2.** (3 points) Why ...": the number, then the points if not the default
QUESTION = re.compile(r"^\*\*Question (\d+)\.\*\*[ \t]*(?:\((\d+) points?\))?", re.MULTILINE)
DEFAULT_QUESTION_POINTS = 2
_HEADING = re.compile(r"^#{1,6}\s", re.MULTILINE)
_SOLUTION_MARKER = re.compile(rf"^[ \t]*(?:{re.escape(BEGIN)}|{re.escape(END)})[ \t]*$", re.MULTILINE)
_BUILD_CELL_ID = re.compile(r"^\d\d-\d{3}$")      # the ids _clean gives; a cell a student adds has another
_NUMBERED_NAME = re.compile(r"^(\d\d)_")           # 03_unet.ipynb -> 03
NOT_RUN = "not run"
TOTAL_COLUMNS = ["student", "notebook", "file", "checks_passed", "checks", "exercise_points", "exercise_max",
                 "questions_answered", "questions", "written_max", "written_points", "status"]
CHECK_COLUMNS = ["student", "notebook", "file", "exercise", "status", "points", "max_points", "message"]


class Grades(NamedTuple):
    totals: "pd.DataFrame"   # one row per (student, notebook): what an instructor opens
    checks: "pd.DataFrame"   # one row per (student, notebook, exercise): the detail behind the totals


def written_questions(notebook: nbformat.NotebookNode) -> list[dict]:
    """The written questions of a notebook, each with its points and whether it has an answer.

    A question is a markdown paragraph ``**Question N.** text`` (``**Question N.** (3 points) text``
    for other than 2 points). Its answer is what follows the question's paragraph in the same
    cell, up to the next heading or question, without the stub ``*Your answer here.*``; a
    markdown cell the student added right after the question's cell counts too. So a question
    is answered when the stub was replaced by text, or text was written under the stub.
    """
    questions = []
    cells = notebook.cells
    for index, cell in enumerate(cells):
        if cell.cell_type != "markdown":
            continue
        # a solution notebook keeps its markers: "### BEGIN SOLUTION" is no heading that ends the answer
        text = _SOLUTION_MARKER.sub("", cell.source)
        found = list(QUESTION.finditer(text))
        for position, match in enumerate(found):
            paragraph_end = text.find("\n\n", match.end())
            answer_start = len(text) if paragraph_end < 0 else paragraph_end
            next_question = found[position + 1].start() if position + 1 < len(found) else len(text)
            heading = _HEADING.search(text, answer_start, next_question)
            answer_end = heading.start() if heading else next_question
            answer = text[answer_start:answer_end].replace(ANSWER_STUB, "").strip()
            questions.append({"number": int(match.group(1)), "cell": index + 1,
                              "points": int(match.group(2) or DEFAULT_QUESTION_POINTS), "answered": bool(answer)})
        if found:
            # an answer typed in a new cell below the question's cell goes to its last question
            for added in cells[index + 1:]:
                if _BUILD_CELL_ID.match(str(added.get("id", ""))) or not added.get("id"):
                    break
                if added.cell_type == "markdown" and added.source.strip():
                    questions[-1]["answered"] = True
    return questions


def notebook_number(path: Path, notebook: nbformat.NotebookNode, checks: list[dict]) -> str | None:
    """Which course notebook a submission is (``"03"``): from the names of the checks it ran
    (``"03.unet_forward"``), else its file name (``03_unet.ipynb``), else the ids that
    :func:`tpsep build <build>` gave its cells (``"03-000"``; JupyterLab keeps them); None
    when nothing says."""
    for check in checks:
        prefix = check["exercise"].split(".", 1)[0]
        if re.fullmatch(r"\d\d", prefix):
            return prefix
    named = _NUMBERED_NAME.match(path.name)
    if named:
        return named.group(1)
    built = [str(cell.get("id", "")) for cell in notebook.cells if _BUILD_CELL_ID.match(str(cell.get("id", "")))]
    return built[0][:2] if built else None


def notebook_exercises(number: str) -> dict:
    """Every exercise registered for notebook ``number``: name -> :class:`tpsep.exercises.Exercise`.

    Imports ``tpsep.exercises.nbNN`` when it exists, so that a notebook which stopped
    before its checks still has all of them (and their points) to be graded against.
    """
    import importlib

    from tpsep.exercises import REGISTRY

    module = f"tpsep.exercises.nb{number}"
    try:
        importlib.import_module(module)
    except ModuleNotFoundError as error:
        if error.name != module:     # the module exists but one of its imports is missing: a real bug
            raise
    return {name: exercise for name, exercise in REGISTRY.items() if name.split(".", 1)[0] == number}


def student_submissions(folder: Path | str) -> list[tuple[str, Path]]:
    """``(student, notebook path)`` pairs: one per notebook of each student subfolder when
    ``folder`` has subfolders holding notebooks, else one per ``.ipynb`` named by its stem."""
    folder = Path(folder)
    if not folder.is_dir():
        what = "is not a folder" if folder.exists() else "does not exist"
        raise NotADirectoryError(f"expected a folder of submissions (a subfolder or a notebook per student); "
                                 f"{folder} {what}")
    loose = sorted(folder.glob("*.ipynb"))
    # hidden folders (.ipynb_checkpoints) and folders without notebooks (runs/ that notebooks write)
    # are no students
    students = sorted(d for d in folder.iterdir()
                      if d.is_dir() and not d.name.startswith(".") and any(d.glob("*.ipynb")))
    if loose and students:
        raise ValueError(f"{folder} holds both notebooks ({loose[0].name}, ...) and student folders "
                         f"({students[0].name}/, ...); expected one of the two: move the loose notebooks "
                         "into a folder per student, or grade the folders one by one")
    if students:
        return [(student.name, path) for student in students for path in sorted(student.glob("*.ipynb"))]
    if not loose:
        raise FileNotFoundError(f"no .ipynb files in {folder}, and no subfolder (one per student) holding any")
    return [(path.stem, path) for path in loose]


def _run_submission(path: Path, timeout: int) -> tuple[nbformat.NotebookNode, list[dict], str]:
    """Run one notebook in a fresh kernel: the executed notebook, its check records, and ""
    or why it stopped early ("crashed at cell K: ...", K counting every cell from 1)."""
    from nbclient.exceptions import CellExecutionError, CellTimeoutError, DeadKernelError

    from tpsep.exercises import RESULTS_ENV, read_results

    notebook = nbformat.read(str(path), as_version=4)
    with tempfile.TemporaryDirectory() as tmp:
        results_path = Path(tmp) / "results.jsonl"
        previous = os.environ.get(RESULTS_ENV)
        os.environ[RESULTS_ENV] = str(results_path)
        stopped = ""
        try:
            execute(notebook, path.parent, timeout)
        except (CellExecutionError, CellTimeoutError, DeadKernelError) as error:
            # the kernel numbers a cell when it starts running it: the last one numbered is where it stopped
            started = [i for i, c in enumerate(notebook.cells, 1) if c.cell_type == "code" and c.get("execution_count")]
            where = f"cell {started[-1]}" if started else "its start"
            if isinstance(error, CellTimeoutError):
                stopped = f"timed out at {where} (over {timeout} s)"
            elif isinstance(error, DeadKernelError):
                stopped = f"kernel died at {where}"
            else:
                last_line = strip_colours(str(error)).strip().splitlines()[-1]
                stopped = f"crashed at {where}: {last_line[:200]}"
        finally:
            if previous is None:
                os.environ.pop(RESULTS_ENV, None)
            else:
                os.environ[RESULTS_ENV] = previous
        return notebook, read_results(results_path), stopped


def _check_rows(number: str | None, records: list[dict]) -> list[dict]:
    """One row per exercise of the notebook, run or not, with the points it earned."""
    from tpsep.exercises import Exercise

    last_record = {record["exercise"]: record for record in records}   # a check run twice: its last word
    registered = notebook_exercises(number) if number else {}
    rows = []
    for name, exercise in registered.items():
        record = last_record.get(name, {"status": NOT_RUN, "message": ""})
        rows.append({"exercise": name, "status": record["status"], "max_points": exercise.points,
                     "message": strip_colours(record["message"])})
    default_points = Exercise.__dataclass_fields__["points"].default
    for name, record in last_record.items():
        if name not in registered:   # registered inside the notebook only: its points are unknown here
            rows.append({"exercise": name, "status": record["status"], "max_points": default_points,
                         "message": strip_colours(record["message"]) + f" (not registered in tpsep.exercises: "
                                                                       f"counted at {default_points} points)"})
    for row in rows:
        row["points"] = row["max_points"] if row["status"] == "passed" else 0
    return rows


def grade(folder: Path | str, out_csv: Path | str | None = None, timeout: int = 900,
          checks_csv: Path | str | None = None) -> Grades:
    """Run every student notebook in ``folder`` and total its exercise points and written questions.

    Students: each subfolder of ``folder`` that holds notebooks is one student; without such
    subfolders, each ``.ipynb`` is one student's submission, named by its file stem. Each
    notebook runs in a fresh kernel, in its own folder; a cell that raises stops that notebook
    only, and grading goes on.

    A passed check earns its exercise's ``points`` (:func:`tpsep.exercises.register`), any
    other status 0. The maximum counts every exercise registered for the notebook, so an
    exercise whose check never ran (the notebook crashed before it) is ``"not run"`` and
    earns 0. Written questions are counted, with their points, for grading by hand.

    Returns:
        :class:`Grades`: ``totals``, one row per (student, notebook), with ``written_points``
        left empty for the instructor (written to ``out_csv`` if given); and ``checks``, one
        row per (student, notebook, exercise) with its status (passed / wrong / error / todo /
        not run) and points (written to ``checks_csv`` if given).
    """
    import pandas as pd

    totals, checks = [], []
    for student, path in student_submissions(folder):
        notebook, records, stopped = _run_submission(path, timeout)
        number = notebook_number(path, notebook, records)
        rows = [{"student": student, "notebook": number or "?", "file": path.name, **row}
                for row in _check_rows(number, records)]
        checks += rows
        questions = written_questions(notebook)
        status = stopped or "ok"
        if number is None:
            status += ("; which notebook is this? No check ran and its name does not start with NN_: "
                       "rename it NN_topic.ipynb")
        totals.append({
            "student": student, "notebook": number or "?", "file": path.name,
            "checks_passed": sum(row["status"] == "passed" for row in rows), "checks": len(rows),
            "exercise_points": sum(row["points"] for row in rows),
            "exercise_max": sum(row["max_points"] for row in rows),
            "questions_answered": sum(q["answered"] for q in questions), "questions": len(questions),
            "written_max": sum(q["points"] for q in questions), "written_points": "", "status": status})
    grades = Grades(pd.DataFrame(totals, columns=TOTAL_COLUMNS), pd.DataFrame(checks, columns=CHECK_COLUMNS))
    if out_csv:
        grades.totals.to_csv(out_csv, index=False)
    if checks_csv:
        grades.checks.to_csv(checks_csv, index=False)
    return grades


def add_build_command(subparsers) -> None:
    parser = subparsers.add_parser(
        "build", help="write notebooks/ and solutions/ from course/",
        description="Generate the student notebooks (solutions stripped, outputs cleared) and the "
                    "instructor notebooks (executed, outputs stored) from the sources in course/. "
                    "Run it after every edit of course/; the tests fail while they are out of date.")
    parser.add_argument("--only", nargs="*", metavar="NN", help="only these notebook numbers, e.g. --only 01 02")
    parser.add_argument("--no-execute", action="store_true", help="do not run the solutions (their outputs stay empty)")
    parser.add_argument("--check", action="store_true", help="build nothing; list the out-of-date notebooks and fail if any")
    parser.add_argument("--json", metavar="PATH", help="write the figures of the last line to PATH")
    parser.set_defaults(func=_build_main)


def _build_main(args) -> int:
    if args.check:
        stale = stale_notebooks()
        for line in stale:
            print(line)
        print(f"build check: stale={len(stale)}")
        return 1 if stale else 0
    records = build(only=args.only, run_solutions=not args.no_execute)
    total = sum(r["solution_seconds"] or 0 for r in records)
    if args.json:
        Path(args.json).write_text(json.dumps({"notebooks": records, "seconds": total}, indent=2))
    print(f"build: notebooks={len(records)} solution_seconds={total:.0f}")
    return 0


GRADE_HELP = """\
Run every student notebook in FOLDER in a fresh kernel and total, per student
and notebook, the points of its exercise checks and its written questions.

FOLDER holds either one subfolder per student (the notebooks inside are theirs)
or one notebook per student (the file name, without .ipynb, names the student).
A passed check earns its exercise's points; wrong, error, todo, or "not run"
(the notebook stopped before it) earn 0. The maximum counts every exercise of
the notebook, run or not. Written questions (**Question N.**) are counted,
answered or not, with their points, and left to grade by hand: the CSV has an
empty written_points column for them. "crashed at cell K" counts cells from the
top, from 1.

examples:
  tpsep grade submissions/ --csv grades.csv
  tpsep grade submissions/ --csv grades.csv --checks checks.csv --timeout 1800
"""


def add_grade_command(subparsers) -> None:
    import argparse

    parser = subparsers.add_parser(
        "grade", help="run students' notebooks and total their exercise points and written questions",
        description=GRADE_HELP, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("folder", help="a folder with one subfolder per student, or one notebook per student")
    parser.add_argument("--csv", metavar="PATH",
                        help="write one row per student and notebook (the totals, an empty written_points "
                             "column to fill in, and the status) to PATH")
    parser.add_argument("--checks", metavar="PATH",
                        help="write one row per student, notebook and exercise check (status, points) to PATH")
    parser.add_argument("--timeout", type=int, default=900, metavar="SECONDS",
                        help="the longest one cell may run before the notebook counts as stopped (default: 900)")
    parser.add_argument("--json", metavar="PATH", help="write the figures of the last line to PATH")
    parser.set_defaults(func=_grade_main)


def _aligned(rows: list[list[str]]) -> str:
    """Rows of text as left-aligned columns (a crash message reads better left-aligned)."""
    widths = [max(len(row[column]) for row in rows) for column in range(len(rows[0]))]
    return "\n".join("  ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip() for row in rows)


def _grade_main(args) -> int:
    totals = grade(args.folder, args.csv, timeout=args.timeout, checks_csv=args.checks).totals
    header = ["student", "notebook", "checks passed", "exercise points", "questions answered",
              "written points (by hand)", "status"]
    print(_aligned([header] + [
        [row.student, row.notebook, f"{row.checks_passed}/{row.checks}",
         f"{row.exercise_points}/{row.exercise_max}", f"{row.questions_answered}/{row.questions}",
         f"?/{row.written_max}", row.status] for row in totals.itertuples()]))
    figures = {"students": int(totals.student.nunique()), "notebooks": int(len(totals)),
               "checks": int(totals.checks.sum()), "passed": int(totals.checks_passed.sum()),
               "stopped": int((~totals.status.str.startswith("ok")).sum())}
    if args.json:
        Path(args.json).write_text(json.dumps(figures, indent=2))
    print("grade: " + " ".join(f"{k}={v}" for k, v in figures.items()))
    return 0
