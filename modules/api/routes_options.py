"""`GET/POST /sdapi/v1/options` and `GET /sdapi/v1/cmd-flags`.

A1111 facts (reference §12, `modules/api/api.py` `get_config` / `set_config`): GET returns every setting key with
its current value (the default when unset); POST takes `{key: value, …}`, checks `sd_model_checkpoint` against the
known checkpoints (a title, name or hash) and loads it, applies the rest and saves `config.json`; it answers null.
Here every key and value is validated before anything changes (all-or-nothing): an unknown key is 400 naming it
(with the closest known key), a bad value 422, a frozen or API-restricted key 403 (`--freeze-settings*`,
`restrict_api`). The checkpoint switch takes the device lock so it waits for a running generation, and a file that
fails to load leaves both the model and the setting unchanged. `cmd-flags` returns every parsed flag.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Body

from modules.api.app import ApiServices
from modules.api.errors import ApiError
from modules.cli.flags import public_flags
from modules.settings import SettingsError, SettingsFrozenError, UnknownSettingError


def validate_options(settings: Any, values: dict[str, Any]) -> None:
    """Check every key and value before anything changes; one error naming every bad key (most serious kind)."""
    problems: list[SettingsError] = []
    for key, value in values.items():
        try:
            info = settings.registry[key]
            reason = settings.frozen_reason(key)
            if reason:
                raise SettingsFrozenError(f"cannot change setting {key!r}: {reason}")
            if info.restrict_api:
                raise SettingsFrozenError(f"setting {key!r} cannot be changed through the API")
            info.validate(value)
        except SettingsError as exc:
            problems.append(exc)
    for kind in (SettingsFrozenError, UnknownSettingError, SettingsError):
        if any(isinstance(p, kind) for p in problems):
            raise kind("; ".join(str(p) for p in problems))


def set_options(services: ApiServices, values: dict[str, Any]) -> None:
    """Validate, load the checkpoint if it changes, apply and save (A1111 `set_config`)."""
    ctx = services.ctx
    validate_options(ctx.settings, values)
    values = dict(values)
    checkpoint = values.get("sd_model_checkpoint")
    if checkpoint is not None:
        if ctx.models is None:
            raise ApiError(400, "sd_model_checkpoint: no model manager is available", field="sd_model_checkpoint")
        info = ctx.models.resolve(checkpoint)
        with ctx.jobs.exclusive():
            ctx.models.load(info)
        values["sd_model_checkpoint"] = info.title
    changed = ctx.settings.update(values, is_api=True)
    if "sd_vae" in changed and ctx.models is not None and getattr(ctx.models, "current", None) is not None:
        with ctx.jobs.exclusive():
            ctx.models.reload_vae()
    if ctx.settings.path is not None and not ctx.settings.freeze.all:
        ctx.settings.save()


def add_routes(router: APIRouter, services: ApiServices) -> None:
    """options and cmd-flags."""

    def get_options() -> dict[str, Any]:
        """Every setting → its current value."""
        return services.ctx.settings.values()

    def post_options(req: dict[str, Any] = Body(..., description="Settings to change: {key: value}")) -> None:
        set_options(services, req)

    def cmd_flags() -> dict[str, Any]:
        """Every command-line flag as parsed (A1111 `get_cmd_flags`), passwords and tokens masked."""
        return public_flags(services.ctx.flags)

    router.add_api_route("/options", get_options, methods=["GET"])
    router.add_api_route("/options", post_options, methods=["POST"])
    router.add_api_route("/cmd-flags", cmd_flags, methods=["GET"])
