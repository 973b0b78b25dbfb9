"""Token merging / Hypertile benchmark: UNet step time and how much the result changes, each speed-up vs off.

    python bench/bench_speedups.py [--size 512] [--runs 2] [--dtype float32] [--tiny] [--skip-pixels]

A full-size SD1.5 UNet (and VAE) of random weights (PyTorch's default init, seeded; built in memory, no file) runs one step at `--size`² (latent size/8), batch 2 (cond + uncond, as CFG runs it), with
`modules.models.speedups.unet_speedups` off, ToMe 0.5 (A1111/tomesd defaults: depth-0 self-attention), Hypertile
U-Net with A1111's default settings (max depth 3, max tile 256, swap size 3), and both. Reported per setting: the
median step time, off ÷ it (> 1 = faster), the relative change of the UNet output (mean |Δε| / mean |ε|) and the
mean absolute difference of the decoded 8-bit pixels of the step's x0 prediction (random weights: the size of the
perturbation, not image quality). `--tiny` uses the test fixture's tiny UNet for a quick smoke run.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from modules.models.nn.unet import UNetConfig, UNetModel  # noqa: E402
from modules.models.nn.vae import AutoencoderKL, VAEConfig  # noqa: E402
from modules.models.speedups import HypertileConfig, TokenMergeConfig, unet_speedups  # noqa: E402

SETTINGS: dict[str, tuple[TokenMergeConfig | None, HypertileConfig | None]] = {
    "off": (None, None),
    "ToMe 0.5": (TokenMergeConfig(0.5), None),
    "Hypertile U-Net (defaults)": (None, HypertileConfig(max_depth=3, max_tile=256, swap_size=3, seed=0)),
    "ToMe 0.5 + Hypertile": (TokenMergeConfig(0.5), HypertileConfig(max_depth=3, max_tile=256, swap_size=3, seed=0)),
}


def build_networks(tiny: bool, dtype: torch.dtype) -> tuple[UNetModel, AutoencoderKL, int]:
    """(UNet, VAE, context width) with random weights."""
    if tiny:
        from tests.fixtures.tiny_checkpoints import TEXT_WIDTH, TINY_VAE, tiny_unet_config

        unet_config, vae_config, width = tiny_unet_config("sd1"), TINY_VAE, TEXT_WIDTH
    else:
        config = json.loads((ROOT / "configs" / "sd1.json").read_text())
        unet_config, vae_config = UNetConfig.from_dict(config["unet"]), VAEConfig.from_dict(config["vae"])
        width = unet_config.context_dim
    torch.manual_seed(0)  # default init (norms 1/0, kaiming-uniform convs/linears): activations stay O(1)
    unet = UNetModel(unet_config).to(dtype).eval()
    vae = AutoencoderKL(vae_config).to(dtype).eval()
    return unet, vae, width


def median_seconds(fn: Callable[[], torch.Tensor], runs: int) -> tuple[float, torch.Tensor]:
    out = fn()  # warm-up
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times), out


def layer_times(unet: UNetModel, x: torch.Tensor, context: torch.Tensor, runs: int) -> None:
    """Median time of the first depth-0 SpatialTransformer (where both speed-ups act) per setting."""
    with torch.inference_mode():
        h = unet.input_blocks[0](x, torch.zeros(0), context)
    layer = unet.input_blocks[1][1]
    times = {}
    for name, (tome, tile) in SETTINGS.items():
        # one context per setting, as one sampling pass: Hypertile's seeded tile choices advance between calls
        with torch.inference_mode(), unet_speedups(unet, tome, tile):
            times[name] = median_seconds(lambda: layer(h, context), max(runs, 5))[0]
    print(f"\n| setting | input_blocks.1.1 seconds ({tuple(h.shape)}) | off ÷ this |")
    print("|---|---|---|")
    for name, seconds in times.items():
        print(f"| {name} | {seconds:.3f} | {times['off'] / seconds:.2f} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", type=int, default=512, help="image side in pixels (latent = size / 8)")
    parser.add_argument("--runs", type=int, default=2)
    parser.add_argument("--dtype", default="float32", choices=["float32", "bfloat16"])
    parser.add_argument("--tiny", action="store_true", help="the tests' tiny UNet/VAE (smoke run)")
    parser.add_argument("--skip-pixels", action="store_true", help="no VAE decode")
    parser.add_argument("--layer-only", action="store_true",
                        help="only time the first depth-0 SpatialTransformer (input_blocks.1.1), not the whole step")
    args = parser.parse_args()
    dtype = getattr(torch, args.dtype)
    unet, vae, width = build_networks(args.tiny, dtype)
    factor = 2 ** (len(vae.config.ch_mult) - 1)
    side = args.size // factor
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(2, 4, side, side, generator=generator).to(dtype)
    t = torch.tensor([500.0, 500.0])
    context = torch.randn(2, 77, width, generator=generator).to(dtype)
    alphas = torch.linspace(0.00085 ** 0.5, 0.012 ** 0.5, 1000, dtype=torch.float64) ** 2
    alpha_bar = torch.cumprod(1 - alphas, 0)[500]
    sigma = float(((1 - alpha_bar) / alpha_bar) ** 0.5)

    print(f"# load average {os.getloadavg()[0]:.2f}, {os.cpu_count()} cores, torch {torch.__version__}, "
          f"{torch.get_num_threads()} threads, {platform.machine()}; UNet step {args.size}² "
          f"({side}² latent) batch 2, {args.dtype}, {'tiny' if args.tiny else 'full-size SD1.5'} random weights")
    layer_times(unet, x, context, args.runs)
    if args.layer_only:
        return
    rows = []
    reference: tuple[float, torch.Tensor, torch.Tensor | None] | None = None
    for name, (tome, tile) in SETTINGS.items():
        with torch.inference_mode(), unet_speedups(unet, tome, tile):  # one pass: tile choices advance per step
            seconds, eps = median_seconds(lambda: unet(x, t, context).float(), args.runs)
        pixels = None
        if not args.skip_pixels:
            with torch.inference_mode():
                x0 = (x.float() - sigma * eps)[:1] / 0.18215
                pixels = ((vae.decode(x0.to(dtype)).float().clamp(-1, 1) + 1) * 127.5).round()
        if reference is None:
            reference = (seconds, eps, pixels)
        off_seconds, off_eps, off_pixels = reference
        change = float((eps - off_eps).abs().mean() / off_eps.abs().mean())
        pixel_diff = float((pixels - off_pixels).abs().mean()) if pixels is not None and off_pixels is not None \
            else float("nan")
        rows.append((name, seconds, off_seconds / seconds, change, pixel_diff))
        print(f"  {name}: {seconds:.3f} s", flush=True)
    print("\n| setting | step seconds | off ÷ this | UNet output change | mean abs pixel diff (0-255) |")
    print("|---|---|---|---|---|")
    for name, seconds, ratio, change, pixel_diff in rows:
        print(f"| {name} | {seconds:.3f} | {ratio:.2f} | {change:.4f} | {pixel_diff:.2f} |")


if __name__ == "__main__":
    main()
