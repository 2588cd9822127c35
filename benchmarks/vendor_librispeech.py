"""Vendor a small LibriSpeech subset into the package, as Ogg Opus: ``tpsep/data/librispeech/``.

The embedded speech set (``load_dataset("speech")``) mixes real read speech from
LibriSpeech (Panayotov et al. 2015, CC BY 4.0). The FLAC originals weigh 69 MB,
too much for the repository; Opus at 16 kHz (about 28 kbit/s) keeps them at
about 14 MB and sounds the same for separation purposes. This script is the one
step that made the package folder, so that it can be made again:

    python benchmarks/vendor_librispeech.py [SOURCE] [--out tpsep/data/librispeech]

SOURCE (default ``../shared/realdata/librispeech-mini``) holds
``train-clean-100/<utterance>.flac`` (one utterance per speaker),
``test-other/<speaker>/<utterance>.flac``, ``SPEAKERS.TXT`` and ``LICENSE.TXT``
(either at the top or inside one of the two subsets). The output keeps the same
layout with ``.opus`` files, the license text, the lines of SPEAKERS.TXT for the
speakers shipped, and a README with the attribution.
"""

from __future__ import annotations

import argparse
import multiprocessing
import shutil
from pathlib import Path

import soundfile as sf

REPO = Path(__file__).resolve().parents[1]
SUBSETS = ("train-clean-100", "test-other")
RATE = 16000

README = """\
# LibriSpeech subset (re-encoded): the voices of the embedded speech set

`tpsep.data.load_dataset("speech")` mixes these recordings two by two, as
LibriMix does (see `tpsep/data/librispeech.py`).

What it is: read English speech from LibriVox audiobooks, taken from the
LibriSpeech ASR corpus

- `train-clean-100/`: {n_train} utterances, one per speaker, {n_train} speakers of the
  train-clean-100 subset ({train_minutes:.1f} min);
- `test-other/<speaker>/`: {n_test} utterances of {n_test_speakers} speakers of the
  test-other subset ({test_minutes:.1f} min), none of whom appears in train-clean-100;
- `SPEAKERS.TXT`: reader id, sex, subset, minutes, name for the speakers above
  (the lines of the corpus' own SPEAKERS.TXT);
- `LICENSE.TXT`: the corpus' license notice.

Source: LibriSpeech ASR corpus, https://www.openslr.org/12 --
V. Panayotov, G. Chen, D. Povey and S. Khudanpur, "LibriSpeech: an ASR corpus
based on public domain audio books", ICASSP 2015.

License and attribution: LibriSpeech (c) 2014 by Vassil Panayotov, licensed
under the Creative Commons Attribution 4.0 International License (CC BY 4.0,
http://creativecommons.org/licenses/by/4.0/). The original audiobooks are
public-domain recordings from LibriVox.

Changes made: only the subset of speakers and utterances listed above is kept,
and every utterance was re-encoded from 16 kHz FLAC to Ogg Opus at 16 kHz
(about 28 kbit/s, same length in samples) with `benchmarks/vendor_librispeech.py`,
so that the package stays small ({megabytes:.1f} MB instead of {flac_megabytes:.0f} MB).
Opus is lossy: the waveforms differ slightly from the originals.
"""


def find_text(source: Path, name: str) -> Path:
    """``name`` at the top of ``source`` or inside one of the subsets."""
    for candidate in [source / name] + [source / subset / name for subset in SUBSETS]:
        if candidate.is_file():
            return candidate
    raise FileNotFoundError(f"{name} not found in {source} nor in its subsets {SUBSETS}")


def encode(job) -> tuple:
    """Re-encode one FLAC as Ogg Opus; returns (frames in, frames out)."""
    flac, opus = job
    audio, rate = sf.read(str(flac), dtype="float32")
    if rate != RATE or audio.ndim != 1:
        raise ValueError(f"{flac}: expected 16 kHz mono, got {rate} Hz and shape {audio.shape}")
    opus.parent.mkdir(parents=True, exist_ok=True)
    sf.write(str(opus), audio, RATE, format="OGG", subtype="OPUS")
    return len(audio), sf.info(str(opus)).frames


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("source", nargs="?", default=str(REPO.parent / "shared" / "realdata" / "librispeech-mini"))
    parser.add_argument("--out", default=str(REPO / "tpsep" / "data" / "librispeech"))
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    source, out = Path(args.source), Path(args.out)

    flacs = sorted(source.glob("train-clean-100/*.flac")) + sorted(source.glob("test-other/*/*.flac"))
    if not flacs:
        raise SystemExit(f"no FLAC files under {source}/train-clean-100 or {source}/test-other/<speaker>")
    if out.exists():
        shutil.rmtree(out)
    jobs = [(f, out / f.relative_to(source).with_suffix(".opus")) for f in flacs]
    with multiprocessing.Pool(args.workers) as pool:
        frames = pool.map(encode, jobs)
    changed = [str(f) for (f, _), (a, b) in zip(jobs, frames) if a != b]
    if changed:
        raise SystemExit(f"Opus changed the length of {changed}")

    speakers = {f.name.split("-")[0] for f in flacs}
    lines = find_text(source, "SPEAKERS.TXT").read_text().splitlines()
    kept = [line for line in lines if line.startswith(";") or line.split("|")[0].strip() in speakers]
    (out / "SPEAKERS.TXT").write_text("\n".join(kept) + "\n")
    missing = speakers - {line.split("|")[0].strip() for line in kept if not line.startswith(";")}
    if missing:
        raise SystemExit(f"SPEAKERS.TXT has no line for speaker(s) {sorted(missing)}")
    shutil.copy(find_text(source, "LICENSE.TXT"), out / "LICENSE.TXT")

    seconds = {s: sum(n for (f, _), (n, _) in zip(jobs, frames) if f.relative_to(source).parts[0] == s) / RATE
               for s in SUBSETS}
    test_files = [f for f in flacs if f.relative_to(source).parts[0] == "test-other"]
    size = sum(p.stat().st_size for p in out.rglob("*") if p.is_file())
    (out / "README.md").write_text(README.format(
        n_train=len(flacs) - len(test_files), train_minutes=seconds["train-clean-100"] / 60,
        n_test=len(test_files), n_test_speakers=len({f.parent.name for f in test_files}),
        test_minutes=seconds["test-other"] / 60, megabytes=size / 1e6,
        flac_megabytes=sum(f.stat().st_size for f in flacs) / 1e6))
    size = sum(p.stat().st_size for p in out.rglob("*") if p.is_file())
    total = sum(n for n, _ in frames) / RATE
    print(f"{len(flacs)} utterances, {len(speakers)} speakers, {total / 60:.1f} min -> {out}: {size / 1e6:.1f} MB "
          f"({size * 8 / total / 1000:.1f} kbit/s), lengths unchanged")


if __name__ == "__main__":
    main()
