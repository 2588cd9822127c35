"""Exercises and their checks, as the notebooks use them.

A notebook defines the student's attempt, then rebinds the name through
:func:`check`::

    stft = check("01.stft", stft)

``check`` runs the attempt on fresh random inputs, compares it with tpsep's
reference implementation, prints one line, records the result for grading,
and returns what the rest of the notebook should use: the student's object
when it passed, the reference otherwise. So an unfinished exercise never stops
a notebook, and a hard-coded answer cannot pass (the inputs change every trial).

The exercises of notebook ``NN`` are registered in ``tpsep/exercises/nbNN.py``.
"""

from __future__ import annotations

import importlib
import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np

RESULTS_ENV = "TPSEP_RESULTS"  # the grader points this at a JSON-lines file


class CheckFailed(AssertionError):
    """Raised by an exercise test with a message the student can act on."""


class ReferenceFailed(RuntimeError):
    """tpsep's own reference failed on the check's inputs: a bug in the course, not the student's."""


@dataclass
class Exercise:
    name: str
    reference: Any
    make_inputs: Callable[[np.random.Generator], tuple] | None = None
    test: Callable[[Any, Any, np.random.Generator], None] | None = None
    hint: str = ""
    atol: float = 1e-5
    rtol: float = 1e-4
    trials: int = 3
    points: int = 2


REGISTRY: dict[str, Exercise] = {}
RESULTS: list[dict] = []  # every check run in this process, in order


def register(name: str, reference: Any, make_inputs=None, test=None, hint: str = "",
             atol: float = 1e-5, rtol: float = 1e-4, trials: int = 3, points: int = 2) -> Exercise:
    """Declare an exercise.

    Args:
        name: ``"NN.short_name"``; ``NN`` is the notebook number, which tells
            :func:`check` which ``tpsep.exercises.nbNN`` module to import.
        reference: tpsep's implementation (a function or a class).
        make_inputs: ``rng -> (args, kwargs)``, fresh inputs for one trial
            (for functions; outputs are compared with :func:`compare`).
        test: ``(student, reference, rng) -> None``, raising :class:`CheckFailed`;
            for classes or anything :func:`compare` can't judge.
        hint: one sentence shown when the attempt is wrong.
        points: what a passed check is worth in ``tpsep grade``'s totals
            (2 for a usual exercise; 3 or 4 for one that carries the notebook).
    """
    if (make_inputs is None) == (test is None):
        raise ValueError(f"exercise {name!r}: give exactly one of make_inputs= or test=")
    exercise = Exercise(name, reference, make_inputs, test, hint, atol, rtol, trials, points)
    REGISTRY[name] = exercise
    return exercise


def get(name: str) -> Exercise:
    """The registered exercise ``name``, importing its notebook's module on first use."""
    if name not in REGISTRY:
        notebook = name.split(".", 1)[0]
        try:
            importlib.import_module(f"tpsep.exercises.nb{notebook}")
        except ModuleNotFoundError as error:
            raise KeyError(f"no exercise module tpsep.exercises.nb{notebook} for {name!r}") from error
    if name not in REGISTRY:
        raise KeyError(f"unknown exercise {name!r}; known: {sorted(REGISTRY)}")
    return REGISTRY[name]


def _to_numpy(value):
    if hasattr(value, "detach"):  # torch tensors, without importing torch here
        return value.detach().cpu().numpy()
    return value


def compare(got, expected, atol: float = 1e-5, rtol: float = 1e-4, where: str = "output") -> None:
    """Compare an attempt's output with the reference's, recursively.

    Raises :class:`CheckFailed` naming the first difference: the type, the
    shape, the dtype kind (real/complex/integer), or the first wrong value and
    its index.
    """
    if isinstance(expected, (tuple, list)):
        if not isinstance(got, (tuple, list)) or len(got) != len(expected):
            raise CheckFailed(f"{where}: expected a sequence of {len(expected)} items, got {type(got).__name__}"
                              + (f" of {len(got)}" if isinstance(got, (tuple, list)) else ""))
        for i, (g, e) in enumerate(zip(got, expected)):
            compare(g, e, atol, rtol, f"{where}[{i}]")
        return
    if isinstance(expected, dict):
        if not isinstance(got, dict) or set(got) != set(expected):
            raise CheckFailed(f"{where}: expected a dict with keys {sorted(expected)}, got {got!r:.80}")
        for key in expected:
            compare(got[key], expected[key], atol, rtol, f"{where}[{key!r}]")
        return
    if got is None:
        raise CheckFailed(f"{where}: got None; did you forget to return the result?")
    got, expected = _to_numpy(got), _to_numpy(expected)
    got_array, expected_array = np.asarray(got), np.asarray(expected)
    if got_array.shape != expected_array.shape:
        raise CheckFailed(f"{where}: wrong shape, expected {expected_array.shape}, got {got_array.shape}")
    if np.iscomplexobj(expected_array) != np.iscomplexobj(got_array):
        kind = "complex" if np.iscomplexobj(expected_array) else "real"
        raise CheckFailed(f"{where}: expected {kind} values, got dtype {got_array.dtype}")
    if expected_array.dtype == bool or np.issubdtype(expected_array.dtype, np.integer):
        wrong = got_array != expected_array
    else:
        if not np.issubdtype(got_array.dtype, np.number) and got_array.dtype != bool:
            raise CheckFailed(f"{where}: expected numbers, got dtype {got_array.dtype}")
        wrong = ~np.isclose(got_array, expected_array, atol=atol, rtol=rtol, equal_nan=False)
    if wrong.any():
        index = tuple(int(i) for i in np.argwhere(wrong)[0]) if wrong.ndim else ()
        g, e = got_array[index], expected_array[index]
        raise CheckFailed(f"{where}: wrong value at index {index}: got {g:.6g}, expected {e:.6g} "
                          f"({int(wrong.sum())} of {wrong.size} values differ)")


def _run(exercise: Exercise, attempt: Any, seed: int) -> None:
    rng = np.random.default_rng(seed)
    for _ in range(exercise.trials):
        if exercise.test is not None:
            exercise.test(attempt, exercise.reference, rng)
            continue
        args, kwargs = exercise.make_inputs(rng)
        try:
            expected = exercise.reference(*args, **kwargs)
        except Exception as error:  # not the student's fault: say so loudly
            raise ReferenceFailed(f"tpsep's reference for {exercise.name} failed; this is a bug in "
                               f"the course, please report it") from error
        got = attempt(*args, **kwargs)
        compare(got, expected, exercise.atol, exercise.rtol)


def _record(name: str, status: str, message: str) -> None:
    entry = {"exercise": name, "status": status, "message": message, "time": time.time()}
    RESULTS.append(entry)
    path = os.environ.get(RESULTS_ENV)
    if path:
        with open(path, "a", encoding="utf-8") as file:
            file.write(json.dumps(entry) + "\n")


def check(name: str, attempt: Any, seed: int | None = None) -> Any:
    """Check a student's attempt at exercise ``name`` and return what to use next.

    Prints exactly one line: ``✓`` passed, ``…`` not done yet, or ``✗`` with
    what is wrong and a hint. Never raises for a wrong or unfinished attempt.

    Returns:
        the attempt if it passed, tpsep's reference otherwise.
    """
    exercise = get(name)
    seed = int.from_bytes(os.urandom(4), "little") if seed is None else seed
    try:
        _run(exercise, attempt, seed)
    except ReferenceFailed:
        raise
    except NotImplementedError:
        status, message = "todo", f"… {name}: not done yet; the notebook continues with tpsep's reference."
    except CheckFailed as failure:
        status = "wrong"
        message = f"✗ {name}: {failure}" + (f"\n  hint: {exercise.hint}" if exercise.hint else "")
        message += "\n  The notebook continues with tpsep's reference."
    except Exception as error:  # a crash in the attempt is the student's to see, not a notebook stopper
        status = "error"
        message = (f"✗ {name}: your code raised {type(error).__name__}: {error}"
                   + (f"\n  hint: {exercise.hint}" if exercise.hint else "")
                   + "\n  The notebook continues with tpsep's reference.")
    else:
        status = "passed"
        message = f"✓ {name} passed ({exercise.trials} random trials)."
    _record(name, status, message)
    print(message)
    return attempt if status == "passed" else exercise.reference


def reset_results() -> None:
    """Forget the checks recorded in this process (tests use it)."""
    RESULTS.clear()


def read_results(path: str | Path) -> list[dict]:
    """The check records written to ``path`` while a notebook ran with ``TPSEP_RESULTS=path``."""
    path = Path(path)
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
