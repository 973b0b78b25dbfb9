"""CLIP tokenizer parity, 75-token chunking (BREAK, long prompts, comma backtrack), TI splice points, token counter.

Tokenizer reference: open_clip's `SimpleTokenizer` (bundled vocabulary) and transformers' `CLIPTokenizer` built from
the same vocabulary. Chunking rules: A1111 `sd_hijack_clip.tokenize_line` (`a1111-features.md` §5, §11.4).
"""

from __future__ import annotations

import gzip
import random
from dataclasses import dataclass
from typing import Any

import pytest

from modules.prompts import (
    EmbeddingFix,
    PromptError,
    TriggerIndex,
    count_prompt_tokens,
    empty_chunk,
    get_tokenizer,
    pad_after_first_eos,
    target_token_count,
    tokenize_prompt,
    tokenize_prompts,
)
from modules.prompts.tokenizer import BOS_ID, EOS_ID, ClipTokenizer, default_vocab_path

TK = get_tokenizer("clip")
CAT, DOG, COMMA = TK.encode("cat")[0], TK.encode("dog")[0], TK.comma_id


@dataclass
class FakeEmbedding:
    name: str
    vector_count: int
    vec: Any = None


def random_texts(seed: int, count: int, alphabet: str) -> list[str]:
    rng = random.Random(seed)
    return ["".join(rng.choice(alphabet) for _ in range(rng.randint(1, 60))) for _ in range(count)]


def test_tokenizer_matches_open_clip_simple_tokenizer():
    from open_clip.tokenizer import SimpleTokenizer

    reference = SimpleTokenizer()
    ours = ClipTokenizer("open_clip")
    texts = ["a photo of a cat, masterpiece", "Hello WORLD!!! naïve café 東京 1234 don't", "&amp;amp; <end_of_text>"]
    texts += random_texts(0, 600, "abcdefghijklmnopqrstuvwxyz ,.!'éü東京0123456789()[]\t\n&;<>")
    texts += ["".join(random.Random(i).choice("abcde") for _ in range(300)) for i in range(20)]
    for text in texts:
        assert ours.encode(text) == reference.encode(text), text


def test_tokenizer_matches_transformers_clip_tokenizer():
    from transformers import CLIPTokenizer

    ours = ClipTokenizer("clip")
    vocab = {token: index for index, token in enumerate(ours._vocab.tokens)}
    vocab["<|startoftext|>"] = vocab.pop("<start_of_text>")
    vocab["<|endoftext|>"] = vocab.pop("<end_of_text>")
    with gzip.open(default_vocab_path()) as handle:
        merges = handle.read().decode("utf-8").split("\n")[1 : 49152 - 256 - 2 + 1]
    reference = CLIPTokenizer(vocab=vocab, merges=[tuple(m.split()) for m in merges])
    for text in ["a photo of a cat, masterpiece", *random_texts(1, 400, "abcdefghijklmnopqrstuvwxyz ,.!'0123()[]\n;")]:
        assert ours.encode(text) == reference(text, add_special_tokens=False)["input_ids"], text


def test_tokenizer_ids_and_special_tokens():
    assert TK.encode("a photo of a cat,") == [320, 1125, 539, 320, 2368, 267]
    assert (TK.bos_id, TK.eos_id, TK.comma_id, TK.pad_id) == (49406, 49407, 267, 49407)
    assert get_tokenizer("open_clip").pad_id == 0
    assert TK.decode(TK.encode("a photo, of x")) == "a photo , of x"
    with pytest.raises(ValueError, match="unknown tokenizer flavor"):
        ClipTokenizer("bert")


def test_short_prompt_chunk_layout():
    chunks, count = tokenize_prompt("a (cat:1.5) dog", TK)
    assert count == 3
    (chunk,) = chunks
    assert len(chunk.tokens) == len(chunk.multipliers) == 77
    assert chunk.tokens[:5] == [BOS_ID, 320, CAT, DOG, EOS_ID]
    assert chunk.tokens[4:] == [EOS_ID] * 73
    assert chunk.multipliers[:5] == [1.0, 1.0, 1.5, 1.0, 1.0]
    assert set(chunk.multipliers[4:]) == {1.0}


def test_empty_prompt_is_one_padded_chunk():
    chunks, count = tokenize_prompt("", TK)
    assert count == 0
    assert chunks[0].tokens == empty_chunk(BOS_ID, EOS_ID).tokens


def test_long_prompt_splits_into_75_token_chunks():
    chunks, count = tokenize_prompt("cat " * 100, TK)
    assert count == 100 and target_token_count(count) == 150
    assert [c.tokens[1:-1].count(CAT) for c in chunks] == [75, 25]
    assert all(c.tokens[0] == BOS_ID and c.tokens[-1] == EOS_ID and len(c.tokens) == 77 for c in chunks)
    exactly, count = tokenize_prompt("cat " * 75, TK)
    assert len(exactly) == 1 and count == 75


def test_break_starts_a_new_chunk():
    chunks, count = tokenize_prompt("cat BREAK dog", TK)
    assert count == 76
    assert chunks[0].tokens[:3] == [BOS_ID, CAT, EOS_ID]
    assert chunks[1].tokens[:3] == [BOS_ID, DOG, EOS_ID]
    literal, _ = tokenize_prompt("cat BREAK dog", TK, emphasis="None")
    assert len(literal) == 1  # emphasis "None" does not parse BREAK either


def test_comma_backtrack_moves_text_after_the_last_comma():
    prompt = "cat " * 70 + ", " + "dog " * 10
    chunks, count = tokenize_prompt(prompt, TK)
    assert chunks[0].tokens[1:72] == [CAT] * 70 + [COMMA]
    assert chunks[0].tokens[72:] == [EOS_ID] * 5
    assert chunks[1].tokens[1:12] == [DOG] * 10 + [EOS_ID]
    assert count == 85
    without, _ = tokenize_prompt(prompt, TK, comma_padding_backtrack=0)
    assert without[0].tokens[72:76] == [DOG] * 4 and without[1].tokens[1:8] == [DOG] * 6 + [EOS_ID]
    too_far, _ = tokenize_prompt(prompt, TK, comma_padding_backtrack=3)  # comma is 5 tokens back
    assert too_far[0].tokens[72:76] == [DOG] * 4


def test_weights_follow_tokens_across_chunks():
    chunks, _ = tokenize_prompt("cat " * 74 + "(dog dog:1.4)", TK)
    assert chunks[0].tokens[75] == DOG and chunks[0].multipliers[75] == 1.4
    assert chunks[1].tokens[1] == DOG and chunks[1].multipliers[1] == 1.4


def test_emphasis_none_keeps_brackets_as_text_and_ignore_parses_them():
    none, none_count = tokenize_prompt("(cat)", TK, emphasis="None")
    assert none[0].tokens[1:4] == TK.encode("(cat)")
    ignore, ignore_count = tokenize_prompt("(cat)", TK, emphasis="Ignore")
    assert none_count == 3 and ignore_count == 1
    assert ignore[0].multipliers[1] == pytest.approx(1.1)  # "Ignore" is applied by the encoder, not here
    with pytest.raises(ValueError, match="unknown emphasis mode"):
        tokenize_prompt("x", TK, emphasis="Loud")


def test_textual_inversion_placeholders_and_offsets():
    style = FakeEmbedding("mystyle", 3)
    lookup = TriggerIndex([(TK.encode("mystyle"), style)])
    chunks, count = tokenize_prompt("a (mystyle:1.2) cat", TK, embedding_lookup=lookup)
    chunk = chunks[0]
    assert chunk.tokens[:7] == [BOS_ID, 320, 0, 0, 0, CAT, EOS_ID]
    assert chunk.multipliers[2:5] == [1.2, 1.2, 1.2]
    assert chunk.fixes == [EmbeddingFix(1, style)]
    assert count == 5


def test_embedding_is_never_split_across_chunks():
    style = FakeEmbedding("mystyle", 4)
    lookup = TriggerIndex([(TK.encode("mystyle"), style)])
    chunks, count = tokenize_prompt("cat " * 73 + "mystyle", TK, embedding_lookup=lookup, comma_padding_backtrack=0)
    assert chunks[0].tokens[74:] == [EOS_ID] * 3 and chunks[0].fixes == []
    assert chunks[1].fixes == [EmbeddingFix(0, style)] and chunks[1].tokens[1:6] == [0, 0, 0, 0, EOS_ID]
    assert count == 79


def test_trigger_index_prefers_the_longest_trigger():
    short, long = FakeEmbedding("my", 1), FakeEmbedding("my style", 2)
    lookup = TriggerIndex([(TK.encode("my"), short), (TK.encode("my style"), long)])
    tokens = TK.encode("my style my")
    assert lookup(tokens, 0) == (long, 2)
    assert lookup(tokens, 2) == (short, 1)
    assert lookup(tokens, 1) is None
    with pytest.raises(ValueError, match="empty trigger"):
        TriggerIndex([([], short)])


def test_batch_tokenization_reports_the_longest():
    batch, count = tokenize_prompts(["cat", "cat " * 80, "cat"], TK)
    assert [len(c) for c in batch] == [1, 2, 1] and count == 80
    assert batch[0] is batch[2]


def test_pad_after_first_eos():
    assert pad_after_first_eos([BOS_ID, 5, EOS_ID, EOS_ID, EOS_ID], EOS_ID, 0) == [BOS_ID, 5, EOS_ID, 0, 0]
    assert pad_after_first_eos([BOS_ID, EOS_ID, EOS_ID], EOS_ID, EOS_ID) == [BOS_ID, EOS_ID, EOS_ID]


def test_token_counter():
    assert count_prompt_tokens("a photo of a cat", TK) == (5, 75)
    assert count_prompt_tokens("", TK) == (0, 75)
    assert count_prompt_tokens(", ".join(["cat"] * 60), TK) == (119, 150)
    # the longest schedule text decides; tags and comments do not count
    assert count_prompt_tokens("a [cat:big fluffy dog:5] <lora:x:1> # note", TK) == (4, 75)
    # a positive prompt is split at AND; a negative one is not
    assert count_prompt_tokens("cat cat AND dog", TK) == (2, 75)
    assert count_prompt_tokens("cat cat AND dog", TK, is_positive=False) == (4, 75)


def test_token_counter_never_raises_while_typing():
    assert count_prompt_tokens("(x:1.2.3)", TK)[1] == 75
    with pytest.raises(PromptError):
        tokenize_prompt("(x:1.2.3)", TK)
