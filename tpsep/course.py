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

:func:`grade` runs a folder of student notebooks and collects the results of
their exercise checks (see :mod:`tpsep.exercises`).
"""

from __future__ import annotations

import json
import os
import re
import tempfile
import time
from pathlib import Path

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


def grade(folder: Path | str, out_csv: Path | str | None = None, timeout: int = 900):
    """Run every student notebook in ``folder`` and collect its exercise checks.

    Each notebook runs in a fresh kernel; a cell that raises is recorded, and
    grading goes on with the next notebook.

    Returns:
        a pandas DataFrame, one row per (notebook, exercise) with its status
        (passed / wrong / error / todo) and message; written to ``out_csv`` if given.
    """
    import pandas as pd
    from nbclient.exceptions import CellExecutionError

    rows = []
    paths = sorted(Path(folder).glob("*.ipynb"))
    if not paths:
        raise FileNotFoundError(f"no .ipynb files in {folder}")
    for path in paths:
        notebook = nbformat.read(str(path), as_version=4)
        with tempfile.TemporaryDirectory() as tmp:
            results_path = Path(tmp) / "results.jsonl"
            previous = os.environ.get("TPSEP_RESULTS")
            os.environ["TPSEP_RESULTS"] = str(results_path)
            crashed = ""
            try:
                execute(notebook, path.parent, timeout)
            except CellExecutionError as error:
                crashed = strip_colours(str(error)).strip().splitlines()[-1][:200]
            finally:
                if previous is None:
                    os.environ.pop("TPSEP_RESULTS")
                else:
                    os.environ["TPSEP_RESULTS"] = previous
            from tpsep.exercises import read_results
            results = read_results(results_path)
        for result in results:
            rows.append({"notebook": path.name, "exercise": result["exercise"],
                         "status": result["status"], "message": strip_colours(result["message"])})
        if crashed:
            rows.append({"notebook": path.name, "exercise": "(notebook)", "status": "crashed",
                         "message": crashed})
    table = pd.DataFrame(rows, columns=["notebook", "exercise", "status", "message"])
    if out_csv:
        table.to_csv(out_csv, index=False)
    return table


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


def add_grade_command(subparsers) -> None:
    parser = subparsers.add_parser(
        "grade", help="run a folder of student notebooks and tabulate their exercise checks",
        description="Execute every .ipynb in FOLDER in a fresh kernel and collect what each "
                    "exercise check said (passed, wrong, error, todo). Prints a table per "
                    "notebook and writes one row per check to --csv.")
    parser.add_argument("folder", help="folder of student notebooks")
    parser.add_argument("--csv", metavar="PATH", help="write one row per (notebook, exercise) to PATH")
    parser.add_argument("--json", metavar="PATH", help="write the summary figures to PATH")
    parser.set_defaults(func=_grade_main)


def _grade_main(args) -> int:
    table = grade(args.folder, args.csv)
    summary = (table.assign(passed=table.status.eq("passed"))
               .groupby("notebook").agg(passed=("passed", "sum"), checks=("status", "size")))
    print(summary.to_string())
    figures = {"notebooks": int(summary.shape[0]), "checks": int(len(table)),
               "passed": int(table.status.eq("passed").sum())}
    if args.json:
        Path(args.json).write_text(json.dumps(figures, indent=2))
    print("grade: " + " ".join(f"{k}={v}" for k, v in figures.items()))
    return 0
