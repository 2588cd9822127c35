"""The embedded music dataset: Bach chorales from music21's corpus, rendered into MUSDB-like stems.

Each 4-part (SATB) chorale becomes four stems, performed and recorded differently on every track:

- ``vocals``: the soprano line sung by a singer drawn per track (soprano, alto, tenor or
  baritone: the piece is transposed to suit the voice, men sing it an octave down), on the
  vowels and consonants of the lyrics, with vibrato, scoops, drift, breaths: a source-filter
  voice, a sampled choir "aah"/"ooh" bent along the same pitch curve, or both layered. Some
  phrases are instrumental (the voice rests; an instrument may take the tune);
- ``bass``: the bass line an octave down, on a sampled bass (fingered, picked, fretless,
  acoustic, contrabass, synth) or tpsep's plucked/bowed synthesizer, held or re-struck;
- ``other``: alto and tenor on a band drawn per track (piano, electric piano, organ,
  harpsichord, accordion; nylon, steel or clean guitars, strummed; overdriven guitars;
  a string section; a wind section), sometimes a pad, the pianist's left hand, the melody
  doubled ("colla parte") or played as a lead in the instrumental phrases;
- ``drums``: the meter's pattern with fills at the fermatas, on a sampled General MIDI kit
  (standard, room, power, jazz, brush, 808) or tpsep's procedural kit.

Sampled instruments come from a General MIDI SoundFont (:mod:`tpsep.data.soundfont`,
``TimGM6mb.sf2`` from the pretty_midi wheel), the rest from :mod:`tpsep.data.synth`.
The band plays with human timing and dynamics (rubato, fermatas held, ritardandi,
velocity arcs and accents). Each stem then gets its own recording chain (EQ,
compression, saturation, a room shared with the band or its own) and level, and an
optional bus compressor applies one gain to every stem: the mixture is the exact sum of the
stems. Rendering takes a minute or two and is done once; the result is a cached folder of
FLAC stems (see :mod:`tpsep.data.cache`).
"""

from __future__ import annotations

import functools
import json
import time
from pathlib import Path

import numpy as np
import soundfile as sf
from scipy import signal

from . import soundfont, synth
from .track import MUSDB_SOURCES

SYNTH_VERSION = 6  # bump when the synthesizer changes: the cache key changes with it
PART_NAMES = ("Soprano", "Alto", "Tenor", "Bass")
INSTRUMENT_MODES = ("mixed", "soundfont", "synth")


@functools.lru_cache(maxsize=8)
def _soundfont_id(path: str, size: int, mtime_ns: int) -> str:
    return soundfont.fingerprint(path)


def music_params(n_chorales: int = 40, rate: int = 16000, channels: int = 1, seed: int = 0,
                 augment: int = 0, n_valid: int = 4, n_test: int = 8, instruments: str = "mixed",
                 soundfont_path: str | None = None) -> dict:
    """Every parameter that changes the rendered audio (they form the cache key).

    Args:
        instruments: ``"mixed"`` (default: sampled instruments from a General MIDI SoundFont on
            most tracks, tpsep's synthesizer on some), ``"soundfont"`` (sampled wherever possible)
            or ``"synth"`` (tpsep's synthesizer only: no SoundFont needed).
        soundfont_path: another General MIDI ``.sf2`` file; default ``TimGM6mb.sf2`` from the
            pretty_midi package. The key holds a hash of the file's content, not its path.

    Raises:
        SoundFontError: the SoundFont is missing or is not an SF2 file (a ``FileNotFoundError``).
    """
    import music21

    if n_chorales < 3:
        raise ValueError(f"n_chorales={n_chorales}: need at least 3 (one per split)")
    if n_valid + n_test >= n_chorales:
        raise ValueError(f"n_valid + n_test = {n_valid + n_test} leaves no training chorale out of {n_chorales}")
    if channels not in (1, 2):
        raise ValueError(f"channels={channels}: expected 1 (mono) or 2 (stereo)")
    if rate < 8000:
        raise ValueError(f"rate={rate} Hz is too low for the synthesizer; expected >= 8000")
    if instruments not in INSTRUMENT_MODES:
        raise ValueError(f"instruments={instruments!r}; expected one of {INSTRUMENT_MODES}")
    sound_font = None
    if instruments != "synth":
        path = soundfont.default_soundfont() if soundfont_path is None else soundfont.check_soundfont(soundfont_path)
        stat = path.stat()
        sound_font = _soundfont_id(str(path), stat.st_size, stat.st_mtime_ns)
    params = {"dataset": "chorales", "n_chorales": int(n_chorales), "rate": int(rate), "channels": int(channels),
              "seed": int(seed), "augment": int(augment), "n_valid": int(n_valid), "n_test": int(n_test),
              "synth_version": SYNTH_VERSION, "music21": music21.__version__,
              "instruments": instruments, "soundfont": sound_font}
    if soundfont_path is not None and instruments != "synth":
        params["soundfont_path"] = str(Path(soundfont_path).resolve())
    return params


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


# ---------------------------------------------------------------------------
# performing one chorale: tempo, timing, dynamics

def time_map(chorale: dict, bpm: float, rng):
    """Quarter positions -> seconds, as a band would play the chorale: a little rubato, a
    ritardando into each fermata and the fermata held longer (much longer at the end).

    Returns a function of quarter positions (scalar or array) giving seconds.
    """
    step = 0.25
    grid = np.arange(0.0, chorale["length"] + 16.0, step)
    local = np.full(len(grid), 60.0 / bpm)
    local *= 1 + 0.03 * synth.lowpass_noise(len(grid), 4, 0.25, rng)  # a slow drift of the tempo
    held = [(n["start"], n["end"]) for n in chorale["parts"]["Soprano"] if n["fermata"]]
    for start, end in held:
        last = end >= chorale["length"] - 1e-6
        span = rng.uniform(1.0, 3.0) if not last else rng.uniform(3.0, 6.0)
        amount = rng.uniform(0.03, 0.2) if not last else rng.uniform(0.15, 0.4)
        inside = (grid >= end - span) & (grid < end)
        local[inside] *= 1 + amount * ((grid[inside] - (end - span)) / span) ** 2
        hold = (grid >= start) & (grid < end)
        local[hold] *= rng.uniform(1.2, 1.9) if not last else rng.uniform(1.6, 2.6)
    seconds = np.concatenate([[0.0], np.cumsum(local * step)])
    positions = np.concatenate([grid, [grid[-1] + step]])
    return lambda q: np.interp(q, positions, seconds)


def _metric_accent(chorale: dict) -> callable:
    """Quarter position -> accent (0 on weak beats, larger on the downbeat and mid-bar)."""
    downbeats = np.array([start - padding for start, _, _, padding in chorale["bars"]] or [0.0])
    lengths = np.array([beats for _, _, beats, _ in chorale["bars"]] or [4.0])

    def accent(q):
        i = max(int(np.searchsorted(downbeats, q + 1e-6)) - 1, 0)
        into = q - downbeats[i]
        if abs(into) < 1e-6:
            return 1.0
        if lengths[i] == 4 and abs(into - 2) < 1e-6:
            return 0.5
        return 0.25 if abs(into - round(into)) < 1e-6 else 0.0
    return accent


def perform(notes, chorale: dict, tmap, rng, transpose: int = 0, velocity: float = 85, spread: float = 6,
            jitter: float = 0.008, lag: float = 0.0, legato: float = 0.0, pulse: float | None = None) -> list:
    """Turn a part (notes in quarters) into played notes (seconds) with human timing and dynamics.

    Args:
        velocity: the part's base MIDI velocity; spread: its random variation (sd).
        jitter: sd (s) of the onset timing; lag: a constant delay (s) of the whole part.
        legato: seconds added to (>0: overlapping) or removed from (<0: detached) each note's end.
        pulse: if given (quarters), notes longer than it are re-struck on every pulse (comping).

    Returns:
        list of dicts ``start``, ``end`` (seconds), ``midi``, ``velocity``, plus the original fields.
    """
    accent = _metric_accent(chorale)
    phrase_ends = sorted(chorale["fermatas"]) + [chorale["length"]]
    pieces = []
    for n in notes:
        if pulse and n["end"] - n["start"] > pulse * 1.01:
            edges = np.arange(np.ceil(n["start"] / pulse - 1e-6) * pulse, n["end"] - 1e-6, pulse)
            edges = np.unique(np.concatenate([[n["start"]], edges, [n["end"]]]))
            for k, (a, b) in enumerate(zip(edges[:-1], edges[1:])):
                pieces.append({**n, "start": float(a), "end": float(b), "restruck": k > 0})
        else:
            pieces.append({**n, "restruck": False})
    played = []
    for n in pieces:
        end_q = next((f for f in phrase_ends if f >= n["start"] + 1e-6), chorale["length"])
        begin_q = max([f for f in phrase_ends if f <= n["start"] + 1e-6] or [0.0])
        x = (n["start"] - begin_q) / max(end_q - begin_q, 1e-6)
        v = velocity + 8 * accent(n["start"]) + 6 * np.sin(np.pi * x) - 3 + rng.normal(0, spread)
        v -= 8 if n["restruck"] else 0
        start = float(tmap(n["start"])) + lag + rng.normal(0, jitter)
        end = float(tmap(n["end"])) + lag + legato + rng.normal(0, jitter / 2)
        end = max(end, start + 0.05)
        played.append({**n, "start": max(start, 0.0), "end": end, "midi": n["midi"] + transpose,
                       "velocity": int(np.clip(round(v), 25, 127))})
    return played


# ---------------------------------------------------------------------------
# instruments, drawn per track

# General MIDI programs of the SoundFont worth playing (checked in tune, see tpsep.data.soundfont),
# with drawing weights. Solo strings, clarinet, bassoon, tuba, organ 2 and the electric pianos
# are single-cycle loops in TimGM6mb: rare or absent.
BASS_PROGRAMS = {33: 3, 34: 2, 32: 2, 35: 2, 43: 1, 38: 0.5, 39: 0.5}
KEYS_PROGRAMS = {0: 3, 1: 2, 2: 1, 3: 0.3, 4: 1, 5: 0.5, 6: 0.5, 16: 0.6, 18: 0.4, 19: 1, 21: 0.3, 11: 0.3}
GUITAR_PROGRAMS = {24: 2, 25: 2, 27: 1.5, 26: 0.7, 29: 0.5, 30: 0.3}
ROCK_GUITAR_PROGRAMS = {29: 1, 30: 1, 27: 1, 25: 0.5}  # played through tpsep's overdrive
STRINGS_PROGRAMS = {48: 3, 49: 2, 50: 1}
PAD_PROGRAMS = {48: 2, 49: 2, 50: 1, 61: 0.5, 89: 0.5, 19: 0.5}
HIGH_WIND_PROGRAMS = {56: 2, 60: 2, 68: 2, 73: 2, 65: 1.5, 64: 1, 71: 0.5}
LOW_WIND_PROGRAMS = {57: 2, 60: 2, 67: 1.5, 66: 0.5, 42: 0.7, 70: 0.5}
VOICE_PROGRAMS = {52: 4, 53: 1}  # Choir Aahs, Voice Oohs (Synth Vox is dull: nothing above 1 kHz)
DRUM_KITS = {0: 3, 8: 2, 16: 2, 32: 1, 40: 0.7, 25: 0.3}  # bank 128: Standard, Room, Power, Jazz, Brush, TR-808
GM_DRUMS = {"kick": 36, "snare": 38, "hat": 42, "open_hat": 46, "crash": 49}
TOMS = (50, 48, 47, 45, 43)


def _draw(rng, weights: dict):
    keys = list(weights)
    p = np.array([weights[k] for k in keys], dtype=np.float64)
    return keys[int(rng.choice(len(keys), p=p / p.sum()))]


def _in_range(sound_font, program: int, midi: int, bank: int = 0) -> int:
    """``midi`` moved by octaves into the keys the preset covers."""
    keys = [k for z in sound_font.presets.get((bank, program), []) for k in z["keys"]]
    if not keys:
        return midi
    low, high = min(keys), max(keys)
    while midi < low:
        midi += 12
    while midi > high:
        midi -= 12
    return midi


def play(sound_font, program, notes, total: int, rate: int, rng, transpose: int = 0) -> np.ndarray:
    """A part on a SoundFont preset (``program``: int) or on tpsep's synthesizer (``program``: str)."""
    if isinstance(program, str):
        out = np.zeros(total)
        for nt in notes:
            note = synth.instrument_note(program, nt["midi"] + transpose, nt["end"] - nt["start"], rate, rng)
            a = int(nt["start"] * rate)
            b = min(a + len(note), total)
            if b > a:
                out[a:b] += note[:b - a] * (nt.get("velocity", 100) / 127) ** 1.5
        return out
    moved = [{**nt, "midi": _in_range(sound_font, program, nt["midi"] + transpose)} for nt in notes]
    return sound_font.line(0, program, moved, total, rate)


def _strum(notes_a: list, notes_b: list, rng) -> None:
    """Guitar chords are strummed: where two parts start together, delay one of them by 10-35 ms."""
    starts_b = {round(n["start"], 2): n for n in notes_b}
    for n in notes_a:
        other = starts_b.get(round(n["start"], 2))
        if other is not None:
            other["start"] += rng.uniform(0.01, 0.035)
            other["end"] = max(other["end"], other["start"] + 0.05)


def _drum_hits(chorale, tmap, style: int) -> list:
    hits = [(0.0, "crash", 0.6)]
    fermata_ends = set(round(f, 3) for f in chorale["fermatas"])
    for start, length, beats, padding in chorale["bars"]:
        bar_start = start - padding  # a pickup bar starts before the music
        pattern = synth.meter_pattern(int(round(beats)), style)
        bar_end = start + length
        if any(bar_start < f <= bar_end + 1e-6 for f in fermata_ends):
            last_beat = int(round(beats)) - 1
            pattern = [p for p in pattern if p[0] < last_beat or p[1] == "hat"] + synth.fill_pattern(int(round(beats)))
            hits.append((float(tmap(bar_end)), "crash", 0.5))
        for beat, kind, velocity in pattern:
            q = bar_start + beat
            if start - 1e-6 <= q < min(bar_end, chorale["length"]) - 1e-6:
                hits.append((float(tmap(q)), kind, velocity))
    return hits


def _sampled_drums(sound_font, kit: int, hits, total: int, rate: int, rng, options: dict) -> dict:
    """Drum hits (``(seconds, kind, velocity)``) played on a General MIDI kit: ``{kind: (total,)}``."""
    out = {kind: np.zeros(total) for kind in synth.DRUMS}
    tom = 0
    previous = -1.0
    for seconds, kind, velocity in sorted(hits):
        key = options["keys"].get(kind, GM_DRUMS.get(kind))
        if kind == "tom":
            tom = tom + 1 if seconds - previous < 0.5 else 0
            key = TOMS[tom % len(TOMS)]
        if kind == "tom":
            previous = seconds
        length, tail = (1.5, 2.0) if kind == "crash" else (0.2, None)
        v = int(np.clip(40 + 85 * velocity + rng.normal(0, 6), 20, 127))
        sound = sound_font.note(128, kit, key, length, rate, v, tail=tail)
        a = min(max(int((seconds + rng.normal(0, 0.004)) * rate), 0), total)
        b = min(a + len(sound), total)
        out[kind][a:b] += sound[:b - a]
    return out


PANS = {"vocals": 0.0, "bass": 0.0, "alto": -0.45, "tenor": 0.45, "melody": 0.2, "pad": 0.0, "bass_octave": -0.2,
        "lead": 0.1,
        "kick": 0.0, "snare": 0.1, "hat": 0.35, "open_hat": 0.35, "crash": -0.3, "tom": -0.2, "kick_body": 0.0}


def _chain(audio: np.ndarray, stem: str, rate: int, rng, room, shared_room) -> tuple:
    """One stem's recording and mixing chain: EQ, compression, saturation, reverb. Returns (audio, info)."""
    eq = synth.draw_eq(rng, rate, stem)
    audio = synth.equalise(audio, eq, rate)
    info = {"eq": [(k, round(float(f)), round(float(g), 1)) for k, f, g, _ in eq]}
    squeeze = {"vocals": 0.7, "bass": 0.6, "drums": 0.5, "other": 0.35}[stem]
    if rng.random() < squeeze:
        ratio, threshold = rng.uniform(2, 5), rng.uniform(-12, -3)
        audio = audio * synth.compressor_gain(audio, rate, threshold, ratio, rng.uniform(0.003, 0.02),
                                              rng.uniform(0.05, 0.25))
        info["compressor"] = {"ratio": round(float(ratio), 1), "threshold_db": round(float(threshold), 1)}
    if stem in ("bass", "drums") and rng.random() < 0.3:
        drive = rng.uniform(3, 12)
        audio = synth.saturate(audio, drive)
        info["saturation_db"] = round(float(drive), 1)
    wet_range = {"vocals": (-14, -5), "bass": (-30, -18), "other": (-14, -5), "drums": (-20, -8)}[stem]
    wet = rng.uniform(*wet_range)
    response = shared_room if shared_room is not None else room
    audio = synth.reverberate(audio, response, wet)
    info["reverb_db"] = round(float(wet), 1)
    return audio, info


def render_chorale(chorale: dict, rate: int, channels: int, rng, transpose: int = 0,
                   tempo: float = 1.0, instruments: str = "mixed", sound_font=None) -> tuple:
    """Render one chorale: ``({stem: float64 (channels, samples)}, info dict)``, before normalisation.

    ``instruments`` is ``"mixed"`` (SoundFont instruments on most tracks, tpsep's synthesizer
    on some, both kinds of voice), ``"soundfont"`` or ``"synth"`` (tpsep's synthesizer only,
    ``sound_font`` unused).
    """
    if instruments != "synth" and sound_font is None:
        sound_font = soundfont.load()
    sampled = {"mixed": 0.8, "soundfont": 1.0, "synth": 0.0}[instruments]
    bpm = rng.uniform(66, 100) * tempo
    tmap = time_map(chorale, bpm, rng)
    length_s = float(tmap(chorale["length"]))
    total = int((length_s + 1.5) * rate)

    # the singer, and the key that suits the singer's range
    voice_type = str(rng.choice(list(synth.VOICE_TYPES), p=[0.3, 0.25, 0.25, 0.2]))
    _, octave, target = synth.VOICE_TYPES[voice_type]
    median = float(np.median([n["midi"] for n in chorale["parts"]["Soprano"]]))
    key_shift = int(np.clip(round(target + rng.uniform(-2, 2) - median + octave), -5, 5)) + int(transpose)
    singer = synth.draw_singer(rng, voice_type)
    voice_kind = "synth"
    if instruments != "synth":
        voice_kind = str(rng.choice(["synth", "layered", "sampled"], p=[0.4, 0.35, 0.25]))
    voice_program = _draw(rng, VOICE_PROGRAMS) if voice_kind != "synth" else None

    # instrumental phrases: the voice rests (an intro, an interlude) and an instrument may take the tune
    soprano = chorale["parts"]["Soprano"]
    phrase_ends = sorted(chorale["fermatas"])
    phrase = [sum(f <= n["start"] + 1e-6 for f in phrase_ends) for n in soprano]
    n_phrases = max(phrase) + 1
    tacet = set()
    if n_phrases > 2 and rng.random() < 0.5:
        if rng.random() < 0.5:
            tacet.add(0)
        tacet |= {k for k in range(1, n_phrases - 1) if rng.random() < 0.2}
        while len(tacet) > n_phrases // 2:
            tacet.discard(max(tacet))
    melody_notes = [n for n, k in zip(soprano, phrase) if k not in tacet]
    lead_notes = [n for n, k in zip(soprano, phrase) if k in tacet]
    # the melody, sung: a breath after each fermata (the held note is cut short)
    sung = perform(melody_notes, chorale, tmap, rng, key_shift - octave, velocity=90,
                   spread=5, jitter=0.012, lag=rng.normal(0, 0.01), legato=-0.02)
    for n in sung:
        if n["fermata"] and n["end"] < length_s - 0.5:
            n["end"] = max(n["start"] + 0.1, n["end"] - rng.uniform(0.15, 0.35))
    sung = _sung_notes(sung, rng)
    contour = synth.sung_contour(sung, total, rate, rng, singer)
    voice = synth.sing(sung, total, rate, rng, singer, contour) if voice_kind != "sampled" else 0.0
    if voice_kind != "synth":
        choir = synth.sampled_voice(sound_font, voice_program, sung, total, rate, contour)
        mix = rng.uniform(0.4, 1.0) if voice_kind == "layered" else 1.0
        voice = (1 - mix) * voice + mix * choir if voice_kind == "layered" else choir
    voice = voice + synth.articulation(sung, total, rate, rng, singer, contour)
    backing_type = None
    if rng.random() < 0.25:  # a second singer on the alto line, in some phrases: backing vocals
        alto_phrase = [sum(f <= n["start"] + 1e-6 for f in phrase_ends) for n in chorale["parts"]["Alto"]]
        chosen = {k for k in range(n_phrases) if k not in tacet and rng.random() < 0.5} or \
            {max(k for k in range(n_phrases) if k not in tacet)}
        backing_notes = [n for n, k in zip(chorale["parts"]["Alto"], alto_phrase) if k in chosen]
        if backing_notes:
            backing_type = str(rng.choice(["soprano", "alto"]))
            backer = synth.draw_singer(rng, backing_type)
            backing = _sung_notes(perform(backing_notes, chorale, tmap, rng, key_shift, velocity=80, spread=5,
                                          jitter=0.015, legato=-0.03), rng)
            backing_contour = synth.sung_contour(backing, total, rate, rng, backer)
            if voice_kind == "synth":
                second = synth.sing(backing, total, rate, rng, backer, backing_contour)
            else:
                second = synth.sampled_voice(sound_font, voice_program, backing, total, rate, backing_contour)
            second = second + synth.articulation(backing, total, rate, rng, backer, backing_contour)
            voice = voice + 10 ** (rng.uniform(-12, -5) / 20) * second

    # the band
    def kind(weights_sf: dict, synth_kinds: tuple):
        if rng.random() < sampled:
            return _draw(rng, weights_sf)
        return str(rng.choice(synth_kinds))

    bass_program = kind(BASS_PROGRAMS, ("pluck_bass", "bowed_bass"))
    bass_pulse = rng.choice([None, 1.0, 0.5], p=[0.5, 0.35, 0.15])
    bass_notes = perform(chorale["parts"]["Bass"], chorale, tmap, rng, key_shift, velocity=rng.uniform(75, 100),
                         jitter=0.008, lag=rng.normal(0, 0.008), legato=rng.uniform(-0.08, 0.0),
                         pulse=None if bass_pulse is None else float(bass_pulse))
    band = rng.choice(["keys", "guitar", "rock", "strings", "winds"], p=[0.35, 0.15, 0.12, 0.18, 0.2])
    if rng.random() >= sampled:
        band = "synth"
    pulse = None
    if band in ("keys", "guitar", "rock"):
        pulse = rng.choice([None, 1.0, 0.5], p=[0.4, 0.4, 0.2] if band != "rock" else [0.2, 0.3, 0.5])
        pulse = None if pulse is None else float(pulse)
    if band == "keys":
        alto_program = tenor_program = _draw(rng, KEYS_PROGRAMS)
    elif band == "guitar":
        alto_program = tenor_program = _draw(rng, GUITAR_PROGRAMS)
    elif band == "rock":
        alto_program = tenor_program = _draw(rng, ROCK_GUITAR_PROGRAMS)
    elif band == "strings":
        alto_program = tenor_program = _draw(rng, STRINGS_PROGRAMS)
    elif band == "winds":
        alto_program, tenor_program = _draw(rng, HIGH_WIND_PROGRAMS), _draw(rng, LOW_WIND_PROGRAMS)
    else:
        alto_program, tenor_program = (str(rng.choice(["epiano", "organ", "strings"])) for _ in range(2))
    sustained = band in ("strings", "winds") or alto_program in (16, 18, 19, 21, "organ", "strings")
    legato = rng.uniform(0.0, 0.05) if sustained else rng.uniform(-0.1, -0.02)
    jitter = {"keys": 0.006, "guitar": 0.008, "rock": 0.006, "strings": 0.015, "winds": 0.012, "synth": 0.008}[band]
    velocity = rng.uniform(65, 100)
    alto = perform(chorale["parts"]["Alto"], chorale, tmap, rng, key_shift, velocity, jitter=jitter,
                   lag=rng.normal(0, 0.006), legato=legato, pulse=pulse)
    tenor = perform(chorale["parts"]["Tenor"], chorale, tmap, rng, key_shift, velocity - rng.uniform(0, 8),
                    jitter=jitter, lag=rng.normal(0, 0.006), legato=legato, pulse=pulse)
    if band in ("guitar", "rock"):
        _strum(tenor, alto, rng)
    other = {"alto": play(sound_font, alto_program, alto, total, rate, rng),
             "tenor": play(sound_font, tenor_program, tenor, total, rate, rng)}
    drive = None
    if band == "rock":  # two overdriven guitars through a cabinet: bright, dense, compressed
        drive = float(rng.uniform(12, 30))
        cabinet = [("highpass", rng.uniform(80, 200), 0.0, 0.7),
                   ("peak", rng.uniform(1500, 3000), rng.uniform(2, 6), 1.0)]
        lowpass = signal.butter(2, min(rng.uniform(4000, 6500), 0.45 * rate) / (rate / 2), output="sos")
        for part in ("alto", "tenor"):
            driven = synth.saturate(synth.equalise(other[part][None], cabinet, rate), drive)
            other[part] = signal.sosfilt(lowpass, driven[0])
    lead_program = None
    if lead_notes and rng.random() < 0.7:  # the tune on an instrument while the voice rests
        lead_program = kind({**HIGH_WIND_PROGRAMS, 0: 2, 24: 1, 27: 1, 4: 1}, ("epiano", "organ", "strings"))
        lead = perform(lead_notes, chorale, tmap, rng, key_shift, rng.uniform(85, 110), jitter=0.01, legato=0.02)
        other["lead"] = rng.uniform(1.0, 1.6) * play(sound_font, lead_program, lead, total, rate, rng)
    pad_program = None
    if band in ("keys", "guitar") and rng.random() < 0.3:  # a quiet pad under the chords
        pad_program = _draw(rng, PAD_PROGRAMS)
        pad_level = 10 ** (rng.uniform(-14, -6) / 20)
        other["pad"] = pad_level * (play(sound_font, pad_program, perform(
            chorale["parts"]["Alto"], chorale, tmap, rng, key_shift, 70, legato=0.04), total, rate, rng)
            + play(sound_font, pad_program, perform(chorale["parts"]["Tenor"], chorale, tmap, rng, key_shift, 70,
                                                    legato=0.04), total, rate, rng))
    if band == "keys" and rng.random() < 0.3:  # the pianist's left hand doubles the bass line
        other["bass_octave"] = 0.6 * play(sound_font, alto_program, perform(
            chorale["parts"]["Bass"], chorale, tmap, rng, key_shift, velocity - 10, jitter=jitter), total, rate, rng)
    # chorale accompaniments often double the melody ("colla parte"): the hard case,
    # where the voice and an instrument share the same harmonics
    double_program = None
    if rng.random() < 0.5:
        double_program = kind({**HIGH_WIND_PROGRAMS, **KEYS_PROGRAMS, 48: 2}, ("epiano", "organ", "strings"))
        level = 10 ** (rng.uniform(-12, -3) / 20)
        octave_down = int(rng.choice([0, -12]))
        melody = perform(chorale["parts"]["Soprano"], chorale, tmap, rng, key_shift + octave_down, 80, jitter=0.01)
        other["melody"] = level * play(sound_font, double_program, melody, total, rate, rng)
    bass = {"bass": play(sound_font, bass_program, bass_notes, total, rate, rng, transpose=-12)}

    # drums
    style = int(rng.integers(6))
    hits = _drum_hits(chorale, tmap, style)
    drums_enter = 0.0
    if phrase_ends and rng.random() < 0.25:  # an intro without drums: they come in with the second phrase
        drums_enter = float(tmap(phrase_ends[0])) - 0.05
        hits = [h for h in hits if h[0] >= drums_enter]
    kit = _draw(rng, DRUM_KITS) if rng.random() < sampled * 0.85 else None
    if kit is None:
        drums = synth.place_hits(hits, synth.drum_kit(rate, rng), total, rate, rng)
        drum_levels = {"kick": 1.0, "snare": 0.7, "hat": 0.25, "open_hat": 0.2, "crash": 0.25, "tom": 0.5}
    else:
        keys = {"snare": int(rng.choice([38, 40], p=[0.7, 0.3])),
                "hat": int(rng.choice([42, 44, 51], p=[0.7, 0.1, 0.2]))}
        if kit in (32, 40) and rng.random() < 0.6:
            keys["hat"] = 51  # jazz and brush kits: ride cymbal
        drums = _sampled_drums(sound_font, kit, hits, total, rate, rng, {"keys": keys})
        drum_levels = {"kick": 1.0, "snare": 0.8, "hat": 0.5, "open_hat": 0.35, "crash": 0.35, "tom": 0.6}
        if rng.random() < 0.4:  # a synthetic kick under the sampled one, for weight
            body = synth.place_hits([h for h in hits if h[1] == "kick"], synth.drum_kit(rate, rng), total, rate, rng)
            drums["kick_body"] = body["kick"] * rng.uniform(0.3, 0.8)
            drum_levels["kick_body"] = 1.0
    drums = {k: v * drum_levels[k] * rng.uniform(0.8, 1.2) for k, v in drums.items()}

    components = {"vocals": {"vocals": voice}, "bass": bass, "other": other, "drums": drums}
    # stem levels in dB relative to the vocals, varied per chorale
    levels_db = {"vocals": 0.0, "bass": -3.0, "other": -3.0, "drums": -5.0}
    pans = {part: float(np.clip(p + rng.normal(0, 0.15), -1, 1)) if p else 0.0 for part, p in PANS.items()}
    # rooms: one for the whole band, or one per stem (overdubs recorded apart)
    shared = synth.room_response(rate, rng, rng.uniform(0.4, 2.0), channels) if rng.random() < 0.5 else None
    stems, chains = {}, {}
    for stem in MUSDB_SOURCES:
        audio = np.zeros((channels, total))
        for part, mono in components[stem].items():
            if channels == 1:
                audio[0] += mono
            else:  # constant-power panning
                angle = (pans[part] + 1) * np.pi / 4
                audio[0] += np.cos(angle) * mono
                audio[1] += np.sin(angle) * mono
        room = None if shared is not None else synth.room_response(rate, rng, rng.uniform(0.25, 2.2), channels)
        audio, chains[stem] = _chain(audio, stem, rate, rng, room, shared)
        rms = np.sqrt(np.mean(audio ** 2)) + 1e-12
        gain_db = levels_db[stem] + rng.uniform(-3, 3)
        stems[stem] = audio / rms * 10 ** (gain_db / 20)
    glue = None
    if rng.random() < 0.5:  # bus compression: one gain for every stem, so the mixture stays their sum
        glue = {"ratio": round(float(rng.uniform(1.5, 3)), 1), "threshold_db": round(float(rng.uniform(-8, -2)), 1)}
        gain = synth.compressor_gain(sum(stems.values()), rate, glue["threshold_db"], glue["ratio"], 0.01, 0.2)
        stems = {k: v * gain for k, v in stems.items()}

    def name(program):
        return program if isinstance(program, str) or program is None else \
            f"{program}:{sound_font.preset_name(0, program)}"

    info = {"title": chorale["name"], "bpm": round(float(bpm), 2), "transpose": int(transpose),
            "key_shift": key_shift, "lyrics": chorale["has_lyrics"],
            "voice": {"type": voice_type, "kind": voice_kind, "program": name(voice_program),
                      "vibrato_hz": round(singer["vibrato_hz"], 2), "formant_scale": round(singer["formant_scale"], 3)},
            "instruments": {"band": str(band), "bass": name(bass_program), "alto": name(alto_program),
                            "tenor": name(tenor_program), "pad": name(pad_program),
                            "melody_doubled_by": name(double_program),
                            "drums": f"kit {kit}:{sound_font.preset_name(128, kit)}" if kit is not None else "synth",
                            "lead": name(lead_program), "overdrive_db": drive,
                            "pulse": pulse, "bass_pulse": None if bass_pulse is None else float(bass_pulse)},
            "instrumental_phrases": sorted(int(k) for k in tacet), "backing_vocals": backing_type,
            "drums_enter_s": round(drums_enter, 2),
            "drum_style": style, "shared_room": shared is not None, "glue": glue, "chains": chains,
            "reverb_db": {k: v["reverb_db"] for k, v in chains.items()},
            # when each part plays, in seconds (for checks; not written to tracks.json)
            "notes": {"vocals": [(n["start"], n["end"], n["midi"]) for n in sung],
                      "bass": [(n["start"], n["end"], n["midi"]) for n in bass_notes],
                      "other": [(n["start"], n["end"], n["midi"]) for n in alto + tenor]}}
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
    sound_font = None
    if params.get("instruments", "mixed") != "synth":
        sound_font = soundfont.load(params.get("soundfont_path"))
    for index, (chorale, split, version) in enumerate(tqdm(jobs, desc="rendering chorales", disable=not progress)):
        rng = np.random.default_rng([seed, index])
        transpose, tempo = 0, 1.0
        if version:  # augmented copy: transposed, faster or slower, other levels
            transpose, tempo = int(rng.integers(-3, 4)), float(rng.uniform(0.85, 1.15))
        stems, info = render_chorale(chorale, params["rate"], params["channels"], rng, transpose, tempo,
                                     params.get("instruments", "mixed"), sound_font)
        name = chorale["name"] + (f"+aug{version}" if version else "")
        write_track(folder / split / name, quantise_stems(stems), params["rate"])
        info.pop("notes")
        metadata[name] = {**info, "split": split, "augmented": bool(version)}
        seconds[split] += stems["vocals"].shape[1] / params["rate"]
    (folder / "tracks.json").write_text(json.dumps(metadata, indent=1))
    return {"render_seconds": round(time.perf_counter() - t0, 2), "audio_seconds": seconds,
            "tracks": {s: sum(m["split"] == s for m in metadata.values()) for s in seconds}}
