"""A small SoundFont 2 (``.sf2``) sample player in numpy: real instrument recordings for the chorales.

The chorale accompaniment is played from the sampled instruments of a General MIDI
SoundFont: by default ``TimGM6mb.sf2`` (Tim Brechbill, GPL-2), which the
``pretty_midi`` wheel ships next to its module. tpsep reads it where pip put it
and never copies it, nor ships anything rendered from it.

Why not a ready-made renderer? ``symusic`` 0.5.9 (prestosynth) renders fast and
deterministically, but it ignores the zones' *overriding root key*: with this SoundFont
the pianos, guitars and several basses come out 3 to 23 semitones off (the piano's A4
sounds 3.78 times too high). It also ignores the velocity and cuts every release at the
note-off. This player reads the file with ``struct`` and plays a sample as a resampling
plus envelopes; it does what the course needs and no more:

- presets, instruments, zones and generators, merged as the SF2 2.01 spec says
  (preset generators add to the instrument ones; key and velocity ranges intersect);
  a hole in a preset's key map borrows the nearest key's sample;
- tuning (overriding root key, coarse and fine tune, pitch correction, scale tuning),
  loops (``sampleModes`` 1 and 3), the volume envelope (delay, attack, hold, decay,
  sustain, release, key-scaled hold and decay), the initial attenuation;
- the modulation envelope to pitch and to the resonant low-pass cutoff (a filter that
  closes as a piano note decays), the vibrato and modulation LFOs to pitch and volume;
- the velocity as a gain (the DLS curve ``40 log10(v / 127)`` dB);
- an optional pitch curve per note (in cents, one value per output sample) for
  vibrato, scoops and slow drift: what MIDI pitch bends would do, sample-accurate.

Not implemented (not needed here): modulators (the SF2 defaults are replaced by the
velocity gain above), the LFOs to the filter, chorus and reverb sends (tpsep adds its own
rooms), exclusive classes, 24-bit samples, stereo panning of the zones (lines are mono).

Samples are resampled once per (zone, key, rate) with ``scipy.signal.resample_poly``
(anti-aliased) and kept in a bounded cache; envelopes and pitch curves run at a control
rate of one value every ``CONTROL`` samples. Notes are mono float32 ``(samples,)``.
"""

from __future__ import annotations

import functools
import hashlib
import struct
from fractions import Fraction
from pathlib import Path

import numpy as np
from scipy import signal

DEFAULT_SOUNDFONT = "TimGM6mb.sf2"  # shipped inside the pretty_midi wheel (GPL-2)

# generator numbers of the SF2 2.01 specification (section 8.1.2)
START, END, LOOP_START, LOOP_END, START_COARSE = 0, 1, 2, 3, 4
FILTER_FC, FILTER_Q, END_COARSE, PAN = 8, 9, 12, 17
DELAY_VOL, ATTACK_VOL, HOLD_VOL, DECAY_VOL, SUSTAIN_VOL, RELEASE_VOL = 33, 34, 35, 36, 37, 38
KEY_TO_HOLD, KEY_TO_DECAY, INSTRUMENT, KEY_RANGE, VEL_RANGE = 39, 40, 41, 43, 44
LOOP_START_COARSE, ATTENUATION, LOOP_END_COARSE = 45, 48, 50
COARSE_TUNE, FINE_TUNE, SAMPLE_ID, SAMPLE_MODES, SCALE_TUNING, ROOT_KEY = 51, 52, 53, 54, 56, 58
# generators that are not added from the preset level (ranges, links, sample addressing, modes)
NOT_ADDITIVE = {START, END, LOOP_START, LOOP_END, START_COARSE, END_COARSE, INSTRUMENT, KEY_RANGE,
                VEL_RANGE, LOOP_START_COARSE, 46, 47, LOOP_END_COARSE, SAMPLE_ID, SAMPLE_MODES, 57, ROOT_KEY}
DEFAULTS = {FILTER_FC: 13500, DELAY_VOL: -12000, ATTACK_VOL: -12000, HOLD_VOL: -12000, DECAY_VOL: -12000,
            RELEASE_VOL: -12000, 25: -12000, 26: -12000, 27: -12000, 28: -12000, 30: -12000,
            SCALE_TUNING: 100, ROOT_KEY: -1, KEY_RANGE: (0, 127), VEL_RANGE: (0, 127)}
MOD_ENV = (25, 26, 27, 28, 29, 30, 31, 32)  # delay, attack, hold, decay, sustain, release, key scaling
MOD_ENV_TO_PITCH, MOD_ENV_TO_FC, MOD_LFO_TO_PITCH, VIB_LFO_TO_PITCH, MOD_LFO_TO_VOLUME = 7, 11, 5, 6, 13
DELAY_MOD_LFO, FREQ_MOD_LFO, DELAY_VIB_LFO, FREQ_VIB_LFO = 21, 22, 23, 24
ATTENUATION_FACTOR = 0.4  # the EMU hardware (and FluidSynth) apply 0.4 of the nominal centibels
MAX_TAIL_S = 1.5  # a release is cut (with a short fade) this long after the note-off
CONTROL = 32  # envelopes, LFOs and pitch curves are computed every CONTROL samples and interpolated
CACHE_BYTES = 128 << 20  # resampled samples kept per SoundFont (least recently used dropped first)


class SoundFontError(FileNotFoundError):
    """The SoundFont tpsep plays the chorales with is missing or unreadable."""


def default_soundfont() -> Path:
    """The path of ``TimGM6mb.sf2`` inside the installed ``pretty_midi`` package.

    Raises:
        SoundFontError: pretty_midi is not installed, or its wheel lacks the SoundFont.
    """
    try:
        import pretty_midi
    except ImportError as error:
        raise SoundFontError(
            f"the music dataset plays its instruments from the General MIDI SoundFont {DEFAULT_SOUNDFONT}, "
            "which ships inside the pretty_midi wheel, but pretty_midi is not installed: pip install "
            "'pretty_midi>=0.2.10'") from error
    path = Path(pretty_midi.__file__).parent / DEFAULT_SOUNDFONT
    return check_soundfont(path)


def check_soundfont(path) -> Path:
    """``path`` as a Path if it is a readable SoundFont 2 file.

    Raises:
        SoundFontError: the file is missing or is not an SF2 file; the message says what was expected.
    """
    path = Path(path)
    if not path.is_file():
        raise SoundFontError(
            f"SoundFont not found: expected the General MIDI SoundFont {DEFAULT_SOUNDFONT} at {path} "
            "(it ships inside the pretty_midi wheel: pip install --force-reinstall 'pretty_midi>=0.2.10')")
    with open(path, "rb") as f:
        head = f.read(12)
    if head[:4] != b"RIFF" or head[8:12] != b"sfbk":
        raise SoundFontError(f"{path} is not a SoundFont 2 file (expected a RIFF 'sfbk' header, got {head!r})")
    return path


def fingerprint(path) -> str:
    """A short content hash of the SoundFont (part of the dataset's cache key)."""
    digest = hashlib.blake2b(digest_size=8)
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return f"{Path(path).name}:{digest.hexdigest()}"


def timecents_to_s(tc: float) -> float:
    return 2.0 ** (tc / 1200.0)


def _chunks(data: bytes, start: int, end: int):
    """Yield ``(id, payload_start, payload_end)`` of the RIFF chunks in ``data[start:end]``."""
    while start + 8 <= end:
        cid, size = data[start:start + 4], struct.unpack("<I", data[start + 4:start + 8])[0]
        yield cid, start + 8, start + 8 + size
        start += 8 + size + (size & 1)


class SoundFont:
    """A parsed SoundFont 2 file: its presets as key/velocity zones, and its samples.

    >>> sf = SoundFont(default_soundfont())
    >>> sf.preset_name(0, 0)             # bank 0, program 0
    'Piano 1'
    >>> sf.note(0, 0, 60, 0.5, 16000).shape   # middle C for 0.5 s, plus its release
    """

    def __init__(self, path):
        path = check_soundfont(path)
        self.path = path
        data = path.read_bytes()
        lists = {}
        for cid, a, b in _chunks(data, 12, len(data)):
            if cid == b"LIST":
                lists[data[a:a + 4]] = {c: (x, y) for c, x, y in _chunks(data, a + 4, b)}
        try:
            smpl, pdta = lists[b"sdta"][b"smpl"], lists[b"pdta"]
            hydra = {name: data[pdta[name][0]:pdta[name][1]] for name in
                     (b"phdr", b"pbag", b"pgen", b"inst", b"ibag", b"igen", b"shdr")}
        except KeyError as error:
            raise SoundFontError(f"{path}: not a complete SoundFont 2 file (chunk {error} missing)") from None
        self.samples = np.frombuffer(data, dtype="<i2", count=(smpl[1] - smpl[0]) // 2, offset=smpl[0])
        phdr = [struct.unpack("<20sHHHIII", hydra[b"phdr"][i:i + 38]) for i in range(0, len(hydra[b"phdr"]), 38)]
        inst = [struct.unpack("<20sH", hydra[b"inst"][i:i + 22]) for i in range(0, len(hydra[b"inst"]), 22)]
        pbag = [struct.unpack("<HH", hydra[b"pbag"][i:i + 4])[0] for i in range(0, len(hydra[b"pbag"]), 4)]
        ibag = [struct.unpack("<HH", hydra[b"ibag"][i:i + 4])[0] for i in range(0, len(hydra[b"ibag"]), 4)]
        pgen = [struct.unpack("<Hh", hydra[b"pgen"][i:i + 4]) for i in range(0, len(hydra[b"pgen"]), 4)]
        igen = [struct.unpack("<Hh", hydra[b"igen"][i:i + 4]) for i in range(0, len(hydra[b"igen"]), 4)]
        self.headers = [struct.unpack("<20sIIIIIBbHH", hydra[b"shdr"][i:i + 46])
                        for i in range(0, len(hydra[b"shdr"]), 46)]

        def zones(bags, gens, first_bag, last_bag, terminal):
            """``(global generators, [local generators])`` of one preset or instrument."""
            out, glob = [], {}
            for bag in range(first_bag, last_bag):
                g = {}
                for oper, amount in gens[bags[bag]:bags[bag + 1]]:
                    g[oper] = (amount & 0xFF, (amount >> 8) & 0xFF) if oper in (KEY_RANGE, VEL_RANGE) else amount
                if terminal in g:
                    out.append(g)
                elif bag == first_bag:
                    glob = g
            return glob, out

        self.names, self.presets = {}, {}
        for i in range(len(phdr) - 1):
            name, program, bank, bag = phdr[i][:4]
            self.names[(bank, program)] = name.split(b"\0")[0].decode("latin-1").strip()
            p_glob, p_zones = zones(pbag, pgen, bag, phdr[i + 1][3], INSTRUMENT)
            merged = []
            for pz in p_zones:
                pz = {**p_glob, **pz}
                index = pz[INSTRUMENT] & 0xFFFF
                i_glob, i_zones = zones(ibag, igen, inst[index][1], inst[index + 1][1], SAMPLE_ID)
                for iz in i_zones:
                    g = {**DEFAULTS, **i_glob, **iz}
                    for oper, amount in pz.items():
                        if oper not in NOT_ADDITIVE:
                            g[oper] = g.get(oper, 0) + amount
                    keys = (max(g[KEY_RANGE][0], pz.get(KEY_RANGE, (0, 127))[0]),
                            min(g[KEY_RANGE][1], pz.get(KEY_RANGE, (0, 127))[1]))
                    vels = (max(g[VEL_RANGE][0], pz.get(VEL_RANGE, (0, 127))[0]),
                            min(g[VEL_RANGE][1], pz.get(VEL_RANGE, (0, 127))[1]))
                    if keys[0] <= keys[1] and vels[0] <= vels[1]:
                        merged.append(self._zone(g, keys, vels))
            self.presets[(bank, program)] = [z for z in merged if z is not None]
        self._cache, self._cached_bytes = {}, 0  # resampled samples
        self._notes, self._notes_bytes = {}, 0  # rendered drum hits

    def _zone(self, g: dict, keys: tuple, vels: tuple) -> dict | None:
        """A playable zone: sample addresses, tuning, loop, envelopes and LFOs, from its merged generators."""
        _, start, end, loop_start, loop_end, rate, pitch, correction, _, kind = self.headers[g[SAMPLE_ID] & 0xFFFF]
        if kind & 0x8000 or rate <= 0:  # ROM samples live in a synthesizer's memory, not in the file
            return None
        start += g.get(START, 0) + 32768 * g.get(START_COARSE, 0)
        end += g.get(END, 0) + 32768 * g.get(END_COARSE, 0)
        loop_start += g.get(LOOP_START, 0) + 32768 * g.get(LOOP_START_COARSE, 0)
        loop_end += g.get(LOOP_END, 0) + 32768 * g.get(LOOP_END_COARSE, 0)
        end = min(end, len(self.samples))
        if end - start < 8:
            return None
        loop = g.get(SAMPLE_MODES, 0) & 1 and start <= loop_start < loop_end - 4 and loop_end <= end

        def get(*gens):
            return tuple(g.get(x, 0) for x in gens)

        return {"keys": keys, "vels": vels, "start": start, "end": end, "rate": rate,
                "loop": (loop_start - start, loop_end - start) if loop else None,
                "root": g[ROOT_KEY] if g[ROOT_KEY] >= 0 else pitch, "scale": g[SCALE_TUNING],
                "tune": 100 * g.get(COARSE_TUNE, 0) + g.get(FINE_TUNE, 0) + correction,
                "gain_db": -ATTENUATION_FACTOR * max(g.get(ATTENUATION, 0), 0) / 10,
                "pan": g.get(PAN, 0) / 500,
                "filter": (g[FILTER_FC], g.get(FILTER_Q, 0), g.get(MOD_ENV_TO_FC, 0)),
                "vol_env": get(DELAY_VOL, ATTACK_VOL, HOLD_VOL, DECAY_VOL, SUSTAIN_VOL, RELEASE_VOL,
                               KEY_TO_HOLD, KEY_TO_DECAY),
                "mod_env": get(*MOD_ENV),
                "mod_env_to_pitch": g.get(MOD_ENV_TO_PITCH, 0),
                "lfos": ((g.get(DELAY_MOD_LFO, -12000), g.get(FREQ_MOD_LFO, 0), g.get(MOD_LFO_TO_PITCH, 0),
                          g.get(MOD_LFO_TO_VOLUME, 0)),
                         (g.get(DELAY_VIB_LFO, -12000), g.get(FREQ_VIB_LFO, 0), g.get(VIB_LFO_TO_PITCH, 0), 0))}

    def preset_name(self, bank: int, program: int) -> str:
        """The preset's name in the file, e.g. ``"Piano 1"``; ``""`` when there is none."""
        return self.names.get((bank, program), "")

    def has_preset(self, bank: int, program: int) -> bool:
        return bool(self.presets.get((bank, program)))

    def zones(self, bank: int, program: int, key: int, velocity: int = 100) -> list:
        """``[(index, zone)]`` of the zones that sound for ``key`` at ``velocity`` (layered samples: several).

        A key in a hole of the preset's key map borrows the zones of the nearest key (up to 3 away).
        """
        if (bank, program) not in self.presets:
            raise ValueError(f"{self.path.name} has no preset bank {bank} program {program}")
        zones = self.presets[(bank, program)]
        for distance in (0, 1, -1, 2, -2, 3, -3):  # a hole in the key map (some presets have one):
            near = key + distance                  # borrow a neighbour's sample, tuned to ``key``
            found = [(i, z) for i, z in enumerate(zones)
                     if z["keys"][0] <= near <= z["keys"][1] and z["vels"][0] <= velocity <= z["vels"][1]]
            if found or bank == 128:  # a drum kit's keys are different drums: never borrow
                return found
        return []

    # -----------------------------------------------------------------------
    # playing

    def _tuned(self, bank: int, program: int, index: int, key: int, rate: int) -> tuple:
        """The zone's sample resampled (anti-aliased) so that it sounds ``key`` at ``rate``:
        ``(float32 samples, loop (start, end) in output samples or None, residual step)``. Cached."""
        cache_key = (bank, program, index, key, rate)
        if cache_key in self._cache:
            self._cache[cache_key] = self._cache.pop(cache_key)  # most recently used last
            return self._cache[cache_key]
        zone = self.presets[(bank, program)][index]
        cents = (key - zone["root"]) * zone["scale"] + zone["tune"]
        step = zone["rate"] * 2 ** (cents / 1200) / rate  # input samples per output sample
        ratio = Fraction(1 / step).limit_denominator(300)  # output / input, for resample_poly
        raw = self.samples[zone["start"]:zone["end"]].astype(np.float32) / 32768
        if zone["loop"] is not None:  # two more loop cycles: the middle one is read, past the filter's edges
            a, b = zone["loop"]
            raw = np.concatenate([raw[:b], raw[a:b], raw[a:b]])
        audio = signal.resample_poly(raw, ratio.numerator, ratio.denominator).astype(np.float32)
        achieved = ratio.denominator / ratio.numerator
        loop = None
        if zone["loop"] is not None:
            a, b = zone["loop"]
            loop = (b / achieved, (2 * b - a) / achieved)
        result = (audio, loop, step / achieved)
        self._cache[cache_key] = result
        self._cached_bytes += audio.nbytes
        while self._cached_bytes > CACHE_BYTES and len(self._cache) > 1:
            self._cached_bytes -= self._cache.pop(next(iter(self._cache)))[0].nbytes
        return result

    def note(self, bank: int, program: int, key: int, seconds: float, rate: int, velocity: int = 100,
             cents=None, tail: float | None = None) -> np.ndarray:
        """One note: ``key`` held ``seconds``, then released, mono ``(samples,)`` float32.

        Args:
            bank, program: the preset (bank 128 holds the drum kits, whose keys are drums).
            key: MIDI note number (it chooses the sample, and the pitch).
            seconds: time from note-on to note-off.
            rate: output sample rate (Hz).
            velocity: 1-127, a gain of ``40 log10(velocity / 127)`` dB (and it picks velocity layers).
            cents: optional pitch deviation from ``key`` in cents, one value per output sample
                (a shorter curve is held at its last value): vibrato, scoops, drift.
            tail: seconds kept after the note-off (default: the zones' release, up to ``MAX_TAIL_S``).

        Returns:
            ``(samples,)`` float32: ``seconds`` plus the release tail (shorter when an unlooped
            sample ends first), empty if no zone covers ``key``.
        """
        key, velocity = int(key), int(np.clip(velocity, 1, 127))
        zones = self.zones(bank, program, key, velocity)
        n_on = max(int(round(seconds * rate)), 1)
        if tail is None:
            release = max((timecents_to_s(z["vol_env"][5]) for _, z in zones), default=0.0)
            tail = min(max(0.45 * release, 0.01), MAX_TAIL_S)  # down 45 dB, at 100 dB per release time
        n = n_on + int(tail * rate)
        cache_key = None
        if cents is None and bank == 128:  # the same drum again: reuse it, scaled by the velocity
            cache_key = (bank, program, key, n_on, n, tuple(i for i, _ in zones), rate)
            if cache_key in self._notes:
                self._notes[cache_key] = self._notes.pop(cache_key)  # most recently used last
                return self._notes[cache_key] * (velocity / 127) ** 2
        if cents is not None:
            cents = np.asarray(cents, dtype=np.float64)
        out = np.zeros(n)
        # envelopes, LFOs and pitch at a control rate of one value every CONTROL samples
        m = n // CONTROL + 2
        t = np.arange(m) * (CONTROL / rate)
        n_on_c = min(max(n_on // CONTROL, 1), m - 1)
        user = 0.0
        if cents is not None and len(cents):
            user = cents[np.minimum(np.arange(m) * CONTROL, len(cents) - 1)]
        longest = 0
        for index, zone in zones:
            audio, loop, residual = self._tuned(bank, program, index, key, rate)
            deviation = np.zeros(m) + user
            mod_env = None
            if zone["mod_env_to_pitch"] or zone["filter"][2]:
                mod_env = dahdsr(zone["mod_env"], key, n_on_c, m, rate / CONTROL, decibels=False)
                deviation = deviation + zone["mod_env_to_pitch"] * mod_env
            tremolo_db = None
            for delay, freq, to_pitch, to_volume in zone["lfos"]:
                if to_pitch or to_volume:
                    wave = lfo(t, delay, freq)
                    deviation = deviation + to_pitch * wave
                    if to_volume:
                        tremolo_db = -to_volume / 10 * wave + (0 if tremolo_db is None else tremolo_db)
            steady = not np.any(deviation) and abs(np.log2(residual)) < 1 / 1200  # within a cent
            if steady and (loop is None or loop[1] - loop[0] > 4000):  # read whole samples (no interpolation)
                position = np.arange(n)
                if loop is not None:  # a long loop rounded to whole samples: < 0.1 cent off
                    a, length = int(round(loop[0])), int(round(loop[1] - loop[0]))
                    position = np.where(position >= a + length, a + (position - a) % length, position)
                used = n if loop is not None else min(n, len(audio))
                sound = audio[position[:used]]
            else:  # the read position, integrated at the control rate and interpolated
                speed = residual * 2.0 ** (deviation / 1200)
                position = upsample(np.concatenate([[0.0], np.cumsum(speed[:-1])]) * CONTROL, n)
                if loop is not None:
                    a, b = loop
                    position = np.where(position >= b, a + np.mod(position - a, b - a), position)
                    used = n
                else:  # an unlooped sample stops sounding at its end
                    used = min(n, int(np.searchsorted(position, len(audio) - 1)) + 1)
                    position = position[:used]
                sound = np.interp(position, np.arange(len(audio)), audio, right=0.0)
            gain_c = dahdsr(zone["vol_env"], key, n_on_c, m, rate / CONTROL, decibels=True)
            if tremolo_db is not None:
                gain_c = gain_c * 10 ** (tremolo_db / 20)
            gain = upsample(gain_c * 10 ** (zone["gain_db"] / 20), used)
            weight = None if mod_env is None else upsample(mod_env, used)
            out[:used] += lowpass(sound, zone["filter"], weight, rate) * gain
            longest = max(longest, used)
        out = out[:longest]
        fade = min(int(0.01 * rate), len(out) - n_on)
        if fade > 0:  # no click where the tail is cut
            out[len(out) - fade:] *= np.linspace(1, 0, fade)
        out = out.astype(np.float32)  # as cached: a note is the same whether it was cached or not
        if cache_key is not None:
            self._notes[cache_key] = out
            self._notes_bytes += out.size * 4
            while self._notes_bytes > CACHE_BYTES // 2 and len(self._notes) > 1:
                self._notes_bytes -= self._notes.pop(next(iter(self._notes))).size * 4
        return out * (velocity / 127) ** 2

    def line(self, bank: int, program: int, notes, total: int, rate: int) -> np.ndarray:
        """Play ``notes`` (dicts with ``start``, ``end`` in seconds, ``midi``, optional ``velocity``
        (default 100) and ``cents`` (a pitch curve, see :meth:`note`)) on one preset: ``(total,)``."""
        out = np.zeros(total)
        for nt in notes:
            a = int(round(nt["start"] * rate))
            if a >= total:
                continue
            sound = self.note(bank, program, nt["midi"], nt["end"] - nt["start"], rate,
                              nt.get("velocity", 100), nt.get("cents"))
            if a < 0:
                sound, a = sound[-a:], 0
            b = min(a + len(sound), total)
            out[a:b] += sound[:b - a]
        return out


def upsample(control: np.ndarray, n: int) -> np.ndarray:
    """``n`` samples linearly interpolated from ``control``, given every ``CONTROL`` samples
    (``len(control) >= n // CONTROL + 2``)."""
    k = n // CONTROL + 1
    steps = np.arange(CONTROL) / CONTROL
    return (control[:k, None] + (control[1:k + 1] - control[:k])[:, None] * steps).ravel()[:n]


def dahdsr(params: tuple, key: int, n_on: int, n: int, rate: float, decibels: bool) -> np.ndarray:
    """An SF2 envelope of one note, ``(n,)``; the note-off is at sample ``n_on``.

    ``params`` are the generators (delay, attack, hold, decay, sustain, release, key-to-hold,
    key-to-decay) in timecents (sustain: centibels of attenuation for the volume envelope,
    0.1 % of decrease for the modulation envelope).

    Volume envelope (``decibels=True``, linear gain): delay, a linear attack to 1, a hold,
    a decay in dB (100 dB per decay time) to the sustain level, and after the note-off a
    release at 100 dB per release time. Modulation envelope (``decibels=False``, 0..1): the same
    stages, linear in value (the decay and release times are for a 100 % change).
    """
    delay_tc, attack_tc, hold_tc, decay_tc, sustain, release_tc, key_hold, key_decay = params

    def seconds(tc):
        return timecents_to_s(tc) if tc > -12000 else 0.0

    t = np.arange(n) / rate
    delay, attack = seconds(delay_tc), seconds(attack_tc)
    hold, decay = seconds(hold_tc + key_hold * (60 - key)), seconds(decay_tc + key_decay * (60 - key))
    release = max(seconds(release_tc), 0.005)
    after = t - delay
    rise = np.clip(after / attack, 0, 1) if attack > 0 else (after >= 0).astype(np.float64)
    falling = np.clip(after - attack - hold, 0, None)
    t_off = n_on / rate
    if decibels:
        floor = -min(max(sustain, 0), 1000) / 10
        level = np.maximum(-100 * falling / max(decay, 1e-4), floor)  # dB
        after_off = -100 * np.clip(t - t_off, 0, None) / release
        at_off = level[min(n_on, n) - 1]
        level = np.where(t >= t_off, at_off + after_off, level)
        gain = rise * 10 ** (level / 20)
    else:
        floor = 1 - min(max(sustain, 0), 1000) / 1000
        level = np.maximum(1 - falling / max(decay, 1e-4), floor)
        at_off = level[min(n_on, n) - 1]
        level = np.where(t >= t_off, np.maximum(at_off - np.clip(t - t_off, 0, None) / release, 0), level)
        gain = rise * level
    if n > n_on:  # an attack cut short by the note-off releases from where it got to
        released = 10 ** (level[n_on:] / 20) if decibels else level[n_on:]
        gain[n_on:] = np.minimum(gain[n_on:], rise[n_on - 1] * released)
    return gain


def lfo(t: np.ndarray, delay_tc: float, freq_ac: float) -> np.ndarray:
    """An SF2 LFO: a triangle wave in [-1, 1] starting at 0 after its delay; ``freq_ac`` in absolute cents."""
    delay = timecents_to_s(delay_tc) if delay_tc > -12000 else 0.0
    phase = np.clip(t - delay, 0, None) * 8.176 * 2 ** (freq_ac / 1200)
    return 1 - 4 * np.abs(np.mod(phase + 0.25, 1.0) - 0.5)


def lowpass(x: np.ndarray, params: tuple, mod_env, rate: int) -> np.ndarray:
    """The zone's resonant low-pass, its cutoff moved by the modulation envelope.

    The sweep is approximated by a cross-fade between the note filtered at the lowest and at
    the highest cutoff it reaches (two fixed biquads per note instead of one per sample).
    """
    fc, q_cb, to_fc = params
    cents = fc + (to_fc * mod_env if mod_env is not None and to_fc else np.zeros(1))
    low, high = float(np.min(cents)), float(np.max(cents))
    if 8.176 * 2 ** (low / 1200) >= 0.45 * rate:
        return x
    q = 10 ** ((max(q_cb, 0) / 10 - 3.01) / 20)
    low_out = _biquad_lowpass(x, low, q, rate)
    if high - low < 50:
        return low_out
    high_out = _biquad_lowpass(x, high, q, rate)
    weight = (cents - low) / (high - low)
    return low_out + weight * (high_out - low_out)


def _biquad_lowpass(x: np.ndarray, cents: float, q: float, rate: int) -> np.ndarray:
    hz = 8.176 * 2 ** (cents / 1200)
    if hz >= 0.45 * rate:
        return x
    w = 2 * np.pi * max(hz, 20.0) / rate
    alpha = np.sin(w) / (2 * q)
    b = np.array([(1 - np.cos(w)) / 2, 1 - np.cos(w), (1 - np.cos(w)) / 2])
    a = np.array([1 + alpha, -2 * np.cos(w), 1 - alpha])
    return signal.lfilter(b / a[0], a / a[0], x)


@functools.lru_cache(maxsize=2)
def load(path=None) -> SoundFont:
    """The parsed SoundFont at ``path`` (default: :func:`default_soundfont`), parsed once per process."""
    return SoundFont(default_soundfont() if path is None else path)
