"""Checkpoint hashes, VAE choice, attention backend and start-up fallback, as a user reaches them over HTTP."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
from safetensors.torch import load_file, save_file

from tests.acceptance.conftest import RunningApp, WebUIFactory, decode_png


def _pixels(app: RunningApp, **payload: object) -> np.ndarray:
    data = app.txt2img(**payload)
    return np.asarray(decode_png(data["images"][0]).convert("RGB"), dtype=np.int16)


def _write_vae(checkpoint: Path, target: Path, scale: float) -> None:
    """A standalone VAE file (A1111 layout: `encoder.…`/`decoder.…`) made from the checkpoint's own VAE with its
    decoder's output conv scaled, so images decoded with it differ visibly."""
    state = load_file(str(checkpoint))
    vae = {k.removeprefix("first_stage_model."): v.clone() for k, v in state.items()
           if k.startswith("first_stage_model.")}
    vae["decoder.conv_out.weight"] = vae["decoder.conv_out.weight"] * scale
    vae["decoder.conv_out.bias"] = vae["decoder.conv_out.bias"] + 0.5
    target.parent.mkdir(parents=True, exist_ok=True)
    save_file(vae, str(target))


def test_model_hash_reaches_sd_models_and_infotext(webui_app: WebUIFactory) -> None:
    app = webui_app(["--api"])
    expected = hashlib.sha256((app.data_dir / "models" / "Stable-diffusion" / "sd1.safetensors").read_bytes()
                              ).hexdigest()

    def hashed() -> bool:
        models = app.client.get("/sdapi/v1/sd-models").json()
        return any(m["sha256"] for m in models)

    app.wait_for("the checkpoint's sha256 in /sdapi/v1/sd-models", hashed)
    [entry] = app.client.get("/sdapi/v1/sd-models").json()
    assert entry["sha256"] == expected
    assert entry["hash"] == expected[:10]
    assert entry["title"] == f"sd1.safetensors [{expected[:10]}]"
    info = json.loads(app.txt2img()["info"])
    assert f"Model hash: {expected[:10]}, Model: sd1," in info["infotexts"][0]
    assert info["sd_model_hash"] == expected[:10]


def test_vae_choice_changes_the_image(webui_app: WebUIFactory) -> None:
    def prepare(data: Path) -> None:
        _write_vae(data / "models" / "Stable-diffusion" / "sd1.safetensors", data / "models" / "VAE" / "bright.safetensors", 3.0)

    app = webui_app(["--api"], prepare=prepare)
    names = [v["model_name"] for v in app.client.get("/sdapi/v1/sd-vae").json()]
    assert "bright.safetensors" in names
    own = _pixels(app)
    per_job = _pixels(app, override_settings={"sd_vae": "bright.safetensors"})
    assert np.abs(per_job - own).mean() > 5, "override_settings sd_vae must act for that job"
    assert np.array_equal(_pixels(app), own), "the next job without the override uses the global VAE again"
    assert app.client.post("/sdapi/v1/options", json={"sd_vae": "bright.safetensors"}).status_code == 200
    bright = _pixels(app)
    assert np.abs(bright - own).mean() > 5, "choosing a VAE in the settings must change the decoded image"
    info = json.loads(app.txt2img()["info"])
    assert "VAE: bright.safetensors" in info["infotexts"][0]
    assert app.client.post("/sdapi/v1/options", json={"sd_vae": "None"}).status_code == 200
    assert np.array_equal(_pixels(app), own)


def test_vae_path_flag_and_sidecar(webui_app: WebUIFactory, tmp_path: Path) -> None:
    def sidecar(data: Path) -> None:
        ckpt = data / "models" / "Stable-diffusion" / "sd1.safetensors"
        _write_vae(ckpt, ckpt.with_name("sd1.vae.safetensors"), 3.0)

    plain = _pixels(webui_app(["--api"]))
    with_sidecar = webui_app(["--api"], prepare=sidecar)
    assert np.abs(_pixels(with_sidecar) - plain).mean() > 5, "a name.vae.safetensors sidecar must be used"
    flag_vae = tmp_path / "flag-vae.safetensors"
    ref = with_sidecar.data_dir / "models" / "Stable-diffusion" / "sd1.safetensors"
    _write_vae(ref, flag_vae, -2.0)
    flagged = webui_app(["--api", "--vae-path", str(flag_vae)], prepare=sidecar)
    assert np.abs(_pixels(flagged) - _pixels(with_sidecar)).mean() > 5, "--vae-path wins over the sidecar"


def test_attention_backend_flags_and_setting(webui_app: WebUIFactory) -> None:
    app = webui_app(["--api", "--opt-split-attention-v1"])
    base = _pixels(app)
    assert "Applying attention optimization: V1" in app.console
    assert app.client.post("/sdapi/v1/options",
                           json={"cross_attention_optimization": "sub-quadratic"}).status_code == 200
    sub = _pixels(app)
    assert "Applying attention optimization: sub-quadratic" in app.console
    assert np.abs(sub - base).max() <= 2  # same maths, another kernel
    xformers = webui_app(["--api", "--xformers"])
    xformers.txt2img()
    xformers.txt2img()
    assert xformers.console.count("'xformers' is not available") == 1, xformers.console
    assert "Applying attention optimization: sdp" in xformers.console


def test_broken_first_checkpoint_falls_back_and_refused_switch_keeps_model(webui_app: WebUIFactory) -> None:
    def prepare(data: Path) -> None:
        (data / "models" / "Stable-diffusion" / "a-broken.safetensors").write_bytes(b"not a checkpoint at all")

    app = webui_app(["--api"], prepare=prepare)
    app.wait_for("the fallback checkpoint", lambda: str(
        app.client.get("/sdapi/v1/options").json().get("sd_model_checkpoint", "")).startswith("sd1"))
    assert "Could not load a-broken.safetensors" in app.console
    first = _pixels(app)
    refused = app.client.post("/sdapi/v1/options", json={"sd_model_checkpoint": "a-broken.safetensors"})
    assert refused.status_code >= 400
    assert "a-broken.safetensors" in refused.text
    assert str(app.client.get("/sdapi/v1/options").json()["sd_model_checkpoint"]).startswith("sd1")
    assert np.array_equal(_pixels(app), first)


def test_channels_last_and_precision_flags_reach_the_model(webui_app: WebUIFactory) -> None:
    plain = webui_app(["--api"])
    base = _pixels(plain)
    assert "channels_last" not in plain.console
    fast = webui_app(["--api", "--opt-channelslast"])
    assert np.abs(_pixels(fast) - base).mean() < 4  # same maths in another layout (bf16 kernels round differently)
    assert "UNet weights in channels_last memory format (--opt-channelslast)" in fast.console
    full = webui_app(["--api", "--precision", "full", "--no-half"])
    full_pixels = _pixels(full)
    from modules.memory.devices import cpu_supports_bf16

    if cpu_supports_bf16():  # the CPU default is bf16 (autocast); full precision computes in fp32
        assert np.abs(full_pixels - base).max() > 0
    else:
        assert np.array_equal(full_pixels, base)


def _zero_tensor_bytes_in_place(path: Path) -> None:
    """Overwrite the tensor data of a safetensors file with zeros without replacing the file (same inode)."""
    import struct

    with open(path, "r+b") as fh:
        header = struct.unpack("<Q", fh.read(8))[0]
        fh.seek(8 + header)
        remaining = path.stat().st_size - 8 - header
        while remaining > 0:
            chunk = min(remaining, 1 << 20)
            fh.write(b"\0" * chunk)
            remaining -= chunk


def test_disable_model_loading_ram_optimization_copies_weights_out_of_the_file(webui_app: WebUIFactory) -> None:
    """By default fp32 weights are views of the memory-mapped checkpoint (no copy); with the A1111 flag every weight
    has memory of its own, so changing the file on disk after the load does not change the loaded model."""
    shared = webui_app(["--api", "--no-half", "--precision", "full"])
    before = _pixels(shared)
    _zero_tensor_bytes_in_place(shared.data_dir / "models" / "Stable-diffusion" / "sd1.safetensors")
    after = shared.client.post("/sdapi/v1/txt2img", json={"prompt": "a cat", "width": 64, "height": 64, "steps": 2,
                                                          "seed": 1, "sampler_name": "Euler"})
    changed = after.status_code != 200 or not np.array_equal(
        np.asarray(decode_png(after.json()["images"][0]).convert("RGB"), dtype=np.int16), before)
    assert changed, "the default load shares the file's pages (zeroed weights: NaN or another image)"
    own = webui_app(["--api", "--no-half", "--precision", "full", "--disable-model-loading-ram-optimization"])
    first = _pixels(own)
    _zero_tensor_bytes_in_place(own.data_dir / "models" / "Stable-diffusion" / "sd1.safetensors")
    assert np.array_equal(_pixels(own), first)
