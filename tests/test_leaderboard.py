"""Tests of ``tpsep leaderboard`` and :func:`tpsep.evaluation.leaderboard`: every separator on one
split with one metric, the published figures kept apart, and clear errors on bad inputs.

Kept small (the machine is shared): speech on 6 mixtures with a tiny untrained Conv-TasNet,
music on 2 tracks with the oracles only (museval is slow)."""

import json
from dataclasses import asdict

import pandas as pd
import pytest

from tpsep import evaluation
from tpsep.checkpoints import save_checkpoint
from tpsep.cli import main
from tpsep.recipes import MODELS

SPEECH_TRACKS = 6
TINY_CONVTASNET = dict(N=8, L=16, B=8, H=8, Sc=8, X=2, R=1)  # seconds to build, nothing to learn


def tiny_checkpoint(path, dataset: str):
    """A checkpoint as ``tpsep train convtasnet`` writes it (model name, config, dataset, state),
    of an untrained tiny Conv-TasNet: the leaderboard reads nothing else."""
    entry = MODELS["convtasnet"]
    config = entry.config(**TINY_CONVTASNET)
    separator = entry.separator(config, verbose=False)
    extra = {"model_name": "convtasnet", "model_config": asdict(config), "dataset": dataset}
    save_checkpoint(path, separator, extra=extra, state={"step": 2, "history": {"time": [6.0]}})
    return path


@pytest.fixture(scope="module")
def speech_run(tmp_path_factory):
    """``tpsep leaderboard speech`` on 6 mixtures, with a checkpoint, writing CSV, JSON and a plot."""
    folder = tmp_path_factory.mktemp("leaderboard")
    checkpoint = tiny_checkpoint(folder / "tiny_run" / "best.pt", "speech")
    paths = {kind: folder / f"board.{kind}" for kind in ("csv", "json", "png")}
    status = main(["leaderboard", "speech", "--tracks", str(SPEECH_TRACKS), "--no-references",
                   "--checkpoint", str(checkpoint), "--csv", str(paths["csv"]), "--json", str(paths["json"]),
                   "--plot", str(paths["png"])])
    return status, paths


def test_speech_leaderboard_has_one_row_per_method_of_each_kind(speech_run, capsys):
    status, paths = speech_run
    assert status == 0
    table = pd.read_csv(paths["csv"])
    assert sorted(table["method"]) == sorted(["oracle IBM", "oracle IRM", "oracle IRM2", "oracle Wiener-like",
                                              "mixture", "convtasnet (tiny_run/best.pt)"])
    kinds = dict(zip(table["method"], table["kind"]))
    assert kinds["mixture"] == "mixture" and kinds["convtasnet (tiny_run/best.pt)"] == "checkpoint"
    assert {kinds[m] for m in table["method"] if m.startswith("oracle")} == {"oracle"}
    # the rows come grouped by kind: oracles, the mixture, then the checkpoints
    assert list(table["kind"]) == sorted(table["kind"], key=evaluation.LEADERBOARD_KINDS.index)
    for column in ("SI-SDRi mean", "SI-SDRi median", "SI-SDRi FF", "SI-SDRi FM", "SI-SDRi MM"):
        assert column in table.columns
    scores = table.set_index("method")["SI-SDRi mean"]
    assert scores["mixture"] == pytest.approx(0.0, abs=1e-6)  # the mixture's improvement on itself
    assert scores["oracle IRM"] > scores["mixture"] + 3
    checkpoint_row = table.set_index("method").loc["convtasnet (tiny_run/best.pt)"]
    assert checkpoint_row["steps"] == 2 and checkpoint_row["minutes"] == pytest.approx(0.1)
    assert checkpoint_row["parameters (M)"] > 0


def test_speech_leaderboard_keeps_published_figures_apart_with_citations(speech_run):
    _, paths = speech_run
    results = json.loads(paths["json"].read_text())
    assert results["task"] == "speech" and results["tracks"] == SPEECH_TRACKS
    assert "SI-SDRi" in results["metric"]
    assert len(results["measured"]) == 6
    measured_names = {row["method"] for row in results["measured"]}
    assert results["published"], "no published figure for speech"
    for row in results["published"]:
        assert row["citation"] and row["dataset"] and isinstance(row["value"], float)
        assert row["method"] not in measured_names
    assert paths["png"].stat().st_size > 1000


def test_printed_leaderboard_has_a_labelled_published_block_after_the_table():
    board = evaluation.Leaderboard(
        task="speech", dataset="speech", split="test", tracks=1, metric="SI-SDRi",
        measured=pd.DataFrame([{"method": "mixture", "kind": "mixture", "SI-SDRi mean": 0.0}]),
        published=pd.DataFrame([{"method": "Paper net", "dataset": "WSJ0-2mix", "figure": "SI-SDRi (dB)",
                                 "value": 20.0, "citation": "A. Author, 2020, Venue"}]))
    text = str(board)
    table_at, published_at = text.index("mixture"), text.index("Published (other datasets; not comparable")
    assert table_at < published_at < text.index("Paper net") and "A. Author, 2020, Venue" in text


def test_speech_references_are_those_trained_on_the_same_data():
    board = evaluation.leaderboard("speech", max_tracks=1, oracles=False)
    rows = board.measured.set_index("method")
    speech_references = {"convtasnet-speech", "convtasnet-speech-b4x1s", "gridnet-speech-b4x1s"}
    assert set(rows.index) == speech_references | {"mixture"}
    assert set(rows.loc[sorted(speech_references), "kind"]) == {"reference"}
    assert rows.loc["convtasnet-speech", "steps"] == 4116  # from its card
    assert any("convtasnet-espeak" in note and "espeak" in note for note in board.notes)


def test_music_leaderboard_scores_vocals_and_accompaniment_with_museval():
    board = evaluation.leaderboard("music", max_tracks=2)
    assert board.tracks == 2 and "museval" in board.metric
    rows = board.measured.set_index("method")
    assert set(rows["kind"]) == {"oracle", "mixture"}  # no reference trained on music ships today
    assert any("no shipped reference" in note for note in board.notes)
    assert rows.loc["oracle IRM", "vocals SDR"] > rows.loc["mixture", "vocals SDR"]
    assert rows.loc["oracle IRM", "accompaniment SDR"] > rows.loc["mixture", "accompaniment SDR"]
    assert board.published.empty or set(board.published.columns) >= {"method", "citation"}


def test_unknown_task_is_named():
    with pytest.raises(ValueError, match="unknown leaderboard task 'drums'.*'music', 'speech'"):
        evaluation.leaderboard("drums")
    with pytest.raises(SystemExit):
        main(["leaderboard", "drums"])


def test_missing_checkpoint_is_named(tmp_path, capsys):
    missing = tmp_path / "nowhere" / "best.pt"
    assert main(["leaderboard", "speech", "--checkpoint", str(missing), "--tracks", "1"]) == 2
    assert str(missing) in capsys.readouterr().err


def test_checkpoint_of_the_other_task_names_both(tmp_path):
    music_checkpoint = tiny_checkpoint(tmp_path / "best.pt", "music")
    with pytest.raises(ValueError, match="trained for music.*leaderboard is for speech"):
        evaluation.leaderboard("speech", checkpoints=[music_checkpoint], max_tracks=1)
