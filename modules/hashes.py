"""Compatibility: A1111 `modules.hashes` for extensions (re-exports of `modules.compat.hashes`; docs/extensions.md)."""

from __future__ import annotations

from modules.compat.hashes import addnet_hash_safetensors, calculate_sha256, sha256, sha256_from_cache

__all__ = ["addnet_hash_safetensors", "calculate_sha256", "sha256", "sha256_from_cache"]
