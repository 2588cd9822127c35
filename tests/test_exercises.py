import numpy as np
import pytest

from tpsep import exercises
from tpsep.exercises import CheckFailed, check, compare, register


def reference_square(x):
    return x**2


register("99.square", reference=reference_square,
         make_inputs=lambda rng: ((rng.standard_normal(int(rng.integers(3, 9))),), {}),
         hint="multiply x by itself")


def test_a_correct_attempt_passes_and_is_returned(capsys):
    def attempt(x):
        return x * x
    assert check("99.square", attempt) is attempt
    assert capsys.readouterr().out.startswith("✓ 99.square passed")
    assert exercises.RESULTS[-1]["status"] == "passed"


def test_an_unfinished_attempt_gives_the_reference_and_says_so(capsys):
    def attempt(x):
        raise NotImplementedError
    assert check("99.square", attempt) is reference_square
    assert "not done yet" in capsys.readouterr().out
    assert exercises.RESULTS[-1]["status"] == "todo"


def test_a_hard_coded_answer_fails_on_fresh_inputs(capsys):
    frozen = reference_square(np.arange(5.0))
    assert check("99.square", lambda x: frozen) is reference_square
    out = capsys.readouterr().out
    assert out.startswith("✗ 99.square") and "hint: multiply x by itself" in out


def test_a_crashing_attempt_is_reported_not_raised(capsys):
    check("99.square", lambda x: x @ np.ones((2, 2)))
    assert "your code raised ValueError" in capsys.readouterr().out
    assert exercises.RESULTS[-1]["status"] == "error"


def test_compare_names_the_first_difference():
    with pytest.raises(CheckFailed, match=r"wrong shape, expected \(3,\), got \(4,\)"):
        compare(np.zeros(4), np.zeros(3))
    with pytest.raises(CheckFailed, match=r"wrong value at index \(1, 2\)"):
        got = np.zeros((2, 3)); got[1, 2] = 1
        compare(got, np.zeros((2, 3)))
    with pytest.raises(CheckFailed, match="expected complex"):
        compare(np.zeros(3), np.zeros(3, dtype=complex))
    with pytest.raises(CheckFailed, match="forget to return"):
        compare(None, np.zeros(3))
    compare((np.ones(2), {"a": 1.0}), (np.ones(2) + 1e-9, {"a": 1.0}))


def test_results_are_written_for_the_grader(tmp_path, monkeypatch):
    path = tmp_path / "results.jsonl"
    monkeypatch.setenv(exercises.RESULTS_ENV, str(path))
    check("99.square", lambda x: x * x)
    check("99.square", lambda x: x)
    assert [r["status"] for r in exercises.read_results(path)] == ["passed", "wrong"]


def test_unknown_exercises_and_bad_registrations_are_errors():
    with pytest.raises(KeyError):
        check("01.no_such_exercise", print)
    with pytest.raises(ValueError, match="exactly one"):
        register("99.bad", reference=print)


def test_every_registered_notebook_exercise_passes_with_its_reference():
    import importlib
    import pkgutil

    import tpsep.exercises as package

    for module in pkgutil.iter_modules(package.__path__):
        if module.name.startswith("nb"):
            importlib.import_module(f"tpsep.exercises.{module.name}")
    names = [name for name in exercises.REGISTRY if not name.startswith("99.")]
    assert names, "no notebook exercise registered"
    for name in names:
        exercise = exercises.REGISTRY[name]
        assert check(name, exercise.reference, seed=0) is exercise.reference, name
