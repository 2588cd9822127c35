"""Where rendered datasets live on disk, and how a half-written one is detected.

A rendered dataset is a folder ``<cache>/<name>-<key>/`` where ``key`` is a hash
of every parameter that changes the audio (seed, rate, size, library versions).
The folder is built under a temporary name and renamed into place only once a
``manifest.json`` listing every file with its size and checksum has been written,
so an interrupted render never looks finished; a file damaged later is caught by
:func:`verify` and the set is rendered again.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import sys
import uuid
from pathlib import Path

MANIFEST = "manifest.json"


def cache_root() -> Path:
    """The folder holding every rendered dataset: ``$TPSEP_CACHE`` or the user cache folder."""
    if os.environ.get("TPSEP_CACHE"):
        return Path(os.environ["TPSEP_CACHE"]).expanduser()
    if sys.platform == "win32":
        base = Path(os.environ.get("LOCALAPPDATA", Path.home() / "AppData" / "Local"))
    elif sys.platform == "darwin":
        base = Path.home() / "Library" / "Caches"
    else:
        base = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache"))
    return base / "tpsep"


def params_key(params: dict) -> str:
    """A short stable hash of the rendering parameters (any change gives a new key)."""
    text = json.dumps(params, sort_keys=True, default=str)
    return hashlib.sha1(text.encode()).hexdigest()[:12]


def dataset_dir(name: str, params: dict) -> Path:
    """The folder of the dataset ``name`` rendered with ``params`` (may not exist yet)."""
    return cache_root() / f"{name}-{params_key(params)}"


def file_checksum(path: Path) -> str:
    digest = hashlib.blake2b(digest_size=16)
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def write_manifest(folder: Path, params: dict, info: dict) -> None:
    """List every file of ``folder`` with size and checksum; written last, it marks the render complete."""
    files = {}
    for path in sorted(folder.rglob("*")):
        if path.is_file() and path.name != MANIFEST:
            rel = path.relative_to(folder).as_posix()
            files[rel] = {"size": path.stat().st_size, "blake2b": file_checksum(path)}
    manifest = {"params": params, "info": info, "files": files}
    tmp = folder / (MANIFEST + ".tmp")
    tmp.write_text(json.dumps(manifest, indent=1, default=str))
    tmp.replace(folder / MANIFEST)


def read_manifest(folder: Path) -> dict | None:
    try:
        return json.loads((Path(folder) / MANIFEST).read_text())
    except (OSError, ValueError):
        return None


def verify(folder: Path, prefix: str = "", checksums: bool = True) -> bool:
    """True when ``folder`` holds a complete render whose files (under ``prefix``) are intact."""
    manifest = read_manifest(folder)
    if manifest is None or not manifest.get("files"):
        return False
    for rel, entry in manifest["files"].items():
        if not rel.startswith(prefix):
            continue
        path = Path(folder) / rel
        try:
            if path.stat().st_size != entry["size"]:
                return False
        except OSError:
            return False
        if checksums and file_checksum(path) != entry["blake2b"]:
            return False
    return True


_verified = set()  # (folder, manifest mtime) already checked in this process


def _stamp(folder: Path):
    try:
        return (str(folder), (Path(folder) / MANIFEST).stat().st_mtime_ns)
    except OSError:
        return None


def render_once(name: str, params: dict, render, checksums: bool = True) -> Path:
    """Return the folder of a complete render, calling ``render(tmp_folder) -> info`` only if needed.

    ``render`` writes its files into an empty temporary folder and returns a dict of
    figures (render time, ...) kept in the manifest. Two processes rendering at once
    are safe: each writes its own temporary folder and the first rename wins.
    """
    final = dataset_dir(name, params)
    stamp = _stamp(final)
    if stamp is not None and stamp in _verified and verify(final, checksums=False):
        return final  # checksummed earlier in this process; sizes still checked
    if verify(final, checksums=checksums):
        _verified.add(stamp)
        return final
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = final.parent / f".{final.name}.partial-{uuid.uuid4().hex[:8]}"
    tmp.mkdir()
    try:
        info = render(tmp)
        write_manifest(tmp, params, info)
        if final.exists():  # stale or corrupted: replace it
            if verify(final, checksums=checksums):  # another process just finished
                shutil.rmtree(tmp, ignore_errors=True)
                return final
            trash = final.parent / f".{final.name}.stale-{uuid.uuid4().hex[:8]}"
            try:
                final.rename(trash)
                shutil.rmtree(trash, ignore_errors=True)
            except OSError:
                pass
        try:
            tmp.rename(final)
        except OSError:  # lost a race with another process
            if not verify(final, checksums=checksums):
                raise
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return final
