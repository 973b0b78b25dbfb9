"""CLIP byte-level BPE tokenizer on the vocabulary shipped inside open_clip_torch (no downloads).

Facts used (from the CLIP paper's released tokenizer, as packaged by open_clip and transformers):
- vocabulary: the 256 byte symbols (GPT-2 byte→unicode table), the same with `</w>`, then the 48,894 merges of
  `bpe_simple_vocab_16e6.txt.gz` (lines 1..48894) joined, then `<start_of_text>` = 49406 and `<end_of_text>` = 49407
  (transformers calls them `<|startoftext|>` / `<|endoftext|>`); 49408 ids in all;
- text cleaning: `ftfy.fix_text`, whitespace runs → one space, strip, lower case; open_clip additionally
  HTML-unescapes twice (`flavor="open_clip"`, used by A1111 for SD2/SDXL-bigG), transformers' CLIPTokenizer does not
  (`flavor="clip"`, SD1 and SDXL CLIP-L);
- pre-tokenisation regex: `'s|'t|'re|'ve|'m|'ll|'d|\\p{L}+|\\p{N}|[^\\s\\p{L}\\p{N}]+` (case-insensitive);
- BPE: each word gets `</w>` on its last symbol, then the lowest-ranked adjacent pair is merged everywhere until no
  ranked pair is left.

The merge loop here uses a heap over a linked list, so a single 1 MB "word" costs O(n log n) instead of the
reference's quadratic loop; ties are broken left to right, which gives the same result as the reference.
"""

from __future__ import annotations

import functools
import gzip
import heapq
import html
import os
from collections.abc import Iterable

import regex

VOCAB_SIZE = 49408
BOS_ID = 49406
EOS_ID = 49407
COMMA_ID = 267
"""Id of `,</w>` in the CLIP vocabulary (A1111 `comma_token`, where long prompts are split)."""
_MERGE_COUNT = 49152 - 256 - 2
_WORD_CACHE_LIMIT = 100_000
# Words longer than this many characters are split into pieces of this size before BPE (only the last piece ends
# the word); exact for every real word, and it keeps absurd inputs (a 1 MB run of letters) to a few seconds.
MAX_WORD_CHARS = 1000


def default_vocab_path() -> str:
    """Path of `bpe_simple_vocab_16e6.txt.gz` inside the installed open_clip_torch package.

    The package is located, not imported: importing open_clip pulls in torchvision, torch._dynamo and transformers
    (~10 s on a 2-core CPU), which must not happen on the start-up path (issue 16: page up in ≤ 5 s).
    """
    import importlib.util

    spec = importlib.util.find_spec("open_clip")
    folders = list(spec.submodule_search_locations or ()) if spec is not None else []
    if not folders:
        raise FileNotFoundError("CLIP BPE vocabulary not found: the open_clip_torch package is not installed")
    path = os.path.join(folders[0], "bpe_simple_vocab_16e6.txt.gz")
    if not os.path.isfile(path):
        raise FileNotFoundError(f"CLIP BPE vocabulary not found at {path}; reinstall open_clip_torch")
    return path


def _byte_symbols() -> tuple[list[str], list[int]]:
    """GPT-2/CLIP byte→unicode table and the vocabulary order of the 256 byte symbols.

    Printable bytes (`!`..`~`, `¡`..`¬`, `®`..`ÿ`) map to themselves and come first in the vocabulary; the other
    bytes map to U+0100.. in byte order and follow them.
    """
    printable = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1), *range(ord("®"), ord("ÿ") + 1)]
    table: dict[int, str] = {b: chr(b) for b in printable}
    order = list(printable)
    extra = 0
    for b in range(256):
        if b not in table:
            table[b] = chr(256 + extra)
            order.append(b)
            extra += 1
    return [table[b] for b in range(256)], order


class _Vocabulary:
    """Token strings ↔ ids and the merge table as ints: (left id, right id) → (rank, merged id)."""

    def __init__(self, path: str) -> None:
        with gzip.open(path) as handle:
            lines = handle.read().decode("utf-8").split("\n")
        merges = [tuple(line.split()) for line in lines[1 : _MERGE_COUNT + 1]]
        if len(merges) != _MERGE_COUNT or any(len(m) != 2 for m in merges):
            raise ValueError(f"{path} is not a CLIP BPE merges file ({len(merges)} merges read)")
        table, order = _byte_symbols()
        byte_tokens = [table[b] for b in order]
        vocab = byte_tokens + [t + "</w>" for t in byte_tokens] + ["".join(m) for m in merges]
        vocab += ["<start_of_text>", "<end_of_text>"]
        self.tokens = vocab
        self.encoder = {token: index for index, token in enumerate(vocab)}
        self.byte_table = table
        self.byte_ids = [self.encoder[table[b]] for b in range(256)]
        self.byte_end_ids = [self.encoder[table[b] + "</w>"] for b in range(256)]
        encoder = self.encoder
        self.merges = {
            (encoder[left], encoder[right]): (rank, encoder[left + right]) for rank, (left, right) in enumerate(merges)
        }
        if encoder.get(",</w>") != COMMA_ID:
            raise ValueError(f"{path} is not the CLIP vocabulary (',</w>' is not token {COMMA_ID})")


@functools.lru_cache(maxsize=4)
def _load_vocabulary(path: str) -> _Vocabulary:
    return _Vocabulary(path)


class ClipTokenizer:
    """Text → CLIP token ids without BOS/EOS (`encode`), the way A1111 tokenizes each weighted prompt piece.

    `flavor="clip"` mirrors transformers' CLIPTokenizer (SD1, SDXL CLIP-L); `flavor="open_clip"` mirrors
    open_clip's SimpleTokenizer (SD2, SDXL bigG). Both share the vocabulary and ids.
    """

    bos_id = BOS_ID
    eos_id = EOS_ID

    def __init__(self, flavor: str = "clip", vocab_path: str | None = None) -> None:
        if flavor not in ("clip", "open_clip"):
            raise ValueError(f"unknown tokenizer flavor {flavor!r}; expected 'clip' or 'open_clip'")
        self.flavor = flavor
        self._vocab_path = vocab_path or default_vocab_path()
        specials = r"<\|startoftext\|>|<\|endoftext\|>" if flavor == "clip" else r"<start_of_text>|<end_of_text>"
        self._specials = {
            "<|startoftext|>": BOS_ID, "<|endoftext|>": EOS_ID, "<start_of_text>": BOS_ID, "<end_of_text>": EOS_ID
        }
        self._pattern = regex.compile(
            specials + r"""|'s|'t|'re|'ve|'m|'ll|'d|[\p{L}]+|[\p{N}]|[^\s\p{L}\p{N}]+""", regex.IGNORECASE
        )
        self._words: dict[str, list[int]] = {}
        self.comma_id = COMMA_ID
        # A1111 pads chunks with EOS; OpenCLIP models then see 0 after the first EOS (sd_hijack_open_clip id_pad).
        self.pad_id = EOS_ID if flavor == "clip" else 0

    @functools.cached_property
    def _vocab(self) -> _Vocabulary:
        """The vocabulary, read on first use (~0.7 s): the tokenizer is built at start-up but first needed by a
        prompt or an embedding file, after the page answers (issue 16)."""
        return _load_vocabulary(self._vocab_path)

    @property
    def encoder(self) -> dict[str, int]:
        """Token string → id."""
        return self._vocab.encoder

    @functools.cached_property
    def _byte_decoder(self) -> dict[str, int]:
        return {c: b for b, c in enumerate(self._vocab.byte_table)}

    def clean(self, text: str) -> str:
        """The flavor's text normalisation (see module docstring)."""
        try:
            import ftfy

            text = ftfy.fix_text(text)
        except ImportError:  # pragma: no cover - ftfy ships with open_clip_torch
            pass
        if self.flavor == "open_clip":
            text = html.unescape(html.unescape(text)).strip()
        return " ".join(text.split()).lower()

    def encode(self, text: str) -> list[int]:
        """Token ids of `text` (no BOS/EOS, no truncation)."""
        ids: list[int] = []
        for word in self._pattern.findall(self.clean(text)):
            special = self._specials.get(word)
            if special is not None:
                ids.append(special)
                continue
            if len(word) <= MAX_WORD_CHARS:
                ids.extend(self._word_ids(word, True))
                continue
            for start in range(0, len(word), MAX_WORD_CHARS):
                piece = word[start : start + MAX_WORD_CHARS]
                ids.extend(self._word_ids(piece, start + MAX_WORD_CHARS >= len(word)))
        return ids

    def _word_ids(self, word: str, ends_word: bool) -> list[int]:
        key = word if ends_word else "\0" + word
        cached = self._words.get(key)
        if cached is None:
            cached = self._bpe_ids(word, ends_word)
            if len(self._words) >= _WORD_CACHE_LIMIT:
                self._words.clear()
            self._words[key] = cached
        return cached

    def encode_batch(self, texts: Iterable[str]) -> list[list[int]]:
        """`encode` for each text."""
        return [self.encode(t) for t in texts]

    def decode(self, ids: Iterable[int]) -> str:
        """Ids → text (`</w>` becomes a space), for display and tests."""
        tokens = self._vocab.tokens
        text = "".join(tokens[int(i)] for i in ids if 0 <= int(i) < len(tokens))
        words = []
        for piece in text.split("</w>"):
            raw = bytes(self._byte_decoder[c] for c in piece if c in self._byte_decoder)
            words.append(raw.decode("utf-8", errors="replace"))
        return " ".join(words).strip()

    def _bpe_ids(self, word: str, ends_word: bool = True) -> list[int]:
        """Heap-ordered BPE over a linked list of ids (lowest rank first, ties left to right)."""
        vocab = self._vocab
        data = word.encode("utf-8")
        ids = [vocab.byte_ids[b] for b in data]
        if ends_word:
            ids[-1] = vocab.byte_end_ids[data[-1]]
        count = len(ids)
        if count == 1:
            return ids
        merges = vocab.merges
        following = list(range(1, count + 1))
        following[-1] = -1
        preceding = list(range(-1, count - 1))
        alive = [True] * count
        heap = []
        for i in range(count - 1):
            merge = merges.get((ids[i], ids[i + 1]))
            if merge is not None:
                heap.append((merge[0], i))
        heapq.heapify(heap)
        pop, push = heapq.heappop, heapq.heappush
        while heap:
            rank, i = pop(heap)
            if not alive[i]:
                continue
            j = following[i]
            if j == -1:
                continue
            merge = merges.get((ids[i], ids[j]))
            if merge is None or merge[0] != rank:
                continue  # stale entry: a neighbour was merged since it was pushed
            ids[i] = merge[1]
            alive[j] = False
            after = following[j]
            following[i] = after
            if after != -1:
                preceding[after] = i
                pair = merges.get((ids[i], ids[after]))
                if pair is not None:
                    push(heap, (pair[0], i))
            before = preceding[i]
            if before != -1:
                pair = merges.get((ids[before], ids[i]))
                if pair is not None:
                    push(heap, (pair[0], before))
        return [token for token, keep in zip(ids, alive, strict=True) if keep]


@functools.lru_cache(maxsize=4)
def get_tokenizer(flavor: str = "clip") -> ClipTokenizer:
    """A shared tokenizer per flavor (loading the vocabulary takes ~0.3 s)."""
    return ClipTokenizer(flavor)
