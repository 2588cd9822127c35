"""tpsep's small numpy synthesizer: a singing voice, plucked/bowed bass, keyboards, strings, drums.

Everything is vectorised (one numpy call per note, ``scipy.signal`` filters per
note or per line), so a whole chorale renders in a fraction of a second. The
instruments are deliberately simple but spectrally rich: harmonic sources with
vibrato, onsets and decays, noise in the consonants and the drums, so that
separating them is a real (if easier than real music) problem.

Conventions: ``rate`` in Hz, times in seconds, pitches as MIDI numbers, every
function returns float32 mono ``(samples,)`` unless said otherwise, and every
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


def sing(notes, total: int, rate: int, rng, brightness: float = 1.6, breath: float = 0.08,
         vibrato_hz: float = 5.5, vibrato_depth: float = 0.35, formant_scale: float = 1.0) -> np.ndarray:
    """A sung line by source-filter synthesis: glottal source -> vowel formants, plus consonants.

    Args:
        notes: list of dicts with ``start``, ``end`` (seconds), ``midi``, ``vowel`` (a, e, i, o, u),
            ``onset`` (consonant letters before the vowel) and ``new_syllable`` (False for a
            melisma or slur: no re-articulation).
        total: length of the output in samples.
        brightness: spectral slope of the glottal source (harmonic k has amplitude k**-brightness).
        breath: level of the breath noise relative to the voiced source.

    Returns:
        ``(total,)`` float64.
    """
    if not notes:
        return np.zeros(total)
    n = np.arange(total)
    starts = np.array([int(nt["start"] * rate) for nt in notes])
    ends = np.array([min(int(nt["end"] * rate), total) for nt in notes])
    # pitch curve: each note's pitch held until the next note, with a glide between them
    pitch = np.full(total, float(notes[0]["midi"]))
    for i, nt in enumerate(notes):
        stop = starts[i + 1] if i + 1 < len(notes) else total
        pitch[starts[i]:stop] = nt["midi"]
    pitch = smooth(pitch, rate, 0.025)
    # vibrato grows after each onset, as trained singers do
    onset_marks = np.zeros(total, dtype=np.int64)
    onset_marks[starts] = starts
    last_onset = np.maximum.accumulate(onset_marks)
    since_onset = (n - last_onset) / rate
    depth = vibrato_depth * np.clip((since_onset - 0.12) / 0.3, 0, 1)
    vib_rate = vibrato_hz * (1 + 0.05 * lowpass_noise(total, rate, 0.5, rng))
    vibrato = depth * np.sin(2 * np.pi * np.cumsum(vib_rate) / rate + rng.uniform(0, 2 * np.pi))
    jitter = 0.06 * lowpass_noise(total, rate, 30.0, rng)  # semitones, fast random wobble
    f0 = midi_to_hz(pitch + vibrato + jitter)
    phase = phase_from_f0(f0, rate, rng.uniform())

    # glottal source: band-limited harmonics with a spectral tilt, one table per note's range
    source = np.zeros(total)
    for i, nt in enumerate(notes):
        a = starts[i] if i else 0
        b = starts[i + 1] if i + 1 < len(notes) else total
        if b <= a:
            continue
        k = np.arange(1, 200)
        table = harmonic_table(band_limit(k ** -brightness, f0[a:b].max(), rate))
        source[a:b] = table_lookup(table, phase[a:b])
    source /= np.sqrt(np.mean(source ** 2)) + 1e-12
    # breath noise, louder at the opening of each glottal cycle
    hp_b, hp_a = signal.butter(2, 1500 / (rate / 2), "high")
    noise = signal.lfilter(hp_b, hp_a, rng.standard_normal(total))
    source = source + breath * noise * (0.6 + 0.4 * np.cos(2 * np.pi * phase))

    # loudness: on inside notes, a dip at each new syllable, off in rests
    gate = np.zeros(total)
    shimmer = 1 + 0.05 * lowpass_noise(total, rate, 20.0, rng)
    for i, nt in enumerate(notes):
        gate[starts[i]:ends[i]] = 1.0
        if nt["new_syllable"] and i and starts[i] == ends[i - 1]:
            dip = int(0.05 * rate)
            gate[max(starts[i] - dip, 0):starts[i]] = 0.3 if nt["onset"] else 0.6
        if nt["onset"] and set(nt["onset"]) & PLOSIVES:
            gate[starts[i]:starts[i] + int(0.03 * rate)] = 0.0  # the closure of a plosive
    gate = smooth(gate, rate, 0.03) * shimmer
    source *= gate

    # vowel formants: each note filtered by its vowel, cross-faded over 40 ms
    voice = np.zeros(total)
    fade = int(0.04 * rate)
    sos_cache = {}
    for i, nt in enumerate(notes):
        a = max(starts[i] - fade, 0) if i else 0
        b = min(starts[i + 1] + fade, total) if i + 1 < len(notes) else total
        if b <= a:
            continue
        vowel = nt["vowel"]
        if vowel not in sos_cache:
            sos_cache[vowel] = formant_sos(vowel, rate, formant_scale)
        segment = signal.sosfilt(sos_cache[vowel], source[a:b])
        window = np.ones(b - a)
        ramp = min(2 * fade, (b - a) // 2)
        if i:
            window[:ramp] = np.linspace(0, 1, ramp)
        if i + 1 < len(notes):
            window[len(window) - ramp:] = np.linspace(1, 0, ramp)
        voice[a:b] += segment * window
    voice /= np.sqrt(np.mean(voice ** 2)) + 1e-12
    # the cascade falls steeply above the 4th formant; real voices keep some air up there
    hf_b, hf_a = signal.butter(2, min(3500, 0.4 * rate) / (rate / 2), "high")
    air = signal.lfilter(hf_b, hf_a, source)
    voice += 0.05 * air / (np.sqrt(np.mean(air ** 2)) + 1e-12) * np.sqrt(np.mean(gate ** 2))

    # consonants: noise bursts just before the vowel of a new syllable
    for i, nt in enumerate(notes):
        if not nt["new_syllable"] or not nt["onset"]:
            continue
        voice += consonant(nt["onset"], starts[i], total, rate, rng)
    return voice


def consonant(letters: str, at: int, total: int, rate: int, rng) -> np.ndarray:
    """A fricative hiss or plosive burst ending at sample ``at`` (``(total,)``, mostly zeros)."""
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
    else:  # nasals and liquids are voiced: the dip in the gate is enough
        return out
    n = int(length * rate)
    a = max(at - n, 0)
    n = at - a
    if n < 8:
        return out
    high = min(band[1], 0.45 * rate)
    b, a_coef = signal.butter(2, [band[0] / (rate / 2), high / (rate / 2)], "band")
    burst = signal.lfilter(b, a_coef, rng.standard_normal(n))
    envelope = np.sin(np.linspace(0, np.pi, n)) if first not in PLOSIVES else np.exp(-np.arange(n) / (0.004 * rate))
    out[a:at] = level * burst * envelope / (np.std(burst) + 1e-12)
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
# a room

def room_response(rate: int, rng, rt60: float, channels: int = 1) -> np.ndarray:
    """A synthetic room impulse response ``(channels, samples)``: decaying noise whose highs die faster.

    ``rt60`` is the time (s) for the level to fall by 60 dB. The direct sound is left
    out (the dry signal is mixed in separately).
    """
    n = int(rt60 * rate)
    t = np.arange(n) / rate
    noise = rng.standard_normal((channels, n))
    b, a = signal.butter(1, min(3000, 0.4 * rate) / (rate / 2))
    dull = signal.lfilter(b, a, noise, axis=-1)
    # early part bright, late part dull: air and walls absorb the highs first
    mix = np.exp(-t / (rt60 / 4))
    tail = (mix * noise + (1 - mix) * dull) * 10 ** (-3 * t / rt60)
    predelay = int(rng.uniform(0.008, 0.025) * rate)
    tail[:, :predelay] = 0
    return tail / (np.sqrt(np.sum(tail ** 2, axis=-1, keepdims=True)) + 1e-12)


def reverberate(audio: np.ndarray, response: np.ndarray, wet_db: float) -> np.ndarray:
    """``audio`` ``(channels, samples)`` plus its reverberation at ``wet_db`` relative level (same length)."""
    wet = signal.oaconvolve(audio.astype(np.float32), response[: audio.shape[0]].astype(np.float32),
                            axes=-1)[:, :audio.shape[1]]
    return audio + 10 ** (wet_db / 20) * wet
