"""The embedded speech dataset: two-speaker mixtures of espeak-ng voices ("speech2mix").

Like wsj0-2mix, but every sentence is spoken by the espeak-ng engine that the
``espeakng-loader`` wheel ships (driven here through ctypes, no system espeak):
16 voices that differ in accent, voice variant, pitch and speed. Each mixture
adds two utterances of two different speakers at a relative level drawn
uniformly in [0, 5] dB and is cut to the shorter one ("min" mode). The test
speakers never appear in training. The optional noisy variant adds a "noise"
source (coloured, slowly fluctuating noise), as WHAM! does for wsj0-2mix.
"""

from __future__ import annotations

import ctypes
import json
import platform
import time
from pathlib import Path

import numpy as np
import soundfile as sf
from scipy import signal

from ..audio import resample

SPEECH_VERSION = 2

# (speaker id, espeak voice, pitch 0-100, pitch range 0-100, words per minute)
SPEAKERS = (
    ("spk01", "en+m1", 40, 50, 165), ("spk02", "en-us+f1", 60, 60, 170),
    ("spk03", "en-gb-scotland+m3", 35, 40, 155), ("spk04", "en-gb-x-rp+f2", 70, 70, 175),
    ("spk05", "en-us+m4", 50, 60, 185), ("spk06", "en+f4", 55, 45, 160),
    ("spk07", "en-029+m5", 30, 70, 150), ("spk08", "en-us-nyc+f5", 65, 55, 180),
    ("spk09", "en+m6", 45, 30, 170), ("spk10", "en-gb-x-gbclan+f3", 75, 60, 165),
    # validation speakers
    ("spk11", "en-gb-x-rp+m2", 42, 55, 160), ("spk12", "en-us+f2", 62, 65, 175),
    # test speakers: never heard in training
    ("spk13", "en+m7", 38, 45, 160), ("spk14", "en-us+f3", 68, 60, 170),
    ("spk15", "en-gb-x-gbcwmd+m8", 48, 65, 175), ("spk16", "en-gb-scotland+f1", 58, 50, 155),
)
SPEAKER_SPLITS = {"train": [s[0] for s in SPEAKERS[:10]], "valid": ["spk11", "spk12"],
                  "test": ["spk13", "spk14", "spk15", "spk16"]}


def speech_params(n_train: int = 600, n_valid: int = 100, n_test: int = 100, rate: int = 8000,
                  seed: int = 0, noisy: bool = False, utterances_per_speaker: int = 60) -> dict:
    """Every parameter that changes the rendered audio (they form the cache key)."""
    if rate not in (8000, 16000):
        raise ValueError(f"rate={rate}: the speech set is rendered at 8000 or 16000 Hz")
    for split, n in (("train", n_train), ("valid", n_valid), ("test", n_test)):
        if n < 1:
            raise ValueError(f"n_{split}={n}: need at least one mixture per split")
    return {"dataset": "speech2mix", "n_train": int(n_train), "n_valid": int(n_valid), "n_test": int(n_test),
            "rate": int(rate), "seed": int(seed), "noisy": bool(noisy),
            "utterances_per_speaker": int(utterances_per_speaker), "speech_version": SPEECH_VERSION,
            "espeakng_loader": _loader_version()}


def _loader_version() -> str:
    try:
        from importlib.metadata import version
        return version("espeakng-loader")
    except Exception:
        return "missing"


# ---------------------------------------------------------------------------
# sentences from a seeded grammar

SUBJECTS = ["the old farmer", "a young teacher", "my neighbour", "the tired driver", "our new doctor",
            "the little girl", "a quiet student", "the angry captain", "her brother", "the baker",
            "a tall stranger", "the night nurse", "his grandmother", "the clever fox", "a busy waiter",
            "the lazy cat", "the mayor", "a famous singer", "the postman", "my best friend",
            "the shy painter", "a lost tourist", "the chess player", "the gardener", "your cousin"]
VERBS = [("carried", "carry"), ("painted", "paint"), ("found", "find"), ("sold", "sell"),
         ("opened", "open"), ("dropped", "drop"), ("cleaned", "clean"), ("hid", "hide"),
         ("borrowed", "borrow"), ("repaired", "repair"), ("forgot", "forget"), ("bought", "buy"),
         ("watched", "watch"), ("counted", "count"), ("wrapped", "wrap"), ("moved", "move")]
OBJECTS = ["seven green bottles", "a heavy wooden box", "the yellow bicycle", "two silver spoons",
           "an umbrella", "the broken clock", "a basket of apples", "the red kite", "three old maps",
           "a jar of honey", "the kitchen table", "a bundle of letters", "the brass lamp",
           "nine paper boats", "a warm blanket", "the violin", "a bag of rice", "the blue door"]
PLACES = ["across the bridge", "near the harbour", "behind the church", "in the garden",
          "under the stairs", "at the station", "by the river", "on the top floor", "in the market",
          "through the forest", "outside the bakery", "along the beach"]
TIMES = ["Yesterday morning", "Last winter", "Every Sunday", "Late at night", "Before lunch",
         "After the storm", "On Friday", "At dawn", "Twice a week", "Just before midnight"]
ADVERBS = ["quickly", "slowly", "carefully", "happily", "quietly", "suddenly", "proudly", "again"]
SENTENCES = [
    "The quick brown fox jumps over the lazy dog.", "Please call Stella and ask her to bring these things.",
    "A rainbow appears when sunlight shines through falling rain.", "We will meet at half past four near the fountain.",
    "Nobody knew why the lights went out on the whole street.", "Could you pass me the salt and the pepper, please?",
    "The train to the coast leaves from platform nine.", "Fresh bread smells wonderful early in the morning.",
    "She wrote a long letter to her aunt in Canada.", "The museum is closed on Mondays and public holidays.",
    "Turn left at the second traffic light and keep going.", "My phone battery died in the middle of the call.",
    "The children built a castle of sand and shells.", "Thunder rolled over the hills for most of the night.",
    "He always drinks his coffee without any sugar.", "The library has more than a million books.",
    "Water boils at one hundred degrees at sea level.", "I think we should leave before the traffic gets worse.",
    "The orchestra played until the very last guest had left.", "Winter nights are long and the days are short.",
]


def make_sentence(rng) -> str:
    """One English sentence from a small seeded grammar (six templates), or a fixed sentence."""
    pick = lambda items: items[rng.integers(len(items))]
    subject, (past, base), obj = pick(SUBJECTS), pick(VERBS), pick(OBJECTS)
    template = rng.integers(7)
    if template == 0:
        text = f"{subject} {past} {obj} {pick(PLACES)}."
    elif template == 1:
        text = f"{pick(TIMES)}, {subject} {pick(ADVERBS)} {past} {obj}."
    elif template == 2:
        text = f"Did {subject} really {base} {obj} {pick(PLACES)}?"
    elif template == 3:
        text = f"{subject} said that {pick(SUBJECTS)} {past} {obj}."
    elif template == 4:
        text = f"Why would {subject} {base} {obj}?"
    elif template == 5:
        text = f"Flight {rng.integers(100, 999)} to gate {rng.integers(2, 40)} leaves at {rng.integers(1, 12)} {rng.integers(10, 59)}."
    else:
        text = pick(SENTENCES)
    return text[0].upper() + text[1:]


# ---------------------------------------------------------------------------
# the espeak-ng engine through ctypes

ESPEAK_RATE = 22050
_engine = None


class _Espeak:
    """libespeak-ng from the espeakng-loader wheel, in synchronous mode with a synth callback."""

    def __init__(self):
        try:
            import espeakng_loader
            library, data = Path(espeakng_loader.get_library_path()), Path(espeakng_loader.get_data_path())
        except Exception as error:  # no wheel for this platform, or not installed
            raise RuntimeError(self._missing(f"espeakng-loader is not usable here ({error})")) from None
        if not library.is_file() or not data.is_dir():
            raise RuntimeError(self._missing(f"espeakng-loader has no espeak-ng library at {library}"))
        try:
            self.lib = ctypes.CDLL(str(library))
        except OSError as error:
            raise RuntimeError(self._missing(f"could not load {library}: {error}")) from None
        self.lib.espeak_Initialize.restype = ctypes.c_int
        self.lib.espeak_SetVoiceByName.argtypes = [ctypes.c_char_p]
        rate = self.lib.espeak_Initialize(2, 0, str(data.parent).encode(), 0)  # 2 = AUDIO_OUTPUT_SYNCHRONOUS
        if rate != ESPEAK_RATE:
            raise RuntimeError(f"espeak-ng failed to start (espeak_Initialize returned {rate}) with data {data}")
        self.chunks = []
        callback_type = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int, ctypes.c_void_p)

        def collect(wav, n, events):
            if n > 0:
                self.chunks.append(np.ctypeslib.as_array(wav, shape=(n,)).copy())
            return 0
        self._callback = callback_type(collect)  # keep a reference: espeak calls it later
        self.lib.espeak_SetSynthCallback(self._callback)
        try:
            self.libc = ctypes.CDLL(None) if platform.system() != "Windows" else ctypes.cdll.msvcrt
        except OSError:
            self.libc = None

    @staticmethod
    def _missing(reason: str) -> str:
        return (f"The speech dataset needs the espeak-ng engine shipped by the 'espeakng-loader' wheel, "
                f"but {reason}. espeakng-loader has wheels for Linux x86_64, macOS and Windows, not for "
                f"{platform.system()} {platform.machine()}. Use the music dataset, or a LibriMix folder "
                "(load_dataset('/path/to/Libri2Mix')).")

    def say(self, text: str, voice: str, pitch: int, pitch_range: int, words_per_minute: int) -> np.ndarray:
        """Synthesise ``text``: float64 ``(samples,)`` at 22050 Hz."""
        if self.lib.espeak_SetVoiceByName(voice.encode()) != 0:
            raise RuntimeError(f"espeak-ng has no voice {voice!r}")
        for parameter, value in ((1, words_per_minute), (3, pitch), (4, pitch_range)):  # RATE, PITCH, RANGE
            self.lib.espeak_SetParameter(parameter, int(value), 0)
        # espeak-ng draws random numbers (breathy voices, flutter) from its own generator and
        # from libc's rand(), seeded from the clock: seed both for a bit-identical render
        if hasattr(self.lib, "espeak_ng_SetRandSeed"):
            self.lib.espeak_ng_SetRandSeed(ctypes.c_long(1))
        if self.libc is not None:
            self.libc.srand(1)
        self.chunks = []
        data = text.encode() + b"\0"
        self.lib.espeak_Synth(data, len(data), 0, 1, 0, 0, None, None)  # POS_CHARACTER, espeakCHARS_AUTO
        self.lib.espeak_Synchronize()
        audio = np.concatenate(self.chunks) if self.chunks else np.zeros(0, np.int16)
        return audio.astype(np.float64) / 32768


def espeak() -> _Espeak:
    """The process-wide espeak-ng engine (started on first use)."""
    global _engine
    if _engine is None:
        _engine = _Espeak()
    return _engine


def trim(audio: np.ndarray, rate: int, threshold: float = 0.02, margin: float = 0.05) -> np.ndarray:
    """Cut leading and trailing silence (below ``threshold`` of the peak), keeping ``margin`` seconds."""
    loud = np.flatnonzero(np.abs(audio) > threshold * (np.abs(audio).max() + 1e-12))
    if len(loud) == 0:
        return audio
    pad = int(margin * rate)
    return audio[max(loud[0] - pad, 0):loud[-1] + pad]


def utterance(speaker, text: str, rate: int) -> np.ndarray:
    """One sentence by one speaker of :data:`SPEAKERS`, trimmed, at ``rate`` Hz, unit RMS: ``(samples,)``."""
    _, voice, pitch, pitch_range, wpm = speaker
    audio = trim(espeak().say(text, voice, pitch, pitch_range, wpm), ESPEAK_RATE)
    audio = resample(audio, ESPEAK_RATE, rate, method="polyphase")
    return audio / (np.sqrt(np.mean(audio ** 2)) + 1e-12)


def speak_all(jobs, rate: int) -> list:
    """Synthesise ``jobs`` (a list of ``(speaker, text)``) in order: a list of float32 ``(samples,)``."""
    return [utterance(speaker, text, rate).astype(np.float32) for speaker, text in jobs]


def speak_in_child(batches, rate: int, progress=None) -> list:
    """Run :func:`speak_all` on each batch in ONE fresh child process, in order.

    espeak-ng keeps internal state from one utterance to the next (even across
    re-initialisation), so the same sentence can come out slightly differently
    depending on what the process said before. A fresh process that always says
    the same things in the same order makes the render bit-identical.
    """
    import multiprocessing

    espeak()  # fail here, with the clear message, if the engine is missing
    results = []
    with multiprocessing.get_context("spawn").Pool(1) as pool:
        for batch in pool.imap(_speak_batch, [(jobs, rate) for jobs in batches]):
            results.append(batch)
            if progress is not None:
                progress.update(len(batch))
    return results


def _speak_batch(args):
    return speak_all(*args)


def noise(n: int, rate: int, rng) -> np.ndarray:
    """Background noise for the noisy variant: coloured noise with a slowly moving level, ``(n,)``."""
    white = rng.standard_normal(n)
    slope = rng.uniform(0.5, 2.0)  # 1/f**slope: between pink and brown
    spectrum = np.fft.rfft(white)
    freqs = np.fft.rfftfreq(n, 1 / rate)
    spectrum /= np.maximum(freqs, 50.0) ** (slope / 2)
    coloured = np.fft.irfft(spectrum, n)
    hum = np.sin(2 * np.pi * rng.choice([50.0, 60.0]) * np.arange(n) / rate) * rng.uniform(0, 0.5)
    coloured = coloured / (np.std(coloured) + 1e-12) + hum
    b, a = signal.butter(1, 2.0 / (rate / 2))
    level = 1 + 0.4 * signal.lfilter(b, a, rng.standard_normal(n)) / 0.05
    return coloured * np.clip(level, 0.3, 2.0)


def render_speech(folder: Path, params: dict, progress: bool = True) -> dict:
    """Render the speech set into ``folder/wav8k/min/<split>/{mix_clean,s1,s2[,noise,mix_both]}/<id>.flac``."""
    from tqdm.auto import tqdm

    t0 = time.perf_counter()
    rate, seed = params["rate"], params["seed"]
    speakers = {s[0]: s for s in SPEAKERS}
    rng = np.random.default_rng([seed, 7])
    n_utt = params["utterances_per_speaker"]
    # each speaker reads its own sentences, so a test sentence is (almost surely) never heard in training
    texts = {sid: [make_sentence(rng) for _ in range(n_utt)] for sid in speakers}
    utterances = {}
    with tqdm(total=len(speakers) * n_utt, desc="speaking (espeak-ng)", disable=not progress, leave=False) as bar:
        batches = [[(speaker, text) for text in texts[sid]] for sid, speaker in speakers.items()]
        for sid, batch in zip(speakers, speak_in_child(batches, rate, bar)):
            utterances[sid] = [u.astype(np.float64) for u in batch]
    base = folder / f"wav{rate // 1000}k" / "min"
    metadata, seconds = {}, {}
    counts = {"train": params["n_train"], "valid": params["n_valid"], "test": params["n_test"]}
    total_mixtures = sum(counts.values())
    with tqdm(total=total_mixtures, desc="mixing speech", disable=not progress) as bar:
        for split, count in counts.items():
            seconds[split] = 0.0
            split_rng = np.random.default_rng([seed, ("train", "valid", "test").index(split)])
            pool = SPEAKER_SPLITS[split]
            for index in range(count):
                first, second = split_rng.choice(len(pool), 2, replace=False)
                s1_id, s2_id = pool[first], pool[second]
                u1, u2 = split_rng.integers(n_utt), split_rng.integers(n_utt)
                a, b = utterances[s1_id][u1], utterances[s2_id][u2]
                length = min(len(a), len(b))
                level_db = split_rng.uniform(0, 5)  # relative level, as in wsj0-2mix
                sources = {"s1": a[:length] * 10 ** (level_db / 40), "s2": b[:length] * 10 ** (-level_db / 40)}
                if params["noisy"]:
                    speech_rms = np.sqrt(np.mean((sources["s1"] + sources["s2"]) ** 2))
                    snr_db = split_rng.uniform(-3, 6)
                    sources["noise"] = noise(length, rate, split_rng) * speech_rms * 10 ** (-snr_db / 20)
                peaks = [np.abs(sum(sources.values())).max(), np.abs(sources["s1"] + sources["s2"]).max()]
                gain = 0.9 / max(*peaks, *(np.abs(s).max() for s in sources.values()))
                gain *= split_rng.uniform(0.3, 1.0)  # varied input levels
                ints = {k: np.round(v * gain * 32768).astype(np.int32) for k, v in sources.items()}
                name = f"{split}_{index:04d}_{s1_id}_{s2_id}"
                files = {"s1": ints["s1"], "s2": ints["s2"], "mix_clean": ints["s1"] + ints["s2"]}
                if params["noisy"]:
                    files["noise"] = ints["noise"]
                    files["mix_both"] = files["mix_clean"] + ints["noise"]
                for sub, samples in files.items():
                    (base / split / sub).mkdir(parents=True, exist_ok=True)
                    sf.write(str(base / split / sub / f"{name}.flac"), samples.astype(np.int16), rate,
                             subtype="PCM_16")
                metadata[name] = {"split": split, "speakers": [s1_id, s2_id],
                                  "texts": [texts[s1_id][u1], texts[s2_id][u2]],
                                  "relative_level_db": round(float(level_db), 3)}
                if params["noisy"]:
                    metadata[name]["snr_db"] = round(float(snr_db), 3)
                seconds[split] += length / rate
                bar.update(1)
    (folder / "tracks.json").write_text(json.dumps(metadata, indent=1))
    return {"render_seconds": round(time.perf_counter() - t0, 2), "audio_seconds": seconds,
            "tracks": counts}
