"""The embedded speech dataset: two-speaker mixtures of real read speech ("libri2mix-mini").

A small LibriMix, built offline from the LibriSpeech utterances that ship inside
tpsep (``tpsep/data/librispeech/``: 261 readers of English audiobooks, CC BY 4.0,
see the README there). It is made the way LibriMix and wsj0-2mix are made:

- the **speakers of the three splits never overlap**: the test mixtures use the
  10 speakers of LibriSpeech's test-other subset (5 women, 5 men, 10 utterances
  each); 20 speakers of train-clean-100 (10 women, 10 men) are held out for
  validation; the other 231 are for training. A model is always scored on
  voices it has never heard.
- each mixture adds **two utterances of two different speakers** of its split,
  each brought to the same RMS, then one made louder than the other by a
  relative level drawn uniformly in [0, 5] dB;
- **"min" mode**: the mixture is as long as the shorter utterance; the longer
  one is cut at a random start, so that the many mixtures that reuse an
  utterance hear different parts of it;
- the pairs are drawn from every possible pair of speakers of the split, with
  female-female (FF), female-male (FM) and male-male (MM) pairs in the
  proportion in which they occur, so every kind is present from the first three
  mixtures on. Same-sex pairs (voices of similar pitch) are the hard ones: the
  ``pair`` field of each track's ``meta`` lets a report score them apart;
- the optional **noisy variant** adds a third source, ``noise`` (coloured noise
  with a slowly moving level, as in the espeak set), at an SNR drawn in
  [-3, 6] dB, like WHAM! does for wsj0-2mix.

The same recordings serve the three tasks of LibriMix, chosen with ``task=``:

- ``"separate"`` (the default; LibriMix's ``sep_clean``): the mixture s1 + s2
  (``mix_clean``), the sources ``s1``, ``s2``;
- ``"separate_noisy"`` (``sep_noisy``; also ``noisy=True``, the older way to ask for
  it): s1 + s2 + noise (``mix_both``), the sources ``s1``, ``s2``, ``noise``;
- ``"enhance"`` (``enh_single``): one voice in noise, s1 + noise (``mix_single``), the
  sources ``speech`` (LibriMix's s1) and ``noise``. The target is ``speech``: a model
  enhances with one output, trained against it alone.

The **enhancement set** is the speaker s1 of each clean mixture (same utterance,
same cut, same length) alone in the noise of the noisy variant, at an SNR of the
speech against the noise drawn uniformly in ``ENHANCE_SNR_DB`` = [-5, 10] dB: from
noise louder than the voice to a voice clearly above it. ``meta["snr_db"]`` is that
SNR measured on the written 16-bit files (within 0.01 dB of the drawn one). The
noise being the only error of the noisy input, the input scores about its SNR in
SI-SDR against the voice (2.9 dB on average over the test split).

The files are laid out as a LibriMix folder
(``wav8k/min/<split>/{mix_clean,s1,s2[,noise,mix_both]}/<name>.flac``, 16-bit;
``{s1,noise,mix_single}`` for the enhancement set), so the same loader reads this
set and the real Libri2Mix. ``tracks.json`` holds each mixture's speakers, their
sexes, the pair kind, the utterance ids, where each utterance was cut, the relative
level and (noisy tasks) the SNR. An enhancement mixture keeps the name of the clean
mixture it comes from, as in LibriMix, and lists one speaker.

>>> tracks = load_dataset("speech", split="test")     # rendered once (about a minute), then cached
>>> tracks[0].meta["pair"], tracks[0].meta["speakers"]
>>> noisy_speech = load_dataset("speech", split="test", task="enhance")
>>> noisy_speech[0].source_names, noisy_speech[0].meta["snr_db"]     # ("speech", "noise"), in dB
"""

from __future__ import annotations

import hashlib
import itertools
import json
import time
from pathlib import Path

import numpy as np
import soundfile as sf

from ..audio import resample
from .real import resolve_task

LIBRIMIX_VERSION = 1  # bump when a change to this file changes the rendered audio
ENHANCE_SNR_DB = (-5.0, 10.0)  # the SNRs of the enhancement set: speech against noise, drawn uniformly
CORPUS = Path(__file__).with_name("librispeech")  # the vendored utterances (Ogg Opus, 16 kHz)
CORPUS_RATE = 16000
SUBSETS = {"train-clean-100": ("train", "valid"), "test-other": ("test",)}
VALID_SPEAKERS_PER_SEX = 10
SPLITS = ("train", "valid", "test")
RATES = (8000, 16000)


def librimix_params(n_train: int = 600, n_valid: int = 60, n_test: int = 90, rate: int = 8000,
                    seed: int = 0, noisy: bool = False, task: str = "separate") -> dict:
    """Every parameter that changes the rendered audio (they form the cache key).

    ``n_test=90`` uses each of the 45 pairs of the 10 test speakers exactly twice.
    The key also holds a fingerprint of the vendored recordings and the version of
    libsndfile, whose Opus decoder turns them into samples: a change to either
    gives a new cache folder instead of a stale one.

    Args:
        task: ``"separate"``, ``"separate_noisy"`` or ``"enhance"`` (see the module's
            docstring; LibriMix's names ``"sep_clean"``, ``"sep_noisy"``, ``"enh_single"``
            work too). ``noisy=True`` with the default task means ``"separate_noisy"``.

    Returns:
        a dict of plain values; :func:`task_of` reads the task back from it.
    """
    if rate not in RATES:
        raise ValueError(f"rate={rate}: the LibriSpeech mixtures are rendered at 8000 or 16000 Hz "
                         "(LibriSpeech is recorded at 16 kHz; LibriMix and wsj0-2mix use 8 kHz)")
    for split, n in (("train", n_train), ("valid", n_valid), ("test", n_test)):
        if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1:
            raise ValueError(f"n_{split}={n!r}: need a whole number of mixtures, at least one per split")
    task = resolve_task(task, noisy)
    params = {"dataset": "libri2mix-mini", "n_train": int(n_train), "n_valid": int(n_valid), "n_test": int(n_test),
              "rate": int(rate), "seed": int(seed), "librimix_version": LIBRIMIX_VERSION,
              "corpus": corpus_fingerprint(), "libsndfile": sf.__libsndfile_version__}
    # The separation sets keep the parameters they have always had ("noisy": False or True), and
    # so their cache folders; the enhancement set, added later, is told apart by a "task" of its own.
    if task == "enhance":
        params["task"] = task
    else:
        params["noisy"] = task == "separate_noisy"
    return params


def task_of(params: dict) -> str:
    """The task of a set rendered with ``params`` (those of this set or of the espeak set)."""
    return params.get("task") or ("separate_noisy" if params.get("noisy") else "separate")


# ---------------------------------------------------------------------------
# the vendored corpus: who speaks, their sex, their utterances

def corpus_files(corpus: Path = CORPUS) -> list:
    """The vendored utterances, sorted: ``train-clean-100/<utt>.opus`` and ``test-other/<speaker>/<utt>.opus``."""
    files = sorted(Path(corpus).glob("train-clean-100/*.opus")) + sorted(Path(corpus).glob("test-other/*/*.opus"))
    if not files or not (Path(corpus) / "SPEAKERS.TXT").is_file():
        raise FileNotFoundError(
            f"the LibriSpeech recordings of the speech set are missing from {corpus} (expected "
            "train-clean-100/*.opus, test-other/<speaker>/*.opus and SPEAKERS.TXT, shipped with tpsep). "
            "Reinstall tpsep, or rebuild the folder with benchmarks/vendor_librispeech.py")
    return files


def corpus_fingerprint(corpus: Path = CORPUS) -> str:
    """A short hash of the names and sizes of the vendored files (cheap: no audio is read)."""
    digest = hashlib.sha1()
    for path in corpus_files(corpus) + [Path(corpus) / "SPEAKERS.TXT"]:
        digest.update(f"{path.relative_to(corpus).as_posix()}:{path.stat().st_size};".encode())
    return digest.hexdigest()[:12]


def read_sexes(corpus: Path = CORPUS) -> dict:
    """``{speaker id: "F" or "M"}`` from LibriSpeech's SPEAKERS.TXT (``ID | SEX | SUBSET | MINUTES | NAME``)."""
    sexes = {}
    for line in (Path(corpus) / "SPEAKERS.TXT").read_text(encoding="utf-8").splitlines():
        fields = [f.strip() for f in line.split("|")]
        if line.startswith(";") or len(fields) < 2:
            continue  # comments
        sexes[fields[0]] = fields[1]
    return sexes


def corpus_speakers(corpus: Path = CORPUS) -> dict:
    """``{speaker id: {"sex", "subset", "utterances": {utterance id: path}}}`` for every vendored speaker."""
    sexes = read_sexes(corpus)
    speakers = {}
    for path in corpus_files(corpus):
        subset = path.relative_to(corpus).parts[0]
        speaker = path.name.split("-")[0]  # LibriSpeech ids are <speaker>-<chapter>-<utterance>
        if speaker not in sexes:
            raise ValueError(f"{path}: speaker {speaker} has no line in {Path(corpus) / 'SPEAKERS.TXT'}")
        entry = speakers.setdefault(speaker, {"sex": sexes[speaker], "subset": subset, "utterances": {}})
        entry["utterances"][path.stem] = path
    return speakers


def speaker_splits(speakers: dict) -> dict:
    """``{split: sorted speaker ids}``, disjoint: test-other for test, 10 + 10 held-out speakers for valid.

    The validation speakers are the 10 women and the 10 men of train-clean-100 with
    the smallest reader ids: a fixed rule, so that the split never depends on the
    seed and a validation voice is never trained on, whatever the seed.
    """
    test = sorted((s for s, e in speakers.items() if e["subset"] == "test-other"), key=int)
    pool = sorted((s for s, e in speakers.items() if e["subset"] == "train-clean-100"), key=int)
    valid = []
    for sex in ("F", "M"):
        valid += [s for s in pool if speakers[s]["sex"] == sex][:VALID_SPEAKERS_PER_SEX]
    train = [s for s in pool if s not in valid]
    return {"train": train, "valid": sorted(valid, key=int), "test": test}


def pair_kind(sex_a: str, sex_b: str) -> str:
    """"FF", "FM" or "MM" (letters sorted, so that "MF" and "FM" are one kind)."""
    return "".join(sorted(sex_a + sex_b))


# ---------------------------------------------------------------------------
# which speakers, which utterances, where to cut: drawn before any audio is read

def plan_pairs(speakers: list, sexes: dict, count: int, rng) -> list:
    """``count`` pairs of different speakers: every pair of the split once (in a random order) before any twice.

    Within a round the FF, FM and MM pairs are interleaved in proportion to their
    numbers, so that even a handful of mixtures holds every kind, and ``count``
    equal to a multiple of the number of pairs uses each pair equally often.
    """
    by_kind = {}
    for a, b in itertools.combinations(speakers, 2):
        by_kind.setdefault(pair_kind(sexes[a], sexes[b]), []).append((a, b))
    pairs = []
    while len(pairs) < count:
        order = []
        for kind in sorted(by_kind):
            members = by_kind[kind]
            for rank, k in enumerate(rng.permutation(len(members))):
                # the rank-th pair of this kind sits at the fraction (rank + 0.5) / len of the round
                order.append(((rank + 0.5) / len(members), kind, members[k]))
        order.sort(key=lambda item: item[:2])
        pairs += [pair for _, _, pair in order]
    return pairs[:count]


def plan_split(split: str, speakers: dict, ids: list, count: int, seed: int) -> list:
    """The recipe of each mixture of ``split``: speakers, utterances, level, cut positions, gain.

    All random draws happen here, from a generator of its own per split, so that
    changing ``n_train`` leaves the test mixtures as they are.
    """
    rng = np.random.default_rng([seed, SPLITS.index(split)])
    # the SNRs of the enhancement set come from a generator of their own: drawing them from ``rng``
    # would shift every later draw, and so change the separation sets
    enhance_snrs = np.random.default_rng([seed, SPLITS.index(split), 1]).uniform(*ENHANCE_SNR_DB, size=count)
    sexes = {s: speakers[s]["sex"] for s in ids}
    # each speaker reads its utterances in a shuffled order, cycling: all are used before any twice
    readings = {s: [list(speakers[s]["utterances"])[k] for k in rng.permutation(len(speakers[s]["utterances"]))]
                for s in ids}
    used = {s: 0 for s in ids}
    plans = []
    for index, (a, b) in enumerate(plan_pairs(ids, sexes, count, rng)):
        if rng.random() < 0.5:  # which speaker is s1 is arbitrary: do not let it follow the id order
            a, b = b, a
        utterances = []
        for speaker in (a, b):
            utterances.append(readings[speaker][used[speaker] % len(readings[speaker])])
            used[speaker] += 1
        plans.append({"name": f"{split}_{index:04d}_{a}_{b}", "split": split, "index": index, "speakers": [a, b],
                      "sexes": [sexes[a], sexes[b]], "pair": pair_kind(sexes[a], sexes[b]),
                      "utterances": utterances,
                      "relative_level_db": float(rng.uniform(0, 5)),  # s1 louder than s2 by this, as wsj0-2mix
                      "cut": float(rng.random()),   # where the longer utterance starts, as a fraction
                      "gain": float(rng.uniform(0.3, 1.0)),  # varied input levels
                      "snr_db": float(rng.uniform(-3, 6)),  # drawn always, used by the noisy variant only
                      "enhance_snr_db": float(enhance_snrs[index])})  # used by the enhancement set only
    return plans


def read_utterance(path: Path, rate: int) -> np.ndarray:
    """One vendored utterance at ``rate`` Hz: float32 ``(samples,)`` (the mixing is done in float64)."""
    audio, file_rate = sf.read(str(path), dtype="float32")
    if file_rate != CORPUS_RATE or audio.ndim != 1:
        raise ValueError(f"{path}: expected {CORPUS_RATE} Hz mono, got {file_rate} Hz and shape {audio.shape}")
    return resample(audio, CORPUS_RATE, rate).astype(np.float32)  # float32 halves the memory held


def cut_utterances(plan: dict, audio: dict) -> list:
    """The two utterances of ``plan``, cut to the length of the shorter one, each at unit RMS (float64).

    Also stores in ``plan`` where each utterance was cut (``starts``, in samples).
    """
    first, second = (audio[u] for u in plan["utterances"])
    length = min(len(first), len(second))
    starts = []
    segments = []
    for utterance in (first, second):
        start = int(plan["cut"] * (len(utterance) - length + 1))  # 0 for the shorter one
        starts.append(start)
        segment = utterance[start:start + length].astype(np.float64)
        segments.append(segment / (np.sqrt(np.mean(segment ** 2)) + 1e-12))  # same RMS before the level
    plan["starts"] = starts
    return segments


def background_noise(plan: dict, length: int, rate: int, seed: int) -> np.ndarray:
    """The noise of mixture ``plan`` (float64 ``(length,)``), the same for every task that uses it.

    A generator of its own per mixture: the noisy sets draw the same speech mixtures as the clean one.
    """
    from .speech import noise  # the same background noise as the espeak set

    noise_rng = np.random.default_rng([seed, SPLITS.index(plan["split"]), plan["index"], 99])
    return noise(length, rate, noise_rng)


def mix(plan: dict, audio: dict, rate: int, noisy: bool, seed: int) -> dict:
    """The integer samples of one mixture: ``{"s1", "s2", "mix_clean"[, "noise", "mix_both"]}`` int32 ``(samples,)``.

    Also stores in ``plan`` where each utterance was cut (``starts``, in samples at ``rate``).
    """
    segments = cut_utterances(plan, audio)
    length = len(segments[0])
    level = plan["relative_level_db"]
    sources = {"s1": segments[0] * 10 ** (level / 40), "s2": segments[1] * 10 ** (-level / 40)}
    if noisy:
        speech_rms = np.sqrt(np.mean((sources["s1"] + sources["s2"]) ** 2))
        sources["noise"] = background_noise(plan, length, rate, seed) * speech_rms * 10 ** (-plan["snr_db"] / 20)
    # the loudest of the mixture and of every source peaks at 0.9 * gain: no clipping, varied levels
    peaks = [np.abs(sum(sources.values())).max(), np.abs(sources["s1"] + sources["s2"]).max(),
             *(np.abs(s).max() for s in sources.values())]
    gain = 0.9 / max(peaks) * plan["gain"]
    ints = {k: np.round(v * gain * 32768).astype(np.int32) for k, v in sources.items()}
    # the mixture is the sum of the written sources, sample for sample (no rounding gap)
    files = {"s1": ints["s1"], "s2": ints["s2"], "mix_clean": ints["s1"] + ints["s2"]}
    if noisy:
        files["noise"] = ints["noise"]
        files["mix_both"] = files["mix_clean"] + ints["noise"]
    return files


def mix_single(plan: dict, audio: dict, rate: int, seed: int) -> dict:
    """The integer samples of one enhancement mixture: ``{"s1", "noise", "mix_single"}`` int32 ``(samples,)``.

    The speech is the s1 of the clean mixture ``plan`` (same utterance, cut at the same
    place, as long), the noise that of the noisy variant, brought to the SNR
    ``plan["enhance_snr_db"]`` against the speech. Also stores in ``plan`` the cut
    positions (``starts``) and the SNR measured on the integer samples (``measured_snr_db``).
    """
    speech = cut_utterances(plan, audio)[0]
    noise = background_noise(plan, len(speech), rate, seed)
    # at unit RMS, the noise's level is set by the SNR alone (its level moves, and it may hold hum)
    noise = noise / np.sqrt(np.mean(noise ** 2)) * 10 ** (-plan["enhance_snr_db"] / 20)
    # the loudest of the mixture and of each source peaks at 0.9 * gain: no clipping, varied levels
    peak = max(np.abs(speech + noise).max(), np.abs(speech).max(), np.abs(noise).max())
    gain = 0.9 / peak * plan["gain"]
    files = {"s1": np.round(speech * gain * 32768).astype(np.int32),
             "noise": np.round(noise * gain * 32768).astype(np.int32)}
    # the mixture is the sum of the written sources, sample for sample (no rounding gap)
    files["mix_single"] = files["s1"] + files["noise"]
    energy = {name: float(np.sum(files[name].astype(np.float64) ** 2)) for name in ("s1", "noise")}
    plan["measured_snr_db"] = 10 * np.log10(energy["s1"] / energy["noise"])
    return files


def render_librimix(folder: Path, params: dict, progress: bool = True) -> dict:
    """Render the set into ``folder/wav8k/min/<split>/<folder>/<name>.flac``, the folders of its task.

    ``{mix_clean,s1,s2}`` to separate, ``{mix_clean,s1,s2,noise,mix_both}`` to separate in
    noise, ``{s1,noise,mix_single}`` to enhance (``wav16k`` at 16 kHz). Writes
    ``folder/tracks.json`` with each mixture's metadata.

    Returns:
        figures for the manifest: render time, seconds of audio per split, pair kinds per
        split (sexes of the speaker, for the enhancement set).
    """
    from tqdm.auto import tqdm

    t0 = time.perf_counter()
    rate, seed, task = params["rate"], params["seed"], task_of(params)
    speakers = corpus_speakers()
    splits = speaker_splits(speakers)
    counts = {"train": params["n_train"], "valid": params["n_valid"], "test": params["n_test"]}
    plans = [p for split in SPLITS for p in plan_split(split, speakers, splits[split], counts[split], seed)]

    # read (decode, resample) only the utterances that the mixtures use, each once (the enhancement
    # set needs s2's utterance too: the clean mixture, and so s1's cut, is as long as the shorter one)
    needed = sorted({(s, u) for p in plans for s, u in zip(p["speakers"], p["utterances"])})
    audio = {}
    for speaker, utterance in tqdm(needed, desc="reading LibriSpeech", disable=not progress, leave=False):
        audio[utterance] = read_utterance(speakers[speaker]["utterances"][utterance], rate)

    base = folder / f"wav{rate // 1000}k" / "min"
    metadata = {}
    seconds = {split: 0.0 for split in SPLITS}
    kinds = {split: dict.fromkeys(("F", "M") if task == "enhance" else ("FF", "FM", "MM"), 0) for split in SPLITS}
    for plan in tqdm(plans, desc="mixing speech", disable=not progress):
        if task == "enhance":
            files = mix_single(plan, audio, rate, seed)
        else:
            files = mix(plan, audio, rate, task == "separate_noisy", seed)
        split = plan["split"]
        for sub, samples in files.items():
            (base / split / sub).mkdir(parents=True, exist_ok=True)
            sf.write(str(base / split / sub / f"{plan['name']}.flac"), samples.astype(np.int16), rate,
                     subtype="PCM_16")
        metadata[plan["name"]] = track_metadata(plan, task)
        seconds[split] += len(files["s1"]) / rate
        kind = plan["sexes"][0] if task == "enhance" else plan["pair"]
        kinds[split][kind] += 1
    (folder / "tracks.json").write_text(json.dumps(metadata, indent=1))
    return {"render_seconds": round(time.perf_counter() - t0, 2),
            "audio_seconds": {k: round(v, 2) for k, v in seconds.items()}, "tracks": counts,
            ("sexes" if task == "enhance" else "pairs"): kinds,
            "speakers": {split: len(ids) for split, ids in splits.items()}}


def track_metadata(plan: dict, task: str) -> dict:
    """What ``tracks.json`` says about one mixture of ``task`` (``plan`` once mixed).

    An enhancement mixture lists its one speaker (as one-element lists, the same keys as a
    separation mixture) and the SNR measured on its files; it has no pair and no relative level.
    """
    if task == "enhance":
        return {"split": plan["split"], "speakers": plan["speakers"][:1], "sexes": plan["sexes"][:1],
                "utterances": plan["utterances"][:1], "starts": plan["starts"][:1],
                "snr_db": round(plan["measured_snr_db"], 3)}
    entry = {"split": plan["split"], "speakers": plan["speakers"], "sexes": plan["sexes"], "pair": plan["pair"],
             "utterances": plan["utterances"], "starts": plan["starts"],
             "relative_level_db": round(plan["relative_level_db"], 3)}
    if task == "separate_noisy":
        entry["snr_db"] = round(plan["snr_db"], 3)
    return entry
