"""Extra-network hashes and the ``Lora hashes`` / ``TI hashes`` infotext fields, as A1111 writes and reads them.

Rules (A1111 ``extensions-builtin/Lora/network.py`` ``NetworkOnDisk``, ``modules/textual_inversion/
textual_inversion.py``, ``modules/sd_hijack_clip.py``, ``extensions-builtin/Lora/scripts/lora_script.py``):

* **LoRA hash**: the safetensors metadata ``sshs_model_hash`` if present, else the sha256 of the file — for
  ``.safetensors`` the *addnet* hash (sha256 of everything after the header, so metadata edits keep it), cached in
  the ``hashes-addnet`` section under ``lora/<name>``; other extensions hash the whole file. Shorthash = first 12 hex.
* **TI hash**: sha256 of the whole embedding file (cache key ``textual_inversion/<name>``); shorthash = first 12 hex.
* **Infotext**: ``Lora hashes: "alias: hash12, alias2: hash12"`` using the name as mentioned in the prompt, and
  ``TI hashes: "name: hash12"``; ``:`` and ``,`` are removed from names. The infotext writer adds the quotes.
* **Pasting**: the field is split on ``,`` then on the first ``:``; each ``<lora:alias:`` in the prompt whose alias
  has a hash that matches a local network is rewritten to that network's current alias.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterable
from pathlib import Path

from modules.models.hashes import SECTION_ADDNET, HashCache, addnet_hash_safetensors, sha256_file

SHORTHASH_LENGTH = 12
LORA_TAG = re.compile(r"<lora:([^:>]+):")
"""A1111 ``re_lora``: the name part of a ``<lora:name:…>`` tag."""


def lora_hash(path: str | os.PathLike[str], metadata: dict[str, str] | None = None, *,
              cache: HashCache | None = None, name: str | None = None) -> str:
    """Full LoRA hash: ``sshs_model_hash`` metadata, else addnet hash (safetensors) or file sha256 (others)."""
    if metadata and metadata.get("sshs_model_hash"):
        return metadata["sshs_model_hash"]
    path = Path(path)
    is_safetensors = path.suffix.lower() == ".safetensors"
    if cache is not None and name is not None:
        key = f"lora/{name}"
        value = cache.addnet(path, key) if is_safetensors else cache.sha256(path, key)
        if value:
            return value
    return addnet_hash_safetensors(path) if is_safetensors else sha256_file(path)


def embedding_hash(path: str | os.PathLike[str], *, cache: HashCache | None = None, name: str | None = None) -> str:
    """Full TI hash: sha256 of the whole embedding file (cached under ``textual_inversion/<name>``)."""
    if cache is not None and name is not None:
        value = cache.sha256(path, f"textual_inversion/{name}")
        if value:
            return value
    return sha256_file(path)


def shorthash(full: str | None) -> str:
    """First 12 hex digits (A1111 ``shorthash`` for LoRA and TI), "" when unknown."""
    return (full or "")[:SHORTHASH_LENGTH]


def clean_name(name: str) -> str:
    """Names in the hash fields lose ``:`` and ``,`` so the field stays parseable (A1111)."""
    return name.replace(":", "").replace(",", "")


def format_hashes(entries: Iterable[tuple[str, str]]) -> str | None:
    """``"name: hash, name2: hash2"`` for the infotext (entries without a hash are left out); None if empty."""
    parts = [f"{clean_name(name)}: {short}" for name, short in entries if name and short]
    return ", ".join(parts) if parts else None


def parse_hashes(value: str | None) -> dict[str, str]:
    """``{name: hash}`` from a ``Lora hashes`` / ``TI hashes`` value (already unquoted by the infotext parser)."""
    result: dict[str, str] = {}
    for item in (value or "").split(","):
        name, sep, short = item.partition(":")
        if sep and name.strip() and short.strip():
            result[name.strip()] = short.strip()
    return result


def rewrite_lora_names(prompt: str, lora_hashes: str | None, alias_for_hash: Callable[[str], str | None]) -> str:
    """Rewrite ``<lora:alias:`` tags whose hash (from the pasted ``Lora hashes`` field) matches a local network.

    ``alias_for_hash(shorthash)`` returns the local network's alias or None. Tags without a known hash stay as
    written (A1111 ``infotext_pasted`` in the Lora extension).
    """
    hashes = parse_hashes(lora_hashes)
    if not hashes:
        return prompt

    def replace(match: re.Match[str]) -> str:
        short = hashes.get(match[1])
        alias = alias_for_hash(short) if short else None
        return f"<lora:{alias}:" if alias else match[0]

    return LORA_TAG.sub(replace, prompt)


__all__ = [
    "SECTION_ADDNET",
    "clean_name",
    "embedding_hash",
    "format_hashes",
    "lora_hash",
    "parse_hashes",
    "rewrite_lora_names",
    "shorthash",
]
