"""Text encoders built from checkpoint weights, and prompt chunks → conditioning tensors (A1111 semantics).

Sources (behaviour, not code): A1111 `modules/sd_hijack_clip.py`, `sd_hijack_open_clip.py`, `sd_hijack.py`
(`EmbeddingsWithFixes`), `sd_emphasis.py`; the LDM/SGM encoders (`FrozenCLIPEmbedder`, `FrozenOpenCLIPEmbedder`,
`FrozenOpenCLIPEmbedder2`); `a1111-features.md` §5 and §11.4.

- CLIP-L (SD1, SDXL embedder 0) is transformers' `CLIPTextModel`; OpenCLIP-H (SD2) / bigG (SDXL) is open_clip's
  `TextTransformer`. Both are built on the meta device from dimensions read off the weights (heads = width // 64,
  as in every released SD text encoder) and filled with `load_state_dict(assign=True)`.
- SD1: last layer output (final layer norm included); clip skip N > 1 takes hidden state −N and applies the final
  layer norm. SD2: penultimate layer + `ln_final` (clip skip does not apply, as in A1111). SDXL: CLIP-L hidden state
  −2 without final norm (or −N with `sdxl_clip_l_skip`) and bigG penultimate without `ln_final`; the pooled vector
  is `ln_final(last layer)` at the EOT position (highest id) @ `text_projection`.
- Textual-inversion vectors are spliced into the token embeddings at `fix.offset + 1` (after BOS), cut to the
  chunk; chunks are encoded separately and concatenated along the token axis; pooled comes from the first chunk.
- Emphasis: "Original" multiplies each token's output by its weight, then rescales so the mean of the whole batch
  tensor is unchanged; "No norm" only multiplies; "Ignore" and "None" leave the output alone.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, TypedDict, cast

import torch
from torch import nn

from modules.prompts.chunking import (
    EmbeddingFix,
    EmbeddingLookup,
    PromptChunk,
    empty_chunk,
    pad_after_first_eos,
    tokenize_prompts,
)
from modules.prompts.old_emphasis import tokenize_prompts_old
from modules.prompts.tokenizer import BOS_ID, EOS_ID, ClipTokenizer, get_tokenizer

HEAD_WIDTH = 64
_IGNORED_CLIP_KEYS = ("embeddings.position_ids",)
_IGNORED_OPEN_CLIP_KEYS = ("logit_scale", "logit_bias", "attn_mask")


class TextEncoderLoadError(ValueError):
    """The weights do not form a text encoder of the expected layout (message names the keys involved)."""


def strip_prefix(state_dict: Mapping[str, torch.Tensor], prefix: str) -> dict[str, torch.Tensor]:
    """The entries of `state_dict` under `prefix`, with the prefix removed."""
    return {key[len(prefix) :]: value for key, value in state_dict.items() if key.startswith(prefix)}


def _count_blocks(keys: Sequence[str], pattern: str) -> int:
    numbers = {int(m.group(1)) for key in keys if (m := re.match(pattern, key))}
    if not numbers:
        raise TextEncoderLoadError(f"no transformer blocks found (expected keys like {pattern!r})")
    if numbers != set(range(max(numbers) + 1)):
        raise TextEncoderLoadError(f"transformer blocks are not numbered 0..n-1: found {sorted(numbers)}")
    return max(numbers) + 1


def _require(state_dict: Mapping[str, torch.Tensor], key: str, what: str) -> torch.Tensor:
    if key not in state_dict:
        raise TextEncoderLoadError(f"{what}: missing weight {key!r}")
    return state_dict[key]


def _load_assigned(module: nn.Module, state_dict: dict[str, torch.Tensor], what: str) -> None:
    result = module.load_state_dict(state_dict, strict=False, assign=True)
    problems = []
    if result.missing_keys:
        problems.append(f"missing {sorted(result.missing_keys)[:8]}")
    if result.unexpected_keys:
        problems.append(f"unexpected {sorted(result.unexpected_keys)[:8]}")
    if problems:
        raise TextEncoderLoadError(f"{what} weights do not match the inferred layout: {'; '.join(problems)}")


def _submodule(parent: nn.Module, name: str) -> nn.Module:
    """`parent.<name>` (a dotted path) typed as a module: torch types `Module.__getattr__` as `Tensor | Module`."""
    return parent.get_submodule(name)


def _tensor(parent: nn.Module, name: str) -> torch.Tensor:
    """`parent.<name>` for a parameter or buffer, typed as a tensor."""
    return cast(torch.Tensor, getattr(parent, name))


def splice_embeddings(
    token_embeds: torch.Tensor, fixes: Sequence[Sequence[EmbeddingFix]] | None, ti_key: str | None
) -> torch.Tensor:
    """Insert textual-inversion vectors into `[B, T, D]` token embeddings (A1111 `EmbeddingsWithFixes`).

    Vectors of `fix.embedding.vec` (a tensor, or a mapping indexed by `ti_key`) replace positions
    `offset + 1 ...`, cut so they never overwrite the last position of the chunk.
    """
    if not fixes or not any(fixes):
        return token_embeds
    rows = []
    length = token_embeds.shape[1]
    for row, row_fixes in zip(token_embeds, fixes, strict=True):
        for fix in row_fixes:
            vec = fix.embedding.vec
            if isinstance(vec, Mapping):
                if ti_key is None or ti_key not in vec:
                    raise ValueError(
                        f"embedding {fix.embedding.name!r} has vectors for {sorted(vec)} but this text encoder needs "
                        f"{ti_key!r}"
                    )
                vec = vec[ti_key]
            vec = vec.to(device=row.device, dtype=row.dtype)
            if vec.shape[-1] != row.shape[-1]:
                raise ValueError(
                    f"embedding {fix.embedding.name!r} has vectors of size {vec.shape[-1]}, "
                    f"this text encoder uses {row.shape[-1]}"
                )
            count = min(length - fix.offset - 1, vec.shape[0])
            row = torch.cat([row[: fix.offset + 1], vec[:count], row[fix.offset + 1 + count :]])
        rows.append(row)
    return torch.stack(rows)


class _SplicingEmbedding(nn.Embedding):
    """CLIPTextModel's token embedding with a one-shot list of fixes to splice (weights keep their key name)."""

    ti_key: str | None = None

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.pending_fixes: Sequence[Sequence[EmbeddingFix]] | None = None

    def forward(self, input_ids: torch.Tensor) -> torch.Tensor:
        embeds = super().forward(input_ids)
        fixes, self.pending_fixes = self.pending_fixes, None
        return splice_embeddings(embeds, fixes, self.ti_key)


@dataclass
class EncodedTokens:
    """One encoded chunk batch: `z` `[B, T, D]` and, for bigG, `pooled` `[B, P]`."""

    z: torch.Tensor
    pooled: torch.Tensor | None = None


class ClipTextEncoder(nn.Module):
    """CLIP-L text encoder (transformers `CLIPTextModel`) for SD1 (`mode="sd1"`) or SDXL (`mode="sdxl"`)."""

    tokenizer_flavor = "clip"
    pad_id = EOS_ID

    def __init__(self, model: nn.Module, mode: str = "sd1") -> None:
        super().__init__()
        if mode not in ("sd1", "sdxl"):
            raise ValueError(f"unknown CLIP-L mode {mode!r}; expected 'sd1' or 'sdxl'")
        self.model = model
        self.mode = mode
        self.ti_key = "clip_l" if mode == "sdxl" else None
        # transformers 4.x nests the modules in `text_model`
        self._text: nn.Module = getattr(model, "text_model", model)
        self._token_embedding.ti_key = self.ti_key

    @property
    def _token_embedding(self) -> _SplicingEmbedding:
        return cast(_SplicingEmbedding, _submodule(self._text, "embeddings.token_embedding"))

    @classmethod
    def from_state_dict(
        cls,
        state_dict: Mapping[str, torch.Tensor],
        *,
        mode: str = "sd1",
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> ClipTextEncoder:
        """Build from CLIPTextModel weights, with or without the `text_model.` prefix; shapes give the config."""
        from transformers import CLIPTextConfig, CLIPTextModel

        weights = {k.removeprefix("text_model."): v for k, v in state_dict.items()}
        for key in _IGNORED_CLIP_KEYS:
            weights.pop(key, None)
        token = _require(weights, "embeddings.token_embedding.weight", "CLIP-L")
        positions = _require(weights, "embeddings.position_embedding.weight", "CLIP-L")
        fc1 = _require(weights, "encoder.layers.0.mlp.fc1.weight", "CLIP-L")
        vocab, width = token.shape
        config = CLIPTextConfig(
            vocab_size=vocab,
            hidden_size=width,
            intermediate_size=fc1.shape[0],
            num_hidden_layers=_count_blocks(list(weights), r"encoder\.layers\.(\d+)\."),
            num_attention_heads=max(1, width // HEAD_WIDTH),
            max_position_embeddings=positions.shape[0],
            hidden_act="quick_gelu",
            layer_norm_eps=1e-5,
            bos_token_id=BOS_ID,
            eos_token_id=EOS_ID,
        )
        with torch.device("meta"):
            model = CLIPTextModel(config)
        text = getattr(model, "text_model", model)
        text.embeddings.token_embedding = _SplicingEmbedding(vocab, width, device="meta")
        prefix = "text_model." if text is not model else ""
        _load_assigned(model, {prefix + k: v for k, v in weights.items()}, "CLIP-L")
        count = positions.shape[0]
        text.embeddings.register_buffer("position_ids", torch.arange(count).expand((1, -1)), persistent=False)
        model.eval().requires_grad_(False)
        return cls(model, mode).to(device=device, dtype=dtype)

    @property
    def device(self) -> torch.device:
        return self._token_embedding.weight.device

    @property
    def num_layers(self) -> int:
        return len(cast(nn.ModuleList, _submodule(self._text, "encoder.layers")))

    def token_embeddings(self, tokens: torch.Tensor) -> torch.Tensor:
        """Raw token embeddings (no positions), e.g. to initialise a textual-inversion embedding from text."""
        return nn.functional.embedding(tokens, self._token_embedding.weight)

    def encode_tokens(
        self,
        tokens: torch.Tensor,
        fixes: Sequence[Sequence[EmbeddingFix]] | None = None,
        *,
        clip_skip: int = 1,
        sdxl_clip_l_skip: bool = False,
    ) -> EncodedTokens:
        """`[B, 77]` ids → `[B, 77, 768]` (see module docstring for the layer choice per mode)."""
        if clip_skip < 1:
            raise ValueError(f"clip skip must be at least 1, got {clip_skip}")
        token_embedding = self._token_embedding
        token_embedding.pending_fixes = fixes
        try:
            outputs = self.model(input_ids=tokens, output_hidden_states=True)
        finally:
            token_embedding.pending_fixes = None
        hidden = outputs.hidden_states
        skip = min(clip_skip, len(hidden))
        if self.mode == "sdxl":
            return EncodedTokens(hidden[-skip] if sdxl_clip_l_skip else hidden[-2])
        if skip > 1:
            return EncodedTokens(_submodule(self._text, "final_layer_norm")(hidden[-skip]))
        return EncodedTokens(outputs.last_hidden_state)


class OpenClipTextEncoder(nn.Module):
    """OpenCLIP text tower (open_clip `TextTransformer`): ViT-H for SD2 (`mode="sd2"`), bigG for SDXL."""

    tokenizer_flavor = "open_clip"
    pad_id = 0

    def __init__(self, model: nn.Module, mode: str = "sd2") -> None:
        super().__init__()
        if mode not in ("sd2", "sdxl"):
            raise ValueError(f"unknown OpenCLIP mode {mode!r}; expected 'sd2' or 'sdxl'")
        self.model = model
        self.mode = mode
        self.ti_key = "clip_g" if mode == "sdxl" else None

    @classmethod
    def from_state_dict(
        cls,
        state_dict: Mapping[str, torch.Tensor],
        *,
        mode: str = "sd2",
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> OpenClipTextEncoder:
        """Build from open_clip text weights (`token_embedding`, `transformer.resblocks.N`, `ln_final`, ...)."""
        from open_clip.transformer import TextTransformer

        weights = {k: v for k, v in state_dict.items() if k not in _IGNORED_OPEN_CLIP_KEYS}
        token = _require(weights, "token_embedding.weight", "OpenCLIP")
        positions = _require(weights, "positional_embedding", "OpenCLIP")
        c_fc = _require(weights, "transformer.resblocks.0.mlp.c_fc.weight", "OpenCLIP")
        projection = _require(weights, "text_projection", "OpenCLIP")
        vocab, width = token.shape
        with torch.device("meta"):
            model = TextTransformer(
                context_length=positions.shape[0],
                vocab_size=vocab,
                width=width,
                heads=max(1, width // HEAD_WIDTH),
                layers=_count_blocks(list(weights), r"transformer\.resblocks\.(\d+)\."),
                mlp_ratio=c_fc.shape[0] / width,
                output_dim=projection.shape[1],
            )
        _load_assigned(model, weights, "OpenCLIP")
        model.attn_mask = model.build_causal_mask()
        model.eval().requires_grad_(False)
        return cls(model, mode).to(device=device, dtype=dtype)

    @property
    def device(self) -> torch.device:
        return _tensor(_submodule(self.model, "token_embedding"), "weight").device

    @property
    def num_layers(self) -> int:
        return len(self._blocks)

    @property
    def _blocks(self) -> nn.ModuleList:
        return cast(nn.ModuleList, _submodule(self.model, "transformer.resblocks"))

    def token_embeddings(self, tokens: torch.Tensor) -> torch.Tensor:
        """Raw token embeddings (no positions)."""
        return cast(torch.Tensor, _submodule(self.model, "token_embedding")(tokens))

    def encode_tokens(
        self, tokens: torch.Tensor, fixes: Sequence[Sequence[EmbeddingFix]] | None = None, **_ignored: Any
    ) -> EncodedTokens:
        """`[B, 77]` ids → penultimate hidden states (`ln_final` applied for SD2) and, for SDXL, the pooled vector."""
        model = self.model
        x = splice_embeddings(self.token_embeddings(tokens), fixes, self.ti_key)
        length = x.shape[1]
        x = x + _tensor(model, "positional_embedding")[:length].to(x.dtype)
        mask = torch.full((length, length), float("-inf"), device=x.device, dtype=x.dtype).triu_(1)
        batch_first = getattr(model.transformer, "batch_first", True)
        if not batch_first:
            x = x.permute(1, 0, 2)
        blocks = self._blocks
        penultimate = x
        for index, block in enumerate(blocks):
            if index == len(blocks) - 1:
                penultimate = x
                if self.mode == "sd2":
                    break
            x = block(x, attn_mask=mask)
        if not batch_first:
            x, penultimate = x.permute(1, 0, 2), penultimate.permute(1, 0, 2)
        if self.mode == "sd2":
            return EncodedTokens(_submodule(model, "ln_final")(penultimate))
        last = _submodule(model, "ln_final")(x)
        pooled = last[torch.arange(last.shape[0], device=last.device), tokens.argmax(dim=-1)]
        projection = model.text_projection
        pooled = projection(pooled) if isinstance(projection, nn.Linear) else pooled @ projection
        return EncodedTokens(penultimate, pooled)


TextEncoder = ClipTextEncoder | OpenClipTextEncoder


def apply_emphasis(z: torch.Tensor, multipliers: torch.Tensor, mode: str) -> torch.Tensor:
    """Weight `[B, T, D]` outputs by `[B, T]` multipliers (A1111 `sd_emphasis`); see module docstring."""
    if mode in ("Ignore", "None"):
        return z
    if mode not in ("Original", "No norm"):
        raise ValueError(f"unknown emphasis mode {mode!r}; expected Original, No norm, Ignore or None")
    weights = multipliers.to(device=z.device, dtype=torch.float32).unsqueeze(-1)
    weighted = z.float() * weights
    if mode == "Original":
        # A1111 rescales to the unweighted mean (original_mean / new_mean). A zero weighted mean has no defined
        # ratio (0 / 0 = NaN when every multiplier is 1 and a final LayerNorm without bias gives zero-mean tokens:
        # NaN conditioning, a NansError in fp32), so the weighted values are kept as they are then.
        new_mean = weighted.mean()
        if bool(new_mean != 0):
            weighted = weighted * (z.float().mean() / new_mean)
    return weighted.to(z.dtype)


@dataclass
class TextConditioning:
    """`cond` `[B, 77·k, D]`, `pooled` `[B, P]` (bigG only) and the embeddings used, by name (for "TI hashes")."""

    cond: torch.Tensor
    pooled: torch.Tensor | None = None
    used_embeddings: dict[str, Any] = field(default_factory=dict)


def encode_chunks(
    encoder: TextEncoder,
    batch_chunks: Sequence[Sequence[PromptChunk]],
    *,
    emphasis: str = "Original",
    clip_skip: int = 1,
    sdxl_clip_l_skip: bool = False,
) -> TextConditioning:
    """Encode a batch of chunk lists chunk by chunk (short prompts get empty chunks) and concatenate (A1111)."""
    if not batch_chunks:
        raise ValueError("no prompts to encode")
    chunk_count = max(len(chunks) for chunks in batch_chunks)
    outputs, pooled, used = [], None, {}
    for index in range(chunk_count):
        batch = [chunks[index] if index < len(chunks) else empty_chunk(BOS_ID, EOS_ID) for chunks in batch_chunks]
        ids = [pad_after_first_eos(chunk.tokens, EOS_ID, encoder.pad_id) for chunk in batch]
        tokens = torch.tensor(ids, dtype=torch.long, device=encoder.device)
        fixes = [chunk.fixes for chunk in batch]
        for row in fixes:
            for fix in row:
                used[fix.embedding.name] = fix.embedding
        encoded = encoder.encode_tokens(tokens, fixes, clip_skip=clip_skip, sdxl_clip_l_skip=sdxl_clip_l_skip)
        multipliers = torch.tensor([chunk.multipliers for chunk in batch], dtype=torch.float32)
        outputs.append(apply_emphasis(encoded.z, multipliers, emphasis))
        if index == 0:
            pooled = encoded.pooled
    return TextConditioning(torch.cat(outputs, dim=1), pooled, used)


def encode_prompts(
    encoder: TextEncoder,
    prompts: Sequence[str],
    *,
    emphasis: str = "Original",
    clip_skip: int = 1,
    comma_padding_backtrack: int = 20,
    embedding_lookup: EmbeddingLookup | None = None,
    sdxl_clip_l_skip: bool = False,
    tokenizer: ClipTokenizer | None = None,
    old_emphasis: bool = False,
) -> TextConditioning:
    """Prompts (already free of schedules, AND and extra-network tags) → conditioning with one encoder.
    `old_emphasis`: A1111's pre-1.0 tokenization (`use_old_emphasis_implementation`, `modules.prompts.old_emphasis`)."""
    tokenizer = tokenizer or get_tokenizer(encoder.tokenizer_flavor)
    if old_emphasis:
        batch_chunks, _count = tokenize_prompts_old(prompts, tokenizer, emphasis=emphasis,
                                                    embedding_lookup=embedding_lookup)
    else:
        batch_chunks, _count = tokenize_prompts(
            prompts,
            tokenizer,
            emphasis=emphasis,
            comma_padding_backtrack=comma_padding_backtrack,
            embedding_lookup=embedding_lookup,
        )
    return encode_chunks(
        encoder, batch_chunks, emphasis=emphasis, clip_skip=clip_skip, sdxl_clip_l_skip=sdxl_clip_l_skip
    )


class _Placement(TypedDict):
    device: torch.device | str | None
    dtype: torch.dtype | None


@dataclass
class CheckpointTextEncoders:
    """The text encoders found in a checkpoint: `kind` is "sd1", "sd2", "sdxl" or "sdxl-refiner"."""

    kind: str
    clip_l: ClipTextEncoder | None = None
    open_clip: OpenClipTextEncoder | None = None


def load_text_encoders(
    state_dict: Mapping[str, torch.Tensor],
    *,
    device: torch.device | str | None = None,
    dtype: torch.dtype | None = None,
) -> CheckpointTextEncoders:
    """Build the text encoders of a checkpoint in the original LDM/SGM key layout (see docs/architecture.md)."""
    keys = list(state_dict)

    def has(prefix: str) -> bool:
        return any(key.startswith(prefix) for key in keys)

    kwargs: _Placement = {"device": device, "dtype": dtype}
    if has("conditioner.embedders.1.model."):
        return CheckpointTextEncoders(
            "sdxl",
            ClipTextEncoder.from_state_dict(
                strip_prefix(state_dict, "conditioner.embedders.0.transformer."), mode="sdxl", **kwargs
            ),
            OpenClipTextEncoder.from_state_dict(
                strip_prefix(state_dict, "conditioner.embedders.1.model."), mode="sdxl", **kwargs
            ),
        )
    if has("conditioner.embedders.0.model."):
        encoder = OpenClipTextEncoder.from_state_dict(
            strip_prefix(state_dict, "conditioner.embedders.0.model."), mode="sdxl", **kwargs
        )
        return CheckpointTextEncoders("sdxl-refiner", None, encoder)
    if has("cond_stage_model.model."):
        encoder = OpenClipTextEncoder.from_state_dict(
            strip_prefix(state_dict, "cond_stage_model.model."), mode="sd2", **kwargs
        )
        return CheckpointTextEncoders("sd2", None, encoder)
    if has("cond_stage_model.transformer."):
        clip = ClipTextEncoder.from_state_dict(
            strip_prefix(state_dict, "cond_stage_model.transformer."), mode="sd1", **kwargs
        )
        return CheckpointTextEncoders("sd1", clip, None)
    raise TextEncoderLoadError(
        "no text encoder weights found: expected keys under cond_stage_model.transformer. (SD1), "
        "cond_stage_model.model. (SD2) or conditioner.embedders.N. (SDXL)"
    )
