"""Live-preview cost: one preview of an SD1-size latent (64×64 → 512×512) per method vs one UNet step.

    python bench/bench_previews.py [--runs 3] [--every 10]

Methods: "Approx cheap" (linear map), "Approx NN" (A1111 VAEApprox), "TAESD" (tiny decoder), "Full" (the SD VAE
decoder); all random weights of the original sizes (configs/sd1.json for the VAE and UNet), float32 on the CPU.
The UNet step is the real SD1.5 shape with batch 2 (cond + uncond of one image, 77-token context). A preview runs
every `show_progress_every_n_steps` steps (`--every`, A1111 default 10), so its share of the sampling time is
preview / (every × step). Prints a Markdown table for docs/benchmarks.md.
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
from typing import Any

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from modules.models.nn.taesd import taesd_decoder  # noqa: E402
from modules.models.nn.unet import UNetConfig, UNetModel  # noqa: E402
from modules.models.nn.vae import AutoencoderKL, VAEConfig  # noqa: E402
from modules.models.nn.vae_approx import VAEApprox  # noqa: E402
from modules.processing.image_ops import tensor_to_pil  # noqa: E402
from modules.processing.preview import cheap_preview  # noqa: E402
from modules.processing.tiny_vae import approx_nn_images, taesd_images  # noqa: E402


def median_seconds(fn: Callable[[], Any], runs: int) -> float:
    fn()  # warm-up
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--every", type=int, default=10, help="show_progress_every_n_steps (A1111 default 10)")
    args = parser.parse_args()
    config = json.loads((ROOT / "configs" / "sd1.json").read_text())
    torch.manual_seed(0)
    latent = torch.randn(1, 4, 64, 64)
    approx, tiny = VAEApprox().eval(), taesd_decoder().eval()
    vae = AutoencoderKL(VAEConfig.from_dict(config["vae"])).eval()
    scale = float(config.get("latent_scale_factor", 0.18215))
    previews: dict[str, Callable[[], Any]] = {
        "Approx cheap": lambda: cheap_preview(latent),
        "Approx NN": lambda: approx_nn_images(approx, latent),
        "TAESD": lambda: taesd_images(tiny, latent),
        "Full": lambda: tensor_to_pil(vae.decode(latent / scale)),
    }
    with torch.inference_mode():
        costs = {name: median_seconds(fn, args.runs) for name, fn in previews.items()}
        previews.clear()  # frees the full VAE before the UNet is built
        unet = UNetModel(UNetConfig.from_dict(config["unet"])).eval()
        x, t = torch.randn(2, 4, 64, 64), torch.tensor([500.0, 500.0])
        context = torch.randn(2, 77, int(config["unet"].get("context_dim", 768)))
        step = median_seconds(lambda: unet(x, t, context), args.runs)
    print(f"# load average {os.getloadavg()[0]:.2f}, {os.cpu_count()} cores, torch {torch.__version__}, "
          f"{torch.get_num_threads()} threads, {platform.machine()}; SD1.5 UNet step 512² batch 2: {step:.2f} s; "
          f"preview every {args.every} steps; median of {args.runs} runs")
    print("| method | one preview (s) | vs one UNet step | preview cost as % of sampling time |")
    print("|---|---|---|---|")
    for name, seconds in costs.items():
        share = 100.0 * seconds / (args.every * step + seconds)
        print(f"| {name} | {seconds:.4f} | {100.0 * seconds / step:.1f} % | {share:.2f} % |")


if __name__ == "__main__":
    main()
