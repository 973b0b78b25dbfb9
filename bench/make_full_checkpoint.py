"""Write a full-size, SD1.5-shaped checkpoint of random fp16 weights (~2.1 GB) in the original key layout.

Shapes come from our own networks built on the `meta` device (UNet and VAE from `configs/sd1.json`) and from
transformers' `CLIPTextModel` with the ViT-L/14 text config, so the file has exactly the keys and shapes of a real
`v1-5-pruned-emaonly.safetensors` (including the `position_ids` buffer real files carry). Weights are N(0, 0.02²),
biases and norms as their usual init, so activations stay finite in fp16.

    python bench/make_full_checkpoint.py bench/.cache/sd15-random.safetensors
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import torch
from safetensors.torch import save_file

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from modules.models.nn.unet import UNetConfig, UNetModel  # noqa: E402
from modules.models.nn.vae import AutoencoderKL, VAEConfig  # noqa: E402


def _clip_l_shapes() -> dict[str, torch.Size]:
    from transformers import CLIPTextConfig, CLIPTextModel

    config = CLIPTextConfig(hidden_size=768, intermediate_size=3072, num_hidden_layers=12, num_attention_heads=12,
                            vocab_size=49408, max_position_embeddings=77, projection_dim=768, hidden_act="quick_gelu")
    with torch.device("meta"):
        model = CLIPTextModel(config)
    # transformers >= 5.6 flattened CLIPTextModel (no `text_model.` level); checkpoints keep the original names
    return {(k if k.startswith("text_model.") else f"text_model.{k}"): v.shape for k, v in model.state_dict().items()}


def full_sd15_shapes() -> dict[str, torch.Size]:
    """Every key of an SD1.5 single-file checkpoint with its shape."""
    config = json.loads((ROOT / "configs" / "sd1.json").read_text())
    with torch.device("meta"):
        unet = UNetModel(UNetConfig.from_dict(config["unet"]))
        vae = AutoencoderKL(VAEConfig.from_dict(config["vae"]))
    shapes = {f"model.diffusion_model.{k}": v.shape for k, v in unet.state_dict().items()}
    shapes.update({f"first_stage_model.{k}": v.shape for k, v in vae.state_dict().items()})
    shapes.update({f"cond_stage_model.transformer.{k}": v for k, v in _clip_l_shapes().items()})
    shapes["cond_stage_model.transformer.text_model.embeddings.position_ids"] = torch.Size([1, 77])
    return shapes


def random_tensor(key: str, shape: torch.Size, generator: torch.Generator) -> torch.Tensor:
    if key.endswith("position_ids"):
        return torch.arange(shape[-1], dtype=torch.int64).reshape(shape)
    is_norm = any(part in key for part in ("norm", "ln_", "layer_norm"))
    if key.endswith(".bias") or (len(shape) == 1 and not is_norm):
        return torch.zeros(shape, dtype=torch.float16)
    if is_norm and len(shape) == 1:
        return torch.ones(shape, dtype=torch.float16)
    return (torch.randn(shape, generator=generator) * 0.02).to(torch.float16)


def write_full_sd15(path: Path, seed: int = 0) -> Path:
    """Write the checkpoint (skipped when it already exists with the same key count)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    shapes = full_sd15_shapes()
    generator = torch.Generator().manual_seed(seed)
    tensors = {key: random_tensor(key, shape, generator) for key, shape in shapes.items()}
    tmp = path.with_suffix(".tmp")
    save_file(tensors, str(tmp))
    tmp.replace(path)
    return path


if __name__ == "__main__":
    target = Path(sys.argv[1] if len(sys.argv) > 1 else ROOT / "bench" / ".cache" / "sd15-random.safetensors")
    write_full_sd15(target)
    print(f"wrote {target} ({target.stat().st_size / 2**30:.2f} GiB)")
