"""A1111 checkpoint hashes, checked against hashlib computed independently, and the mtime-keyed cache."""

from __future__ import annotations

import hashlib
import json
import os
import struct
from pathlib import Path

import pytest

from modules.models import hashes


@pytest.fixture
def big_file(tmp_path: Path) -> tuple[Path, bytes]:
    data = os.urandom(0x100000 + 0x10000 + 12345)  # spans several 1 MiB blocks and the legacy window
    path = tmp_path / "model.safetensors"
    path.write_bytes(data)
    return path, data


def test_full_sha256_equals_hashlib(big_file: tuple[Path, bytes]) -> None:
    path, data = big_file
    assert hashes.sha256_file(path) == hashlib.sha256(data).hexdigest()


def test_legacy_model_hash_is_sha256_of_64k_at_1m(big_file: tuple[Path, bytes]) -> None:
    path, data = big_file
    assert hashes.legacy_model_hash(path) == hashlib.sha256(data[0x100000:0x110000]).hexdigest()[:8]


def test_legacy_hash_of_short_and_missing_files(tmp_path: Path) -> None:
    short = tmp_path / "short.ckpt"
    short.write_bytes(b"x" * 1000)
    assert hashes.legacy_model_hash(short) == hashlib.sha256(b"").hexdigest()[:8]
    assert hashes.legacy_model_hash(tmp_path / "missing.ckpt") == "NOFILE"


def test_addnet_hash_skips_the_safetensors_header(tmp_path: Path) -> None:
    header = json.dumps({"__metadata__": {"ss_output_name": "x"}}).encode()
    body = os.urandom(5000)
    path = tmp_path / "lora.safetensors"
    path.write_bytes(struct.pack("<Q", len(header)) + header + body)
    assert hashes.addnet_hash_safetensors(path) == hashlib.sha256(body).hexdigest()


def test_shorthash_is_first_ten_hex() -> None:
    assert hashes.shorthash("0123456789abcdef") == "0123456789"
    assert hashes.shorthash(None) is None


def test_cache_stores_a1111_layout_and_reuses(big_file: tuple[Path, bytes], tmp_path: Path,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    path, data = big_file
    cache_file = tmp_path / "cache.json"
    cache = hashes.HashCache(cache_file)
    expected = hashlib.sha256(data).hexdigest()
    assert cache.sha256(path, "checkpoint/model.safetensors", compute=False) is None
    assert cache.sha256(path, "checkpoint/model.safetensors") == expected
    stored = json.loads(cache_file.read_text())
    assert stored["hashes"]["checkpoint/model.safetensors"] == {"mtime": os.path.getmtime(path), "sha256": expected}

    calls = []
    monkeypatch.setattr(hashes, "sha256_file", lambda p: calls.append(p) or "should-not-be-used")
    reopened = hashes.HashCache(cache_file)
    assert reopened.sha256(path, "checkpoint/model.safetensors") == expected
    assert calls == []


def test_changed_file_is_rehashed(big_file: tuple[Path, bytes], tmp_path: Path) -> None:
    path, _ = big_file
    cache = hashes.HashCache(tmp_path / "cache.json")
    first = cache.sha256(path, "checkpoint/m")
    new_data = os.urandom(4096)
    path.write_bytes(new_data)
    stat = path.stat()
    os.utime(path, (stat.st_atime, stat.st_mtime + 10))
    assert cache.cached(path, "checkpoint/m") is None
    second = cache.sha256(path, "checkpoint/m")
    assert second == hashlib.sha256(new_data).hexdigest() != first


def test_no_hashing_never_reads(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "m.ckpt"
    path.write_bytes(b"abc")
    monkeypatch.setattr(hashes, "sha256_file", lambda p: pytest.fail("--no-hashing must not hash"))
    cache = hashes.HashCache(tmp_path / "cache.json", enabled=False)
    assert cache.sha256(path, "checkpoint/m.ckpt") is None
    assert not (tmp_path / "cache.json").exists()


def test_corrupt_cache_file_starts_over(tmp_path: Path, big_file: tuple[Path, bytes]) -> None:
    path, data = big_file
    cache_file = tmp_path / "cache.json"
    cache_file.write_text("{not json")
    assert hashes.HashCache(cache_file).sha256(path, "k") == hashlib.sha256(data).hexdigest()


def test_background_hasher_reports_and_caches(big_file: tuple[Path, bytes], tmp_path: Path) -> None:
    path, data = big_file
    cache = hashes.HashCache(tmp_path / "cache.json")
    hasher = hashes.BackgroundHasher(cache)
    seen: list[str | None] = []
    future = hasher.submit(path, "checkpoint/model.safetensors", on_done=seen.append)
    assert future.result(timeout=30) == hashlib.sha256(data).hexdigest()
    hasher.shutdown()
    assert seen == [hashlib.sha256(data).hexdigest()]
    assert cache.cached(path, "checkpoint/model.safetensors") == seen[0]
