"""``tpsep data``: inspect (and if needed render) the course datasets from the command line."""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

SPLIT_NAMES = ("train", "valid", "test")


def folder_size(folder: Path) -> int:
    """Bytes used by the files under ``folder``."""
    return sum(p.stat().st_size for p in Path(folder).rglob("*") if p.is_file())


def dataset_info(name: str, **options) -> dict:
    """Figures of one dataset: per split tracks and seconds, plus render time and disk size.

    ``name`` is "music", "speech" or a path; embedded datasets are rendered if not cached.
    A dataset that cannot be read (a missing stem, a damaged file, a wrong path) raises
    the loader's error, which names the file: it is never reported as "0 tracks".
    """
    from . import EMBEDDED, dataset_folder, load_dataset
    from .cache import read_manifest
    from .real import SplitNotFound

    started = time.perf_counter()
    info = {"dataset": name, "splits": {}}
    if name in EMBEDDED:
        folder = dataset_folder(name, **options)
        manifest = read_manifest(folder)
        info.update(folder=str(folder), render_seconds=manifest["info"].get("render_seconds"),
                    disk_mb=round(folder_size(folder) / 2 ** 20, 1), params=manifest["params"])
    for split in SPLIT_NAMES:
        try:
            tracks = load_dataset(name, split=split, **options)
        except SplitNotFound:  # a real dataset without this split: truly 0 tracks, nothing is wrong
            tracks = []
        info["splits"][split] = {"tracks": len(tracks), "seconds": round(sum(t.duration for t in tracks), 2),
                                 "rate": tracks[0].rate if tracks else None,
                                 "channels": tracks[0].channels if tracks else None,
                                 "sources": list(tracks[0].source_names) if tracks else []}
    info["tracks"] = sum(s["tracks"] for s in info["splits"].values())
    if info["tracks"] == 0:
        raise ValueError(f"{name}: no tracks in any split {list(SPLIT_NAMES)}; expected a folder of tracks "
                         "(MUSDB18, MUSDB18-HQ, a folder of stems, LibriMix)")
    info["minutes"] = round(sum(s["seconds"] for s in info["splits"].values()) / 60, 2)
    info["seconds_to_load"] = round(time.perf_counter() - started, 2)
    return info


def print_info(info: dict) -> None:
    print(f"dataset {info['dataset']}" + (f"  ({info['folder']})" if "folder" in info else ""))
    for split, s in info["splits"].items():
        print(f"  {split:5s}: {s['tracks']:4d} tracks, {s['seconds'] / 60:6.2f} min, "
              f"{s['rate'] or '-'} Hz, {s['channels'] or '-'} ch, sources {', '.join(s['sources'])}")
    if "render_seconds" in info:
        print(f"  rendered in {info['render_seconds']} s (when first cached), {info['disk_mb']} MB on disk")


def key_line(infos: list) -> str:
    parts = []
    for info in infos:
        text = f"{info['dataset']}: {info['tracks']} tracks, {info['minutes']:.1f} min"
        if "render_seconds" in info:
            text += f", render {info['render_seconds']} s, {info['disk_mb']} MB"
        parts.append(text)
    return "data | " + " | ".join(parts)


def check_json_path(path) -> None:
    """Refuse a ``--json`` path that cannot be written before any work, not after it."""
    path = Path(path)
    if path.is_dir():
        raise ValueError(f"--json {path} is a folder; expected the path of a file to write")
    if not path.parent.is_dir():
        raise FileNotFoundError(f"--json {path}: folder {path.parent} does not exist; "
                                "expected a file in an existing folder")


def render_options(names: list, options: dict) -> dict:
    """``{dataset: the options it takes}``, checked before anything is rendered.

    ``--set n_chorales=10`` is a music option and ``--set noisy=true`` a speech one:
    each embedded dataset gets the options it knows, a real dataset none. An option
    that no dataset named takes is an error, not a silent no-op.
    """
    import inspect

    from . import EMBEDDED, _split_options, embedded_renderer

    accepted = {name: {"progress", "verify"} | set(inspect.signature(embedded_renderer(name)[0]).parameters)
                for name in names if name in EMBEDDED}
    unused = [key for key in options if key != "progress" and not any(key in keys for keys in accepted.values())]
    if unused:
        known = sorted(set().union(*accepted.values()) - {"progress", "verify"})
        raise ValueError(f"--rate/--set {unused}: no such option for {sorted(accepted) or names}; expected "
                         + (f"one of {known}" if known else "an embedded dataset (music, speech) to apply it to"))
    chosen = {}
    for name in names:
        chosen[name] = {k: v for k, v in options.items() if k in accepted.get(name, ())}
        if name in accepted:
            try:  # checks the values too (rate, counts) before a render starts
                _split_options(name, chosen[name])
            except TypeError as error:  # a value of the wrong type, e.g. --set rate=high
                raise ValueError(f"tpsep data info {name}: {error}") from None
    return chosen


def run_data_info(args) -> int:
    options = {"progress": not args.quiet}
    if args.rate is not None:
        options["rate"] = args.rate
    for item in args.set or []:
        key, _, value = item.partition("=")
        if not key or not value:
            raise ValueError(f"tpsep data info: --set expects KEY=VALUE, got {item!r}")
        try:  # numbers, true/false and lists are JSON; anything else is a plain word
            options[key] = json.loads(value)
        except ValueError:
            options[key] = value
    names = args.datasets or ["music", "speech"]
    if args.json:
        check_json_path(args.json)
    options_of = render_options(names, options)
    infos = []
    for name in names:
        info = dataset_info(name, **options_of[name])
        print_info(info)
        infos.append(info)
    line = key_line(infos)
    print(line)
    if args.json:
        Path(args.json).write_text(json.dumps({"datasets": infos, "summary": line}, indent=1))
    return 0


def add_data_command(subparsers) -> argparse.ArgumentParser:
    """Register ``tpsep data`` (with its ``info`` action) on an argparse ``subparsers`` object."""
    parser = subparsers.add_parser(
        "data", help="list the datasets (rendering the embedded ones if needed)",
        description=(
            "The course runs offline on embedded datasets that tpsep renders itself the first\n"
            "time they are needed, and caches on disk (folder: $TPSEP_CACHE, default ~/.cache/tpsep):\n"
            "  music   Bach chorales from music21's corpus as drums/bass/other/vocals stems, 16 kHz\n"
            "  speech  two-speaker mixtures (s1, s2) of real LibriSpeech voices, 8 kHz, made as LibriMix\n"
            "  espeak  the older two-speaker mixtures of espeak-ng voices (s1, s2), 8 kHz\n"
            "A path to real data (MUSDB18, MUSDB18-HQ, a folder of stems, LibriMix) works too.\n\n"
            "examples:\n"
            "  tpsep data info                  # both embedded datasets\n"
            "  tpsep data info music --json data.json\n"
            "  tpsep data info ~/data/musdb18hq"),
        formatter_class=argparse.RawDescriptionHelpFormatter)
    actions = parser.add_subparsers(dest="data_action", metavar="ACTION")
    info = actions.add_parser("info", help="tracks, minutes, render time and disk size per split",
                              description="Print per split the number of tracks and the total duration, "
                                          "the render time and the size on disk; the last line holds the key figures.")
    info.add_argument("datasets", nargs="*", metavar="DATASET",
                      help='"music", "speech" or a path to real data (default: music and speech)')
    info.add_argument("--rate", type=int, default=None, help="sample rate of the embedded datasets (default: their own)")
    info.add_argument("--set", action="append", metavar="KEY=VALUE",
                      help="a rendering option of the embedded datasets, e.g. --set n_chorales=10 "
                           "--set channels=2 --set noisy=true (repeatable)")
    info.add_argument("--quiet", action="store_true", help="no progress bars")
    info.add_argument("--json", metavar="PATH", default=None, help="also write the figures to PATH as JSON")
    info.set_defaults(func=run_data_info)
    parser.set_defaults(func=lambda args: parser.print_help() or 2)
    return parser
