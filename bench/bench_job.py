"""Whole-job benchmark (issue 16 item 3): one txt2img, DPM++ 2M Karras, through the HTTP API of `webui.py`, against
diffusers' `StableDiffusionPipeline` with `DPMSolverMultistepScheduler(use_karras_sigmas=True)` on the same weights.

    python bench/bench_job.py [--steps 20] [--size 512] [--dtypes bfloat16,float32] [--poll 1.0] [--skip-diffusers]

Ours: `webui.py --api --loglevel DEBUG --no-hashing` in a subprocess, with a data dir holding the full-size random
SD1.5 checkpoint of `bench/make_full_checkpoint.py` (hard-linked from bench/.cache); `--no-half` for fp32, the
default precision (bf16 on a CPU with AVX512-BF16) otherwise. One warm-up job (another prompt, 1 step) loads the
model and pays first-call costs; then the peak RSS is reset (`/proc/<pid>/clear_refs`, 5) and the measured job runs
with `save_images: true` (PNG + infotext written as a user's job is) while a thread polls `/sdapi/v1/progress`
every `--poll` seconds as the UI does. The job's stage line (`modules.processing.job_timing`, DEBUG) gives the
time in the networks and each stage around them; "HTTP + base64" is the client's wall time minus the job's total.

diffusers: the pipeline built with `from_single_file` on the same file and the local SD1.5 configs
(`bench/diffusers_reference.py`), one 1-step warm-up, then the timed call (PIL output, no saving); its peak RSS is
reset the same way before the timed call. Both sides: cfg 7, one image, 2 threads (torch's default here).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))

from bench_engine import CHECKPOINT, DIFFUSERS_CONFIG  # noqa: E402

PROMPT = "a photograph of an astronaut riding a horse on the moon, highly detailed"
NEGATIVE = "blurry, low quality"
WARMUP_PROMPT = "a warm-up prompt"
CFG = 7.0
SEED = 1


def vm_hwm_mib(pid: int | str = "self") -> float:
    """Peak resident set size of a process (VmHWM) in MiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def reset_peak_rss(pid: int | str = "self") -> bool:
    """Reset VmHWM to the current RSS (Linux `clear_refs` 5); False when not permitted."""
    try:
        Path(f"/proc/{pid}/clear_refs").write_text("5")
        return True
    except OSError:
        return False


# ----- diffusers (child process) ------------------------------------------------------------------------------------

def diffusers_job(dtype_name: str, steps: int, size: int) -> dict[str, Any]:
    import torch
    from diffusers import DPMSolverMultistepScheduler, StableDiffusionPipeline

    dtype = getattr(torch, dtype_name)
    started = time.perf_counter()
    pipe = StableDiffusionPipeline.from_single_file(str(CHECKPOINT), config=str(DIFFUSERS_CONFIG), torch_dtype=dtype,
                                                    local_files_only=True, safety_checker=None,
                                                    requires_safety_checker=False)
    pipe.scheduler = DPMSolverMultistepScheduler.from_config(pipe.scheduler.config, use_karras_sigmas=True)
    pipe.set_progress_bar_config(disable=True)
    load_seconds = time.perf_counter() - started
    load_peak = vm_hwm_mib()

    def run(prompt: str, n: int) -> Any:
        generator = torch.Generator().manual_seed(SEED)
        return pipe(prompt, negative_prompt=NEGATIVE, num_inference_steps=n, guidance_scale=CFG, height=size,
                    width=size, generator=generator).images[0]

    with torch.inference_mode():
        run(WARMUP_PROMPT, 1)
        reset = reset_peak_rss()
        started = time.perf_counter()
        image = run(PROMPT, steps)
        seconds = time.perf_counter() - started
    return {"seconds": seconds, "load_seconds": load_seconds, "load_peak_rss_mib": load_peak,
            "job_peak_rss_mib": vm_hwm_mib() if reset else None, "size": list(image.size)}


# ----- ours (webui.py in a subprocess) ------------------------------------------------------------------------------

def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _data_dir() -> Path:
    folder = Path(tempfile.mkdtemp(prefix="bench-job-"))
    models = folder / "models" / "Stable-diffusion"
    models.mkdir(parents=True)
    target = models / CHECKPOINT.name
    try:
        os.link(CHECKPOINT, target)
    except OSError:
        target.symlink_to(CHECKPOINT)
    return folder


def _check(response: Any, log_path: Path) -> None:
    """Fail with the server's answer and the end of its log when a request failed."""
    if response.status_code != 200:
        lines = [ln for ln in log_path.read_text().splitlines() if " DEBUG " not in ln]
        raise RuntimeError(f"HTTP {response.status_code}: {response.text[:2000]}\n" + "\n".join(lines[-40:]))


STAGE = re.compile(r"([A-Za-z+ ]+?) ([\d.]+)s")


def parse_timing_line(line: str) -> dict[str, float]:
    """Stage → seconds from a `Job timings:` line (`modules.processing.job_timing`)."""
    total = float(re.search(r"Job timings: ([\d.]+)s total", line).group(1))  # type: ignore[union-attr]
    stages = {"total": total}
    for group in re.findall(r"\(([^()]*)\)", line):
        for name, seconds in STAGE.findall(group):
            stages[name.strip()] = float(seconds)
    return stages


def ours_job(dtype_name: str, steps: int, size: int, poll: float, extra_args: str = "") -> dict[str, Any]:
    import httpx

    data = _data_dir()
    port = _free_port()
    log_path = data / "server.log"
    cmd = [sys.executable, str(ROOT / "webui.py"), "--api", "--data-dir", str(data), "--port", str(port),
           "--loglevel", "DEBUG", "--no-hashing"]
    if dtype_name == "float32":
        cmd.append("--no-half")
    cmd.extend(extra_args.split())
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    with open(log_path, "w") as log_file:
        server = subprocess.Popen(cmd, cwd=ROOT, stdout=log_file, stderr=subprocess.STDOUT, env=env)
    try:
        client = httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=3600)
        deadline = time.monotonic() + 600
        while True:
            if server.poll() is not None:
                raise RuntimeError(f"webui.py exited:\n{log_path.read_text()[-3000:]}")
            try:
                if client.get("/sdapi/v1/options").status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError("webui.py did not answer in 600 s")
            time.sleep(0.5)
        body = {"prompt": WARMUP_PROMPT, "negative_prompt": NEGATIVE, "steps": 1, "width": size, "height": size,
                "sampler_name": "DPM++ 2M", "scheduler": "Karras", "cfg_scale": CFG, "seed": SEED}
        response = client.post("/sdapi/v1/txt2img", json=body)
        _check(response, log_path)
        load_peak = vm_hwm_mib(server.pid)
        reset = reset_peak_rss(server.pid)
        done = threading.Event()
        polls: list[float] = []

        def poller() -> None:
            with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=60) as c:
                while not done.wait(poll):
                    t = time.perf_counter()
                    c.get("/sdapi/v1/progress", params={"skip_current_image": "false"})
                    polls.append(time.perf_counter() - t)

        thread = threading.Thread(target=poller, daemon=True)
        if poll > 0:
            thread.start()
        mark = len(log_path.read_text())
        body.update(prompt=PROMPT, steps=steps, save_images=True)
        started = time.perf_counter()
        response = client.post("/sdapi/v1/txt2img", json=body)
        wall = time.perf_counter() - started
        done.set()
        _check(response, log_path)
        job_peak = vm_hwm_mib(server.pid) if reset else None
        time.sleep(0.5)  # the log line is written before the answer; let the file catch up
        lines = [ln for ln in log_path.read_text()[mark:].splitlines() if "Job timings:" in ln]
        if not lines:
            raise RuntimeError("no `Job timings:` line in the server log (is --loglevel DEBUG applied?)")
        stages = parse_timing_line(lines[-1])
        answer = response.json()
        return {"seconds": wall, "stages": stages, "line": lines[-1].split("Job timings:", 1)[1].strip(),
                "http_base64": wall - stages["total"], "load_peak_rss_mib": load_peak, "job_peak_rss_mib": job_peak,
                "polls": len(polls), "mean_poll_ms": 1000 * sum(polls) / len(polls) if polls else 0.0,
                "response_mib": len(response.content) / 2**20, "images": len(answer["images"])}
    finally:
        server.terminate()
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()
        shutil.rmtree(data, ignore_errors=True)


# ----- driver -------------------------------------------------------------------------------------------------------

def run_child(*args: str) -> dict[str, Any]:
    cmd = [sys.executable, __file__, "--child", *args]
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    out = subprocess.run(cmd, capture_output=True, text=True, env=env, check=False)
    if out.returncode != 0:
        raise RuntimeError(f"{args} failed:\n{out.stderr[-3000:]}")
    result: dict[str, Any] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


OVERHEAD = ("prompts", "conditioning", "sampler", "progress", "previews", "to PIL", "infotext", "saving", "other")


def report(dtype: str, ours: dict[str, Any], peer: dict[str, Any] | None) -> None:
    s = ours["stages"]
    total_wall = ours["seconds"]
    print(f"\n## {dtype}\nours: {ours['line']}")
    print(f"polls of /sdapi/v1/progress during the job: {ours['polls']} (mean {ours['mean_poll_ms']:.1f} ms); "
          f"answer {ours['response_mib']:.2f} MiB")
    print("\n| stage outside the networks | seconds | % of the job |\n|---|---|---|")
    outside = 0.0
    for name in OVERHEAD:
        outside += s.get(name, 0.0)
        print(f"| {name} | {s.get(name, 0.0):.3f} | {100 * s.get(name, 0.0) / total_wall:.2f} |")
    outside += ours["http_base64"]
    print(f"| HTTP + base64 + queue | {ours['http_base64']:.3f} | {100 * ours['http_base64'] / total_wall:.2f} |")
    print(f"| **all outside the networks** | {outside:.3f} | **{100 * outside / total_wall:.2f}** |")
    print(f"networks: text encoder {s.get('text encoder', 0):.2f} s, UNet {s.get('UNet', 0):.2f} s, "
          f"VAE {s.get('VAE', 0):.2f} s")
    print("\n| measurement | ours | diffusers | ours ÷ diffusers |\n|---|---|---|---|")
    peer_s = peer["seconds"] if peer else float("nan")
    print(f"| wall time of the job, s | {total_wall:.2f} | {peer_s:.2f} | {total_wall / peer_s:.2f} |")
    for key, label in (("job_peak_rss_mib", "peak RSS during the job, MiB"),
                       ("load_peak_rss_mib", "peak RSS of load + warm-up, MiB")):
        a, b = ours.get(key), peer.get(key) if peer else None
        ratio = f"{a / b:.2f}" if a and b else ""
        print(f"| {label} | {a or float('nan'):.0f} | {b or float('nan'):.0f} | {ratio} |")
    sys.stdout.flush()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--dtypes", default="bfloat16,float32")
    parser.add_argument("--poll", type=float, default=1.0, help="seconds between progress polls (0: none)")
    parser.add_argument("--skip-diffusers", action="store_true")
    parser.add_argument("--webui-args", default="", help="more flags for webui.py, e.g. \"--disable-opt-cpu-fast-path\"")
    parser.add_argument("--child", nargs="+")
    args = parser.parse_args()
    if args.child:
        name, dtype, steps, size, *rest = args.child
        if name == "diffusers":
            result = diffusers_job(dtype, int(steps), int(size))
        else:
            result = ours_job(dtype, int(steps), int(size), float(rest[0]), os.environ.get("BENCH_WEBUI_ARGS", ""))
        print(json.dumps(result))
        return

    from diffusers_reference import write_sd15_config_dir
    from make_full_checkpoint import write_full_sd15

    if not CHECKPOINT.exists():
        write_full_sd15(CHECKPOINT)
    write_sd15_config_dir(DIFFUSERS_CONFIG)
    load = os.getloadavg()
    print(f"{args.size}² {args.steps} steps DPM++ 2M Karras, cfg {CFG}; {os.cpu_count()} cores; "
          f"load average at start {load[0]:.2f}", flush=True)
    os.environ["BENCH_WEBUI_ARGS"] = args.webui_args  # for the child (its argparse would read them as its own)
    for dtype in args.dtypes.split(","):
        ours = run_child("ours", dtype, str(args.steps), str(args.size), str(args.poll))
        peer = None if args.skip_diffusers else run_child("diffusers", dtype, str(args.steps), str(args.size))
        report(dtype, ours, peer)
    print(f"\nload average at the end {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
