"""The embedded music dataset: Bach chorales from music21's corpus, rendered into MUSDB-like stems.

Each 4-part (SATB) chorale becomes four stems:

- ``vocals``: the soprano line, sung (source-filter voice) on the vowels of the lyrics;
- ``bass``: the bass line an octave down, plucked or bowed;
- ``other``: alto and tenor on keyboards or strings;
- ``drums``: a procedural kit that follows the meter, with fills at the fermatas.

The mixture is the exact sum of the stems. Rendering takes tens of seconds and is
done once; the result is a cached folder of FLAC stems (see :mod:`tpsep.data.cache`).
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import soundfile as sf

from . import synth
from .track import MUSDB_SOURCES

SYNTH_VERSION = 5  # bump when the synthesizer changes: the cache key changes with it
PART_NAMES = ("Soprano", "Alto", "Tenor", "Bass")


def music_params(n_chorales: int = 40, rate: int = 16000, channels: int = 1, seed: int = 0,
                 augment: int = 0, n_valid: int = 4, n_test: int = 8) -> dict:
    """Every parameter that changes the rendered audio (they form the cache key)."""
    import music21

    if n_chorales < 3:
        raise ValueError(f"n_chorales={n_chorales}: need at least 3 (one per split)")
    if n_valid + n_test >= n_chorales:
        raise ValueError(f"n_valid + n_test = {n_valid + n_test} leaves no training chorale out of {n_chorales}")
    if channels not in (1, 2):
        raise ValueError(f"channels={channels}: expected 1 (mono) or 2 (stereo)")
    if rate < 8000:
        raise ValueError(f"rate={rate} Hz is too low for the synthesizer; expected >= 8000")
    return {"dataset": "chorales", "n_chorales": int(n_chorales), "rate": int(rate), "channels": int(channels),
            "seed": int(seed), "augment": int(augment), "n_valid": int(n_valid), "n_test": int(n_test),
            "synth_version": SYNTH_VERSION, "music21": music21.__version__}


# ---------------------------------------------------------------------------
# from a music21 score to plain note lists

def read_chorale(path) -> dict | None:
    """The four voices of a chorale as plain data, or None when it is not a clean SATB chorale.

    Returns ``{"name", "parts": {part: [note dicts in quarter lengths]}, "bars": [(start, length, beats)],
    "fermatas": [quarter offsets], "length": quarters, "has_lyrics"}``.
    """
    from music21 import corpus, expressions

    score = corpus.parse(path)
    by_name = {}
    for part in score.parts:
        name = (part.partName or "").strip()
        if name in PART_NAMES and name not in by_name:
            by_name[name] = part
    if len(by_name) != 4:
        return None
    parts = {}
    for name, part in by_name.items():
        notes = []
        # tied notes are merged by hand: music21's stripTies() deep-copies the whole score (slow)
        for element in part.flatten().notesAndRests:
            if element.isRest or element.quarterLength <= 0:
                continue
            pitch = element.pitches[-1].midi  # the top note if a chord slipped in
            start, end = float(element.offset), float(element.offset + element.quarterLength)
            fermata = any(isinstance(e, expressions.Fermata) for e in element.expressions)
            tie = element.tie.type if element.tie is not None else None
            if tie in ("stop", "continue") and notes and notes[-1]["midi"] == pitch and abs(notes[-1]["end"] - start) < 1e-6:
                notes[-1]["end"] = end
                notes[-1]["fermata"] = notes[-1]["fermata"] or fermata
                continue
            notes.append({"start": start, "end": end, "midi": int(pitch), "lyric": element.lyric, "fermata": fermata})
        if not notes:
            return None
        parts[name] = notes
    bars = []
    time_signature = None
    for measure in by_name["Soprano"].getElementsByClass("Measure"):
        if measure.timeSignature is not None:
            time_signature = measure.timeSignature
        beats = time_signature.numerator * 4 / time_signature.denominator if time_signature else 4
        bars.append((float(measure.offset), float(measure.duration.quarterLength), float(beats),
                     float(measure.paddingLeft)))
    length = max(n["end"] for notes in parts.values() for n in notes)
    fermatas = [n["end"] for n in parts["Soprano"] if n["fermata"]]
    return {"name": Path(str(path)).name.rsplit(".", 1)[0], "parts": parts, "bars": bars,
            "fermatas": fermatas, "length": length,
            "has_lyrics": sum(bool(n["lyric"]) for n in parts["Soprano"]) > len(parts["Soprano"]) // 2}


def select_chorales(n: int, seed: int, progress=None) -> list:
    """``n`` clean SATB chorales, in an order shuffled by ``seed`` (parsing stops once ``n`` are found)."""
    from music21 import corpus

    paths = sorted(corpus.getComposer("bach"), key=lambda p: Path(str(p)).name)
    order = np.random.default_rng(seed).permutation(len(paths))
    chosen, seen = [], set()
    for i in order:
        name = Path(str(paths[i])).name
        base = name.split("-")[0].rsplit(".", 1)[0]  # "bwv112.5-sc.mxl" duplicates "bwv112.5.mxl"
        if base in seen:
            continue
        chorale = read_chorale(paths[i])
        if chorale is None or chorale["length"] < 16:
            continue
        seen.add(base)
        chosen.append(chorale)
        if progress is not None:
            progress.update(1)
        if len(chosen) == n:
            return chosen
    raise ValueError(f"music21's corpus has only {len(chosen)} usable SATB chorales; asked for n_chorales={n}")


# ---------------------------------------------------------------------------
# rendering one chorale

def _timed(notes, seconds_per_quarter: float, transpose: int) -> list:
    return [{**n, "start": n["start"] * seconds_per_quarter, "end": n["end"] * seconds_per_quarter,
             "midi": n["midi"] + transpose} for n in notes]


def _sung_notes(notes, rng) -> list:
    """Attach a vowel and onset consonants to each soprano note (from the lyrics, else invented)."""
    sung, vowel = [], "a"
    invented_onsets = ["", "", "l", "m", "n", "d", "t", "s", "k", "h", "w", "sch", "b"]
    has_lyrics = any(n["lyric"] for n in notes)
    for n in notes:
        if has_lyrics:
            onset, new_vowel = synth.syllable_sounds(n["lyric"])
            new_syllable = bool(n["lyric"])
            vowel = new_vowel or vowel
        else:  # no lyrics: a seeded vowel sequence, a new syllable on most notes
            new_syllable = rng.random() < 0.8
            if new_syllable:
                vowel = synth.VOWELS[rng.integers(len(synth.VOWELS))]
            onset = invented_onsets[rng.integers(len(invented_onsets))] if new_syllable else ""
        sung.append({**n, "vowel": vowel, "onset": onset, "new_syllable": new_syllable})
    return sung


def _drum_hits(chorale, seconds_per_quarter: float, style: int) -> list:
    hits = [(0.0, "crash", 0.6)]
    fermata_ends = set(round(f, 3) for f in chorale["fermatas"])
    for start, length, beats, padding in chorale["bars"]:
        bar_start = start - padding  # a pickup bar starts before the music
        pattern = synth.meter_pattern(int(round(beats)), style)
        bar_end = start + length
        if any(bar_start < f <= bar_end + 1e-6 for f in fermata_ends):
            last_beat = int(round(beats)) - 1
            pattern = [p for p in pattern if p[0] < last_beat or p[1] == "hat"] + synth.fill_pattern(int(round(beats)))
            hits.append((bar_end * seconds_per_quarter, "crash", 0.5))
        for beat, kind, velocity in pattern:
            q = bar_start + beat
            if start - 1e-6 <= q < min(bar_end, chorale["length"]) - 1e-6:
                hits.append((q * seconds_per_quarter, kind, velocity))
    return hits


PANS = {"vocals": 0.0, "bass": 0.0, "alto": -0.45, "tenor": 0.45, "melody": 0.2,
        "kick": 0.0, "snare": 0.1, "hat": 0.35, "open_hat": 0.35, "crash": -0.3, "tom": -0.2}


def render_chorale(chorale: dict, rate: int, channels: int, rng, transpose: int = 0,
                   tempo: float = 1.0) -> tuple:
    """Render one chorale: ``({stem: float32 (channels, samples)}, info dict)``, before normalisation."""
    bpm = rng.uniform(72, 96) * tempo
    spq = 60.0 / bpm
    total = int((chorale["length"] * spq + 1.2) * rate)
    parts = {name: _timed(notes, spq, transpose) for name, notes in chorale["parts"].items()}
    voice = {"brightness": rng.uniform(1.3, 1.9), "breath": rng.uniform(0.04, 0.12),
             "vibrato_hz": rng.uniform(4.8, 6.2), "vibrato_depth": rng.uniform(0.2, 0.45),
             "formant_scale": rng.uniform(0.95, 1.06)}
    bass_kind = ("pluck_bass", "bowed_bass")[rng.integers(2)]
    alto_kind = ("epiano", "organ", "strings")[rng.integers(3)]
    tenor_kind = ("epiano", "organ", "strings")[rng.integers(3)]
    style = int(rng.integers(6))
    double_kind = ("epiano", "organ", "strings")[rng.integers(3)]
    doubling = 10 ** (rng.uniform(-10, -3) / 20) if rng.random() < 0.7 else 0.0
    double_octave = int(rng.choice([0, -12]))

    components = {
        "vocals": {"vocals": synth.sing(_sung_notes(parts["Soprano"], rng), total, rate, rng, **voice)},
        "bass": {"bass": synth.play_line(bass_kind, parts["Bass"], total, rate, rng, transpose=-12)},
        "other": {"alto": synth.play_line(alto_kind, parts["Alto"], total, rate, rng),
                  "tenor": 0.8 * synth.play_line(tenor_kind, parts["Tenor"], total, rate, rng),
                  # chorale accompaniments often double the melody ("colla parte"): the hard case,
                  # where the voice and an instrument share the same harmonics
                  "melody": doubling * synth.play_line(double_kind, parts["Soprano"], total, rate, rng,
                                                       transpose=double_octave)},
        "drums": synth.place_hits(_drum_hits(chorale, spq, style), synth.drum_kit(rate, rng), total, rate, rng),
    }
    drum_levels = {"kick": 1.0, "snare": 0.7, "hat": 0.25, "open_hat": 0.2, "crash": 0.25, "tom": 0.5}
    components["drums"] = {k: v * drum_levels[k] for k, v in components["drums"].items()}
    # stem levels in dB relative to the vocals, varied per chorale
    levels_db = {"vocals": 0.0, "bass": -3.0, "other": -4.0, "drums": -5.0}
    # one room for the whole band; each stem is sent to it at its own level
    room = synth.room_response(rate, rng, rng.uniform(0.8, 1.6), channels)
    wet_db = {"vocals": rng.uniform(-9, -4), "bass": -18.0, "other": rng.uniform(-9, -4), "drums": rng.uniform(-14, -8)}
    stems = {}
    for stem, parts_audio in components.items():
        audio = np.zeros((channels, total))
        for part, mono in parts_audio.items():
            if channels == 1:
                audio[0] += mono
            else:  # constant-power panning
                angle = (PANS[part] + 1) * np.pi / 4
                audio[0] += np.cos(angle) * mono
                audio[1] += np.sin(angle) * mono
        audio = synth.reverberate(audio, room, wet_db[stem])
        rms = np.sqrt(np.mean(audio ** 2)) + 1e-12
        gain_db = levels_db[stem] + rng.uniform(-2, 2)
        stems[stem] = audio / rms * 10 ** (gain_db / 20)
    info = {"title": chorale["name"], "bpm": round(float(bpm), 2), "transpose": int(transpose),
            "instruments": {"bass": bass_kind, "alto": alto_kind, "tenor": tenor_kind,
                            "melody_doubled_by": double_kind if doubling else None},
            "drum_style": style, "lyrics": chorale["has_lyrics"],
            "reverb_db": {k: round(float(v), 1) for k, v in wet_db.items()}}
    return stems, info


def quantise_stems(stems: dict, peak: float = 0.9, loudness_db: float = -16.0) -> dict:
    """Scale a track to ``loudness_db`` RMS (capped so nothing exceeds ``peak``), round the stems to
    16 bits, and make the mixture their exact sum: ``{name: int16 (channels, samples)}``."""
    mixture = sum(stems.values())
    gain = 10 ** (loudness_db / 20) / (np.sqrt(np.mean(mixture ** 2)) + 1e-12)
    largest = max(np.abs(mixture).max(), *(np.abs(s).max() for s in stems.values()))
    gain = min(gain, peak / largest)
    out = {name: np.round(audio * gain * 32768).astype(np.int32) for name, audio in stems.items()}
    total = sum(out.values())
    if np.abs(total).max() > 32767:
        raise RuntimeError("mixture would clip after quantisation; lower the peak")
    result = {name: out[name].astype(np.int16) for name in MUSDB_SOURCES}
    result["mixture"] = total.astype(np.int16)
    return result


def write_track(folder: Path, audio: dict, rate: int) -> None:
    """Write ``{name: int16 (channels, samples)}`` as ``folder/<name>.flac`` (16-bit)."""
    folder.mkdir(parents=True, exist_ok=True)
    for name, samples in audio.items():
        sf.write(str(folder / f"{name}.flac"), samples.T, rate, subtype="PCM_16")


def render_music(folder: Path, params: dict, progress: bool = True) -> dict:
    """Render the whole chorale dataset into ``folder/<split>/<track>/<stem>.flac``; returns figures."""
    from tqdm.auto import tqdm

    t0 = time.perf_counter()
    n, seed = params["n_chorales"], params["seed"]
    with tqdm(total=n, desc="reading chorales (music21)", disable=not progress, leave=False) as bar:
        chorales = select_chorales(n, seed, bar)
    splits = ["test"] * params["n_test"] + ["valid"] * params["n_valid"]
    splits += ["train"] * (n - len(splits))
    jobs = [(c, s, 0) for c, s in zip(chorales, splits)]
    jobs += [(c, "train", k) for k in range(1, params["augment"] + 1) for c, s in zip(chorales, splits) if s == "train"]
    metadata = {}
    seconds = {"train": 0.0, "valid": 0.0, "test": 0.0}
    for index, (chorale, split, version) in enumerate(tqdm(jobs, desc="rendering chorales", disable=not progress)):
        rng = np.random.default_rng([seed, index])
        transpose, tempo = 0, 1.0
        if version:  # augmented copy: transposed, faster or slower, other levels
            transpose, tempo = int(rng.integers(-3, 4)), float(rng.uniform(0.85, 1.15))
        stems, info = render_chorale(chorale, params["rate"], params["channels"], rng, transpose, tempo)
        name = chorale["name"] + (f"+aug{version}" if version else "")
        write_track(folder / split / name, quantise_stems(stems), params["rate"])
        metadata[name] = {**info, "split": split, "augmented": bool(version)}
        seconds[split] += stems["vocals"].shape[1] / params["rate"]
    (folder / "tracks.json").write_text(json.dumps(metadata, indent=1))
    return {"render_seconds": round(time.perf_counter() - t0, 2), "audio_seconds": seconds,
            "tracks": {s: sum(m["split"] == s for m in metadata.values()) for s in seconds}}
