"""Checkpoint hashes the way A1111 computes and shows them, with a persistent cache.

Three hashes exist in A1111 (``modules/hashes.py`` and ``sd_models.model_hash``):

* **sha256** – SHA-256 of the whole file read in 1 MiB blocks. Its first 10 hex digits are the *shorthash* shown
  in checkpoint titles (``name.safetensors [0123456789]``) and written as ``Model hash`` in infotext (since 2023).
* **legacy model hash** – first 8 hex digits of SHA-256 over the 0x10000 bytes at offset 0x100000 (``NOFILE`` when the
  file cannot be read). Cheap, so it is computed when listing. Old infotexts carry it as ``Model hash``.
* **addnet hash** – for ``.safetensors`` LoRAs: SHA-256 of everything after the safetensors header (so metadata edits
  do not change it); A1111 caches it in the ``hashes-addnet`` section and shows its first 12 hex digits.

The full sha256 of a 7 GB SDXL checkpoint takes more than a minute on a slow disk (seed report: "calculate hash:
76.8s" inside "Model loaded in 182.3s"). A1111 does it synchronously during load; here :class:`BackgroundHasher`
computes it on a worker thread so it never delays the first image, and :class:`HashCache` keeps results in
``cache.json`` (A1111's format up to 1.8: ``{"hashes": {"checkpoint/<name>": {"mtime": ..., "sha256": ...}}}``),
re-hashing when the file's mtime changes. ``--no-hashing`` maps to ``HashCache(enabled=False)``.
"""

from __future__ import annotations

import hashlib
import json
import os
import struct
import tempfile
import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

BLOCK_SIZE = 1024 * 1024
"""A1111 reads files in 1 MiB blocks for sha256."""

LEGACY_HASH_OFFSET = 0x100000
LEGACY_HASH_LENGTH = 0x10000

SECTION_CHECKPOINTS = "hashes"
SECTION_ADDNET = "hashes-addnet"


def sha256_file(path: str | os.PathLike[str]) -> str:
    """Full-file SHA-256 as lowercase hex (A1111 ``hashes.calculate_sha256``)."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(BLOCK_SIZE), b""):
            digest.update(block)
    return digest.hexdigest()


def legacy_model_hash(path: str | os.PathLike[str]) -> str:
    """A1111's old 8-hex "model hash": sha256 of 0x10000 bytes at offset 0x100000, ``NOFILE`` if unreadable.

    Files shorter than 1 MiB hash the (possibly empty) bytes that exist, as A1111's ``seek``/``read`` does.
    """
    try:
        with open(path, "rb") as handle:
            handle.seek(LEGACY_HASH_OFFSET)
            chunk = handle.read(LEGACY_HASH_LENGTH)
    except OSError:
        return "NOFILE"
    return hashlib.sha256(chunk).hexdigest()[:8]


def addnet_hash_safetensors(path: str | os.PathLike[str]) -> str:
    """SHA-256 of a ``.safetensors`` file after its header (kohya/"addnet" hash used by A1111 for LoRA files).

    The layout is an 8-byte little-endian header length, the JSON header, then the tensor bytes.
    """
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        header = handle.read(8)
        if len(header) != 8:
            raise ValueError(f"{path}: not a safetensors file (shorter than its 8-byte header length)")
        (length,) = struct.unpack("<Q", header)
        handle.seek(8 + length)
        for block in iter(lambda: handle.read(BLOCK_SIZE), b""):
            digest.update(block)
    return digest.hexdigest()


def shorthash(sha256: str | None) -> str | None:
    """First 10 hex digits of a sha256 (A1111's checkpoint shorthash), or None."""
    return sha256[:10] if sha256 else None


class HashCache:
    """Thread-safe, JSON-backed hash cache compatible with A1111's ``cache.json``.

    Entries are keyed by ``<kind>/<title>`` (A1111 uses ``checkpoint/<name>`` for checkpoints, ``vae/<name>`` for
    VAEs) and store the file's mtime; a lookup whose file mtime differs from the stored one is a miss, so a replaced
    file is re-hashed. ``path=None`` keeps the cache in memory only. ``enabled=False`` implements ``--no-hashing``:
    :meth:`sha256` then returns ``None`` and nothing is read.
    """

    def __init__(self, path: str | os.PathLike[str] | None, *, enabled: bool = True) -> None:
        self.path = Path(path) if path is not None else None
        self.enabled = enabled
        self._lock = threading.RLock()
        self._data: dict[str, dict[str, dict[str, object]]] = self._read()

    def _read(self) -> dict[str, dict[str, dict[str, object]]]:
        if self.path is None or not self.path.exists():
            return {}
        try:
            data = json.loads(self.path.read_text(encoding="utf8"))
        except (OSError, ValueError):
            # A1111 also starts over on a corrupt cache.json rather than failing start-up.
            return {}
        return data if isinstance(data, dict) else {}

    def _write(self) -> None:
        if self.path is None:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=self.path.parent, prefix=".cache-", suffix=".json")
        with os.fdopen(fd, "w", encoding="utf8") as handle:
            json.dump(self._data, handle, indent=4)
        os.replace(tmp, self.path)

    def cached(self, path: str | os.PathLike[str], key: str, section: str = SECTION_CHECKPOINTS) -> str | None:
        """Return the cached hash for ``key`` if it is still valid for the file's current mtime, without hashing."""
        try:
            mtime = os.path.getmtime(path)
        except OSError:
            return None
        with self._lock:
            entry = self._data.get(section, {}).get(key)
        if not isinstance(entry, dict) or entry.get("mtime") != mtime:
            return None
        value = entry.get("sha256")
        return value if isinstance(value, str) else None

    def store(self, path: str | os.PathLike[str], key: str, value: str, section: str = SECTION_CHECKPOINTS) -> None:
        """Record ``value`` for ``key`` with the file's current mtime and persist the cache."""
        mtime = os.path.getmtime(path)
        with self._lock:
            self._data.setdefault(section, {})[key] = {"mtime": mtime, "sha256": value}
            self._write()

    def sha256(self, path: str | os.PathLike[str], key: str, *, compute: bool = True) -> str | None:
        """Cached full-file sha256, computing (and caching) it when ``compute`` is true and the entry is stale."""
        if not self.enabled:
            return None
        value = self.cached(path, key)
        if value is not None or not compute:
            return value
        value = sha256_file(path)
        self.store(path, key, value)
        return value

    def addnet(self, path: str | os.PathLike[str], key: str, *, compute: bool = True) -> str | None:
        """Cached addnet hash (A1111 section ``hashes-addnet``) of a ``.safetensors`` file."""
        if not self.enabled:
            return None
        value = self.cached(path, key, SECTION_ADDNET)
        if value is not None or not compute:
            return value
        value = addnet_hash_safetensors(path)
        self.store(path, key, value, SECTION_ADDNET)
        return value


class BackgroundHasher:
    """Computes sha256 hashes on one worker thread so loading and the first image never wait for them.

    One worker is enough: hashing is disk-bound and parallel reads of two multi-GB files only thrash the disk.
    Requests for the same key share one :class:`~concurrent.futures.Future`.
    """

    def __init__(self, cache: HashCache) -> None:
        self.cache = cache
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="sha256")
        self._pending: dict[str, Future[str | None]] = {}
        self._lock = threading.Lock()

    def submit(
        self,
        path: str | os.PathLike[str],
        key: str,
        on_done: Callable[[str | None], None] | None = None,
    ) -> Future[str | None]:
        """Queue hashing of ``path`` (cached under ``key``); ``on_done`` receives the hash (None with --no-hashing)."""
        with self._lock:
            future = self._pending.get(key)
            if future is None or (future.done() and future.exception() is not None):
                future = self._executor.submit(self.cache.sha256, path, key)
                self._pending[key] = future
        if on_done is not None:
            future.add_done_callback(lambda done: on_done(done.result() if done.exception() is None else None))
        return future

    def shutdown(self, wait: bool = True) -> None:
        """Stop the worker (pending hashes finish when ``wait``)."""
        self._executor.shutdown(wait=wait, cancel_futures=not wait)
