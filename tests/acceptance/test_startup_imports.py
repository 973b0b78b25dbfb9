"""Issue 16 start-up guard: serving the page does not import heavy optional packages.

The page must answer within seconds of start (bench/bench_startup.py measures it). Most of that time is imports,
and the costliest ones are packages the page does not need: open_clip alone pulled in torchvision, torch._dynamo and
transformers (~10 s on a 2-core CPU) only to locate a vocabulary file. This test is the regression guard that is not
timed: a fresh Python builds the app through `webui.create_app` (flags + a data dir with one checkpoint), serves it,
gets `/` and `/sdapi/v1/sd-models`, and then lists which of these packages were imported. The checkpoint loading
(which runs in the background after the page is up) is not started, so whatever it needs does not count.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from tests.conftest import REPO, TinyCheckpointFactory

NOT_BEFORE_THE_PAGE = ("diffusers", "transformers", "open_clip", "scipy", "skimage", "cv2", "timm", "tensorboard",
                       "torchvision", "spandrel", "kornia", "sklearn", "matplotlib", "torch._dynamo",
                       "torch._inductor", "tensorboardX")

_CHILD = """
import json, sys, threading, time, urllib.request
import uvicorn
import webui
from modules.server import bind_server_socket

app = webui.create_app(["--api", "--data-dir", sys.argv[1]], {})
sock = bind_server_socket("127.0.0.1", 0)
server = uvicorn.Server(uvicorn.Config(app.asgi, log_level="warning"))
threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True).start()
while not server.started:
    time.sleep(0.05)
url = "http://127.0.0.1:%d" % sock.getsockname()[1]
status = [urllib.request.urlopen(url + path, timeout=120).status for path in ("/", "/sdapi/v1/sd-models")]
names = json.loads(sys.argv[2])
print("RESULT " + json.dumps({"status": status, "imported": [n for n in names if n in sys.modules]}), flush=True)
server.should_exit = True
"""


def test_serving_the_page_imports_no_heavy_optional_package(tmp_path: Path, tiny_checkpoint: TinyCheckpointFactory
                                                            ) -> None:
    models = tmp_path / "models" / "Stable-diffusion"
    models.mkdir(parents=True)
    (models / "sd1.safetensors").symlink_to(tiny_checkpoint("sd1"))
    env = {k: v for k, v in os.environ.items() if k not in ("COMMANDLINE_ARGS", "PYTHONPATH")}
    env["PYTHONPATH"] = str(REPO)
    done = subprocess.run([sys.executable, "-c", _CHILD, str(tmp_path), json.dumps(NOT_BEFORE_THE_PAGE)],
                          cwd=REPO, env=env, capture_output=True, text=True, timeout=600, check=False)
    lines = [line for line in done.stdout.splitlines() if line.startswith("RESULT ")]
    assert lines, f"the app did not serve the page:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    result = json.loads(lines[-1].removeprefix("RESULT "))
    assert result["status"] == [200, 200]
    assert result["imported"] == [], (
        f"imported before the page answered: {result['imported']}; import them where they are used (issue 16)")
