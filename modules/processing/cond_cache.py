"""The persistent cond cache: a prompt's conditioning kept from one job to the next (A1111 setting
`persistent_cond_cache`, "Persistent cond cache", default on).

A1111 (`processing.py`) keeps the last job's `cached_c`/`cached_uc` on the class and reuses them when the next job's
`cached_params` are equal (prompts, steps, hires steps, old scheduling, clip skip, checkpoint, extra-network data,
SDXL crop, width, height, emphasis …); `StableDiffusionProcessing.close` forgets them when the setting is off.

Here a job encodes each distinct prompt text once (`PromptEncoder.cache`), so the cache across jobs is kept per
text too: an entry is (text, negative, zeroed) → the text's cond and the embeddings it used (replayed into the next
job's "TI hashes"). Every entry was made under one *validity key*, and a lookup under any other key misses and
drops the entries:

* the text encoder object itself (held by weak reference: another checkpoint, or the same one loaded again, is a
  different object);
* the encoder options that change its output: emphasis, clip skip, comma padding backtrack, old emphasis, SDXL's
  CLIP-L skip; for SDXL also the size, crop and aesthetic-score inputs of the `vector` (A1111 keys width, height
  and crop for every model; an SD1/SD2 cond does not depend on them);
* the extra networks patched into the weights (A1111 keys `extra_network_data`) and the loaded textual-inversion
  embeddings (a reloaded or changed embedding file is a new object; the key's objects are kept alive with the
  entries, so their ids stay unique).

Steps, hires steps and the prompt-editing schedule are not part of the key as in A1111: the schedule is parsed
again in every job and only the texts it names are looked up, so a change there re-uses what is still valid.
Only the last job's texts are kept (`begin_job` drops entries the previous job did not use), like A1111's one
entry for the positive and one for the negative prompts.
"""

from __future__ import annotations

import threading
import weakref
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

EntryKey = tuple[str, bool, bool]
"""(prompt text with extra-network tags, is negative, encoded as SDXL zeros)."""


@dataclass(frozen=True)
class CachedCond:
    """One text's conditioning and the textual-inversion embeddings it used (name → embedding)."""

    cond: Any
    used_embeddings: Mapping[str, Any] = field(default_factory=dict)


class CondCache:
    """The conds of the last job's prompt texts under one validity key (see module docstring); thread-safe."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._owner: weakref.ref[Any] | None = None
        self._key: tuple[Any, ...] | None = None
        self._pinned: tuple[Any, ...] = ()
        self._entries: dict[EntryKey, CachedCond] = {}
        self._used: set[EntryKey] = set()

    def __len__(self) -> int:
        return len(self._entries)

    def _matches(self, owner: Any, key: tuple[Any, ...]) -> bool:
        return self._owner is not None and self._owner() is owner and self._key == key

    def lookup(self, owner: Any, key: tuple[Any, ...], entry: EntryKey) -> CachedCond | None:
        """The cached cond of `entry` when it was made by `owner` under `key`; a different owner or key clears
        the cache (those entries can never be valid again while this key is current)."""
        with self._lock:
            if not self._matches(owner, key):
                self._clear()
                return None
            found = self._entries.get(entry)
            if found is not None:
                self._used.add(entry)
            return found

    def store(self, owner: Any, key: tuple[Any, ...], entry: EntryKey, value: CachedCond,
              pinned: tuple[Any, ...] = ()) -> None:
        """Keep `value` for `entry` under (`owner`, `key`); `pinned` objects (those whose ids are in `key`) are
        held as long as the entries are."""
        with self._lock:
            if not self._matches(owner, key):
                self._clear()
                self._owner, self._key, self._pinned = weakref.ref(owner), key, pinned
            self._entries[entry] = value
            self._used.add(entry)

    def begin_job(self) -> None:
        """A new job starts: keep only the entries the previous job used (A1111 keeps the last job's conds)."""
        with self._lock:
            self._entries = {k: v for k, v in self._entries.items() if k in self._used}
            self._used = set()

    def clear(self) -> None:
        """Forget everything (the setting is off: A1111 `StableDiffusionProcessing.close`)."""
        with self._lock:
            self._clear()

    def _clear(self) -> None:
        self._owner, self._key, self._pinned = None, None, ()
        self._entries.clear()
        self._used.clear()


def used_by(text: str, used: Mapping[str, Any], batch_size: int) -> dict[str, Any]:
    """The embeddings of `used` (reported for a batch of `batch_size` texts encoded together) that `text` names:
    all of them for a batch of one, else those whose name occurs in the text (case-insensitively, as the CLIP
    tokenizer lower-cases)."""
    if batch_size == 1:
        return dict(used)
    lowered = text.lower()
    return {name: value for name, value in used.items() if name.lower() in lowered}
