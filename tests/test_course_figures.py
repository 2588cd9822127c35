"""Numbers that cannot go stale: a figure quoted in the course's prose is printed by the notebook.

nbval re-checks what a cell prints, never what the markdown says. A run figure
typed into the prose (an SDR, a share, a table of results) goes stale the day
the run changes, and nothing notices. `tpsep.course.unprinted_figures` finds them.
"""

import nbformat
import pytest

from tpsep import course


def write_notebook(tmp_path, markdown: str, printed: str, code: str = "print(result)"):
    """A course source with one markdown cell and one code cell, and its 'executed' solution."""
    source = tmp_path / "99_figures.py"
    commented = "\n".join("# " + line if line else "#" for line in markdown.splitlines())
    source.write_text(f"# %% [markdown]\n{commented}\n\n# %%\n{code}\n", encoding="utf-8")
    solution = nbformat.v4.new_notebook()
    solution.cells = [nbformat.v4.new_markdown_cell(markdown), nbformat.v4.new_code_cell(code)]
    solution.cells[1].outputs = [nbformat.v4.new_output("stream", name="stdout", text=printed)]
    path = tmp_path / "99_figures.ipynb"
    nbformat.write(solution, str(path))
    return source, path


@pytest.mark.parametrize("source", course.course_sources(), ids=lambda p: p.stem)
def test_every_figure_in_the_prose_is_printed_by_the_notebook(source):
    problems = course.unprinted_figures(source, course.ROOT / "solutions" / f"{source.stem}.ipynb")
    assert problems == [], "\n".join(problems)


def test_typed_run_figures_are_caught(tmp_path):
    # the shape of notebook 05's prose when issue 15 was filed: an SI-SDRi, a share, a table
    markdown = ("This run reaches 4.1 dB of SI-SDRi, 71 % of the IRM's improvement.\n\n"
                "| pair | SI-SDRi |\n|---|---|\n| FF | 1.3 |\n| FM | 13.2 |")
    source, solution = write_notebook(tmp_path, markdown, printed="SI-SDRi 3.87 dB\n")
    problems = course.unprinted_figures(source, solution)
    assert [p.split(": ")[1].split(" ")[0] for p in problems] == ["'4.1'", "'71'", "'1.3'", "'13.2'"]
    assert "99_figures.py, markdown cell 1" in problems[0]


def test_printed_figures_pass_at_the_precision_written(tmp_path):
    markdown = "The model gains 4.1 dB, 71 % of the oracle's improvement, and loses −1.2 dB on FF."
    printed = "SI-SDRi 4.14 dB\nshare of the IRM 0.712\nFF -1.24\n"
    assert course.unprinted_figures(*write_notebook(tmp_path, markdown, printed)) == []
    # 4.16 rounds to 4.2, not 4.1: the prose is stale
    stale = course.unprinted_figures(*write_notebook(tmp_path, markdown, printed.replace("4.14", "4.16")))
    assert len(stale) == 1 and "'4.1'" in stale[0]


def test_published_figures_settings_code_and_math_are_exempt(tmp_path):
    markdown = ("## Why not 15.3 dB?\n\n"
                "The paper reports 15.3 dB against 12.2 dB for the IRM (Luo & Mesgarani 2019).\n\n"
                "The check asks for `20 dB` on one batch, and $x = 10 \\log_{10} 3.5$ dB.\n\n"
                "Each threshold of -6 dB is a setting.")
    source, solution = write_notebook(tmp_path, markdown, printed="done\n", code="threshold_db = -6")
    assert course.unprinted_figures(source, solution) == []


def test_a_missing_solution_is_reported(tmp_path):
    source, solution = write_notebook(tmp_path, "4.1 dB", printed="")
    solution.unlink()
    assert course.unprinted_figures(source, solution) == [f"{solution} is missing: run `tpsep build`"]
