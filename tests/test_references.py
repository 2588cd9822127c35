"""The reference checkpoints shipped in tpsep/references: each loads, is slim, and still
scores what its card says on the first test tracks of the data it was trained on."""

import json

import pytest
import torch

from tpsep import checkpoints

NAMES = checkpoints.reference_names()


def test_references_are_shipped_with_their_cards():
    assert NAMES, "no reference checkpoint in tpsep/references"
    for name in NAMES:
        card = checkpoints.reference_card(name)
        for key in ("trained_by", "machine", "steps", "dataset", "test", "check"):
            assert card.get(key) not in (None, ""), f"{name}: card has no {key!r}"


@pytest.mark.parametrize("name", NAMES)
def test_reference_holds_weights_and_config_only(name):
    stored = torch.load(checkpoints.reference(name), map_location="cpu", weights_only=False)
    assert stored["resume"] is None  # no optimiser state, no random states
    assert checkpoints.reference(name).stat().st_size < 6e6


def test_the_references_together_stay_small():
    total = sum(checkpoints.reference(name).stat().st_size for name in NAMES)
    assert total < 20e6, f"the shipped references weigh {total / 1e6:.1f} MB; the package allows 20 MB"


def test_float16_weights_load_into_a_float32_model():
    half = [n for n in NAMES if checkpoints.reference_card(n).get("weights") == "float16"]
    assert half, "no reference is stored in float16"
    for name in half:
        stored = torch.load(checkpoints.reference(name), map_location="cpu", weights_only=False)
        assert {v.dtype for v in stored["model"].values() if v.is_floating_point()} == {torch.float16}
        model = checkpoints.load_separator(checkpoints.reference(name))
        assert {p.dtype for p in model.parameters()} == {torch.float32}


@pytest.mark.parametrize("name", NAMES)
def test_reference_still_scores_what_its_card_says(name):
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
    from export_reference import MUSIC_MODELS, score

    from tpsep.data import load_dataset

    card = checkpoints.reference_card(name)
    check = card["check"]
    model = checkpoints.load_separator(checkpoints.reference(name))
    tracks = load_dataset(check["dataset"], split=check["split"])[:check["first_tracks"]]
    got = score(model, tracks, music=card["model"] in MUSIC_MODELS)
    assert got["value"] == pytest.approx(check["value"], abs=0.05), json.dumps(got)


def test_unknown_reference_names_the_shipped_ones():
    with pytest.raises(ValueError, match="shipped ones"):
        checkpoints.reference("no-such-model")
