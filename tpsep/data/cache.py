"""Where rendered datasets live on disk, and how a half-written one is detected.

A rendered dataset is a folder ``<cache>/<name>-<key>/`` where ``key`` is a hash
of every parameter that changes the audio (seed, rate, size, library versions).
The folder is built under a temporary name and renamed into place only once a
``manifest.json`` listing every file with its size and checksum has been written,
so an interrupted render never looks finished; a file damaged later is caught by
:func:`verify` and the set is rendered again.

A process killed mid-render leaves its temporary folder behind (``.<name>-<key>.partial-...``,
without a manifest); the next render deletes it once its owner is known to be gone,
so that the cache does not fill up with half-rendered datasets.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import socket
import sys
import time
import uuid
from pathlib import Path

MANIFEST = "manifest.json"
PARTIAL = ".partial-"  # a render in progress, or left by a killed process: no manifest yet
STALE = ".stale-"  # a replaced render moved aside to be deleted
# A partial folder whose owner cannot be asked (written by an older tpsep, or by another
# machine sharing the cache) is abandoned once nothing in it has changed for this long:
# a live render writes files every few seconds, and takes minutes, not a day.
ABANDONED_AFTER_S = 24 * 3600


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


def partial_folder(final: Path) -> Path:
    """A fresh temporary folder in which to render ``final``: ``.<final>.partial-<host>-<pid>-<random>``.

    The host and process id let a later render tell the leftovers of a killed
    process from the folder of a render still running in another process.
    """
    return final.parent / f".{final.name}{PARTIAL}{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:8]}"


def _process_is_running(pid: int) -> bool:
    try:
        os.kill(pid, 0)  # signal 0 checks that the process exists, and sends nothing
    except ProcessLookupError:
        return False
    except OSError:  # PermissionError: it exists, and belongs to someone else
        return True
    return True


def _last_change(folder: Path) -> float:
    """The time anything in ``folder`` last changed (its newest modification time)."""
    newest = folder.stat().st_mtime
    for parent, _, files in os.walk(folder):
        for name in files:
            try:
                newest = max(newest, os.stat(os.path.join(parent, name)).st_mtime)
            except OSError:
                pass
    return newest


def is_abandoned(partial: Path) -> bool:
    """True when the partial render folder ``partial`` belongs to no running render."""
    owner = partial.name.split(PARTIAL, 1)[1].rsplit("-", 2)  # [host, pid, random] from partial_folder
    # os.kill(pid, 0) asks whether a process exists on POSIX only (on Windows it would stop it)
    if len(owner) == 3 and owner[1].isdigit() and owner[0] == socket.gethostname() and os.name == "posix":
        if not _process_is_running(int(owner[1])):
            return True
    try:
        return time.time() - _last_change(partial) > ABANDONED_AFTER_S
    except OSError:  # deleted meanwhile by someone else
        return False


def remove_leftovers(root: Path) -> list:
    """Delete the folders that killed renders left in ``root``; returns those removed.

    A partial folder goes once its owner is gone (:func:`is_abandoned`); a stale
    folder (an old render moved aside to be deleted) always goes. Other files and
    folders are never touched.
    """
    try:
        entries = list(Path(root).iterdir())
    except OSError:  # no cache yet
        return []
    removed = []
    for folder in entries:
        if not (folder.name.startswith(".") and folder.is_dir()):
            continue
        if STALE in folder.name or (PARTIAL in folder.name and is_abandoned(folder)):
            shutil.rmtree(folder, ignore_errors=True)
            removed.append(folder)
    return removed


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
    remove_leftovers(final.parent)  # a listing of the cache folder: cheap on every call
    stamp = _stamp(final)
    if stamp is not None and stamp in _verified and verify(final, checksums=False):
        return final  # checksummed earlier in this process; sizes still checked
    if verify(final, checksums=checksums):
        _verified.add(stamp)
        return final
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = partial_folder(final)
    tmp.mkdir()
    try:
        info = render(tmp)
        write_manifest(tmp, params, info)
        if final.exists():  # stale or corrupted: replace it
            if verify(final, checksums=checksums):  # another process just finished
                shutil.rmtree(tmp, ignore_errors=True)
                return final
            trash = final.parent / f".{final.name}{STALE}{uuid.uuid4().hex[:8]}"
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
