"""Textual inversion: every file format loads, wrong-architecture embeddings are skipped, and the lookup contract
puts an embedding's vectors exactly where its name's tokens are."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from pathlib import Path

import pytest
import torch
from PIL import Image, PngImagePlugin
from safetensors.torch import save_file

from modules.models.networks.embedding_images import (
    embedding_to_b64,
    extract_embedding_from_pixels,
    insert_embedding_in_pixels,
    lcg_values,
)
from modules.models.networks.embeddings import (
    Embedding,
    EmbeddingDatabase,
    EmbeddingLoadError,
    load_embedding_file,
)
from modules.models.networks.hashes import format_hashes, parse_hashes


def char_tokenize(text: str) -> list[int]:
    """Stand-in tokenizer: one id per character (the database only needs a deterministic text -> ids map)."""
    return [ord(c) for c in text]


def a1111_pt(path: Path, vec: torch.Tensor, name: str = "stored", step: int = 500) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"string_to_token": {"*": 265}, "string_to_param": {"*": vec}, "name": name, "step": step,
                "sd_checkpoint": "6ce0161689", "sd_checkpoint_name": "v1-5"}, path)
    return path


def test_a1111_pt_loads_through_the_safe_unpickler_and_uses_the_file_stem(tmp_path: Path) -> None:
    vec = torch.randn(3, 768)
    emb = load_embedding_file(a1111_pt(tmp_path / "EasyNegative.pt", vec))
    assert emb is not None
    assert (emb.name, emb.vectors, emb.shape, emb.step) == ("EasyNegative", 3, 768, 500)
    assert (emb.sd_checkpoint, emb.sd_checkpoint_name) == ("6ce0161689", "v1-5")
    assert torch.equal(emb.vectors_for(), vec)


def test_parameter_dict_string_to_param_from_old_torch(tmp_path: Path) -> None:
    vec = torch.randn(2, 768)
    params = torch.nn.ParameterDict({"*": torch.nn.Parameter(vec)})
    torch.save({"string_to_param": params, "name": "x"}, tmp_path / "old.pt")
    emb = load_embedding_file(tmp_path / "old.pt")
    assert emb is not None and torch.equal(emb.vectors_for(), vec)


def test_safetensors_emb_params_sdxl_and_diffusers_bin(tmp_path: Path) -> None:
    vec = torch.randn(2, 1024)
    save_file({"emb_params": vec}, str(tmp_path / "sd2word.safetensors"))
    sd2 = load_embedding_file(tmp_path / "sd2word.safetensors")
    assert sd2 is not None and (sd2.vectors, sd2.shape) == (2, 1024) and torch.equal(sd2.vectors_for(), vec)

    clip_l, clip_g = torch.randn(4, 768), torch.randn(4, 1280)
    save_file({"clip_l": clip_l, "clip_g": clip_g}, str(tmp_path / "xlword.safetensors"))
    xl = load_embedding_file(tmp_path / "xlword.safetensors")
    assert xl is not None and (xl.vectors, xl.shape) == (4, 2048)
    assert torch.equal(xl.vectors_for("clip_l"), clip_l) and torch.equal(xl.vectors_for("clip_g"), clip_g)
    with pytest.raises(KeyError, match="clip_l"):
        xl.vectors_for(None)

    concept = torch.randn(768)
    torch.save({"<cat-toy>": concept}, tmp_path / "learned_embeds.bin")
    bin_emb = load_embedding_file(tmp_path / "learned_embeds.bin")
    assert bin_emb is not None and bin_emb.name == "learned_embeds" and bin_emb.vectors == 1
    assert torch.equal(bin_emb.vectors_for(), concept.unsqueeze(0))


def test_png_text_chunk_and_pixel_embedded_data(tmp_path: Path) -> None:
    vec = torch.randn(2, 768, dtype=torch.float64)
    data = {"string_to_token": {"*": 265}, "string_to_param": {"*": vec}, "name": "pngword", "step": 12}
    info = PngImagePlugin.PngInfo()
    info.add_text("sd-ti-embedding", embedding_to_b64(data))
    Image.new("RGB", (32, 32), (200, 180, 40)).save(tmp_path / "pngword-12.png", pnginfo=info)
    from_text = load_embedding_file(tmp_path / "pngword-12.png")
    assert from_text is not None and from_text.name == "pngword" and from_text.step == 12
    assert torch.allclose(from_text.vectors_for(), vec.float())

    pixels = insert_embedding_in_pixels(Image.new("RGB", (64, 48), (16, 32, 48)), data)
    pixels.save(tmp_path / "no_chunk.png")  # saved without the text chunk: only the pixels carry the data
    from_pixels = load_embedding_file(tmp_path / "no_chunk.png")
    assert from_pixels is not None and from_pixels.name == "pngword" and from_pixels.vectors == 2
    assert torch.allclose(from_pixels.vectors_for(), vec.float())


def test_a1111_lcg_reference_values() -> None:
    # First values of the LCG as listed in A1111's image_embedding.py self-test.
    assert lcg_values(13).tolist() == [253, 242, 127, 44, 157, 27, 239, 133, 38, 79, 167, 4, 177]


def test_plain_and_preview_images_are_not_embeddings(tmp_path: Path) -> None:
    Image.new("RGB", (16, 16), (255, 255, 255)).save(tmp_path / "cover.png")
    assert load_embedding_file(tmp_path / "cover.png") is None
    assert extract_embedding_from_pixels(Image.new("RGB", (8, 8), (0, 0, 0))) is None
    db = EmbeddingDatabase(char_tokenize, 768, dirs=[tmp_path])
    Image.new("RGB", (16, 16)).save(tmp_path / "word.preview.png")
    db.load()
    assert db.word_embeddings == {} and db.errors == {}


def test_bad_files_raise_errors_naming_the_file(tmp_path: Path) -> None:
    (tmp_path / "broken.pt").write_bytes(b"not a pickle at all")
    with pytest.raises(EmbeddingLoadError, match=r"broken\.pt"):
        load_embedding_file(tmp_path / "broken.pt")
    torch.save({"string_to_param": {"*": torch.ones(1, 4), "#": torch.ones(1, 4)}}, tmp_path / "two.pt")
    with pytest.raises(EmbeddingLoadError, match="multiple terms"):
        load_embedding_file(tmp_path / "two.pt")
    torch.save({"a": torch.ones(4), "b": torch.ones(4)}, tmp_path / "two_concepts.bin")
    with pytest.raises(EmbeddingLoadError, match="multiple terms"):
        load_embedding_file(tmp_path / "two_concepts.bin")


def make_library(root: Path) -> dict[str, torch.Tensor]:
    vecs = {"cat": torch.randn(2, 768), "catdog": torch.randn(3, 768), "sd2only": torch.randn(1, 1024)}
    a1111_pt(root / "cat.pt", vecs["cat"])
    a1111_pt(root / "sub" / "deeper" / "catdog.pt", vecs["catdog"])
    save_file({"emb_params": vecs["sd2only"]}, str(root / "sd2only.safetensors"))
    (root / "empty.pt").write_bytes(b"")
    (root / "corrupt.pt").write_bytes(b"\x80garbage")
    return vecs


def test_database_loads_subfolders_skips_wrong_architecture_and_reports(tmp_path: Path) -> None:
    make_library(tmp_path)
    db = EmbeddingDatabase(char_tokenize, 768)
    db.add_dir(tmp_path)
    assert db.load() is True
    assert list(db.word_embeddings) == ["cat", "catdog"]
    assert list(db.skipped) == ["sd2only"]
    assert list(db.errors) == [str(tmp_path / "corrupt.pt")] and "corrupt.pt" in db.errors[str(tmp_path / "corrupt.pt")]
    summary = db.summary()
    assert summary["loaded"]["catdog"] == {"step": 500, "sd_checkpoint": "6ce0161689", "sd_checkpoint_name": "v1-5",
                                           "shape": 768, "vectors": 3}
    assert summary["skipped"]["sd2only"]["shape"] == 1024
    assert db.load() is False  # nothing changed
    a1111_pt(tmp_path / "new.pt", torch.randn(1, 768))
    assert db.load() is True and "new" in db.word_embeddings
    db.set_model(char_tokenize, 1024)  # switching to an SD2 model
    db.load()
    assert list(db.word_embeddings) == ["sd2only"] and set(db.skipped) == {"cat", "catdog", "new"}


def splice(token_ids: Sequence[int], token_table: torch.Tensor, lookup) -> tuple[torch.Tensor, list[tuple[int, str]]]:
    """Reference use of the lookup contract: walk the ids, replacing each matched span by the embedding's vectors."""
    rows: list[torch.Tensor] = []
    placed: list[tuple[int, str]] = []
    i = 0
    while i < len(token_ids):
        found = lookup(token_ids, i)
        if found is None:
            rows.append(token_table[token_ids[i]])
            i += 1
            continue
        embedding, span = found
        placed.append((len(rows), embedding.name))
        rows.extend(embedding.vectors_for())
        i += span
    return torch.stack(rows), placed


def test_lookup_contract_longest_match_and_exact_replacement(tmp_path: Path) -> None:
    vecs = make_library(tmp_path)
    db = EmbeddingDatabase(char_tokenize, 768, dirs=[tmp_path])
    db.load()
    ids = char_tokenize("a catdog, cat x")
    assert db.lookup(ids, 0) is None
    found = db.lookup(ids, 2)
    assert found is not None and found[0].name == "catdog" and found[1] == 6  # longest wins over "cat"
    cat = db.lookup(ids, 10)
    assert cat is not None and cat[0].name == "cat" and cat[1] == 3
    table = torch.randn(256, 768)
    out, placed = splice(ids, table, db.lookup)
    assert placed == [(2, "catdog"), (7, "cat")]
    assert out.shape == (len(ids) - 6 + 3 - 3 + 2, 768)
    assert torch.equal(out[0], table[ord("a")]) and torch.equal(out[1], table[ord(" ")])
    assert torch.equal(out[2:5], vecs["catdog"])
    assert torch.equal(out[5], table[ord(",")]) and torch.equal(out[6], table[ord(" ")])
    assert torch.equal(out[7:9], vecs["cat"])
    assert torch.equal(out[9:], table[torch.tensor(char_tokenize(" x"))])


def test_register_replaces_same_name_and_unregister() -> None:
    db = EmbeddingDatabase(char_tokenize, None)
    first = Embedding("w", torch.zeros(1, 4), 1, 4)
    second = Embedding("w", torch.ones(2, 4), 2, 4)
    db.register(first)
    db.register(second)
    found = db.lookup(char_tokenize("w"), 0)
    assert found is not None and found[0] is second
    db.unregister("w")
    assert db.lookup(char_tokenize("w"), 0) is None and db.get("w") is None


def test_ti_hash_is_file_sha256_and_infotext_round_trip(tmp_path: Path) -> None:
    path = a1111_pt(tmp_path / "EasyNegative.pt", torch.randn(1, 768))
    db = EmbeddingDatabase(char_tokenize, 768, dirs=[tmp_path])
    db.load()
    emb = db.get("EasyNegative")
    assert emb is not None
    assert db.ensure_hash(emb) == hashlib.sha256(path.read_bytes()).hexdigest()
    field = format_hashes([(emb.name, emb.shorthash)])
    assert field == f"EasyNegative: {hashlib.sha256(path.read_bytes()).hexdigest()[:12]}"
    assert db.find_by_shorthash(parse_hashes(field)["EasyNegative"]) is emb
