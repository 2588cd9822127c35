"""The front door: the Makefile a new user runs first, and the commands the README shows."""

import re
import shlex
import shutil
import subprocess
from pathlib import Path

import pytest

from tpsep.cli import make_parser

ROOT = Path(__file__).resolve().parent.parent
needs_make = pytest.mark.skipif(shutil.which("make") is None, reason="make is not installed")


def dry_run(*targets: str) -> str:
    """What ``make`` would run for ``targets`` (-n: run nothing; -B: as if nothing were built yet)."""
    done = subprocess.run(["make", "-n", "-B", *targets], cwd=ROOT, capture_output=True, text=True, check=True)
    return done.stdout


def torch_install_line(commands: str) -> str:
    return next(line for line in commands.splitlines() if "pip install" in line and "torch==" in line)


@needs_make
def test_make_installs_torch_from_pypi_unless_given_an_index():
    assert "--index-url" not in torch_install_line(dry_run(".venv/.installed"))
    cpu = "https://download.pytorch.org/whl/cpu"
    line = torch_install_line(dry_run(".venv/.installed", f"TORCH_INDEX={cpu}"))
    assert f"--index-url {cpu}" in line
    # the index is for torch alone: the course's own packages still come from PyPI
    tpsep_line = next(line for line in dry_run(".venv/.installed", f"TORCH_INDEX={cpu}").splitlines()
                      if '-e ".[test]"' in line)
    assert "--index-url" not in tpsep_line


@needs_make
def test_make_lab_says_it_keeps_the_terminal_before_starting_jupyter():
    commands = dry_run("lab").splitlines()
    jupyter = next(i for i, line in enumerate(commands) if "jupyter lab" in line)
    assert "second terminal" in commands[jupyter - 1] and "make test" in commands[jupyter - 1]


def readme_commands() -> list[str]:
    """Every ``tpsep ...`` line inside the README's code blocks."""
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    blocks = re.findall(r"```(?:bash)?\n(.*?)```", readme, re.DOTALL)
    return [line.strip() for block in blocks for line in block.splitlines() if line.strip().startswith("tpsep ")]


def test_the_readme_walk_through_commands_are_valid_tpsep_commands():
    commands = readme_commands()
    shown = {shlex.split(command)[1] for command in commands}
    assert {"train", "separate", "evaluate"} <= shown, commands
    for command in commands:
        # parse only: a wrong flag or a missing argument makes argparse exit
        args = make_parser().parse_args(shlex.split(command, comments=True)[1:])
        assert args.func is not None, command
