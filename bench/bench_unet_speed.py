"""CPU fast paths vs diffusers: UNet step (SD1.5, SDXL) and VAE decode, ours / diffusers / ratio in one run.

    python bench/bench_unet_speed.py [--runs 3] [--cases sd15,sdxl,vae] [--dtypes float32,bfloat16] [--size 512]

Per case and dtype: one random state dict (seeded normal weights scaled by 1/sqrt(fan-in), norms at 1/0) in the
checkpoint's key layout, loaded into our network (built on ``meta``) and, converted by diffusers' own single-file
converters, into diffusers' ``UNet2DConditionModel`` / ``AutoencoderKL`` (the two share the weight tensors, so
memory holds one copy). Ours runs once on the plain eager path (its output is the reference), then with the CPU fast
path the model manager enables at load (``enable_cpu_fast_path``: channels_last, oneDNN linears and
convolutions, the UNet's weights prepacked when RAM allows; ``--no-prepack`` as the app's
``--disable-opt-cpu-prepack``); then fast and diffusers calls alternate ``--runs`` times after one warm-up each,
and the medians are
printed with diffusers ÷ ours (> 1 = ours faster) and the fast path's error against the plain path
(max |Δ| / max |plain|). The machine's load average is printed at start and end (shared machines skew single runs).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from modules.memory.attention import free_memory_bytes  # noqa: E402
from modules.models.nn.cpu_fast import enable_cpu_fast_path, should_pack  # noqa: E402
from modules.models.nn.unet import UNetConfig, UNetModel  # noqa: E402
from modules.models.nn.vae import AutoencoderKL, VAEConfig  # noqa: E402

SD15_UNET: dict[str, Any] = {
    "attention_head_dim": 8, "block_out_channels": [320, 640, 1280, 1280], "cross_attention_dim": 768,
    "down_block_types": ["CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D"],
    "up_block_types": ["UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D"],
    "in_channels": 4, "out_channels": 4, "layers_per_block": 2, "sample_size": 64,
}
SDXL_UNET: dict[str, Any] = {  # stabilityai/stable-diffusion-xl-base-1.0 unet/config.json (published facts)
    "attention_head_dim": [5, 10, 20], "block_out_channels": [320, 640, 1280], "cross_attention_dim": 2048,
    "down_block_types": ["DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D"],
    "up_block_types": ["CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D"],
    "transformer_layers_per_block": [1, 2, 10], "use_linear_projection": True, "addition_embed_type": "text_time",
    "addition_time_embed_dim": 256, "projection_class_embeddings_input_dim": 2816, "in_channels": 4,
    "out_channels": 4, "layers_per_block": 2, "sample_size": 128,
}
SD_VAE: dict[str, Any] = {
    "block_out_channels": [128, 256, 512, 512], "down_block_types": ["DownEncoderBlock2D"] * 4,
    "up_block_types": ["UpDecoderBlock2D"] * 4, "in_channels": 3, "out_channels": 3, "latent_channels": 4,
    "layers_per_block": 2, "norm_num_groups": 32, "sample_size": 512,
}


def random_state(module: nn.Module, dtype: torch.dtype, seed: int) -> dict[str, Tensor]:
    """Seeded weights for ``module``'s keys (built on meta): N(0, 1/fan_in) matrices/kernels, unit norm scales,
    small biases — activations stay O(1) through the depth, as with trained weights."""
    gen = torch.Generator().manual_seed(seed)
    state = {}
    for key, ref in module.state_dict().items():
        if ref.dim() >= 2:
            fan_in = ref[0].numel()
            tensor = torch.randn(ref.shape, generator=gen) / fan_in ** 0.5
        elif key.endswith("weight"):
            tensor = torch.ones(ref.shape)
        else:
            tensor = torch.randn(ref.shape, generator=gen) * 0.02
        state[key] = tensor.to(dtype)
    return state


def median_alternating(fns: dict[str, Callable[[], Tensor]], runs: int) -> dict[str, float]:
    """One warm-up each, then ``runs`` rounds calling every function once per round; median seconds each."""
    for fn in fns.values():
        fn()
    times: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(runs):
        for name, fn in fns.items():
            start = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - start)
    return {name: statistics.median(values) for name, values in times.items()}


def rel_error(out: Tensor, ref: Tensor) -> float:
    return float((out.float() - ref.float()).abs().max() / ref.float().abs().max())


def same_random_weights(make_ours: Callable[[], Any], make_theirs: Callable[[], Any],
                        convert: Callable[[dict[str, torch.Tensor]], dict[str, torch.Tensor]],
                        dtype: torch.dtype) -> tuple[Any, Any]:
    """Our network and diffusers' built on ``meta`` and filled with the same seeded random weights (diffusers' through
    its own single-file key conversion), both in eval mode."""
    with torch.device("meta"):
        ours = make_ours()
        theirs = make_theirs()
    state = random_state(ours, dtype, 0)
    ours.load_state_dict(state, assign=True)
    theirs.load_state_dict(convert(state), assign=True, strict=True)
    return ours.eval(), theirs.eval()


def unet_case(name: str, dtype: torch.dtype, size: int, runs: int, prepack: bool) -> dict[str, Any]:
    import diffusers
    from diffusers.loaders.single_file_utils import convert_ldm_unet_checkpoint

    family = "sd1" if name == "sd15" else "sdxl"
    config = UNetConfig.from_dict(json.loads((ROOT / "configs" / f"{family}.json").read_text())["unet"])
    dconfig = SD15_UNET if name == "sd15" else SDXL_UNET
    ours, theirs = same_random_weights(
        lambda: UNetModel(config), lambda: diffusers.UNet2DConditionModel(**dconfig),
        lambda state: convert_ldm_unet_checkpoint({"model.diffusion_model." + k: v for k, v in state.items()}, dconfig),
        dtype)

    gen = torch.Generator().manual_seed(1)
    side = size // 8
    x = torch.randn(2, 4, side, side, generator=gen).to(dtype)
    t = torch.tensor([500.0, 500.0])
    context = torch.randn(2, 77, config.context_dim, generator=gen).to(dtype)
    kwargs: dict[str, Any] = {}
    y = None
    if config.adm_in_channels:
        text_embeds = torch.randn(2, 1280, generator=gen).to(dtype)
        time_ids = torch.tensor([[size, size, 0, 0, size, size]] * 2, dtype=torch.float32)
        kwargs["added_cond_kwargs"] = {"text_embeds": text_embeds, "time_ids": time_ids.to(dtype)}
        from diffusers.models.embeddings import Timesteps

        size_emb = Timesteps(256, flip_sin_to_cos=True, downscale_freq_shift=0)(time_ids.flatten()).reshape(2, -1)
        y = torch.cat([text_embeds.float(), size_emb], dim=-1).to(dtype)

    with torch.inference_mode():
        start = time.perf_counter()
        plain = ours(x, t, context, y)
        plain_seconds = time.perf_counter() - start
        pack = prepack and should_pack(ours, free_memory_bytes(torch.device("cpu")))
        report = enable_cpu_fast_path(ours, pack=pack, name=name)
        fast = ours(x, t, context, y)
        ref = theirs(x, t, encoder_hidden_states=context, **kwargs).sample
        seconds = median_alternating({
            "ours": lambda: ours(x, t, context, y),
            "diffusers": lambda: theirs(x, t, encoder_hidden_states=context, **kwargs).sample,
        }, runs)
    return {"case": f"{name} UNet step {size}² b2", "dtype": str(dtype).removeprefix("torch."),
            "ours": seconds["ours"], "diffusers": seconds["diffusers"], "plain_once": plain_seconds,
            "fast_vs_plain": rel_error(fast, plain), "plain_vs_diffusers": rel_error(plain, ref),
            "path": f"linear={'packed' if report.packed else report.linear} channels_last={report.channels_last}"}


def vae_case(dtype: torch.dtype, size: int, runs: int) -> dict[str, Any]:
    import diffusers
    from diffusers.loaders.single_file_utils import convert_ldm_vae_checkpoint

    config = VAEConfig.from_dict(json.loads((ROOT / "configs" / "sd1.json").read_text())["vae"])
    ours, theirs = same_random_weights(
        lambda: AutoencoderKL(config), lambda: diffusers.AutoencoderKL(**SD_VAE),
        lambda state: convert_ldm_vae_checkpoint({"first_stage_model." + k: v for k, v in state.items()}, SD_VAE),
        dtype)
    z = torch.randn(1, 4, size // 8, size // 8, generator=torch.Generator().manual_seed(1)).to(dtype)
    with torch.inference_mode():
        start = time.perf_counter()
        plain = ours.decode(z)
        plain_seconds = time.perf_counter() - start
        report = enable_cpu_fast_path(ours, name="VAE")
        fast = ours.decode(z)
        ref = theirs.decode(z).sample
        seconds = median_alternating({"ours": lambda: ours.decode(z), "diffusers": lambda: theirs.decode(z).sample},
                                     runs)
    return {"case": f"VAE decode {size}² b1", "dtype": str(dtype).removeprefix("torch."), "ours": seconds["ours"],
            "diffusers": seconds["diffusers"], "plain_once": plain_seconds, "fast_vs_plain": rel_error(fast, plain),
            "plain_vs_diffusers": rel_error(plain, ref), "path": f"channels_last={report.channels_last}"}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--cases", default="sd15,sdxl,vae")
    parser.add_argument("--dtypes", default="float32,bfloat16")
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--no-prepack", action="store_true", help="the UNet as with --disable-opt-cpu-prepack")
    args = parser.parse_args()
    print(f"# start: load average {os.getloadavg()[0]:.2f} on {os.cpu_count()} cores; torch {torch.__version__}, "
          f"{torch.get_num_threads()} threads, {torch.backends.cpu.get_cpu_capability()}", flush=True)
    rows = []
    for case in args.cases.split(","):
        for dtype_name in args.dtypes.split(","):
            dtype = getattr(torch, dtype_name)
            row = vae_case(dtype, args.size, args.runs) if case == "vae" else unet_case(case, dtype, args.size,
                                                                                          args.runs, not args.no_prepack)
            row["load"] = os.getloadavg()[0]
            rows.append(row)
            print(json.dumps(row), flush=True)
    print(f"# end: load average {os.getloadavg()[0]:.2f}")
    print("\n| case | dtype | ours s | diffusers s | ours ÷ diffusers | fast vs plain error | plain once s | "
          "load avg | path |")
    print("|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['case']} | {r['dtype']} | {r['ours']:.2f} | {r['diffusers']:.2f} | "
              f"**{r['ours'] / r['diffusers']:.2f}** | {r['fast_vs_plain']:.1e} | {r['plain_once']:.2f} | "
              f"{r['load']:.1f} | {r['path']} |")


if __name__ == "__main__":
    main()
