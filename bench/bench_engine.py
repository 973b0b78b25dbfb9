"""Engine benchmark: checkpoint load and one UNet step, ours vs diffusers on identical random weights.

    python bench/bench_engine.py [--runs 3] [--skip-load] [--skip-step]

Each measurement runs in its own subprocess so its peak RSS (ru_maxrss) is its own. Page cache is dropped before
each cold-load measurement when running as root (`/proc/sys/vm/drop_caches`), otherwise loads are warm and the
report says so. Results are printed as a Markdown table to paste into docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CACHE = ROOT / "bench" / ".cache"
CHECKPOINT = CACHE / "sd15-random.safetensors"
DIFFUSERS_CONFIG = CACHE / "diffusers-sd15"


def drop_caches() -> bool:
    """Drop the page cache so the next read comes from disk; False when not permitted."""
    try:
        os.sync()
        Path("/proc/sys/vm/drop_caches").write_text("3\n")
        return True
    except OSError:
        return False


def peak_rss_mib() -> float:
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


# ----- measurements (each runs inside a fresh subprocess) -----

def measure_raw_read() -> dict:
    buffer = bytearray(64 << 20)
    start = time.perf_counter()
    with open(CHECKPOINT, "rb", buffering=0) as f:
        while f.readinto(buffer):
            pass
    return {"seconds": time.perf_counter() - start}


def measure_ours_load(dtype_name: str) -> dict:
    import torch

    sys.path.insert(0, str(ROOT))
    import open_clip.transformer  # noqa: F401
    import transformers

    from modules.memory.precision import PrecisionFlags, resolve_dtype_policy
    from modules.models.checkpoints import CheckpointInfo
    from modules.models.loader import DevicePolicy, load_checkpoint
    from modules.models.nn import conditioner, text_encoders  # noqa: F401  (imports are start-up, not load, cost)
    transformers.CLIPTextModel  # noqa: B018  (resolve the lazy import before the clock starts)

    flags = PrecisionFlags(cpu_bf16=dtype_name == "bfloat16", no_half=dtype_name == "float32")
    policy = DevicePolicy(device=torch.device("cpu"), dtypes=resolve_dtype_policy("cpu", flags))
    start = time.perf_counter()
    model = load_checkpoint(CheckpointInfo.from_path(CHECKPOINT), policy)
    seconds = time.perf_counter() - start
    return {"seconds": seconds, "breakdown": model.timings.summary(), "family": model.family}


def measure_diffusers_load(dtype_name: str) -> dict:
    import torch
    from diffusers import AutoencoderKL, UNet2DConditionModel
    from diffusers.loaders.single_file_utils import create_diffusers_clip_model_from_ldm
    from safetensors.torch import load_file
    from transformers import CLIPTextModel

    dtype = getattr(torch, dtype_name)
    cfg = str(DIFFUSERS_CONFIG)
    start = time.perf_counter()
    state_dict = load_file(str(CHECKPOINT))
    kwargs = {"config": cfg, "torch_dtype": dtype, "local_files_only": True}
    UNet2DConditionModel.from_single_file(state_dict, subfolder="unet", **kwargs)
    AutoencoderKL.from_single_file(state_dict, subfolder="vae", **kwargs)
    create_diffusers_clip_model_from_ldm(CLIPTextModel, state_dict, subfolder="text_encoder", **kwargs)
    return {"seconds": time.perf_counter() - start}


def _step_inputs(torch, dtype):
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(2, 4, 64, 64, generator=generator).to(dtype)
    t = torch.tensor([500.0, 500.0])
    context = torch.randn(2, 77, 768, generator=generator).to(dtype)
    return x, t, context


def _time_calls(fn, runs: int) -> dict:
    fn()  # warm-up: first call pays allocator and kernel selection costs
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return {"seconds": sorted(times)[len(times) // 2], "all": times}


def measure_ours_step(dtype_name: str, runs: int) -> dict:
    import torch
    from safetensors.torch import load_file

    sys.path.insert(0, str(ROOT))
    from modules.models.nn.unet import UNetConfig, build_unet

    dtype = getattr(torch, dtype_name)
    config = UNetConfig.from_dict(json.loads((ROOT / "configs" / "sd1.json").read_text())["unet"])
    unet = build_unet(config, load_file(str(CHECKPOINT)), dtype=dtype)
    x, t, context = _step_inputs(torch, dtype)
    with torch.inference_mode():
        result = _time_calls(lambda: unet(x, t, context), runs)
    return result


def measure_diffusers_step(dtype_name: str, runs: int) -> dict:
    import torch
    from diffusers import UNet2DConditionModel
    from safetensors.torch import load_file

    dtype = getattr(torch, dtype_name)
    unet = UNet2DConditionModel.from_single_file(load_file(str(CHECKPOINT)), config=str(DIFFUSERS_CONFIG),
                                                 subfolder="unet", torch_dtype=dtype, local_files_only=True)
    unet.eval()
    x, t, context = _step_inputs(torch, dtype)
    with torch.inference_mode():
        result = _time_calls(lambda: unet(x, t, encoder_hidden_states=context).sample, runs)
    return result


MEASUREMENTS = {
    "raw_read": measure_raw_read,
    "ours_load": measure_ours_load,
    "diffusers_load": measure_diffusers_load,
    "ours_step": measure_ours_step,
    "diffusers_step": measure_diffusers_step,
}


def run_in_subprocess(name: str, *args: str, cold: bool = False) -> dict:
    dropped = drop_caches() if cold else False
    cmd = [sys.executable, __file__, "--child", name, *args]
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    out = subprocess.run(cmd, capture_output=True, text=True, env=env, check=False)
    if out.returncode != 0:
        raise RuntimeError(f"{name} failed:\n{out.stderr[-3000:]}")
    result = json.loads(out.stdout.strip().splitlines()[-1])
    result["cold"] = dropped
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--skip-load", action="store_true")
    parser.add_argument("--skip-step", action="store_true")
    parser.add_argument("--child", nargs="+")
    args = parser.parse_args()
    if args.child:
        name, *rest = args.child
        fn = MEASUREMENTS[name]
        extra = [int(v) if v.isdigit() else v for v in rest]
        result = fn(*extra)
        result["peak_rss_mib"] = peak_rss_mib()
        print(json.dumps(result))
        return

    sys.path.insert(0, str(ROOT / "bench"))
    from diffusers_reference import write_sd15_config_dir
    from make_full_checkpoint import write_full_sd15

    if not CHECKPOINT.exists():
        write_full_sd15(CHECKPOINT)
    write_sd15_config_dir(DIFFUSERS_CONFIG)
    import torch

    rows = []
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, torch {torch.__version__},"
          f" threads {torch.get_num_threads()}; checkpoint {CHECKPOINT.stat().st_size / 2**30:.2f} GiB", flush=True)
    if not args.skip_load:
        raw = run_in_subprocess("raw_read", cold=True)
        rows.append(("raw read of the file", raw, None))
        for dtype in ("float32", "bfloat16"):
            ours = run_in_subprocess("ours_load", dtype, cold=True)
            ref = run_in_subprocess("diffusers_load", dtype, cold=True)
            rows.append((f"load → ready, {dtype}: ours", ours, raw["seconds"]))
            rows.append((f"load → ready, {dtype}: diffusers", ref, raw["seconds"]))
            print(f"{dtype} breakdown (ours): {ours.get('breakdown')}", flush=True)
    if not args.skip_step:
        for dtype in ("float32", "bfloat16"):
            ours = run_in_subprocess("ours_step", dtype, str(args.runs))
            ref = run_in_subprocess("diffusers_step", dtype, str(args.runs))
            rows.append((f"UNet step 512² batch 2, {dtype}: ours", ours, None))
            rows.append((f"UNet step 512² batch 2, {dtype}: diffusers", ref, None))
            print(f"{dtype} step ratio diffusers/ours = {ref['seconds'] / ours['seconds']:.2f}", flush=True)
    print("\n| measurement | seconds | × raw read | peak RSS MiB | cold cache |\n|---|---|---|---|---|")
    for label, result, raw_seconds in rows:
        ratio = f"{result['seconds'] / raw_seconds:.2f}" if raw_seconds else ""
        print(f"| {label} | {result['seconds']:.2f} | {ratio} | {result['peak_rss_mib']:.0f} | {result['cold']} |")


if __name__ == "__main__":
    main()
