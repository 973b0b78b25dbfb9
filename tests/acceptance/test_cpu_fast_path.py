"""The CPU fast path (oneDNN linears and convolutions with prepacked weights, channels_last networks) as `./webui.sh`
starts it: on by default on the CPU, off with `--disable-opt-cpu-fast-path`, the same images either way within the
dtype's noise; the prepacked copy of the UNet's weights off with `--disable-opt-cpu-prepack`."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from modules.models.nn.cpu_fast import linear_fast_path_problem
from tests.acceptance.conftest import RunningApp, WebUIFactory, decode_png

FAST_LINE = "CPU fast path: "


def _pixels(app: RunningApp, **payload: object) -> np.ndarray:
    data = app.txt2img(**payload)
    return np.asarray(decode_png(data["images"][0]).convert("RGB"), dtype=np.int16)


def _fast_and_plain(webui_app: WebUIFactory, precision: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """Pixels of one txt2img with the fast path (default) and with `--disable-opt-cpu-fast-path`."""
    fast = webui_app(["--api", *precision])
    fast_pixels = _pixels(fast, width=128, height=96, steps=3)
    line = next(ln for ln in fast.console.splitlines() if FAST_LINE in ln)
    if linear_fast_path_problem(torch.float32) == "":
        assert "oneDNN linears" in line and "NHWC weights" in line
    else:  # no oneDNN here: the plain linears, said once
        assert "plain linears" in line
    plain = webui_app(["--api", "--disable-opt-cpu-fast-path", *precision])
    assert FAST_LINE not in plain.console
    return fast_pixels, _pixels(plain, width=128, height=96, steps=3)


def test_fast_path_is_on_by_default_and_gives_the_plain_images(webui_app: WebUIFactory) -> None:
    fast32, plain32 = _fast_and_plain(webui_app, ["--precision", "full", "--no-half"])
    diff32 = np.abs(fast32 - plain32)
    assert diff32.max() <= 2, diff32.max()  # fp32: the same maths, summed in another order
    fast16, plain16 = _fast_and_plain(webui_app, [])  # the CPU default (bf16 where the CPU has it)
    # within the dtype's noise: bf16 roundings compound through the steps whichever kernel order they take, so the
    # fast and plain images differ by about as much as the plain bf16 image differs from fp32 (measured 3.2 vs 2.5)
    noise = max(1.0, float(np.abs(plain16 - plain32).mean()))
    assert np.abs(fast16 - plain16).mean() <= 2 * noise, (np.abs(fast16 - plain16).mean(), noise)
    assert np.abs(fast16 - plain32).mean() <= 2 * noise, (np.abs(fast16 - plain32).mean(), noise)


def test_unet_weights_are_prepacked_unless_disable_opt_cpu_prepack(webui_app: WebUIFactory) -> None:
    """Default: the UNet's weights get a oneDNN-reordered copy (RAM permitting, said in the load line);
    `--disable-opt-cpu-prepack` keeps none and gives the same fp32 image."""
    if linear_fast_path_problem(torch.float32):
        pytest.skip("no oneDNN in this build: nothing is packed either way (the load line says \"plain linears\")")
    precision = ["--precision", "full", "--no-half"]
    default = webui_app(["--api", *precision])
    default_pixels = _pixels(default, width=128, height=96, steps=3)
    line = next(ln for ln in default.console.splitlines() if FAST_LINE in ln)
    assert "prepacked oneDNN linears/convolutions" in line, line
    lean = webui_app(["--api", "--disable-opt-cpu-prepack", *precision])
    lean_pixels = _pixels(lean, width=128, height=96, steps=3)
    line = next(ln for ln in lean.console.splitlines() if FAST_LINE in ln)
    assert "oneDNN linears/convolutions" in line and "prepacked" not in line, line
    assert np.abs(lean_pixels - default_pixels).max() <= 2
