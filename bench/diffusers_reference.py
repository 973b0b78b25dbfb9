"""The reference side of the benchmarks: diffusers on the same checkpoint, from local configs only (no network).

Configs are SD1.5's published diffusers configs (facts: block widths, block types, head dims). The CLIP tokenizer
files diffusers' pipeline wants are derived from the BPE merges that ship inside open_clip_torch: the vocabulary is
the 256 byte symbols, the same with the word-end marker `</w>`, one entry per merge, then the two special tokens.
"""

from __future__ import annotations

import gzip
import json
from pathlib import Path

SD15_UNET = {
    "_class_name": "UNet2DConditionModel", "act_fn": "silu", "attention_head_dim": 8,
    "block_out_channels": [320, 640, 1280, 1280], "center_input_sample": False, "cross_attention_dim": 768,
    "down_block_types": ["CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D"],
    "downsample_padding": 1, "flip_sin_to_cos": True, "freq_shift": 0, "in_channels": 4, "layers_per_block": 2,
    "mid_block_scale_factor": 1, "norm_eps": 1e-05, "norm_num_groups": 32, "out_channels": 4, "sample_size": 64,
    "up_block_types": ["UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D"],
}
SD15_VAE = {
    "_class_name": "AutoencoderKL", "act_fn": "silu", "block_out_channels": [128, 256, 512, 512],
    "down_block_types": ["DownEncoderBlock2D"] * 4, "in_channels": 3, "latent_channels": 4, "layers_per_block": 2,
    "norm_num_groups": 32, "out_channels": 3, "sample_size": 512, "up_block_types": ["UpDecoderBlock2D"] * 4,
    "scaling_factor": 0.18215,
}
SD15_TEXT = {
    "architectures": ["CLIPTextModel"], "model_type": "clip_text_model", "hidden_size": 768,
    "intermediate_size": 3072, "num_hidden_layers": 12, "num_attention_heads": 12, "vocab_size": 49408,
    "max_position_embeddings": 77, "projection_dim": 768, "hidden_act": "quick_gelu", "layer_norm_eps": 1e-05,
    "bos_token_id": 0, "eos_token_id": 2, "pad_token_id": 1,
}
SD15_SCHEDULER = {
    "_class_name": "PNDMScheduler", "beta_end": 0.012, "beta_schedule": "scaled_linear", "beta_start": 0.00085,
    "num_train_timesteps": 1000, "set_alpha_to_one": False, "skip_prk_steps": True, "steps_offset": 1,
}


def _bytes_to_unicode() -> list[str]:
    printable = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + \
        list(range(ord("®"), ord("ÿ") + 1))
    chars = printable[:]
    extra = 0
    for b in range(256):
        if b not in printable:
            printable.append(b)
            chars.append(256 + extra)
            extra += 1
    mapping = dict(zip(printable, chars, strict=True))
    return [chr(mapping[b]) for b in range(256)]


def write_tokenizer(folder: Path) -> None:
    """vocab.json + merges.txt of the CLIP BPE tokenizer, from open_clip's bundled merges."""
    import open_clip

    bpe_path = Path(open_clip.__file__).parent / "bpe_simple_vocab_16e6.txt.gz"
    with gzip.open(bpe_path) as f:
        merges = f.read().decode("utf-8").split("\n")[1: 49152 - 256 - 2 + 1]
    symbols = _bytes_to_unicode()
    vocab = symbols + [s + "</w>" for s in symbols] + ["".join(m.split()) for m in merges]
    vocab += ["<|startoftext|>", "<|endoftext|>"]
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "vocab.json").write_text(json.dumps({tok: i for i, tok in enumerate(vocab)}), encoding="utf-8")
    (folder / "merges.txt").write_text("#version: 0.2\n" + "\n".join(merges) + "\n", encoding="utf-8")
    (folder / "tokenizer_config.json").write_text(json.dumps({
        "bos_token": "<|startoftext|>", "eos_token": "<|endoftext|>", "unk_token": "<|endoftext|>",
        "pad_token": "<|endoftext|>", "model_max_length": 77, "tokenizer_class": "CLIPTokenizer"}))


def write_sd15_config_dir(folder: Path) -> Path:
    """A local diffusers SD1.5 pipeline folder without weights: what `from_single_file(config=…)` reads."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "model_index.json").write_text(json.dumps({
        "_class_name": "StableDiffusionPipeline", "feature_extractor": [None, None], "safety_checker": [None, None],
        "requires_safety_checker": False, "scheduler": ["diffusers", "PNDMScheduler"],
        "text_encoder": ["transformers", "CLIPTextModel"], "tokenizer": ["transformers", "CLIPTokenizer"],
        "unet": ["diffusers", "UNet2DConditionModel"], "vae": ["diffusers", "AutoencoderKL"]}))
    for sub, cfg, name in (("unet", SD15_UNET, "config.json"), ("vae", SD15_VAE, "config.json"),
                           ("text_encoder", SD15_TEXT, "config.json"),
                           ("scheduler", SD15_SCHEDULER, "scheduler_config.json")):
        (folder / sub).mkdir(exist_ok=True)
        (folder / sub / name).write_text(json.dumps(cfg))
    write_tokenizer(folder / "tokenizer")
    return folder
