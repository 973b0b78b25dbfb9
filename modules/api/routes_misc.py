"""Model refresh/unload/reload, memory, training creation and server-control endpoints.

A1111 facts (reference §12): `refresh-checkpoints`, `refresh-vae`, `refresh-loras`, `refresh-embeddings` rescan
their folders and answer null; `unload-checkpoint` / `reload-checkpoint` move the model to RAM and back and answer
`{}`; `memory` is `{ram: {free, used, total}, cuda: {system, active, allocated, reserved, inactive, events}}` (or
`{error}` for a part that cannot be read); `create/embedding` and `create/hypernetwork` live in
`routes_train`; `server-kill` ends the process, `server-restart` restarts it through the launcher (501 when not started by it) and
`server-stop` shuts the server down — all three only with `--api-server-stop` (refused with 403 otherwise).
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from modules.api.app import ApiServices
from modules.api.errors import ApiError
from modules.api.routes_info import embedding_db, lora_registry, vae_registry


def memory_info() -> dict[str, Any]:
    """RAM from psutil and CUDA allocator statistics from torch (A1111 `get_memory`)."""
    out: dict[str, Any] = {}
    try:
        import psutil

        vm = psutil.virtual_memory()
        out["ram"] = {"free": vm.available, "used": vm.total - vm.available, "total": vm.total}
    except Exception as exc:
        out["ram"] = {"error": f"{exc}"}
    try:
        import torch

        if not torch.cuda.is_available():
            out["cuda"] = {"error": "CUDA is not available"}
        else:
            free, total = torch.cuda.mem_get_info()
            stats = torch.cuda.memory_stats()

            def pair(name: str) -> dict[str, int]:
                return {"current": stats.get(f"{name}.all.current", 0), "peak": stats.get(f"{name}.all.peak", 0)}

            out["cuda"] = {
                "system": {"free": free, "used": total - free, "total": total},
                "active": pair("active_bytes"), "allocated": pair("allocated_bytes"),
                "reserved": pair("reserved_bytes"), "inactive": pair("inactive_split_bytes"),
                "events": {"retries": stats.get("num_alloc_retries", 0), "oom": stats.get("num_ooms", 0)},
            }
    except Exception as exc:
        out["cuda"] = {"error": f"{exc}"}
    return out


def add_routes(router: APIRouter, services: ApiServices) -> None:
    """refresh-*, unload/reload, memory, server control."""
    ctx = services.ctx

    def models() -> Any:
        if ctx.models is None:
            raise ApiError(400, "no model manager is available")
        return ctx.models

    def refresh_checkpoints() -> None:
        with ctx.jobs.exclusive():
            models().registry.refresh()

    def refresh_vae() -> None:
        vae_registry(services).refresh()

    def refresh_loras() -> None:
        lora_registry(services).refresh()

    def refresh_embeddings() -> None:
        embedding_db(services).load(force=True)

    def unload_checkpoint() -> dict[str, Any]:
        with ctx.jobs.exclusive():
            models().unload()
        return {}

    def reload_checkpoint() -> dict[str, Any]:
        with ctx.jobs.exclusive():
            models().reload()
        return {}

    def server_action(action: str) -> None:
        if not services.allow_server_stop:
            raise ApiError(403, f"server-{action} is disabled; start the server with --api-server-stop to allow it")
        if action == "restart" and not services.restartable:
            raise ApiError(501, "server-restart needs the launcher (webui.sh / webui.bat / launch.py); "
                                "this process was not started by it")
        if services.server_action is None:
            raise ApiError(501, f"server-{action} is not available in this server")
        services.server_action(action)

    def server_kill() -> None:
        server_action("kill")

    def server_restart() -> None:
        server_action("restart")

    def server_stop() -> None:
        server_action("stop")

    for path, fn in (("/refresh-checkpoints", refresh_checkpoints), ("/refresh-vae", refresh_vae),
                     ("/refresh-loras", refresh_loras), ("/refresh-embeddings", refresh_embeddings),
                     ("/unload-checkpoint", unload_checkpoint), ("/reload-checkpoint", reload_checkpoint),
                     ("/server-kill", server_kill), ("/server-restart", server_restart),
                     ("/server-stop", server_stop)):
        router.add_api_route(path, fn, methods=["POST"], summary=path.strip("/"))
    router.add_api_route("/memory", memory_info, methods=["GET"], summary="memory")
