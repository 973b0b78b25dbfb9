"""Attacks on the running app over HTTP (issue: safe to expose). Each test starts the app as users do and checks a
class of attack is refused at its root: DNS-rebinding Host names, leaked secrets, framing/sniffing, huge bodies."""

from __future__ import annotations

import socket
from pathlib import Path

import httpx

from tests.acceptance.conftest import WebUIFactory

AUTH = ("alice", "s3cret-pw")


def test_foreign_host_names_are_refused_and_local_ones_served(webui_app: WebUIFactory) -> None:
    app = webui_app(["--api"], checkpoints={})
    for host in ("evil.example", "attacker.test:7860", "localhost.evil.example"):
        response = app.client.get("/sdapi/v1/samplers", headers={"Host": host})
        assert response.status_code == 421, host
        assert "--allowed-hosts" in response.json()["detail"]
    for host in ("localhost", "127.0.0.1", "[::1]:7860", socket.gethostname(), "LOCALHOST:7860"):
        assert app.client.get("/sdapi/v1/samplers", headers={"Host": host}).status_code == 200, host
    assert app.client.get("/", headers={"Host": "evil.example"}).status_code == 421
    allowed = webui_app(["--api", "--allowed-hosts", "sd.home.arpa,.example.org"], checkpoints={})
    for host in ("sd.home.arpa", "box.example.org"):
        assert allowed.client.get("/sdapi/v1/samplers", headers={"Host": host}).status_code == 200, host
    assert allowed.client.get("/sdapi/v1/samplers", headers={"Host": "evil.example"}).status_code == 421


def test_cmd_flags_and_console_never_show_passwords(webui_app: WebUIFactory) -> None:
    app = webui_app(["--api", "--api-auth", f"{AUTH[0]}:{AUTH[1]}", "--gradio-auth", "bob:hunter2,carol:pa:ss"],
                    checkpoints={})
    response = app.client.get("/sdapi/v1/cmd-flags", auth=AUTH)
    assert response.status_code == 200
    text = response.text
    assert AUTH[1] not in text and "hunter2" not in text and "pa:ss" not in text
    flags = response.json()
    assert flags["api_auth"] == "alice:***" and flags["gradio_auth"] == "bob:***,carol:***"
    assert AUTH[1] not in app.console and "hunter2" not in app.console


def test_protective_headers_on_pages_api_and_errors(webui_app: WebUIFactory) -> None:
    app = webui_app([], checkpoints={})  # the UI as ./webui.sh starts it
    for path in ("/", "/sdapi/v1/samplers", "/file=../../etc/passwd"):
        response = app.client.get(path)
        assert response.headers["x-content-type-options"] == "nosniff", path
        assert response.headers["x-frame-options"] == "SAMEORIGIN", path
        assert "frame-ancestors 'self'" in response.headers["content-security-policy"], path
        assert response.headers["referrer-policy"] == "same-origin", path


def test_oversized_bodies_are_refused_before_reading(webui_app: WebUIFactory) -> None:
    app = webui_app(["--api", "--max-request-body-mb", "1"], checkpoints={})
    big = b'{"prompt": "' + b"a" * (2 * 1024 * 1024) + b'"}'
    response = app.client.post("/sdapi/v1/txt2img", content=big, headers={"content-type": "application/json"})
    assert response.status_code == 413 and "--max-request-body-mb" in response.json()["detail"]

    def chunks():  # no Content-Length: counted while read
        for _ in range(3):
            yield b"a" * (512 * 1024)

    chunked = app.client.post("/sdapi/v1/txt2img", content=chunks(), headers={"content-type": "application/json"})
    assert chunked.status_code == 413
    assert app.client.get("/sdapi/v1/samplers").status_code == 200  # still serving
    small = app.client.post("/sdapi/v1/png-info", json={"image": ""})
    assert small.status_code < 500
    assert httpx.get(f"{app.url}/sdapi/v1/samplers").status_code == 200


def test_repeated_wrong_logins_are_braked_per_client(webui_app: WebUIFactory) -> None:
    app = webui_app(["--api", "--api-auth", f"{AUTH[0]}:{AUTH[1]}", "--gradio-auth", f"{AUTH[0]}:{AUTH[1]}"],
                    checkpoints={})
    statuses = [app.client.get("/sdapi/v1/samplers", auth=("alice", f"guess{i}")).status_code for i in range(5)]
    assert statuses == [401] * 4 + [429]  # the fifth wrong login within a minute starts the brake
    braked = app.client.get("/sdapi/v1/samplers", auth=AUTH)  # even the right password waits now
    assert braked.status_code == 429 and 0 < int(braked.headers["retry-after"]) <= 30
    assert app.client.get("/", auth=("alice", "guess")).status_code == 429  # the UI shares the brake
    other_client = httpx.Client(base_url=app.url, timeout=30,  # a request from another address
                                transport=httpx.HTTPTransport(local_address="127.0.0.2"))
    try:
        assert other_client.get("/sdapi/v1/samplers", auth=AUTH).status_code == 200  # another address is free
    finally:
        other_client.close()


def test_file_route_is_no_existence_oracle(webui_app: WebUIFactory) -> None:
    app = webui_app([], checkpoints={})
    (app.data_dir / "config.json").exists() or (app.data_dir / "config.json").write_text("{}")
    existing = app.client.get(f"/file={app.data_dir / 'config.json'}")
    missing = app.client.get(f"/file={app.data_dir / 'no-such-file.json'}")
    system = app.client.get("/file=/etc/hostname")
    absent = app.client.get("/file=/etc/no-such-file-here")
    assert existing.status_code == missing.status_code == system.status_code == absent.status_code == 404
    assert existing.content == missing.content == system.content == absent.content


def test_output_folders_never_point_at_code_and_are_locked_when_exposed(webui_app: WebUIFactory,
                                                                        tmp_path_factory) -> None:  # type: ignore[no-untyped-def]
    from modules.cli.flags import INSTALL_ROOT

    elsewhere = str(tmp_path_factory.mktemp("other-drive"))
    local = webui_app(["--api"], checkpoints={})
    for folder in (INSTALL_ROOT / "scripts", INSTALL_ROOT / "extensions" / "x", "modules/images",
                   local.data_dir / "extensions" / "evil", INSTALL_ROOT):
        refused = local.client.post("/sdapi/v1/options", json={"outdir_txt2img_samples": str(folder)})
        assert refused.status_code == 403, (folder, refused.text)
        job = local.client.post("/sdapi/v1/txt2img", json={
            "prompt": "a", "steps": 1, "override_settings": {"outdir_txt2img_samples": str(folder)}})
        assert job.status_code == 403, (folder, job.text)
    assert local.client.post("/sdapi/v1/options", json={"outdir_txt2img_samples": elsewhere}).status_code == 200
    exposed = webui_app(["--api", "--listen"], checkpoints={})
    locked = exposed.client.post("/sdapi/v1/options", json={"outdir_txt2img_samples": elsewhere})
    assert locked.status_code == 403 and "--allow-remote-output-dirs" in locked.text
    allowed = webui_app(["--api", "--listen", "--allow-remote-output-dirs"], checkpoints={})
    assert allowed.client.post("/sdapi/v1/options", json={"outdir_txt2img_samples": elsewhere}).status_code == 200
    assert allowed.client.post("/sdapi/v1/options",
                               json={"outdir_txt2img_samples": str(INSTALL_ROOT / "scripts")}).status_code == 403


def test_uploaded_html_and_svg_come_back_as_sandboxed_downloads(webui_app: WebUIFactory) -> None:
    app = webui_app([], checkpoints={})  # the UI, whose upload route anyone who can see the page may use
    for name, body, kind in (("evil.html", b"<script>alert(document.cookie)</script>", "text/html"),
                             ("evil.svg", b"<svg xmlns='http://www.w3.org/2000/svg'><script>alert(1)</script></svg>",
                              "image/svg+xml")):
        uploaded = app.client.post("/gradio_api/upload", files={"files": (name, body, kind)})
        assert uploaded.status_code == 200, uploaded.text
        path = uploaded.json()[0]
        for route in (f"/gradio_api/file={path}", f"/file={path}"):
            served = app.client.get(route)
            if served.status_code == 404:
                continue
            assert served.headers["content-disposition"].startswith("attachment"), (route, served.headers)
            assert "sandbox" in served.headers["content-security-policy"], route
            assert served.headers["x-content-type-options"] == "nosniff"
    png = app.client.post("/gradio_api/upload", files={"files": ("ok.png", _tiny_png(), "image/png")}).json()[0]
    shown = app.client.get(f"/gradio_api/file={png}")
    assert shown.headers["content-type"] == "image/png" and "attachment" not in shown.headers.get(
        "content-disposition", "")


def _tiny_png() -> bytes:
    import io

    from PIL import Image

    out = io.BytesIO()
    Image.new("RGB", (4, 4), "red").save(out, format="PNG")
    return out.getvalue()


def test_image_urls_cannot_reach_local_services(webui_app: WebUIFactory) -> None:
    import http.server
    import threading

    hits: list[str] = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            hits.append(self.path)
            body = _tiny_png()
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    local_service = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=local_service.serve_forever, daemon=True).start()
    try:
        app = webui_app(["--api"], checkpoints={})
        port = local_service.server_port
        for url in (f"http://127.0.0.1:{port}/admin.png", f"http://localhost:{port}/x.png",
                    f"http://0.0.0.0:{port}/x.png", "http://169.254.169.254/latest/meta-data/"):
            response = app.client.post("/sdapi/v1/img2img", json={"init_images": [url], "prompt": "a", "steps": 1})
            assert response.status_code == 422 and "init_images[0]" in response.text, (url, response.text[:200])
        assert hits == []
    finally:
        local_service.shutdown()


def test_cross_site_posts_are_refused_same_site_and_scripts_are_not(webui_app: WebUIFactory) -> None:
    app = webui_app(["--api", "--cors-allow-origins", "http://trusted.example"], checkpoints={})
    forged = app.client.post("/sdapi/v1/interrupt", headers={"Origin": "http://evil.example"})
    assert forged.status_code == 403 and "--cors-allow-origins" in forged.text
    assert app.client.post("/sdapi/v1/unload-checkpoint", headers={"Origin": "null"}).status_code == 403
    same_site = app.client.post("/sdapi/v1/interrupt", headers={"Origin": app.url})
    assert same_site.status_code == 200
    assert app.client.post("/sdapi/v1/interrupt", headers={"Origin": "http://trusted.example"}).status_code == 200
    assert app.client.post("/sdapi/v1/interrupt").status_code == 200  # a script: no Origin
    assert app.client.get("/sdapi/v1/samplers", headers={"Origin": "http://evil.example"}).status_code == 200


def test_user_name_in_the_infotext_only_for_authenticated_jobs(webui_app: WebUIFactory) -> None:
    import json as json_module

    app = webui_app(["--api", "--api-auth", f"{AUTH[0]}:{AUTH[1]}"])
    body = {"prompt": "a", "steps": 1, "width": 64, "height": 64}
    plain = app.client.post("/sdapi/v1/txt2img", json=body, auth=AUTH).json()
    assert "User:" not in json_module.loads(plain["info"])["infotexts"][0]
    assert app.client.post("/sdapi/v1/options", json={"add_user_name_to_info": True}, auth=AUTH).status_code == 200
    named = app.client.post("/sdapi/v1/txt2img", json=body, auth=AUTH).json()
    assert json_module.loads(named["info"])["infotexts"][0].endswith(f"User: {AUTH[0]}")
    open_app = webui_app(["--api"])
    assert open_app.client.post("/sdapi/v1/options", json={"add_user_name_to_info": True}).status_code == 200
    spoofed = open_app.client.post("/sdapi/v1/txt2img", json=body, auth=("mallory", "x")).json()
    assert "User:" not in json_module.loads(spoofed["info"])["infotexts"][0]  # no login checked: no user claimed


HASH_EXTENSION = '''
from modules import script_callbacks, shared


def routes(demo, app):
    @app.get("/hash-probe")
    def probe():
        return {"sd_checkpoint_hash": shared.opts.sd_checkpoint_hash}


script_callbacks.on_app_started(routes)
'''


def test_extensions_read_the_loaded_checkpoint_hash(webui_app: WebUIFactory) -> None:
    import hashlib

    def prepare(data: Path) -> None:
        scripts = data / "extensions" / "hash-probe" / "scripts"
        scripts.mkdir(parents=True)
        (scripts / "probe.py").write_text(HASH_EXTENSION, encoding="utf-8")

    app = webui_app(["--api"], prepare=prepare)
    expected = hashlib.sha256((app.data_dir / "models" / "Stable-diffusion" / "sd1.safetensors").read_bytes()
                              ).hexdigest()
    app.wait_for("the hash", lambda: app.client.get("/hash-probe").json()["sd_checkpoint_hash"] == expected)
