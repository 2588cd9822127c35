"""tpsep's small numpy synthesizer: a singing voice, plucked/bowed bass, keyboards, strings, drums,
and the rooms and mixing tools that make a recording of them.

Everything is vectorised (one numpy call per note, ``scipy.signal`` filters per
note or per line), so a whole chorale renders in a fraction of a second. The
instruments are deliberately simple but spectrally rich: harmonic sources with
vibrato, onsets and decays, noise in the consonants and the drums. The sampled
instruments of :mod:`tpsep.data.soundfont` play beside them.

The singer (:func:`draw_singer`, :func:`sung_contour`, :func:`sing`, :func:`articulation`,
:func:`sampled_voice`): one pitch and loudness contour per line (vibrato with a per-note
delay, depth and rate; scoops, glides, drift, intonation errors, jitter and shimmer;
consonant dips) drives either a source-filter voice (glottal source through vowel
formants scaled to the voice type) or a sampled choir vowel bent along the same curve;
consonant noise and breaths are added on top.

The recording (:func:`room_response`, :func:`reverberate`, :func:`draw_eq`, :func:`equalise`,
:func:`compressor_gain`, :func:`saturate`): rooms with early reflections and a tail whose
highs die first, RBJ-cookbook shelves and peaks, an RMS compressor, soft clipping.

Conventions: ``rate`` in Hz, times in seconds, pitches as MIDI numbers, every
function returns float mono ``(samples,)`` unless said otherwise, and every
random choice comes from the ``rng`` (a ``numpy.random.Generator``) passed in.
"""

from __future__ import annotations

import numpy as np
from scipy import signal

TABLE_SIZE = 2048


def midi_to_hz(midi):
    return 440.0 * 2.0 ** ((np.asarray(midi, dtype=np.float64) - 69.0) / 12.0)


# ---------------------------------------------------------------------------
# oscillators

def harmonic_table(amplitudes) -> np.ndarray:
    """One period (``TABLE_SIZE`` samples) of ``sum_k a_k sin(2 pi k t)``, k = 1..len(amplitudes)."""
    spectrum = np.zeros(TABLE_SIZE // 2 + 1, dtype=np.complex128)
    amplitudes = np.asarray(amplitudes, dtype=np.float64)[: TABLE_SIZE // 2 - 1]
    spectrum[1:len(amplitudes) + 1] = -1j * amplitudes * TABLE_SIZE / 2
    table = np.fft.irfft(spectrum, TABLE_SIZE)
    return np.append(table, table[0])  # guard point for interpolation


def band_limit(amplitudes, f0_max: float, rate: int) -> np.ndarray:
    """Drop the harmonics that would alias at ``f0_max`` (keep those below 0.95 * Nyquist)."""
    amplitudes = np.asarray(amplitudes, dtype=np.float64)
    n = max(1, int(0.95 * rate / 2 / max(f0_max, 1.0)))
    return amplitudes[:n]


def table_lookup(table: np.ndarray, phase_cycles: np.ndarray, *more_tables) -> np.ndarray:
    """Read a wavetable at ``phase_cycles`` (float64, in periods) with linear interpolation.

    With ``more_tables``, returns one signal per table (the positions are computed once).
    """
    position = (phase_cycles % 1.0) * TABLE_SIZE
    index = np.minimum(position.astype(np.int32), TABLE_SIZE - 1)  # phase % 1 can round up to 1.0
    frac = (position - index).astype(np.float32)
    outputs = []
    for t in (table,) + more_tables:
        t = t.astype(np.float32)
        low = t[index]
        outputs.append(low + (t[index + 1] - low) * frac)
    return outputs[0] if not more_tables else outputs


def phase_from_f0(f0: np.ndarray, rate: int, start: float = 0.0) -> np.ndarray:
    """Running phase in periods of an oscillator with frequency ``f0`` (Hz, per sample)."""
    return start + np.cumsum(f0 / rate)


def adsr(n: int, rate: int, attack: float, decay: float, sustain: float, release: float) -> np.ndarray:
    """Attack/decay/sustain envelope of ``n`` samples, with a release inside the last ``release`` seconds."""
    t = np.arange(n) / rate
    env = np.where(t < attack, t / max(attack, 1e-4),
                   sustain + (1 - sustain) * np.exp(-(t - attack) / max(decay, 1e-4)))
    n_release = min(n, int(release * rate))
    if n_release > 0:
        env[n - n_release:] *= np.linspace(1.0, 0.0, n_release) ** 2
    return env


def smooth(x: np.ndarray, rate: int, seconds: float) -> np.ndarray:
    """One-pole low-pass smoothing with time constant ``seconds`` (used for glides and envelopes)."""
    a = np.exp(-1.0 / max(seconds * rate, 1.0))
    y, _ = signal.lfilter([1 - a], [1, -a], x, zi=[x[0] * a] if len(x) else [0.0])
    return y


def lowpass_noise(n: int, rate: int, cutoff: float, rng) -> np.ndarray:
    """Smooth random fluctuation with unit standard deviation, ``(n,)``, for jitter and drift.

    Made at a low control rate (8 points per period of ``cutoff``) and interpolated:
    it changes slowly, so there is no need to draw one random number per sample.
    """
    step = max(1, int(rate / (8 * cutoff)))
    points = rng.standard_normal(n // step + 2)
    b, a = signal.butter(1, 0.25)
    points = signal.lfilter(b, a, points)
    x = np.interp(np.arange(n) / step, np.arange(len(points)), points)
    return x / (np.std(x) + 1e-12)


# ---------------------------------------------------------------------------
# the singing voice

# Formants of a sung (soprano) vowel: frequencies (Hz) and bandwidths (Hz), after
# the classic tables of sung vowels used in formant synthesis.
VOWEL_FORMANTS = {
    "a": ((800, 1150, 2900, 3900), (80, 90, 120, 130)),
    "e": ((350, 2000, 2800, 3600), (60, 100, 120, 150)),
    "i": ((270, 2140, 2950, 3900), (60, 90, 100, 120)),
    "o": ((450, 800, 2830, 3800), (40, 80, 100, 120)),
    "u": ((325, 700, 2700, 3800), (50, 60, 170, 180)),
}
VOWELS = tuple(VOWEL_FORMANTS)
PLOSIVES = set("bdgptk")
FRICATIVES = set("sfvzwhjcx")


def syllable_sounds(syllable: str | None) -> tuple:
    """``(onset consonants, vowel)`` of a lyric syllable, e.g. "Schön" -> ("sch", "e").

    German diphthongs are sung on their first, open vowel ("ei" and "au" on a, "eu" on o),
    umlauts on the nearest of the five vowels.
    """
    if not syllable:
        return "", None
    text = syllable.lower()
    for src, dst in (("äu", "o"), ("eu", "o"), ("ei", "a"), ("ai", "a"), ("au", "a"), ("ie", "i"),
                     ("ä", "e"), ("ö", "e"), ("ü", "u"), ("y", "i"), ("ß", "s")):
        text = text.replace(src, dst)
    letters = "".join(c for c in text if c.isalpha())
    for i, c in enumerate(letters):
        if c in "aeiou":
            return letters[:i], c
    return letters, None


def formant_sos(vowel: str, rate: int, scale: float = 1.0) -> np.ndarray:
    """Cascade of second-order resonators (unit gain at 0 Hz) for ``vowel``: sos array ``(n, 6)``."""
    sections = []
    for freq, bw in zip(*VOWEL_FORMANTS[vowel]):
        freq = freq * scale
        if freq >= 0.45 * rate:
            continue
        r = np.exp(-np.pi * bw / rate)
        a1, a2 = -2 * r * np.cos(2 * np.pi * freq / rate), r * r
        sections.append([1 + a1 + a2, 0, 0, 1, a1, a2])
    return np.array(sections)


# A singer: the timbre and the habits drawn once per track. The voice types set the
# formant scale (vocal-tract length) and the octave the melody is sung in.
VOICE_TYPES = {  # name: (formant scale range, octave below the soprano line, typical median MIDI pitch)
    "soprano": ((1.0, 1.07), 0, 71),
    "alto": ((0.94, 1.0), 0, 66),
    "tenor": ((0.86, 0.93), 12, 60),
    "baritone": ((0.8, 0.87), 12, 55),
}


def draw_singer(rng, voice_type: str) -> dict:
    """The habits and timbre of one singer of ``voice_type`` (a key of ``VOICE_TYPES``)."""
    scale = VOICE_TYPES[voice_type][0]
    return {"type": voice_type, "formant_scale": rng.uniform(*scale),
            "brightness": rng.uniform(0.9, 1.6), "aspiration": rng.uniform(0.03, 0.12),
            "vibrato_hz": rng.uniform(5.0, 6.5), "vibrato_depth": rng.uniform(0.15, 0.55),  # semitones, peak
            "vibrato_delay": rng.uniform(0.1, 0.4), "scoop_prob": rng.uniform(0.1, 0.7),
            "scoop_cents": rng.uniform(30, 150), "glide_s": rng.uniform(0.015, 0.07),
            "drift_cents": rng.uniform(4, 18), "intonation_cents": rng.uniform(3, 12),
            "jitter": rng.uniform(0.02, 0.06), "shimmer": rng.uniform(0.02, 0.07),
            "consonant_db": rng.uniform(-6, 3), "breath_db": rng.uniform(-30, -18),
            "singer_formant_db": float(rng.choice([0.0, rng.uniform(3, 10)])),
            "swell": rng.uniform(-0.1, 0.3), "attack_s": rng.uniform(0.02, 0.06)}


def sung_contour(notes, total: int, rate: int, rng, singer: dict) -> dict:
    """The pitch and loudness curves of a sung line, shared by the synthetic and the sampled voices.

    Pitch: each note held until the next one, glides between them, scoops into some
    onsets, vibrato that starts after a delay with a depth and rate varying from note
    to note, slow drift, per-note intonation errors and fast jitter. Loudness: each
    note's dynamics (``velocity``), swells on long notes, dips at the consonants, the
    closure of plosives, and a fast random shimmer.

    Args:
        notes: dicts with ``start``, ``end`` (seconds), ``midi``, ``vowel``, ``onset``,
            ``new_syllable`` and optional ``velocity`` (0-127, default 90).

    Returns:
        ``{"pitch": (total,) MIDI float, "gate": (total,) linear gain, "starts", "ends": sample indices}``.
    """
    starts = np.array([min(int(nt["start"] * rate), total) for nt in notes], dtype=np.int64)
    ends = np.array([min(int(nt["end"] * rate), total) for nt in notes], dtype=np.int64)
    pitch = np.full(total, float(notes[0]["midi"]) if notes else 60.0)
    vib_depth, vib_rate = np.zeros(total), np.full(total, singer["vibrato_hz"])
    gate = np.zeros(total)
    t_note = np.zeros(total)  # seconds since the note's onset
    for i, nt in enumerate(notes):
        a, b = starts[i], (starts[i + 1] if i + 1 < len(notes) else total)
        if b <= a:
            continue
        pitch[a:b] = nt["midi"] + rng.normal(0, singer["intonation_cents"]) / 100
        t = np.arange(b - a) / rate
        t_note[a:b] = t
        duration = (ends[i] - a) / rate
        delay = singer["vibrato_delay"] * rng.uniform(0.7, 1.4)
        depth = singer["vibrato_depth"] * rng.uniform(0.6, 1.3)
        vib_depth[a:b] = depth * np.clip((t - delay) / 0.25, 0, 1) * np.clip((duration + 0.05 - t) / 0.1, 0, 1)
        vib_rate[a:b] = singer["vibrato_hz"] + rng.normal(0, 0.2)
        level = 10 ** ((nt.get("velocity", 90) - 90) / 127 * 18 / 20)  # about 18 dB over the velocity range
        on = np.arange(ends[i] - a) / rate
        swell = 1 + singer["swell"] * np.sin(np.pi * on / max(duration, 1e-3)) if duration > 0.8 else 1.0
        gate[a:ends[i]] = level * swell
    # glides between notes, then scoops into some of the new syllables
    pitch = smooth(pitch, rate, singer["glide_s"])
    for i, nt in enumerate(notes):
        if nt["new_syllable"] and rng.random() < singer["scoop_prob"]:
            a = starts[i]
            b = min(a + int(0.35 * rate), total)
            depth = singer["scoop_cents"] * rng.uniform(0.5, 1.2) / 100
            pitch[a:b] -= depth * np.exp(-np.arange(b - a) / (rng.uniform(0.03, 0.09) * rate))
    vib_rate = vib_rate * (1 + 0.03 * lowpass_noise(total, rate, 1.0, rng))
    vibrato = smooth(vib_depth, rate, 0.05) * np.sin(2 * np.pi * np.cumsum(vib_rate) / rate + rng.uniform(0, 6.3))
    pitch = pitch + vibrato + singer["drift_cents"] / 100 * lowpass_noise(total, rate, 0.4, rng) \
        + singer["jitter"] * lowpass_noise(total, rate, 25.0, rng)
    # consonants interrupt the voicing: a dip before each new syllable, a silence at plosive closures
    for i, nt in enumerate(notes):
        if not nt["new_syllable"] or not i or not nt["onset"]:
            continue
        dip = int(rng.uniform(0.03, 0.07) * rate)
        a = max(starts[i] - dip, 0)
        voiced = nt["onset"][-1] in "lmnrwjv"
        gate[a:starts[i]] *= 0.4 if voiced else 0.05
        if set(nt["onset"]) & PLOSIVES:
            gate[starts[i]:starts[i] + int(0.025 * rate)] *= 0.05
    gate = smooth(gate, rate, singer["attack_s"] / 2) * (1 + singer["shimmer"] * lowpass_noise(total, rate, 20.0, rng))
    return {"pitch": pitch, "gate": np.maximum(gate, 0), "starts": starts, "ends": ends}


def sing(notes, total: int, rate: int, rng, singer: dict, contour: dict) -> np.ndarray:
    """A sung line by source-filter synthesis: glottal source -> vowel formants, plus consonants.

    Args:
        notes: as for :func:`sung_contour` (``vowel`` one of a, e, i, o, u; ``onset`` the
            consonant letters before it; ``new_syllable`` False for a melisma).
        singer: from :func:`draw_singer`; contour: from :func:`sung_contour`.

    Returns:
        ``(total,)`` float64, unit RMS where it sings.
    """
    if not notes:
        return np.zeros(total)
    starts = contour["starts"]
    f0 = midi_to_hz(contour["pitch"])
    phase = phase_from_f0(f0, rate, rng.uniform())
    # glottal source: band-limited harmonics with a spectral tilt (louder notes are brighter)
    source = np.zeros(total)
    k = np.arange(1, 200)
    for i, nt in enumerate(notes):
        a = starts[i] if i else 0
        b = starts[i + 1] if i + 1 < len(notes) else total
        if b <= a:
            continue
        tilt = singer["brightness"] - 0.4 * (nt.get("velocity", 90) - 90) / 40
        table = harmonic_table(band_limit(k ** -tilt, f0[a:b].max(), rate))
        source[a:b] = table_lookup(table, phase[a:b])
    source /= np.sqrt(np.mean(source ** 2)) + 1e-12
    hp_b, hp_a = signal.butter(2, 1500 / (rate / 2), "high")
    noise = signal.lfilter(hp_b, hp_a, rng.standard_normal(total))
    source = source + singer["aspiration"] * noise * (0.6 + 0.4 * np.cos(2 * np.pi * phase))
    gate = contour["gate"]
    source *= gate
    # vowel formants, a little different on every note, cross-faded over 40 ms
    voice = np.zeros(total)
    fade = int(0.04 * rate)
    for i, nt in enumerate(notes):
        a = max(starts[i] - fade, 0) if i else 0
        b = min(starts[i + 1] + fade, total) if i + 1 < len(notes) else total
        if b <= a:
            continue
        sos = formant_sos(nt["vowel"], rate, singer["formant_scale"] * rng.uniform(0.97, 1.03))
        segment = signal.sosfilt(sos, source[a:b])
        window = np.ones(b - a)
        ramp = min(2 * fade, (b - a) // 2)
        if i:
            window[:ramp] = np.linspace(0, 1, ramp)
        if i + 1 < len(notes):
            window[len(window) - ramp:] = np.linspace(1, 0, ramp)
        voice[a:b] += segment * window
        if nt["new_syllable"] and nt["onset"] and nt["onset"][-1] in "mn":  # a nasal murmur before the vowel
            c, d = max(starts[i] - int(0.06 * rate), 0), starts[i] + int(0.02 * rate)
            murmur = signal.sosfilt(formant_sos("u", rate, singer["formant_scale"] * 0.8), source[c:d])
            voice[c:d] += 0.5 * murmur * np.hanning(d - c)
    voice /= np.sqrt(np.mean(voice ** 2)) + 1e-12
    # the cascade falls steeply above the 4th formant; real voices keep some air up there
    hf_b, hf_a = signal.butter(2, min(3500, 0.4 * rate) / (rate / 2), "high")
    air = signal.lfilter(hf_b, hf_a, source)
    voice += 0.08 * air / (np.sqrt(np.mean(air ** 2)) + 1e-12) * np.sqrt(np.mean(gate ** 2))
    if singer["singer_formant_db"] > 0 and rate > 8000:  # the "singer's formant" near 3 kHz
        peak = peaking_sos(3000 * singer["formant_scale"], singer["singer_formant_db"], 1.5, rate)
        voice = signal.sosfilt(peak, voice)
    return voice / (np.sqrt(np.mean(voice ** 2)) + 1e-12)


def articulation(notes, total: int, rate: int, rng, singer: dict, contour: dict) -> np.ndarray:
    """The unvoiced part of singing: consonant noise at syllable onsets and breaths before phrases,
    ``(total,)`` at levels relative to a unit-RMS voice."""
    out = np.zeros(total)
    starts, ends = contour["starts"], contour["ends"]
    level = 10 ** (singer["consonant_db"] / 20)
    for i, nt in enumerate(notes):
        if nt["new_syllable"] and nt["onset"]:
            out += level * consonant(nt["onset"], starts[i], total, rate, rng)
    # a breath in every gap of 0.2 s or more (and before the first note), most of the time
    breath_level = 10 ** (singer["breath_db"] / 20)
    for i in range(len(notes)):
        gap = (starts[i] - (ends[i - 1] if i else 0)) / rate
        if i and gap < 0.2 or rng.random() < 0.2:
            continue
        length = int(min(gap - 0.03, rng.uniform(0.25, 0.55)) * rate) if i else int(rng.uniform(0.25, 0.5) * rate)
        b = starts[i] - int(0.03 * rate)
        a = max(b - length, 0)
        if b - a < int(0.1 * rate):
            continue
        hiss = signal.sosfilt(formant_sos(str(rng.choice(["a", "o", "e"])), rate, singer["formant_scale"]),
                              rng.standard_normal(b - a))
        hp_b, hp_a = signal.butter(1, 300 / (rate / 2), "high")
        hiss = signal.lfilter(hp_b, hp_a, hiss)
        shape = np.sin(np.linspace(0, np.pi, b - a)) ** 1.5
        out[a:b] += breath_level * hiss / (np.std(hiss) + 1e-12) * shape
    return out


def sampled_voice(sound_font, program: int, notes, total: int, rate: int, contour: dict) -> np.ndarray:
    """The sung line played on a sampled voice preset (e.g. General MIDI 52 "Choir Aahs"), bent
    along the contour's pitch curve: one sample per syllable (a melisma glides on it), shaped by
    the contour's loudness. ``(total,)``, unit RMS where it sings."""
    out = np.zeros(total)
    starts, ends = contour["starts"], contour["ends"]
    groups, current = [], []
    for i, nt in enumerate(notes):
        if current and (nt["new_syllable"] or starts[i] > ends[current[-1]] + 1
                        or abs(nt["midi"] - notes[current[0]]["midi"]) > 4):
            groups.append(current)
            current = []
        current.append(i)
    if current:
        groups.append(current)
    for group in groups:
        a, b = starts[group[0]], ends[group[-1]]
        if b - a < 16:
            continue
        key = notes[group[0]]["midi"]
        tail = int(0.15 * rate)
        cents = 100 * (contour["pitch"][a:min(b + tail, total)] - key)
        velocity = int(np.clip(np.mean([notes[i].get("velocity", 90) for i in group]) + 10, 1, 127))
        sound = sound_font.note(0, program, key, (b - a) / rate, rate, velocity, cents=cents, tail=0.15)
        end = min(a + len(sound), total)
        out[a:end] += sound[:end - a]
    out *= smooth(contour["gate"] / (np.max(contour["gate"]) + 1e-12), rate, 0.01) ** 0.7
    return out / (np.sqrt(np.mean(out ** 2)) + 1e-12)


def consonant(letters: str, at: int, total: int, rate: int, rng) -> np.ndarray:
    """A fricative hiss or plosive burst (with its aspiration) ending at sample ``at``: ``(total,)``, mostly zeros."""
    out = np.zeros(total)
    first = letters[0]
    if letters.startswith("sch") or letters.startswith("ch"):
        band, length, level = (1800, 5500), 0.09, 0.5
    elif first in "sz":
        band, length, level = (4000, 7800), 0.08, 0.45
    elif first in "fvw":
        band, length, level = (1000, 7000), 0.06, 0.2
    elif first in "hj":
        band, length, level = (500, 4000), 0.05, 0.15
    elif first in PLOSIVES:
        band, length, level = (300, 6500), 0.015, 0.9
    else:  # nasals and liquids are voiced: the dip in the gate (and the murmur) are enough
        return out
    length *= rng.uniform(0.7, 1.4)
    n = int(length * rate)
    a = max(at - n, 0)
    n = at - a
    if n < 8:
        return out
    high = min(band[1], 0.45 * rate)
    low = min(band[0], 0.6 * high)  # at low sample rates the band moves down, below Nyquist
    b, a_coef = signal.butter(2, [low / (rate / 2), high / (rate / 2)], "band")
    burst = signal.lfilter(b, a_coef, rng.standard_normal(n))
    envelope = np.sin(np.linspace(0, np.pi, n)) if first not in PLOSIVES else np.exp(-np.arange(n) / (0.004 * rate))
    out[a:at] = level * rng.uniform(0.7, 1.3) * burst * envelope / (np.std(burst) + 1e-12)
    if first in "ptk":  # aspiration after the burst, into the vowel
        m = min(int(rng.uniform(0.02, 0.05) * rate), total - at)
        if m > 8:
            hb, ha = signal.butter(2, [min(1000, 0.2 * rate) / (rate / 2), min(5000, 0.45 * rate) / (rate / 2)], "band")
            breath = signal.lfilter(hb, ha, rng.standard_normal(m))
            out[at:at + m] += 0.25 * breath / (np.std(breath) + 1e-12) * np.linspace(1, 0, m)
    return out


# ---------------------------------------------------------------------------
# pitched instruments, one note at a time

INSTRUMENTS = ("pluck_bass", "bowed_bass", "epiano", "organ", "strings")


def instrument_note(kind: str, midi: float, seconds: float, rate: int, rng) -> np.ndarray:
    """One note of a pitched instrument, ``(samples,)`` including a short release tail."""
    if kind not in INSTRUMENTS:
        raise ValueError(f"unknown instrument {kind!r}; expected one of {INSTRUMENTS}")
    tail = {"pluck_bass": 0.15, "bowed_bass": 0.12, "epiano": 0.25, "organ": 0.06, "strings": 0.18}[kind]
    n = int((seconds + tail) * rate)
    if n <= 0:
        return np.zeros(0)
    t = np.arange(n) / rate
    f = midi_to_hz(midi)
    k = np.arange(1, 120, dtype=np.float64)
    if kind == "pluck_bass":
        bright = band_limit(np.exp(-0.25 * (k - 1)) / k ** 0.5, f, rate)
        dull = band_limit(np.exp(-1.2 * (k - 1)), f, rate)
        f0 = np.full(n, f)
        morph = np.exp(-t / 0.12)
        env = np.exp(-t / rng.uniform(0.6, 1.2)) * np.minimum(1, t / 0.004)
    elif kind == "bowed_bass":
        bright = band_limit(1 / k ** 1.2, f, rate)
        dull = band_limit(1 / k ** 1.8, f, rate)
        f0 = f * (1 + 0.003 * np.sin(2 * np.pi * 5 * t) * np.clip(t / 0.3, 0, 1))
        morph = np.exp(-t / 0.08)
        env = adsr(n, rate, 0.06, 0.2, 0.8, 0.0)
    elif kind == "epiano":
        bright = band_limit(np.array([1, 0.6, 0.1, 0.25, 0.05, 0.12, 0.02, 0.06]) * 1.0, f, rate)
        dull = band_limit(np.array([1, 0.15, 0.02]), f, rate)
        f0 = np.full(n, f)
        morph = np.exp(-t / 0.25)
        env = np.exp(-t / 1.5) * np.minimum(1, t / 0.003)
    elif kind == "organ":
        drawbars = np.zeros(16)
        drawbars[[0, 1, 2, 3, 5, 7]] = [1, 0.7, 0.5, 0.35, 0.2, 0.15]
        bright = dull = band_limit(drawbars, f, rate)
        f0 = np.full(n, f)
        morph = np.zeros(n)
        env = adsr(n, rate, 0.015, 0.05, 0.9, 0.0)
    elif kind == "strings":
        bright = band_limit(1 / k ** 1.1, f, rate)
        dull = band_limit(1 / k ** 1.6, f, rate)
        f0 = f * (1 + 0.004 * np.sin(2 * np.pi * 5.2 * t + rng.uniform(0, 6.3)) * np.clip(t / 0.4, 0, 1))
        morph = 1 - np.clip(t / 0.15, 0, 1)
        env = adsr(n, rate, 0.09, 0.3, 0.85, 0.0)
    else:
        raise ValueError(f"unknown instrument {kind!r}; expected one of {INSTRUMENTS}")
    phase = phase_from_f0(f0, rate, rng.uniform())
    if kind == "organ":
        note = table_lookup(harmonic_table(bright), phase)
    else:
        loud, soft = table_lookup(harmonic_table(bright), phase, harmonic_table(dull))
        note = soft + morph * (loud - soft)
    if kind == "strings":  # a second, detuned bow for width
        note = 0.6 * note + 0.4 * table_lookup(harmonic_table(bright), phase * 1.004 + 0.3)
    release = np.ones(n)
    n_release = n - int(seconds * rate)
    if n_release > 0:
        release[-n_release:] = np.linspace(1, 0, n_release) ** 2
    return note * env * release


def play_line(kind: str, notes, total: int, rate: int, rng, transpose: int = 0) -> np.ndarray:
    """Every note of a part on one instrument: ``notes`` as dicts with start, end, midi; ``(total,)``."""
    out = np.zeros(total)
    for nt in notes:
        note = instrument_note(kind, nt["midi"] + transpose, nt["end"] - nt["start"], rate, rng)
        a = int(nt["start"] * rate)
        b = min(a + len(note), total)
        if b > a:
            out[a:b] += note[:b - a] * rng.uniform(0.85, 1.0)
    return out


# ---------------------------------------------------------------------------
# drums

DRUMS = ("kick", "snare", "hat", "open_hat", "crash", "tom")


def drum_hit(kind: str, rate: int, rng, tune: float = 1.0) -> np.ndarray:
    """One drum sound, ``(samples,)``, roughly unit peak."""
    length = {"kick": 0.45, "snare": 0.3, "hat": 0.08, "open_hat": 0.4, "crash": 1.5, "tom": 0.4}[kind]
    n = int(length * rate)
    t = np.arange(n) / rate
    noise = rng.standard_normal(n)
    nyq = rate / 2
    if kind in ("kick", "tom"):
        f_start, f_end, decay = (150, 48, 0.3) if kind == "kick" else (260, 120, 0.25)
        freq = tune * (f_end + (f_start - f_end) * np.exp(-t / 0.03))
        body = np.sin(2 * np.pi * np.cumsum(freq) / rate) * np.exp(-t / decay)
        click = noise * np.exp(-t / 0.003) * 0.3
        return body + click
    if kind == "snare":
        b, a = signal.butter(2, [1000 / nyq, min(7000, 0.45 * rate) / nyq], "band")
        rattle = signal.lfilter(b, a, noise)
        rattle = rattle / (np.std(rattle) + 1e-12) * 0.35 * np.exp(-t / 0.12)
        tone = np.sin(2 * np.pi * 190 * tune * t) * np.exp(-t / 0.06)
        return rattle + 0.7 * tone
    cutoff = min({"hat": 6000, "open_hat": 5500, "crash": 3000}[kind], 0.42 * rate)
    b, a = signal.butter(2, cutoff / nyq, "high")
    hiss = signal.lfilter(b, a, noise)
    hiss = hiss / (np.max(np.abs(hiss)) + 1e-12)
    decay = {"hat": 0.025, "open_hat": 0.15, "crash": 0.6}[kind]
    return hiss * np.exp(-t / decay)


def drum_kit(rate: int, rng, variants: int = 3) -> dict:
    """A kit: for each drum, a few slightly different hits (tuning, noise) to avoid a machine-gun sound."""
    tune = rng.uniform(0.9, 1.1)
    return {kind: [drum_hit(kind, rate, rng, tune * rng.uniform(0.98, 1.02)) for _ in range(variants)]
            for kind in DRUMS}


def place_hits(hits, kit: dict, total: int, rate: int, rng) -> dict:
    """Mix drum ``hits`` (list of ``(seconds, kind, velocity)``) into one ``(total,)`` track per drum."""
    out = {kind: np.zeros(total) for kind in kit}
    for seconds, kind, velocity in hits:
        sound = kit[kind][rng.integers(len(kit[kind]))]
        a = int((seconds + rng.normal(0, 0.004)) * rate)
        a = min(max(a, 0), total)
        b = min(a + len(sound), total)
        out[kind][a:b] += velocity * sound[:b - a]
    return out


def meter_pattern(beats_per_bar: int, style: int) -> list:
    """Hits of one bar as ``(beat, kind, velocity)``; beats count quarter notes from the downbeat."""
    hats = [(i / 2, "hat", 0.5 if i % 2 else 0.7) for i in range(beats_per_bar * 2)]
    if beats_per_bar == 3:
        core = [(0, "kick", 1.0), (1, "snare", 0.8), (2, "snare", 0.6)] if style % 2 else \
               [(0, "kick", 1.0), (1.5, "kick", 0.6), (2, "snare", 0.85)]
    else:
        core = [(0, "kick", 1.0), (1, "snare", 0.9), (2, "kick", 0.9), (3, "snare", 0.9)]
        if style % 3 == 1:
            core.append((2.5, "kick", 0.6))
        if style % 3 == 2:
            hats = [(i / 2, "hat", 0.6) for i in range(beats_per_bar * 2) if i % 2] + \
                   [(i, "open_hat", 0.5) for i in range(beats_per_bar)]
        core = [c for c in core if c[0] < beats_per_bar]
    return core + hats


def fill_pattern(beats_per_bar: int) -> list:
    """The last beat of a phrase: four sixteenths on snare and toms."""
    start = beats_per_bar - 1
    return [(start + i / 4, "snare" if i < 2 else "tom", 0.5 + 0.1 * i) for i in range(4)]


# ---------------------------------------------------------------------------
# rooms and recording chains

def room_response(rate: int, rng, rt60: float, channels: int = 1, early: bool = True) -> np.ndarray:
    """A synthetic room impulse response ``(channels, samples)``: early reflections, then a dense
    tail of decaying noise whose highs die faster (air and walls absorb them first).

    ``rt60`` is the time (s) for the tail to fall by 60 dB. The direct sound is left out (the
    dry signal is mixed in separately); the response has unit energy per channel.
    """
    n = int((rt60 + 0.1) * rate)
    t = np.arange(n) / rate
    noise = rng.standard_normal((channels, n))
    cutoff = min(rng.uniform(2000, 6000), 0.4 * rate)
    b, a = signal.butter(1, cutoff / (rate / 2))
    dull = signal.lfilter(b, a, noise, axis=-1)
    high_rt60 = rt60 * rng.uniform(0.3, 0.7)
    tail = dull * 10 ** (-3 * t / rt60) + (noise - dull) * 10 ** (-3 * t / high_rt60)
    predelay = rng.uniform(0.005, 0.03)
    onset = np.clip((t - predelay - 0.01) / rng.uniform(0.01, 0.05), 0, 1)  # the tail builds up
    tail = tail * onset * rng.uniform(0.5, 1.0)
    if early:  # a few discrete reflections from the walls, floor and ceiling
        for _ in range(int(rng.integers(4, 12))):
            delay = predelay + rng.uniform(0.0, 0.06)
            i = int(delay * rate)
            if i < n:
                tail[:, i] += rng.choice([-1, 1], size=channels) * rng.uniform(0.3, 1.0) * 10 ** (-3 * delay / rt60) \
                    * np.sqrt(rate / 1000) * 0.3
    return tail / (np.sqrt(np.sum(tail ** 2, axis=-1, keepdims=True)) + 1e-12)


def reverberate(audio: np.ndarray, response: np.ndarray, wet_db: float) -> np.ndarray:
    """``audio`` ``(channels, samples)`` plus its reverberation at ``wet_db`` relative level (same length)."""
    wet = signal.oaconvolve(audio.astype(np.float32), response[: audio.shape[0]].astype(np.float32),
                            axes=-1)[:, :audio.shape[1]]
    return audio + 10 ** (wet_db / 20) * wet


def peaking_sos(freq: float, gain_db: float, q: float, rate: int) -> np.ndarray:
    """A peaking EQ biquad (RBJ cookbook) as an sos array ``(1, 6)``."""
    freq = min(freq, 0.45 * rate)
    a_gain, w = 10 ** (gain_db / 40), 2 * np.pi * freq / rate
    alpha = np.sin(w) / (2 * q)
    b = [1 + alpha * a_gain, -2 * np.cos(w), 1 - alpha * a_gain]
    a = [1 + alpha / a_gain, -2 * np.cos(w), 1 - alpha / a_gain]
    return np.array([[*(np.array(b) / a[0]), 1, a[1] / a[0], a[2] / a[0]]])


def shelf_sos(freq: float, gain_db: float, rate: int, high: bool) -> np.ndarray:
    """A low or high shelf biquad (RBJ cookbook, slope 1) as an sos array ``(1, 6)``."""
    freq = min(freq, 0.45 * rate)
    a_gain, w = 10 ** (gain_db / 40), 2 * np.pi * freq / rate
    alpha = np.sin(w) / 2 * np.sqrt(2)
    cos, root = np.cos(w), 2 * np.sqrt(a_gain) * alpha
    sign = -1 if high else 1
    b = [a_gain * ((a_gain + 1) - sign * (a_gain - 1) * cos + root),
         sign * 2 * a_gain * ((a_gain - 1) - sign * (a_gain + 1) * cos),
         a_gain * ((a_gain + 1) - sign * (a_gain - 1) * cos - root)]
    a = [(a_gain + 1) + sign * (a_gain - 1) * cos + root,
         -sign * 2 * ((a_gain - 1) + sign * (a_gain + 1) * cos),
         (a_gain + 1) + sign * (a_gain - 1) * cos - root]
    return np.array([[*(np.array(b) / a[0]), 1, a[1] / a[0], a[2] / a[0]]])


def draw_eq(rng, rate: int, stem: str) -> list:
    """A random mixing EQ for ``stem``: a low cut, two shelves and one or two peaks, as
    ``[(kind, freq, gain_db, q)]`` (``kind``: highpass, lowshelf, highshelf, peak)."""
    bands = []
    low_cut = {"vocals": (70, 160), "other": (40, 150), "drums": (25, 60), "bass": (20, 45)}[stem]
    bands.append(("highpass", rng.uniform(*low_cut), 0.0, 0.7))
    bands.append(("lowshelf", rng.uniform(80, 250), rng.uniform(-4, 4), 0.7))
    treble = rng.uniform(-3, 7) if stem == "vocals" else rng.uniform(-6, 5)
    bands.append(("highshelf", rng.uniform(2500, 7000), treble, 0.7))
    if stem == "vocals" and rng.random() < 0.7:  # pop vocals are mixed with "presence"
        bands.append(("peak", rng.uniform(2000, 5000), rng.uniform(1, 7), rng.uniform(0.7, 2.0)))
    for _ in range(int(rng.integers(1, 3))):
        bands.append(("peak", float(np.exp(rng.uniform(np.log(150), np.log(5000)))), rng.uniform(-6, 6),
                      rng.uniform(0.5, 2.5)))
    return bands


def equalise(audio: np.ndarray, bands, rate: int) -> np.ndarray:
    """Apply ``bands`` (from :func:`draw_eq`) to ``audio`` ``(channels, samples)``."""
    sos = []
    for kind, freq, gain, q in bands:
        if kind == "highpass":
            sos.append(signal.butter(2, min(freq, 0.45 * rate) / (rate / 2), "high", output="sos"))
        elif kind == "peak":
            sos.append(peaking_sos(freq, gain, q, rate))
        else:
            sos.append(shelf_sos(freq, gain, rate, high=kind == "highshelf"))
    return signal.sosfilt(np.concatenate(sos), audio, axis=-1)


def compressor_gain(audio: np.ndarray, rate: int, threshold_db: float, ratio: float, attack: float,
                    release: float) -> np.ndarray:
    """The gain ``(samples,)`` of a feed-forward RMS compressor driven by ``audio`` ``(channels, samples)``.

    ``threshold_db`` is relative to the signal's overall RMS; above it, the level grows
    ``ratio`` times slower. The detector smooths the power over ``attack`` seconds and the
    gain recovers over ``release`` seconds (one-pole smoothers, run forwards).
    """
    power = np.mean(audio ** 2, axis=0)
    overall = np.mean(power) + 1e-20
    a = np.exp(-1 / (attack * rate))
    level = signal.lfilter([1 - a], [1, -a], power)
    level_db = 10 * np.log10(level / overall + 1e-12)
    reduction = np.minimum(0.0, (threshold_db - level_db) * (1 - 1 / ratio))
    r = np.exp(-1 / (release * rate))
    reduction = signal.lfilter([1 - r], [1, -r], reduction)
    return 10 ** (reduction / 20)


def saturate(audio: np.ndarray, drive_db: float) -> np.ndarray:
    """Soft clipping (tanh) with ``drive_db`` of drive, level-matched to the input's RMS."""
    rms = np.sqrt(np.mean(audio ** 2)) + 1e-12
    driven = np.tanh(audio / rms * 0.25 * 10 ** (drive_db / 20))
    return driven / (np.sqrt(np.mean(driven ** 2)) + 1e-12) * rms
