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
    board = evaluation.leaderboard("music", max_tracks=2, progress=False)
    assert board.tracks == 2 and "museval" in board.metric
    rows = board.measured.set_index("method")
    assert set(rows["kind"]) == {"reference", "oracle", "mixture"}
    assert set(rows.index[rows["kind"] == "reference"]) == {"unet-music", "bandsplit-music"}
    for method in ("unet-music", "bandsplit-music", "oracle IRM"):
        assert rows.loc[method, "vocals SDR"] > rows.loc["mixture", "vocals SDR"] + 3, method
        assert rows.loc[method, "accompaniment SDR"] > rows.loc["mixture", "accompaniment SDR"], method
    assert rows.loc["oracle IRM", "vocals SDR"] > rows.loc["unet-music", "vocals SDR"]  # an oracle is a ceiling
    assert board.published.empty or set(board.published.columns) >= {"method", "citation"}


def _write_musdbhq_track(folder, rate=44100, seconds=3.0, seed=0):
    """A MUSDB18-HQ-layout track (44.1 kHz stereo WAVs) of a sung-like tone over noise: real-data plumbing."""
    import numpy as np
    import soundfile as sf

    rng = np.random.default_rng(seed)
    t = np.arange(int(rate * seconds)) / rate
    voice = 0.3 * np.sin(2 * np.pi * 220 * t * (1 + 0.01 * np.sin(2 * np.pi * 5 * t))) * (np.sin(np.pi * t) > 0.3)
    stems = {"vocals": np.stack([voice, 0.8 * voice], 1), "drums": 0.05 * rng.standard_normal((t.size, 2)),
             "bass": 0.2 * np.stack([np.sin(2 * np.pi * 55 * t)] * 2, 1), "other": 0.02 * rng.standard_normal((t.size, 2))}
    folder.mkdir(parents=True)
    for name, audio in stems.items():
        sf.write(folder / f"{name}.wav", audio, rate, subtype="PCM_16")
    sf.write(folder / "mixture.wav", sum(stems.values()), rate, subtype="PCM_16")


def test_on_real_data_every_music_reference_is_scored_and_said_to_be_trained_elsewhere(tmp_path):
    _write_musdbhq_track(tmp_path / "musdb" / "test" / "A tone - over noise")
    board = evaluation.leaderboard("music", dataset=str(tmp_path / "musdb"), oracles=False, progress=False)
    rows = board.measured.set_index("method")
    assert board.tracks == 1 and set(rows.index) == {"unet-music", "bandsplit-music", "mixture"}
    assert rows["vocals SDR"].notna().all()
    for name in ("unet-music", "bandsplit-music"):
        assert any(note.startswith(f"reference {name} was trained on 'music', scored on") for note in board.notes)


def test_checkpoint_task_and_plot_on_axes(tmp_path):
    import matplotlib
    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    assert evaluation.checkpoint_task(tiny_checkpoint(tmp_path / "a.pt", "speech")) == "speech"
    assert evaluation.checkpoint_task(tiny_checkpoint(tmp_path / "b.pt", "music")) == "music"
    board = evaluation.leaderboard("speech", max_tracks=1, references=False)
    axis = Figure().subplots()
    assert board.plot(ax=axis) is axis
    assert [t.get_text() for t in axis.get_yticklabels()] == list(board.measured["method"][::-1])
    with pytest.raises(ValueError, match="either to a file"):
        board.plot()


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


# ---- the exercises of notebook 08 fail on the classic mistakes


def test_notebook_exercises_reject_the_classic_mistakes(capsys):
    import numpy as np

    from tpsep.exercises import check, get

    def both_strict(costs, scores):  # a method tied on cost but better on score no longer dominates
        costs, scores = np.asarray(costs), np.asarray(scores)
        return ~((costs[None] < costs[:, None]) & (scores[None] > scores[:, None])).any(1)

    def none_strict(costs, scores):  # every method dominates itself: an empty front
        costs, scores = np.asarray(costs), np.asarray(scores)
        return ~((costs[None] <= costs[:, None]) & (scores[None] >= scores[:, None])).any(1)

    def blocks(n_examples, rank, world_size):  # contiguous blocks instead of dealing the cards
        per_process = -(-n_examples // world_size)
        indices = list(range(n_examples)) + list(range(per_process * world_size - n_examples))
        return indices[rank * per_process:(rank + 1) * per_process]

    def drop_last(n_examples, rank, world_size):  # the last examples are dropped, not padded
        return list(range(n_examples - n_examples % world_size))[rank::world_size]

    for name, attempt in (("08.pareto_front", both_strict), ("08.pareto_front", none_strict),
                          ("08.shard_indices", blocks), ("08.shard_indices", drop_last)):
        assert check(name, attempt, seed=3) is get(name).reference, name
        assert capsys.readouterr().out.startswith(f"✗ {name}")
    for name in ("08.pareto_front", "08.shard_indices"):
        assert check(name, get(name).reference, seed=3) is get(name).reference
        assert capsys.readouterr().out.startswith(f"✓ {name}")
