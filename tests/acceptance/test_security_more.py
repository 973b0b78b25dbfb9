"""Fresh variants of the "safe to expose" attack classes (audit of issue 15), on the running app over HTTP: other
spellings of Host names, uploads of types nobody listed, hostile folder values, loaders an extension patches,
an extension whose preload.py hangs, bodies without Content-Length on Gradio's own routes."""

from __future__ import annotations

import os
from pathlib import Path

import httpx
import torch

from tests.acceptance.conftest import WebUIFactory
from tests.acceptance.test_security_loaders import REPLACING_EXTENSION, _CreatesFile


def test_host_spellings_trailing_dots_ports_and_ipv6(webui_app: WebUIFactory) -> None:
    app = webui_app(["--api", "--server-name", "sd.lan"], checkpoints={})
    port = app.url.rsplit(":", 1)[1]
    for host in ("localhost.", f"localhost.:{port}", "sd.lan.", f"sd.lan:{port}", "[::ffff:127.0.0.1]",
                 f"[::1]:{port}", "127.0.0.1.", "app.localhost"):
        assert app.client.get("/sdapi/v1/samplers", headers={"Host": host}).status_code == 200, host
    for host in ("evil.example.", f"evil.example.:{port}", "localhost.evil.example.", "evil.example..",
                 "evil.example:80@localhost", "sd.lan.evil.example", "2130706433.evil.example"):
        response = app.client.get("/sdapi/v1/samplers", headers={"Host": host})
        assert response.status_code == 421, (host, response.status_code)


UPLOADS = {  # name → (content type the upload claims, what a browser could make of it)
    "page.HTML": "text/html", "page.shtml": "text/html", "page.xht": "application/xhtml+xml",
    "sheet.xsl": "application/xslt+xml", "archive.mht": "message/rfc822", "deck.wml": "text/vnd.wap.wml",
    "app.hta": "application/hta", "blob.bin": "application/octet-stream", "noextension": "text/html",
}


def test_uploads_of_any_active_or_unknown_type_come_back_as_sandboxed_downloads(webui_app: WebUIFactory) -> None:
    app = webui_app([], checkpoints={})
    payload = b"<html><body><script>fetch('/sdapi/v1/cmd-flags')</script></body></html>"
    for name, kind in UPLOADS.items():
        uploaded = app.client.post("/gradio_api/upload", files={"files": (name, payload, kind)})
        assert uploaded.status_code == 200, uploaded.text
        path = uploaded.json()[0]
        for route in (f"/gradio_api/file={path}", f"/file={path}"):
            served = app.client.get(route)
            assert served.status_code == 200, (route, served.status_code)
            assert served.headers["content-disposition"].startswith("attachment"), (name, route, served.headers)
            assert "sandbox" in served.headers["content-security-policy"], (name, route)
            assert served.headers["x-content-type-options"] == "nosniff"
    text = app.client.post("/gradio_api/upload", files={"files": ("notes.txt", b"hello", "text/plain")}).json()[0]
    shown = app.client.get(f"/gradio_api/file={text}")
    assert shown.headers["content-type"].startswith("text/plain")
    assert "attachment" not in shown.headers.get("content-disposition", "")


def test_folder_settings_that_no_file_system_takes_are_4xx(webui_app: WebUIFactory) -> None:
    def prepare(data: Path) -> None:
        os.symlink(data / "loop-b", data / "loop-a")
        os.symlink(data / "loop-a", data / "loop-b")

    app = webui_app(["--api"], prepare=prepare)
    for value in ("out\x00put", str(app.data_dir / "loop-a" / "x")):
        refused = app.client.post("/sdapi/v1/options", json={"outdir_txt2img_samples": value})
        assert 400 <= refused.status_code < 500, (value[:40], refused.status_code, refused.text[:200])
        assert "outdir_txt2img_samples" in refused.text
        job = app.client.post("/sdapi/v1/txt2img", json={"prompt": "a", "steps": 1, "width": 64, "height": 64,
                                                         "override_settings": {"outdir_txt2img_samples": value}})
        assert 400 <= job.status_code < 500, (value[:40], job.status_code, job.text[:200])
    too_long = app.client.post("/sdapi/v1/txt2img", json={  # A1111 takes the name; saving it must not be a 500
        "prompt": "a", "steps": 1, "width": 64, "height": 64, "save_images": True,
        "override_settings": {"outdir_txt2img_samples": "/" + "x" * 5000}})
    assert too_long.status_code < 500, too_long.text[:300]
    assert app.client.get("/sdapi/v1/samplers").status_code == 200


def test_exposed_server_refuses_output_folders_in_override_settings(webui_app: WebUIFactory,
                                                                   tmp_path: Path) -> None:
    exposed = webui_app(["--api", "--listen"], checkpoints={})
    job = exposed.client.post("/sdapi/v1/txt2img", json={
        "prompt": "a", "steps": 1, "override_settings": {"outdir_txt2img_samples": str(tmp_path)}})
    assert job.status_code == 403 and "--allow-remote-output-dirs" in job.text, job.text[:300]
    pattern = exposed.client.post("/sdapi/v1/options", json={"samples_filename_pattern": "[seed]"})
    assert pattern.status_code == 403, pattern.text[:300]


def test_chunked_bodies_to_gradio_routes_are_capped(webui_app: WebUIFactory) -> None:
    app = webui_app(["--max-request-body-mb", "1"], checkpoints={})

    def chunks():  # type: ignore[no-untyped-def]  # no Content-Length: counted while read
        boundary = b"--x\r\nContent-Disposition: form-data; name=\"files\"; filename=\"big.png\"\r\n\r\n"
        yield boundary
        for _ in range(6):
            yield b"\0" * (512 * 1024)
        yield b"\r\n--x--\r\n"

    response = app.client.post("/gradio_api/upload", content=chunks(),
                               headers={"content-type": "multipart/form-data; boundary=x"})
    assert response.status_code == 413, response.text[:200]
    assert httpx.get(f"{app.url}/").status_code == 200  # still serving (a new connection: the refused one closes)


def test_face_detector_weights_go_through_the_safe_loader_an_extension_cannot_switch_off(
        webui_app: WebUIFactory, tmp_path: Path) -> None:
    from tests.acceptance.test_face_restoration import _b64, _scene
    from tests.face_fixtures import random_gfpgan_file

    target = tmp_path / "pwned-by-detector.txt"

    def prepare(data: Path) -> None:
        scripts = data / "extensions" / "sd-webui-fastload" / "scripts"
        scripts.mkdir(parents=True)
        (scripts / "fastload.py").write_text(REPLACING_EXTENSION, encoding="utf-8")
        folder = data / "models" / "GFPGAN"
        folder.mkdir(parents=True)
        random_gfpgan_file(folder / "GFPGANv1.4.pth")
        torch.save({"body.conv1.weight": torch.zeros(1), "x": _CreatesFile(target)},
                   folder / "detection_Resnet50_Final.pth")

    original_load = torch.load
    try:
        app = webui_app(["--api"], checkpoints={}, prepare=prepare)
        assert torch.load is not original_load, "the extension's patch is in place"
        response = app.client.post("/sdapi/v1/extra-single-image",
                                   json={"image": _b64(_scene((240, 60))), "gfpgan_visibility": 1.0})
        assert not target.exists(), "the detector file's pickle ran code"
        assert "detection_Resnet50_Final.pth" in response.text, response.text[:300]
    finally:
        torch.load = original_load  # this test process is shared with other tests


HANGING_PRELOAD = '''
import time

time.sleep(40)  # a preload.py that waits for a download that never comes


def preload(parser):
    parser.add_argument("--slow-flag", action="store_true")
'''


def test_an_extension_whose_preload_hangs_does_not_stop_the_start(webui_app: WebUIFactory) -> None:
    import time

    def prepare(data: Path) -> None:
        folder = data / "extensions" / "sd-webui-slowpreload"
        folder.mkdir(parents=True)
        (folder / "preload.py").write_text(HANGING_PRELOAD, encoding="utf-8")

    started = time.monotonic()
    app = webui_app(["--api", "--script-import-timeout", "2"], checkpoints={}, prepare=prepare)
    assert time.monotonic() - started < 30, "the server waited for the hanging preload.py"
    assert "preload.py" in app.console and "still importing after 2 s" in app.console
    too_long = app.client.post("/sdapi/v1/txt2img", json={  # A1111 takes the name; saving it must not be a 500
        "prompt": "a", "steps": 1, "width": 64, "height": 64, "save_images": True,
        "override_settings": {"outdir_txt2img_samples": "/" + "x" * 5000}})
    assert too_long.status_code < 500, too_long.text[:300]
    assert app.client.get("/sdapi/v1/samplers").status_code == 200


COOKIE_EXTENSION = '''
from fastapi.responses import JSONResponse

from modules import script_callbacks


def routes(demo, app):
    @app.get("/cookie-probe")
    def probe():
        response = JSONResponse({"ok": True})
        response.set_cookie("ext_session", "abc")
        return response


script_callbacks.on_app_started(routes)
'''


def test_cookies_an_extension_sets_get_httponly_and_samesite(webui_app: WebUIFactory) -> None:
    def prepare(data: Path) -> None:
        scripts = data / "extensions" / "sd-webui-cookies" / "scripts"
        scripts.mkdir(parents=True)
        (scripts / "cookies.py").write_text(COOKIE_EXTENSION, encoding="utf-8")

    app = webui_app(["--api"], checkpoints={}, prepare=prepare)
    response = app.client.get("/cookie-probe")
    assert response.status_code == 200, response.text
    cookie = response.headers["set-cookie"].lower()
    assert "ext_session=abc" in cookie and "httponly" in cookie and "samesite=lax" in cookie, cookie
    assert response.headers["x-frame-options"] == "SAMEORIGIN"


LOGIN = ("alice", "pw-for-alice")
UI_ROUTES = [("GET", "/"), ("GET", "/config"), ("GET", "/gradio_api/info"), ("GET", "/theme.css"),
             ("GET", "/internal/ping"), ("POST", "/internal/progress"), ("POST", "/gradio_api/upload"),
             ("POST", "/gradio_api/queue/join"), ("GET", "/gradio_api/queue/data?session_hash=x"),
             ("GET", "/docs"), ("GET", "/openapi.json"), ("GET", "/user.css"), ("GET", "/manifest.json")]


def test_the_real_ui_and_every_api_route_need_the_login(webui_app: WebUIFactory) -> None:
    """`--gradio-auth` on the app as users start it: every page, Gradio route, file route, internal route and each
    route the API lists answers 401 without the login (and is served with it)."""
    def prepare(data: Path) -> None:
        (data / "outputs").mkdir(exist_ok=True)
        (data / "outputs" / "mine.txt").write_text("my output", encoding="utf-8")

    app = webui_app(["--api", "--gradio-auth", f"{LOGIN[0]}:{LOGIN[1]}"], checkpoints={}, prepare=prepare)
    output = app.data_dir / "outputs" / "mine.txt"
    routes = [*UI_ROUTES, ("GET", f"/file={output}"), ("GET", f"/gradio_api/file={output}")]
    spec = app.client.get("/openapi.json", auth=LOGIN).json()
    for path, methods in spec["paths"].items():
        for method in methods:
            if "{" not in path and method in ("get", "post"):
                routes.append((method.upper(), path))
    assert len(routes) > 50, len(routes)  # the API lists its routes (42 without path parameters)
    for method, path in routes:
        response = app.client.request(method, path, json={} if method == "POST" else None)
        assert response.status_code == 401, (method, path, response.status_code)
    assert app.client.get(f"/file={output}", auth=LOGIN).text == "my output"
    assert app.client.get("/", auth=LOGIN).status_code == 200
    assert app.client.get("/sdapi/v1/samplers", auth=LOGIN).status_code == 200


def test_path_traversal_in_raw_requests_never_reaches_files(webui_app: WebUIFactory) -> None:
    """Raw request lines (no client-side normalisation of `..`) against every route that serves files."""
    import http.client

    def prepare(data: Path) -> None:
        (data / "secret.txt").write_text("CANARY-SECRET", encoding="utf-8")
        (data / "outputs").mkdir(exist_ok=True)
        code = data / "extensions" / "ext" / "scripts"
        code.mkdir(parents=True)
        (code / "ext.py").write_text("# CANARY-SECRET code\n", encoding="utf-8")
        os.symlink(data / "secret.txt", data / "outputs" / "link.txt")

    app = webui_app([], checkpoints={}, prepare=prepare)
    data = app.data_dir
    host, port = app.url.split("//", 1)[1].split(":")
    paths = [f"/file={data}/outputs/../secret.txt", f"/file={data}/outputs/%2e%2e/secret.txt",
             f"/file={data}/outputs/..%2fsecret.txt", f"/file={data}/outputs/link.txt",
             f"/file={data}/extensions/ext/scripts/ext.py", f"/file={data}/extensions/ext/../../secret.txt",
             f"/gradio_api/file={data}/outputs/../secret.txt", f"/gradio_api/file={data}/outputs/link.txt",
             f"/gradio_api/file={data}/secret.txt", "/file=../../../../../../" + str(data) + "/secret.txt",
             f"/file={data}/outputs/....//secret.txt", "/assets/../../../../" + str(data) + "/secret.txt",
             "/static/..%2f..%2f..%2f..%2f" + str(data).replace("/", "%2f") + "%2fsecret.txt",
             f"/file={data}/outputs/%00/../../secret.txt"]
    for path in paths:
        connection = http.client.HTTPConnection(host, int(port), timeout=30)
        connection.putrequest("GET", path, skip_accept_encoding=True)
        connection.endheaders()
        response = connection.getresponse()
        body = response.read()
        connection.close()
        assert b"CANARY-SECRET" not in body and response.status in (400, 403, 404), (path, response.status)


def test_corrupt_settings_files_do_not_stop_the_app(webui_app: WebUIFactory) -> None:
    def prepare(data: Path) -> None:
        (data / "config.json").write_bytes(b'{"samples_format": "png", "outdir_samples": ')  # cut by a crash
        (data / "ui-config.json").write_bytes(b"\xff\xfe\x00garbage")
        (data / "styles.csv").write_bytes(b'name,prompt\n"unterminated,\xff\xfe\n')

    app = webui_app(["--api"], prepare=prepare)
    assert app.client.get("/sdapi/v1/options").status_code == 200
    assert app.client.get("/sdapi/v1/prompt-styles").status_code == 200
    assert app.txt2img()["images"]
    assert app.client.post("/sdapi/v1/options", json={"samples_format": "jpg"}).status_code == 200
    assert app.client.get("/sdapi/v1/options").json()["samples_format"] == "jpg"


def test_names_too_long_for_a_file_are_4xx_naming_the_field(webui_app: WebUIFactory) -> None:
    app = webui_app(["--api"], checkpoints={})
    for route in ("/sdapi/v1/create/embedding", "/sdapi/v1/create/hypernetwork"):
        response = app.client.post(route, json={"name": "x" * 70000})
        assert response.status_code == 400 and "name" in response.text and "too long" in response.text, (
            route, response.status_code, response.text[:200])
    assert not list((app.data_dir / "embeddings").glob("*.pt")) if (app.data_dir / "embeddings").exists() else True


def test_hostile_script_arguments_are_4xx_naming_the_field(webui_app: WebUIFactory) -> None:
    """NaN, 1e309, NUL, objects and nested lists as the arguments of every txt2img script (selectable and
    always-on), as an API client can send them: a 4xx naming the field, never a 500 from inside the script."""
    import json as json_module

    app = webui_app(["--api"])
    base = '{"prompt": "a", "steps": 1, "width": 64, "height": 64, '
    scripts = [s for s in app.client.get("/sdapi/v1/script-info").json() if not s["is_img2img"]]
    assert any(s["name"] == "x/y/z plot" for s in scripts)
    for script in scripts:
        count = max(1, len(script["args"]))
        for bad in ("NaN", "1e309", '{"x": [NaN]}', "[[[[-1e309]]]]", '"\\u0000"', '{"a": {"b": 1}}'):
            values = "[" + ", ".join([bad] * count) + "]"
            name = json_module.dumps(script["name"])
            body = base + (f'"alwayson_scripts": {{{name}: {{"args": {values}}}}}}}' if script["is_alwayson"]
                           else f'"script_name": {name}, "script_args": {values}}}')
            response = app.client.post("/sdapi/v1/txt2img", content=body,
                                       headers={"content-type": "application/json"})
            assert response.status_code < 500, (script["name"], bad, response.text[:300])
            if bad != '"\\u0000"':
                assert 400 <= response.status_code < 500, (script["name"], bad, response.status_code)
                assert "script_args" in response.text or "alwayson_scripts" in response.text, response.text[:300]


def test_pages_of_other_local_origins_get_no_cors(webui_app: WebUIFactory) -> None:
    """Gradio answers CORS for any localhost/127.0.0.1 origin; a page of another local web app (any port) must not
    read the UI's config, queue or output files. Origins allowed with --cors-allow-origins keep CORS."""
    app = webui_app(["--api"], checkpoints={})
    for origin in ("http://localhost:8080", "http://127.0.0.1:9999", "http://evil.example"):
        for method, path in (("GET", "/config"), ("GET", "/gradio_api/info"), ("OPTIONS", "/gradio_api/upload"),
                             ("OPTIONS", "/sdapi/v1/txt2img")):
            response = app.client.request(method, path, headers={
                "Origin": origin, "Access-Control-Request-Method": "POST",
                "Access-Control-Request-Headers": "authorization,content-type"})
            cors = [k for k in response.headers if k.lower().startswith("access-control-")]
            assert cors == [], (origin, method, path, cors)
    allowed = webui_app(["--api", "--cors-allow-origins", "http://localhost:8080"], checkpoints={})
    preflight = allowed.client.options("/sdapi/v1/txt2img", headers={
        "Origin": "http://localhost:8080", "Access-Control-Request-Method": "POST"})
    assert preflight.headers["access-control-allow-origin"] == "http://localhost:8080"
    same = allowed.client.get("/config", headers={"Origin": allowed.url})
    assert same.status_code == 200
