"""Crash-safe file replacement for `config.json` (and any other small JSON file).

A1111 writes `config.json` in place (`open(filename, "w")` then `json.dump`), so a crash or a kill during the write
leaves a truncated file and the next start loses every setting. Here the new content goes to a temporary file in
the same directory, is flushed and fsynced, the previous file is copied to `<name>.bak` the same way, and only then
`os.replace` swaps the new file in (atomic on POSIX and Windows within one filesystem); the directory is fsynced so
the rename itself survives a power cut. At every instant the target is either the complete old or the complete new
file.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
import time
from pathlib import Path

TMP_SUFFIX = ".tmp"


def _fsync_dir(directory: Path) -> None:
    if os.name != "posix":
        return
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _temp_in(directory: Path, name: str) -> tuple[int, Path]:
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=f".{name}.", suffix=TMP_SUFFIX)
    return fd, Path(tmp)


def _write_fsynced(fd: int, data: bytes) -> None:
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())


def _backup(path: Path, backup: Path) -> None:
    fd, tmp = _temp_in(path.parent, backup.name)
    try:
        os.close(fd)
        shutil.copyfile(path, tmp)
        with open(tmp, "rb+") as handle:
            os.fsync(handle.fileno())
        os.replace(tmp, backup)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise


def atomic_write_bytes(path: str | os.PathLike[str], data: bytes, *, backup_suffix: str | None = ".bak") -> None:
    """Replace `path` with `data` atomically; first keep the previous file as `path + backup_suffix`."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = _temp_in(target.parent, target.name)
    try:
        _write_fsynced(fd, data)
        if backup_suffix and target.is_file():
            _backup(target, target.with_name(target.name + backup_suffix))
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise
    _fsync_dir(target.parent)


def atomic_write_text(path: str | os.PathLike[str], text: str, *, backup_suffix: str | None = ".bak") -> None:
    """`atomic_write_bytes` for UTF-8 text."""
    atomic_write_bytes(path, text.encode("utf-8"), backup_suffix=backup_suffix)


def remove_stale_temp_files(path: str | os.PathLike[str], older_than_seconds: float = 60.0) -> list[Path]:
    """Delete temporary files a killed writer left next to `path` (only ones older than the given age)."""
    target = Path(path)
    removed: list[Path] = []
    if not target.parent.is_dir():
        return removed
    now = time.time()
    for candidate in target.parent.glob(f".{target.name}.*{TMP_SUFFIX}"):  # also matches the .bak temporaries
        with contextlib.suppress(OSError):
            if now - candidate.stat().st_mtime > older_than_seconds:
                candidate.unlink()
                removed.append(candidate)
    return removed
