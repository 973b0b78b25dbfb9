"""Checkpoint switch benchmark: a SWITCH inside the running app vs reading the file, and FP8 weight storage.

    python bench/bench_switch.py [--runs 1] [--skip-step]

Starts the real server (`webui.py --nowebui --api --no-hashing`, a data dir with two full-size 2 GB SD1.5-shaped
checkpoints `a` and `b` holding the same random fp16 weights of `bench/make_full_checkpoint.py`), lets it load `a`,
drops the page cache (root: `/proc/sys/vm/drop_caches`), resets the server's peak RSS (`/proc/<pid>/clear_refs` 5)
and times `POST /sdapi/v1/options {"sd_model_checkpoint": "b.safetensors"}` until it answers (the model is then
current and ready to sample). Peak RSS is the server's VmHWM during the switch (old and new model both count while
RAM is not short: the old one is let go only when the new one works). Compared with a cold raw read of the file
(64 MiB unbuffered reads) and diffusers' cold single-file load of the same file (`bench/bench_engine.py`). Done at
the default precision (bf16 on a CPU with native bf16, else fp32), with `--no-half`, and with "FP8 weight" on.
`--skip-step` leaves out the UNet step with and without FP8 (512², batch 2, in a subprocess each).

Hashing is off (`--no-hashing`) so the background sha256 of the new file does not share the disk with the switch
(this app hashes after the load, A1111 before it).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))
from bench_engine import CHECKPOINT, DIFFUSERS_CONFIG, drop_caches, run_in_subprocess  # noqa: E402


def _status(pid: int, field: str) -> float:
    """A /proc/<pid>/status memory field in MiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    return float("nan")


def _cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far (/proc/<pid>/stat fields 14 and 15)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _wait(client: httpx.Client, process: subprocess.Popen[bytes], timeout: float = 900) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError("the server exited")
        try:
            if client.get("/sdapi/v1/options").json().get("sd_model_checkpoint"):
                return
        except (httpx.HTTPError, ValueError):
            pass
        time.sleep(0.5)
    raise RuntimeError("the server did not load its first checkpoint")


def measure_switch(data: Path, flags: list[str], options: dict[str, object]) -> dict[str, float]:
    """Start the server, load `a`, switch to cold `b`: seconds, peak RSS during the switch, RSS after it."""
    port = _free_port()
    (data / "config.json").unlink(missing_ok=True)  # the last run saved `b` as the checkpoint to start with
    log = (data / "server.log").open("wb")
    process = subprocess.Popen([sys.executable, str(ROOT / "webui.py"), "--nowebui", "--api", "--no-hashing",
                                "--data-dir", str(data), "--port", str(port), *flags], stdout=log, stderr=log,
                               cwd=ROOT, env={**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"})
    try:
        client = httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=3600)
        _wait(client, process)
        # blocks until the start-up load of `a` is done (the setting is set before the load finishes)
        client.post("/sdapi/v1/options", json={"sd_model_checkpoint": "a.safetensors"}).raise_for_status()
        if options:
            client.post("/sdapi/v1/options", json=options).raise_for_status()
        before = _status(process.pid, "VmRSS")
        cold = drop_caches()
        Path(f"/proc/{process.pid}/clear_refs").write_text("5\n")  # VmHWM := VmRSS
        cpu = _cpu_seconds(process.pid)
        start = time.perf_counter()
        client.post("/sdapi/v1/options", json={"sd_model_checkpoint": "b.safetensors"}).raise_for_status()
        seconds = time.perf_counter() - start
        result = {"seconds": seconds, "cpu_seconds": _cpu_seconds(process.pid) - cpu,
                  "peak_rss_mib": _status(process.pid, "VmHWM"), "rss_before_mib": before,
                  "rss_after_mib": _status(process.pid, "VmRSS"), "cold": cold}
        log.flush()
        lines = (data / "server.log").read_text(errors="replace").splitlines()
        result["server_log"] = [line[line.find(" b.safetensors") if " b.safetensors" in line else 0:][:300]
                                for line in lines if "b.safetensors" in line or "free RAM" in line]
        return result
    finally:
        process.terminate()
        process.wait(timeout=60)
        log.close()


def measure_step_fp8(dtype_name: str, fp8: bool, runs: int) -> dict:
    """One UNet call at 512² batch 2 (bench_engine's inputs) with or without FP8 weight storage."""
    import torch
    from safetensors.torch import load_file

    sys.path.insert(0, str(ROOT))
    from bench_engine import _step_inputs, _time_calls

    from modules.models.fp8_storage import store_fp8
    from modules.models.nn.unet import UNetConfig, build_unet

    dtype = getattr(torch, dtype_name)
    config = UNetConfig.from_dict(json.loads((ROOT / "configs" / "sd1.json").read_text())["unet"])
    unet = build_unet(config, load_file(str(CHECKPOINT)), dtype=dtype)
    if fp8:
        store_fp8(unet, dtype)
    x, t, context = _step_inputs(torch, dtype)
    with torch.inference_mode():
        result = _time_calls(lambda: unet(x, t, context), runs)
    result["weights_mib"] = sum(p.numel() * p.element_size() for p in unet.parameters()) / 2**20
    return result


def _child(name: str, args: list[str]) -> None:
    import resource

    if name == "step":
        result = measure_step_fp8(args[0], args[1] == "1", int(args[2]))
    elif name == "diffusers":  # bench_engine's diffusers load, with its CPU time
        from bench_engine import measure_diffusers_load

        before = resource.getrusage(resource.RUSAGE_SELF)
        result = measure_diffusers_load(args[0])
        after = resource.getrusage(resource.RUSAGE_SELF)
        result["cpu_seconds"] = after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime
    else:
        raise SystemExit(f"unknown child {name}")
    result["peak_rss_mib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps(result))


def _run_child(*args: str) -> dict:
    cold = drop_caches()
    out = subprocess.run([sys.executable, __file__, "--child", *args], capture_output=True, text=True, check=True,
                         env={**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"})
    result: dict = json.loads(out.stdout.strip().splitlines()[-1])
    result["cold"] = cold
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=1)
    parser.add_argument("--skip-step", action="store_true")
    parser.add_argument("--case", action="append", choices=["bf16", "fp32", "fp8"],
                        help="only these switch cases (default: all three)")
    parser.add_argument("--child", nargs="+")
    args = parser.parse_args()
    if args.child:
        _child(args.child[0], args.child[1:])
        return
    from diffusers_reference import write_sd15_config_dir
    from make_full_checkpoint import write_full_sd15

    if not CHECKPOINT.exists():
        write_full_sd15(CHECKPOINT)
    write_sd15_config_dir(DIFFUSERS_CONFIG)
    print(f"load average at start: {os.getloadavg()}", flush=True)
    rows: list[tuple[str, dict, float | None]] = []
    with tempfile.TemporaryDirectory(dir=ROOT / "bench" / ".cache") as tmp:
        data = Path(tmp)
        models = data / "models" / "Stable-diffusion"
        models.mkdir(parents=True)
        for name in ("a", "b"):
            shutil.copyfile(CHECKPOINT, models / f"{name}.safetensors")  # two files: `b` is cold after the drop
        drop_caches()
        raw = run_in_subprocess("raw_read", cold=True)
        rows.append(("raw read of the file", raw, None))
        cases = {"bf16": ("default precision (bf16 here)", [], {}, "bfloat16"),
                 "fp32": ("--no-half (fp32)", ["--no-half"], {}, "float32"),
                 "fp8": ("default precision, FP8 weight Enable", [], {"fp8_storage": "Enable"}, None)}
        for key, (label, flags, options, reference) in cases.items():
            if args.case and key not in args.case:
                continue
            for _ in range(args.runs):
                result = measure_switch(data, flags, options)
                rows.append((f"switch a → b, {label}: ours", result, raw["seconds"]))
                print(label, json.dumps(result), flush=True)
            if reference is not None:
                ref = _run_child("diffusers", reference)
                rows.append((f"cold load, {reference}: diffusers", ref, raw["seconds"]))
    print(f"load average at end: {os.getloadavg()}", flush=True)
    print("\n| measurement | seconds | × raw read | CPU s | peak RSS MiB | RSS after MiB | cold cache |\n"
          "|---|---|---|---|---|---|---|")
    for label, result, raw_seconds in rows:
        ratio = f"{result['seconds'] / raw_seconds:.2f}" if raw_seconds else ""
        after = f"{result['rss_after_mib']:.0f}" if "rss_after_mib" in result else ""
        cpu = f"{result['cpu_seconds']:.1f}" if "cpu_seconds" in result else ""
        print(f"| {label} | {result['seconds']:.2f} | {ratio} | {cpu} | {result['peak_rss_mib']:.0f} | {after} | "
              f"{result['cold']} |")
    if args.skip_step:
        return
    print("\n| UNet step 512² batch 2 | seconds | weights MiB | peak RSS MiB |\n|---|---|---|---|")
    for dtype in ("bfloat16", "float32"):
        for fp8 in (False, True):
            out = subprocess.run([sys.executable, __file__, "--child", "step", dtype, str(int(fp8)), str(args.runs)],
                                 capture_output=True, text=True, check=True)
            result = json.loads(out.stdout.strip().splitlines()[-1])
            print(f"| {dtype}{' + FP8 weight' if fp8 else ''} | {result['seconds']:.2f} | "
                  f"{result['weights_mib']:.0f} | {result['peak_rss_mib']:.0f} |", flush=True)


if __name__ == "__main__":
    main()
