"""Interrogate over the API, as a user's install serves it: `POST /sdapi/v1/interrogate {image, model}` → `{caption}`.

Tiny random-weight models are placed in the data dir (models/BLIP/…, models/CLIP/…, models/torch_deepdanbooru) or
served by a local HTTP server standing in for Hugging Face (HF_ENDPOINT), which the app downloads from on first use.
"""

from __future__ import annotations

import base64
import functools
import http.server
import io
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from PIL import Image

from tests.acceptance.conftest import WebUIFactory
from tests.fixtures.tiny_interrogate import BLIP_WORD, lay_out_models, make_blip, make_clip

CHECKPOINTS: dict[str, str] = {}


def _b64(image: Image.Image) -> str:
    buffer = io.BytesIO()
    image.save(buffer, "PNG")
    return base64.b64encode(buffer.getvalue()).decode("ascii")


IMAGE = _b64(Image.new("RGB", (80, 48), (200, 40, 40)))


def _config(min_length: int = 3, max_length: int = 6, **extra: object) -> str:
    import json

    return json.dumps({"interrogate_clip_min_length": min_length, "interrogate_clip_max_length": max_length,
                       **extra})


def test_deepbooru_tags_follow_the_settings(webui_app: WebUIFactory) -> None:
    def prepare(data_dir: Path) -> None:
        lay_out_models(data_dir)
        (data_dir / "config.json").write_text(_config(), encoding="utf-8")

    app = webui_app(["--api", "--nowebui", "--no-download-sd-model"], checkpoints=CHECKPOINTS, prepare=prepare)
    answer = app.client.post("/sdapi/v1/interrogate", json={"image": IMAGE, "model": "deepdanbooru"})
    assert answer.status_code == 200, answer.text
    # high-scoring tags, alphabetical, spaces for underscores, brackets escaped, rating:* left out
    assert answer.json() == {"caption": "1girl, hat \\(object\\), smile"}

    options = {"deepbooru_use_spaces": False, "deepbooru_escape": False, "deepbooru_filter_tags": "smile",
               "interrogate_return_ranks": True}
    assert app.client.post("/sdapi/v1/options", json=options).status_code == 200
    caption = app.client.post("/sdapi/v1/interrogate", json={"image": IMAGE, "model": "deepdanbooru"}).json()
    parts = caption["caption"].split(", ")
    assert [p.split(":")[0] for p in parts] == ["(1girl", "(hat_(object)"]
    assert all(p.endswith(")") and 0.5 <= float(p.rsplit(":", 1)[1][:-1]) <= 1 for p in parts)

    # by score (hat 0.66 > smile 0.62 > 1girl 0.60), then a threshold above two of them
    options = {"deepbooru_sort_alpha": False, "deepbooru_filter_tags": "", "interrogate_return_ranks": False}
    assert app.client.post("/sdapi/v1/options", json=options).status_code == 200
    assert app.client.post("/sdapi/v1/interrogate", json={"image": IMAGE, "model": "deepdanbooru"}).json() == \
        {"caption": "hat_(object), smile, 1girl"}
    assert app.client.post("/sdapi/v1/options", json={"interrogate_deepbooru_score_threshold": 0.65}).status_code \
        == 200
    assert app.client.post("/sdapi/v1/interrogate", json={"image": IMAGE, "model": "deepdanbooru"}).json() == \
        {"caption": "hat_(object)"}


def test_clip_caption_and_categories(webui_app: WebUIFactory) -> None:
    def prepare(data_dir: Path) -> None:
        lay_out_models(data_dir)
        (data_dir / "config.json").write_text(_config(), encoding="utf-8")

    app = webui_app(["--api", "--nowebui", "--no-download-sd-model"], checkpoints=CHECKPOINTS, prepare=prepare)
    answer = app.client.post("/sdapi/v1/interrogate", json={"image": IMAGE, "model": "clip"})
    assert answer.status_code == 200, answer.text
    parts = answer.json()["caption"].split(", ")
    assert parts[0].split() == [BLIP_WORD] * len(parts[0].split()) and 2 <= len(parts[0].split()) <= 5
    shipped = sorted(p.name for p in (Path(__file__).resolve().parents[2] / "interrogate").glob("*.txt"))
    assert shipped == ["artists.txt", "flavors.top3.txt", "mediums.txt", "movements.txt"]
    assert len(parts) == 1 + 1 + 3 + 1 + 1  # caption, one artist, three flavours, one medium, one movement

    skip = {"interrogate_clip_skip_categories": ["artists", "flavors.top3", "movements"],
            "interrogate_return_ranks": True}
    assert app.client.post("/sdapi/v1/options", json=skip).status_code == 200
    parts = app.client.post("/sdapi/v1/interrogate", json={"image": IMAGE, "model": "clip"}).json()["caption"] \
        .split(", ")
    assert len(parts) == 2 and parts[1].startswith("(") and parts[1].endswith(")")
    assert 0 < float(parts[1].rsplit(":", 1)[1][:-1]) <= 1


def test_bad_requests_are_clear(webui_app: WebUIFactory) -> None:
    app = webui_app(["--api", "--nowebui", "--no-download-sd-model"], checkpoints=CHECKPOINTS)
    assert app.client.post("/sdapi/v1/interrogate", json={"image": IMAGE, "model": "nope"}).status_code == 404
    assert app.client.post("/sdapi/v1/interrogate", json={"image": "", "model": "clip"}).status_code == 404
    assert app.client.post("/sdapi/v1/interrogate", json={"image": "xx", "model": "clip"}).status_code == 422


def test_offline_says_which_file_goes_where(webui_app: WebUIFactory) -> None:
    app = webui_app(["--api", "--nowebui", "--no-download-sd-model"], checkpoints=CHECKPOINTS, env={"HF_HUB_OFFLINE": "1"})
    answer = app.client.post("/sdapi/v1/interrogate", json={"image": IMAGE, "model": "deepdanbooru"})
    assert answer.status_code == 503
    text = answer.text
    assert "model-resnet_custom_v3.pt" in text and str(Path("models") / "torch_deepdanbooru") in text
    answer = app.client.post("/sdapi/v1/interrogate", json={"image": IMAGE, "model": "clip"})
    assert answer.status_code == 503
    assert "model.safetensors" in answer.text and "Salesforce/blip-image-captioning-large" in answer.text
    assert str(Path("models") / "BLIP") in answer.text


def test_do_not_download_clip(webui_app: WebUIFactory) -> None:
    app = webui_app(["--api", "--nowebui", "--no-download-sd-model", "--do-not-download-clip"], checkpoints=CHECKPOINTS)
    answer = app.client.post("/sdapi/v1/interrogate", json={"image": IMAGE, "model": "clip"})
    assert answer.status_code == 503 and "--do-not-download-clip" in answer.text


@pytest.fixture(scope="module")
def hf_mirror(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, list[str]]]:
    """A local stand-in for huggingface.co serving `<repo>/resolve/main/<file>` for the two repositories."""
    root = tmp_path_factory.mktemp("hf")
    make_blip(root / "Salesforce" / "blip-image-captioning-large" / "resolve" / "main")
    make_clip(root / "openai" / "clip-vit-large-patch14" / "resolve" / "main")
    requested: list[str] = []

    class Handler(http.server.SimpleHTTPRequestHandler):
        def do_GET(self) -> None:
            requested.append(self.path)
            super().do_GET()

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Handler, directory=str(root)))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}", requested
    server.shutdown()


def test_clip_models_download_on_first_use(webui_app: WebUIFactory, hf_mirror: tuple[str, list[str]]) -> None:
    endpoint, requested = hf_mirror

    def prepare(data_dir: Path) -> None:
        (data_dir / "config.json").write_text(_config(), encoding="utf-8")

    app = webui_app(["--api", "--nowebui", "--no-download-sd-model"], checkpoints=CHECKPOINTS, prepare=prepare, env={"HF_ENDPOINT": endpoint})
    answer = app.client.post("/sdapi/v1/interrogate", json={"image": IMAGE, "model": "clip"})
    assert answer.status_code == 200, answer.text
    assert answer.json()["caption"].startswith(BLIP_WORD)
    assert "/openai/clip-vit-large-patch14/resolve/main/model.safetensors" in requested
    assert (app.data_dir / "models" / "BLIP" / "blip-image-captioning-large" / "model.safetensors").is_file()
    assert (app.data_dir / "models" / "CLIP" / "clip-vit-large-patch14" / "config.json").is_file()
