"""Start-up time: from the moment `./webui.sh` starts the Python process until the page answers (issue 16 item 4).

    python bench/bench_startup.py [--runs 3] [--python venv/bin/python] [--no-importtime] [-- extra flags]

What it runs is what webui.sh runs after its venv/pip part: `<venv python> -u launch.py <flags>` in the install
folder, with webui.sh's environment (ERROR_REPORTING=FALSE, PIP_IGNORE_INSTALLED=0, SD_WEBUI_RESTART=tmp/restart),
so launch.py's own preparation (git version lines, the torch/requirements checks, the CUDA probe) is counted too.
The flags are `--api --port <free> --data-dir <temp dir>` plus anything after `--`; the data dir holds one small
checkpoint (the tiny random-weight SD1 file of the test fixtures, `models/Stable-diffusion/sd1.safetensors`).

Python's bytecode caches are kept as on a user's machine (PYTHONDONTWRITEBYTECODE is dropped; the caches go to
a temp folder through PYTHONPYCACHEPREFIX, so the install folder is not touched) and a first, uncounted run writes
them: the numbers are those of every start after the first one.

For each run it measures, from `Popen` to:
* `page`: the first 200 from `GET /` (the UI page);
* `sd-models`: the first 200 from `GET /sdapi/v1/sd-models`;
* `model`: `sd_model_checkpoint` is set in `/sdapi/v1/options` (the checkpoint loaded in the background);
and the process's CPU time (user + system; its finished children, i.e. the CUDA probe, apart) when the page answered,
which depends far less on the load of a shared machine than the wall time (on an idle machine the page time is close
to it: start-up is one busy thread). It prints the medians, the load average before and after, the
app's own "Startup time: ..." breakdown (A1111 style) and whether the page answered before the model had loaded.

Then (unless `--no-importtime`) one more run under `python -X importtime` prints the 20 costliest packages (self
time summed per top-level package) and the 20 costliest single imports (cumulative) until the page answered, and
lists which heavy optional packages (diffusers, transformers, open_clip, scipy, ...) were imported by then.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
HEAVY = ("diffusers", "transformers", "open_clip", "scipy", "skimage", "cv2", "timm", "tensorboard", "torchvision",
         "spandrel", "kornia", "sklearn", "matplotlib", "torch._dynamo", "torch._inductor")
"""Packages that must not be imported before the page answers unless needed (issue 16)."""
TIMEOUT = 300.0


@dataclass
class Run:
    """One start: seconds from Popen to each milestone, CPU seconds at `page`, and the app's console."""

    page: float = float("nan")
    models: float = float("nan")
    model: float = float("nan")
    cpu: float = float("nan")
    """CPU seconds of the web UI process itself when the page answered."""
    child_cpu: float = float("nan")
    """CPU seconds of its finished children by then (launch.py's CUDA probe, git)."""
    trace_bytes: int = 0
    """How much of the -X importtime output was written when the page answered."""
    console: list[str] = field(default_factory=list)
    console_times: list[float] = field(default_factory=list)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def make_data_dir() -> Path:
    """A temp data dir with one small checkpoint (the tiny SD1 fixture)."""
    sys.path.insert(0, str(ROOT))
    from tests.fixtures.tiny_checkpoints import write_tiny_checkpoint

    folder = Path(tempfile.mkdtemp(prefix="bench-startup-"))
    models = folder / "models" / "Stable-diffusion"
    models.mkdir(parents=True)
    write_tiny_checkpoint("sd1", models / "sd1.safetensors", seed=0)
    return folder


def get(url: str) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return int(response.status), response.read()
    except urllib.error.HTTPError as exc:
        return int(exc.code), b""
    except (urllib.error.URLError, OSError):
        return 0, b""


def cpu_seconds(pid: int) -> tuple[float, float]:
    """(utime + stime, cutime + cstime) of `pid` (Linux /proc): its own CPU seconds and its finished children's."""
    fields = [int(v) for v in Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[11:15]]
    tick = os.sysconf("SC_CLK_TCK")
    return (fields[0] + fields[1]) / tick, (fields[2] + fields[3]) / tick


def start(python: str, data_dir: Path, port: int, extra: Sequence[str], *, importtime: Path | None = None
          ) -> subprocess.Popen[str]:
    env = dict(os.environ, ERROR_REPORTING="FALSE", PIP_IGNORE_INSTALLED="0", SD_WEBUI_RESTART="tmp/restart",
               PYTHONUNBUFFERED="1", PYTHONPYCACHEPREFIX=str(data_dir / "pycache"))
    env.pop("COMMANDLINE_ARGS", None)
    env.pop("PYTHONDONTWRITEBYTECODE", None)  # a user's Python keeps its bytecode caches (see module docstring)
    args = [python, "-u", *(["-X", "importtime"] if importtime else []), "launch.py", "--api", "--port", str(port),
            "--data-dir", str(data_dir), *extra]
    stderr = importtime.open("w") if importtime else subprocess.STDOUT
    return subprocess.Popen(args, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=stderr, text=True,
                            start_new_session=True)


def stop(process: subprocess.Popen[str]) -> None:
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGINT)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


def measure(python: str, data_dir: Path, extra: Sequence[str], *, importtime: Path | None = None) -> Run:
    """Start the app once and time its milestones (see module docstring)."""
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    run = Run()
    began = time.perf_counter()
    process = start(python, data_dir, port, extra, importtime=importtime)

    def read_console() -> None:
        assert process.stdout is not None
        for line in process.stdout:
            run.console.append(line.rstrip())
            run.console_times.append(time.perf_counter() - began)

    reader = threading.Thread(target=read_console, daemon=True)
    reader.start()
    try:
        while True:
            if process.poll() is not None:
                raise RuntimeError("the app exited:\n" + "\n".join(run.console[-30:]))
            if time.perf_counter() - began > TIMEOUT:
                raise RuntimeError("the page did not answer in time:\n" + "\n".join(run.console[-30:]))
            if get(base + "/")[0] == 200:
                run.page = time.perf_counter() - began
                run.cpu, run.child_cpu = cpu_seconds(process.pid)
                run.trace_bytes = importtime.stat().st_size if importtime else 0
                break
            time.sleep(0.02)
        while get(base + "/sdapi/v1/sd-models")[0] != 200:
            time.sleep(0.02)
        run.models = time.perf_counter() - began
        while time.perf_counter() - began < TIMEOUT:
            status, body = get(base + "/sdapi/v1/options")
            if status == 200 and b'"sd_model_checkpoint":"' in body.replace(b": ", b":") \
                    and b'"sd_model_checkpoint":""' not in body.replace(b": ", b":"):
                run.model = time.perf_counter() - began
                break
            time.sleep(0.05)
    finally:
        stop(process)
        reader.join(timeout=5)
    return run


def startup_line(run: Run) -> str:
    return next((line for line in run.console if line.startswith("Startup time:")), "(no 'Startup time' line)")


def first_seen(run: Run, pattern: str) -> float:
    for line, when in zip(run.console, run.console_times, strict=True):
        if re.search(pattern, line):
            return when
    return float("nan")


def phases(run: Run) -> str:
    """launch.py preparation (until its "Launching Web UI" line), what webui.py did outside its timer (before this
    commit's import stages: the imports), the stages of its "Startup time" line (imports, scripts, UI, app) and the
    rest until the page answered (start-up facts, uvicorn start, first request); from the console lines, ±0.1 s."""
    launching = first_seen(run, r"^Launching (Web UI|API server)")
    summary_at = first_seen(run, r"^Startup time:")
    line = startup_line(run)
    match = re.match(r"Startup time: ([\d.]+)s", line)
    app = float(match.group(1)) if match else float("nan")
    return (f"launch.py preparation {launching:.2f} s, webui.py before its timer {summary_at - launching - app:.2f} s, "
            f"webui.py timer {app:.2f} s [{line.removeprefix('Startup time: ')}], serve {run.page - summary_at:.2f} s")


def import_report(path: Path, size: int) -> None:
    """Top-20 packages by summed self time and top-20 single imports by cumulative time in the first `size` bytes
    of a -X importtime output (what was imported until the page answered)."""
    per_package: Counter[str] = Counter()
    cumulative: list[tuple[int, str]] = []
    seen: set[str] = set()
    for line in path.read_bytes()[:size].decode(errors="replace").splitlines():
        match = re.match(r"import time:\s+(\d+) \|\s+(\d+) \| (\s*)(\S+)", line)
        if not match:
            continue
        name = match.group(4)
        seen.add(name)
        per_package[name.split(".")[0]] += int(match.group(1))
        cumulative.append((int(match.group(2)), ("  " * (len(match.group(3)) // 2)) + name))
    total = sum(per_package.values()) / 1e6
    print(f"\nImports until the page answered: {len(seen)} modules, {total:.2f} s in all (self times summed)")
    print("Top 20 packages (self time summed):")
    for name, micros in per_package.most_common(20):
        print(f"  {micros / 1e6:7.3f} s  {name}")
    print("Top 20 imports (cumulative, nested ones indented):")
    for micros, name in sorted(cumulative, reverse=True)[:20]:
        print(f"  {micros / 1e6:7.3f} s  {name}")
    loaded = [name for name in HEAVY if name in seen]
    print("Heavy optional packages imported before the page answered: " + (", ".join(loaded) or "none"))


def load_average() -> str:
    return " ".join(f"{v:.2f}" for v in os.getloadavg())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--python", default=sys.executable, help="the venv's python (default: this one)")
    parser.add_argument("--no-importtime", action="store_true", help="skip the -X importtime run")
    parser.add_argument("extra", nargs="*", help="more web UI flags (after --)")
    args = parser.parse_args()
    data_dir = make_data_dir()
    try:
        print(f"CPU cores: {os.cpu_count()}; load average before: {load_average()}")
        print(f"Command: {args.python} -u launch.py --api --port <free> --data-dir {data_dir} {' '.join(args.extra)}")
        warm = measure(args.python, data_dir, args.extra)
        print(f"warm-up run (writes the bytecode caches, not counted): page {warm.page:.2f} s")
        runs: list[Run] = []
        for index in range(args.runs):
            run = measure(args.python, data_dir, args.extra)
            runs.append(run)
            print(f"run {index + 1}: page {run.page:.2f} s, /sdapi/v1/sd-models {run.models:.2f} s, model loaded "
                  f"{run.model:.2f} s, CPU at page {run.cpu:.2f} s (+ children {run.child_cpu:.2f} s)")
            print("       phases: " + phases(run))
        page = statistics.median(r.page for r in runs)
        print(f"\nMedian of {len(runs)}: page {page:.2f} s, /sdapi/v1/sd-models "
              f"{statistics.median(r.models for r in runs):.2f} s, model loaded "
              f"{statistics.median(r.model for r in runs):.2f} s, CPU time at page "
              f"{statistics.median(r.cpu for r in runs):.2f} s (+ children "
              f"{statistics.median(r.child_cpu for r in runs):.2f} s)")
        background = all(r.model >= r.page for r in runs)
        print("The checkpoint loads in the background: " + ("yes (the page answered before the model was loaded)"
                                                            if background else "NO (the page waited for the model)"))
        print(f"Load average after: {load_average()}")
        if not args.no_importtime:
            with tempfile.TemporaryDirectory() as folder:
                trace = Path(folder) / "importtime.txt"
                run = measure(args.python, data_dir, args.extra, importtime=trace)
                print(f"\n-X importtime run: page {run.page:.2f} s (slower: importtime itself costs time)")
                import_report(trace, run.trace_bytes)
    finally:
        shutil.rmtree(data_dir, ignore_errors=True)


if __name__ == "__main__":
    main()
