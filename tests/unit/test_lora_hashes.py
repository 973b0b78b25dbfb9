"""Lora/TI hash rules and the infotext hash fields: write, parse back, and find networks by hash when pasting."""

from __future__ import annotations

import hashlib
import json
import struct
from pathlib import Path

import torch
from safetensors.torch import save_file

from modules.models.hashes import HashCache
from modules.models.networks.hashes import (
    embedding_hash,
    format_hashes,
    lora_hash,
    parse_hashes,
    rewrite_lora_names,
    shorthash,
)
from modules.models.networks.lora import LoraRegistry


def _safetensors(path: Path, metadata: dict[str, str] | None = None) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    save_file({"lora_unet_a.lora_up.weight": torch.arange(6.0).reshape(3, 2)}, str(path), metadata=metadata)
    return path


def _after_header_sha256(path: Path) -> str:
    raw = path.read_bytes()
    (length,) = struct.unpack("<Q", raw[:8])
    return hashlib.sha256(raw[8 + length:]).hexdigest()


def test_safetensors_lora_uses_addnet_hash_so_metadata_edits_keep_it(tmp_path: Path) -> None:
    a = _safetensors(tmp_path / "a.safetensors", {"ss_output_name": "one"})
    b = _safetensors(tmp_path / "b.safetensors", {"ss_output_name": "two", "note": "x" * 100})
    assert a.read_bytes() != b.read_bytes()
    assert lora_hash(a) == lora_hash(b) == _after_header_sha256(a)
    assert lora_hash(a) != hashlib.sha256(a.read_bytes()).hexdigest()
    assert json.loads(a.read_bytes()[8:8 + struct.unpack("<Q", a.read_bytes()[:8])[0]])["__metadata__"]


def test_sshs_metadata_wins_and_pickles_hash_the_whole_file(tmp_path: Path) -> None:
    assert lora_hash(_safetensors(tmp_path / "m.safetensors"), {"sshs_model_hash": "abc123" * 8}) == "abc123" * 8
    pt = tmp_path / "old.pt"
    torch.save({"lora_unet_a.lora_up.weight": torch.ones(2)}, pt)
    assert lora_hash(pt) == hashlib.sha256(pt.read_bytes()).hexdigest()


def test_hash_cache_sections_and_embedding_hash(tmp_path: Path) -> None:
    cache = HashCache(tmp_path / "cache.json")
    path = _safetensors(tmp_path / "c.safetensors")
    assert lora_hash(path, cache=cache, name="c") == _after_header_sha256(path)
    assert cache.cached(path, "lora/c", "hashes-addnet") == _after_header_sha256(path)
    emb = tmp_path / "emb.pt"
    torch.save({"string_to_param": {"*": torch.ones(1, 4)}}, emb)
    assert embedding_hash(emb, cache=cache, name="emb") == hashlib.sha256(emb.read_bytes()).hexdigest()
    assert cache.cached(emb, "textual_inversion/emb") == hashlib.sha256(emb.read_bytes()).hexdigest()


def test_infotext_field_format_and_round_trip() -> None:
    value = format_hashes([("add_detail", "7c6bad76eb54"), ("we:ird,name", "0123456789ab"), ("nohash", "")])
    assert value == "add_detail: 7c6bad76eb54, weirdname: 0123456789ab"
    assert parse_hashes(value) == {"add_detail": "7c6bad76eb54", "weirdname": "0123456789ab"}
    assert format_hashes([]) is None
    assert parse_hashes(None) == {} and parse_hashes("garbage") == {}
    assert shorthash("0123456789abcdef") == "0123456789ab" and shorthash(None) == ""


def test_pasting_rewrites_lora_names_by_hash(tmp_path: Path) -> None:
    lora_dir = tmp_path / "Lora"
    local = _safetensors(lora_dir / "sub" / "detail_v2.safetensors", {"ss_output_name": "DetailTweaker"})
    registry = LoraRegistry([lora_dir])
    registry.refresh()
    short = lora_hash(local)[:12]
    prompt = "a cat <lora:add_detail:0.8> <lora:unknown:1> <lora:other:1>"
    field = format_hashes([("add_detail", short), ("other", "ffffffffffff")])

    def alias_for_hash(h: str) -> str | None:
        entry = registry.find_by_shorthash(h)
        return registry.display_name(entry) if entry else None

    assert rewrite_lora_names(prompt, field, alias_for_hash) == (
        "a cat <lora:DetailTweaker:0.8> <lora:unknown:1> <lora:other:1>"
    )
    assert rewrite_lora_names(prompt, None, alias_for_hash) == prompt
