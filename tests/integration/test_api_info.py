"""API-only endpoints against a live `--nowebui` server: list shapes, options, progress, control routes.

Shapes are A1111 1.10's (reference §12). The data dir holds a (fake) checkpoint, a VAE, a LoRA, a hypernetwork, a
styles file and an extension folder so every list has something to show.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.integration.conftest import LiveServer, LiveServerFactory


@pytest.fixture(scope="module")
def server(live_server: LiveServerFactory, tmp_path_factory: pytest.TempPathFactory) -> LiveServer:
    data = tmp_path_factory.mktemp("info-data")
    models = data / "models"
    (models / "Stable-diffusion" / "sub").mkdir(parents=True)
    (models / "Stable-diffusion" / "sub" / "my model.safetensors").write_bytes(b"not really a checkpoint")
    (models / "VAE").mkdir()
    (models / "VAE" / "better.vae.safetensors").write_bytes(b"x")
    (models / "Lora").mkdir()
    header = json.dumps({"__metadata__": {"ss_output_name": "shiny"}}).encode()
    (models / "Lora" / "shiny_v1.safetensors").write_bytes(len(header).to_bytes(8, "little") + header)
    (models / "hypernetworks").mkdir()
    (models / "hypernetworks" / "anime.pt").write_bytes(b"x")
    (data / "styles.csv").write_text("name,prompt,negative_prompt\nCinematic,\"{prompt}, film grain\",blurry\n",
                                     encoding="utf-8")
    ext = data / "extensions" / "sd-demo-ext"
    (ext / ".git" / "refs" / "heads").mkdir(parents=True)
    (ext / ".git" / "HEAD").write_text("ref: refs/heads/main\n", encoding="utf-8")
    (ext / ".git" / "refs" / "heads" / "main").write_text("0123456789abcdef0123456789abcdef01234567\n")
    (ext / ".git" / "config").write_text('[remote "origin"]\n\turl = https://example.com/demo.git\n')
    return live_server(["--nowebui", "--api", "--api-server-stop"], data_dir=data)


def get(server: LiveServer, path: str) -> object:
    response = server.client.get(f"/sdapi/v1/{path}")
    assert response.status_code == 200, (path, response.text)
    return response.json()


def test_samplers_schedulers_upscalers(server: LiveServer) -> None:
    samplers = get(server, "samplers")
    assert samplers[0]["name"] == "DPM++ 2M" and {"name", "aliases", "options"} == set(samplers[0])
    euler_a = next(s for s in samplers if s["name"] == "Euler a")
    assert "k_euler_a" in euler_a["aliases"]
    schedulers = get(server, "schedulers")
    assert [s["name"] for s in schedulers][:3] == ["automatic", "uniform", "karras"]
    karras = next(s for s in schedulers if s["name"] == "karras")
    assert karras == {"name": "karras", "label": "Karras", "aliases": None, "default_rho": 7.0,
                      "need_inner_model": False}
    upscalers = get(server, "upscalers")
    assert [u["name"] for u in upscalers][:3] == ["None", "Lanczos", "Nearest"]
    assert set(upscalers[0]) == {"name", "model_name", "model_path", "model_url", "scale"}
    modes = [m["name"] for m in get(server, "latent-upscale-modes")]
    assert modes[0] == "Latent" and "Latent (nearest-exact)" in modes


def test_models_vae_networks_styles(server: LiveServer) -> None:
    models = get(server, "sd-models")
    assert len(models) == 1
    entry = models[0]
    assert set(entry) == {"title", "model_name", "hash", "sha256", "filename", "config"}
    assert entry["title"] == "sub/my model.safetensors" and entry["model_name"] == "sub_my model"
    assert entry["filename"].endswith("my model.safetensors")
    assert get(server, "sd-vae") == [{"model_name": "better.vae.safetensors",
                                      "filename": str(server.data_dir / "models" / "VAE" / "better.vae.safetensors")}]
    loras = get(server, "loras")
    assert [(item["name"], item["alias"]) for item in loras] == [("shiny_v1", "shiny")]
    assert loras[0]["metadata"] == {"ss_output_name": "shiny"}
    assert [h["name"] for h in get(server, "hypernetworks")] == ["anime"]
    assert get(server, "prompt-styles") == [{"name": "Cinematic", "prompt": "{prompt}, film grain",
                                              "negative_prompt": "blurry"}]
    # postprocessing registries: both restorers are always listed; no Real-ESRGAN files in this data dir, only
    # A1111's two named models of `realesrgan_enabled_models` (downloaded on first use)
    assert [r["name"] for r in get(server, "face-restorers")] == ["CodeFormer", "GFPGAN"]
    assert [r["name"] for r in get(server, "realesrgan-models")] == ["R-ESRGAN 4x+", "R-ESRGAN 4x+ Anime6B"]


def test_refresh_picks_up_new_files(server: LiveServer) -> None:
    (server.data_dir / "models" / "Stable-diffusion" / "second.ckpt").write_bytes(b"x")
    (server.data_dir / "models" / "VAE" / "other.pt").write_bytes(b"x")
    assert server.client.post("/sdapi/v1/refresh-checkpoints").json() is None
    assert server.client.post("/sdapi/v1/refresh-vae").json() is None
    assert server.client.post("/sdapi/v1/refresh-loras").status_code == 200
    assert {m["title"] for m in get(server, "sd-models")} == {"sub/my model.safetensors", "second.ckpt"}
    assert "other.pt" in {v["model_name"] for v in get(server, "sd-vae")}


def test_scripts_extensions_flags_memory(server: LiveServer) -> None:
    scripts = get(server, "scripts")  # the built-in scripts/ (A1111 lists lower-cased titles)
    assert "x/y/z plot" in scripts["txt2img"] and "loopback" in scripts["img2img"]
    assert {s["name"] for s in get(server, "script-info")} >= {"x/y/z plot", "loopback"}
    ext = next(e for e in get(server, "extensions") if e["name"] == "sd-demo-ext")
    assert ext == {"name": "sd-demo-ext", "remote": "https://example.com/demo.git", "branch": "main",
                   "commit_hash": "0123456789abcdef0123456789abcdef01234567", "commit_date": None,
                   "version": "01234567", "enabled": True}
    flags = get(server, "cmd-flags")
    assert flags["nowebui"] is True and flags["api"] is True and flags["data_dir"] == str(server.data_dir)
    memory = get(server, "memory")
    assert memory["ram"]["total"] > 0 and memory["ram"]["free"] <= memory["ram"]["total"]
    assert "cuda" in memory


def test_options_round_trip_and_persist(server: LiveServer) -> None:
    options = get(server, "options")
    assert options["samples_format"] == "png" and "sd_model_checkpoint" in options and len(options) > 200
    assert server.client.post("/sdapi/v1/options", json={"samples_format": "jpg", "jpeg_quality": 91}).json() is None
    after = get(server, "options")
    assert after["samples_format"] == "jpg" and after["jpeg_quality"] == 91
    saved = json.loads((server.data_dir / "config.json").read_text(encoding="utf-8"))
    assert saved["samples_format"] == "jpg" and saved["jpeg_quality"] == 91
    server.client.post("/sdapi/v1/options", json={"samples_format": "png"})


def test_switching_to_an_unloadable_checkpoint_keeps_the_setting(server: LiveServer) -> None:
    before = get(server, "options")["sd_model_checkpoint"]
    response = server.client.post("/sdapi/v1/options", json={"sd_model_checkpoint": "my model"})
    assert response.status_code == 400 and "my model" in response.json()["detail"]
    assert get(server, "options")["sd_model_checkpoint"] == before


def test_progress_interrupt_skip_when_idle(server: LiveServer) -> None:
    progress = get(server, "progress")
    assert progress["progress"] == 0 and progress["current_image"] is None
    assert set(progress["state"]) == {"skipped", "interrupted", "stopping_generation", "job", "job_count",
                                      "job_timestamp", "job_no", "sampling_step", "sampling_steps"}
    assert get(server, "progress?skip_current_image=true")["current_image"] is None
    interrupt = server.client.post("/sdapi/v1/interrupt")
    assert interrupt.status_code == 200 and interrupt.json() == {}
    skip = server.client.post("/sdapi/v1/skip")
    assert skip.status_code == 200 and skip.json() is None


def test_create_routes_refuse_bad_names_with_400(server: LiveServer) -> None:
    for path in ("create/embedding", "create/hypernetwork"):
        response = server.client.post(f"/sdapi/v1/{path}", json={"name": "///"})
        assert response.status_code == 400, (path, response.text)
        assert "empty" in response.json()["detail"]


def test_restart_needs_the_launcher(server: LiveServer) -> None:
    response = server.client.post("/sdapi/v1/server-restart")
    assert response.status_code == 501 and "launcher" in response.json()["detail"]


def test_docs_and_openapi_list_every_route(server: LiveServer) -> None:
    assert server.client.get("/docs").status_code == 200
    paths = server.client.get("/openapi.json").json()["paths"]
    expected = {"txt2img", "img2img", "extra-single-image", "extra-batch-images", "png-info", "progress",
                "interrupt", "skip", "options", "cmd-flags", "samplers", "schedulers", "upscalers",
                "latent-upscale-modes", "sd-models", "sd-vae", "hypernetworks", "face-restorers",
                "realesrgan-models", "prompt-styles", "embeddings", "loras", "refresh-checkpoints", "refresh-vae",
                "refresh-loras", "refresh-embeddings", "unload-checkpoint", "reload-checkpoint", "memory", "scripts",
                "script-info", "extensions", "interrogate", "create/embedding", "create/hypernetwork",
                "server-kill", "server-restart", "server-stop"}
    assert {f"/sdapi/v1/{p}" for p in expected} <= set(paths)


def test_png_info_reads_parameters(server: LiveServer, tmp_path: Path) -> None:
    import base64
    import io

    from PIL import Image, PngImagePlugin

    info = PngImagePlugin.PngInfo()
    text = "a cat\nNegative prompt: dog\nSteps: 20, Sampler: Euler a, CFG scale: 7, Seed: 5, Size: 64x32"
    info.add_text("parameters", text)
    info.add_text("Software", "test")
    buffer = io.BytesIO()
    Image.new("RGB", (64, 32)).save(buffer, format="PNG", pnginfo=info)
    body = {"image": "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()}
    data = server.client.post("/sdapi/v1/png-info", json=body).json()
    assert data["info"] == text and data["items"] == {"Software": "test"}
    params = data["parameters"]
    assert params["Prompt"] == "a cat" and params["Negative prompt"] == "dog"
    assert params["Steps"] == "20" and params["Size-1"] == "64" and params["Sampler"] == "Euler a"
