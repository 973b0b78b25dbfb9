"""Start-up diagnostics: port clash messages, torch/device report, A1111-style load-time breakdown."""

from __future__ import annotations

import re
import socket

import pytest

from modules.runtime.diagnostics import (
    GpuInfo,
    StageTimer,
    TorchInfo,
    check_port,
    format_load_times,
    port_in_use_message,
    probe_torch,
    startup_diagnostics,
)


def test_port_in_use_message_format() -> None:
    assert port_in_use_message("127.0.0.1", 7860) == (
        "Port 7860 is already in use on 127.0.0.1; start with --port 7861 (or another free port)")
    assert port_in_use_message("0.0.0.0", 7860, suggestion=7865).endswith("--port 7865 (or another free port)")
    assert "<a free port>" in port_in_use_message("127.0.0.1", 65535)


def test_check_port_reports_a_busy_port_with_a_free_suggestion() -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        message = check_port("127.0.0.1", port)
        assert message is not None
        match = re.fullmatch(rf"Port {port} is already in use on 127\.0\.0\.1; start with --port (\d+) "
                             r"\(or another free port\)", message)
        assert match, message
        suggested = int(match.group(1))
        assert suggested > port
        with socket.socket() as probe:  # the suggestion really is free
            probe.bind(("127.0.0.1", suggested))
        # --listen binds every interface, which clashes with the loopback listener too
        assert check_port("0.0.0.0", port) is not None
    assert check_port("127.0.0.1", port) is None  # free again once closed


def test_check_port_explains_other_bind_failures() -> None:
    assert "does not belong to this machine" in check_port("192.0.2.77", 7860)  # TEST-NET-1, never local
    assert "cannot be resolved" in check_port("no-such-host.invalid", 7860)


def test_startup_text_for_a_cpu_only_torch_build() -> None:
    info = TorchInfo(python_version="3.11.7", torch_version="2.14.1+cpu", cuda_version=None, cuda_available=False)
    text = startup_diagnostics("cpu", "float32", "sdp", info=info)
    assert text.splitlines()[0] == ("Python 3.11.7, torch 2.14.1+cpu (CPU-only build (torch.version.cuda is None)), "
                                    "CUDA available: False")
    assert "this torch build has no CUDA support" in text
    assert text.splitlines()[-1] == "Device: cpu, dtype: float32, attention: sdp"


def test_startup_text_lists_gpus_with_memory() -> None:
    gpu = GpuInfo(0, "NVIDIA GeForce RTX 3060", 12 * 1024 ** 3, (8, 6))
    info = TorchInfo("3.10.6", "2.14.1+cu130", "13.0", True, (gpu,))
    text = startup_diagnostics("cuda:0", "float16", "xformers", vae_dtype="float32", info=info)
    assert "torch 2.14.1+cu130 (CUDA build 13.0), CUDA available: True" in text
    assert "GPU 0: NVIDIA GeForce RTX 3060, 12.0 GiB, compute capability 8.6" in text
    assert text.endswith("Device: cuda:0, dtype: float16, VAE dtype: float32, attention: xformers")
    no_driver = TorchInfo("3.10.6", "2.14.1+cu130", "13.0", False)
    assert "nvidia-smi" in startup_diagnostics("cpu", "float32", "sdp", info=no_driver)


def test_probe_torch_matches_torch_on_this_machine() -> None:
    import torch

    info = probe_torch()
    assert info.torch_version == torch.__version__
    assert info.cuda_version == torch.version.cuda
    assert info.cuda_available == torch.cuda.is_available()
    assert len(info.gpus) == (torch.cuda.device_count() if info.cuda_available else 0)


def test_load_time_breakdown_like_a1111() -> None:
    parts = {"load weights from disk": 0.42, "create model": 0.13, "apply weights to model": 2.6,
             "apply half()": 0.04}
    assert format_load_times(3.19, parts) == (
        "3.2s (load weights from disk: 0.4s, create model: 0.1s, apply weights to model: 2.6s)")
    assert format_load_times(0.05, {"tiny": 0.05}) == "0.1s"


def test_stage_timer_books_time_between_records() -> None:
    now = [100.0]
    timer = StageTimer(clock=lambda: now[0])
    now[0] += 0.4
    timer.record("load weights from disk")
    now[0] += 0.1
    timer.record("create model")
    now[0] += 5.0  # not inside a stage: not counted
    with timer.stage("apply weights to model"):
        now[0] += 2.6
    now[0] += 0.03
    timer.record("create model")
    assert timer.records["create model"] == pytest.approx(0.13)
    assert timer.total == pytest.approx(3.13)
    assert timer.message() == (
        "Model loaded in 3.1s (load weights from disk: 0.4s, create model: 0.1s, apply weights to model: 2.6s).")
