"""`POST /sdapi/v1/txt2img` and `/img2img`: request → params → a job on the shared queue → A1111's response.

A1111 1.10 behaviour (`modules/api/api.py` `text2imgapi` / `img2imgapi`, reference §12):
* the sampler is `sampler_name or sampler_index` (`sampler_index` defaults to "Euler"); names, aliases and legacy
  "<sampler> <schedule>" names ("DPM++ 2M Karras") are accepted; an unknown one is 400 "Sampler not found";
* `infotext` fills the fields the request did not set (and the settings it implies go to `override_settings`);
* `script_name` must be a selectable script and `alwayson_scripts` titles must exist (422 "Script … not found");
* `save_images` false (the API default) sets `do_not_save_samples`/`do_not_save_grid`; `send_images` false returns
  `images: []`;
* img2img without `init_images` is 404 "Init image not found";
* jobs run one at a time through the FIFO queue shared with the UI; `force_task_id` names the job;
* the response is `{images: [raw base64], parameters: <the request>, info: <JSON string>}`; for img2img the echo has
  `init_images` and `mask` set to null unless `include_init_images`.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import logging
from typing import Any

from fastapi import APIRouter, Request
from pydantic import BaseModel
from starlette.concurrency import run_in_threadpool

from modules.api.app import ApiServices
from modules.api.auth import parse_basic_header
from modules.api.errors import ApiError
from modules.api.images_b64 import decode_image, encode_image
from modules.api.schemas import GenerationResponse, Img2ImgRequest, Txt2ImgRequest
from modules.api.script_arg_checks import check_script_values
from modules.extensions.runner import ScriptRunner
from modules.processing.params import GenerationParams, Img2ImgParams, Txt2ImgParams, validate_params
from modules.processing.run import run_img2img, run_txt2img
from modules.runtime.jobs import Job, JobFailedError, QueueFullError

services_log = logging.getLogger(__name__)

JOB_ERROR_STATUS = {"ParamError": 422, "PromptError": 422, "UnknownSamplerError": 400, "UnknownCheckpointError": 400,
                    "SettingValueError": 422, "UnknownSettingError": 400, "SettingsFrozenError": 403,
                    "ScriptInputError": 422, "AxisValueError": 422}
"""Status for a job that failed with one of these exception types (the queue records only type and message)."""


def resolve_sampler_fields(data: dict[str, Any]) -> None:
    """Set `sampler_name` (canonical name) and `scheduler` from `sampler_name or sampler_index` (A1111 rules)."""
    from modules.sampling.registry import resolve_sampler
    from modules.sampling.schedules import find_scheduler

    spec, schedule = resolve_sampler(data.get("sampler_name") or data.get("sampler_index") or "Euler")
    data["sampler_name"] = spec.name
    if data.get("scheduler"):
        found = find_scheduler(data["scheduler"])
        if found is None:
            raise ApiError(422, f"scheduler: Scheduler not found: {data['scheduler']!r}", field="scheduler")
        data["scheduler"] = found.name
    elif schedule is not None:
        data["scheduler"] = schedule
    if data.get("hr_sampler_name") and data["hr_sampler_name"] not in ("Use same sampler",):
        hr_spec, hr_schedule = resolve_sampler(data["hr_sampler_name"])
        data["hr_sampler_name"] = hr_spec.name
        if hr_schedule is not None and not data.get("hr_scheduler"):
            data["hr_scheduler"] = hr_schedule


def apply_infotext(data: dict[str, Any], fields_set: set[str], infotext: str, networks: Any = None,
                   options: Any = None) -> None:
    """Fill fields the request did not set from an infotext (A1111 1.10 `infotext` request field); with the
    `networks` library, `<lora:alias:…>` is renamed to the local LoRA with the `Lora hashes` hash.

    The app's settings `options` steer the parse as in A1111's `parse_generation_parameters` /
    `get_override_settings`: `infotext_skip_pasting` fields are ignored, `auto_backcompat` applies the Version
    compatibility flags, `use_old_hires_fix_width_height` the old hires-fix size rule, and with
    `disable_weights_auto_swap` (default on) the infotext's checkpoint does not become an override."""
    from modules.images import parse_infotext
    from modules.processing.extra_networks import rewrite_pasted_fields
    from modules.processing.infotext_fields import params_from_fields
    from modules.settings import REGISTRY

    def option(key: str) -> Any:
        return options.get(key) if options is not None else REGISTRY[key].default

    skip = [str(name) for name in option("infotext_skip_pasting") or []]
    parsed = rewrite_pasted_fields(networks, parse_infotext(
        infotext, skip_fields=skip, auto_backcompat=bool(option("auto_backcompat")),
        use_old_hires_fix_width_height=bool(option("use_old_hires_fix_width_height"))))
    values, settings = params_from_fields(parsed)
    for info in REGISTRY.values():  # A1111 `get_override_settings`: every option's infotext name counts too
        if info.infotext and info.infotext in parsed and info.key not in settings:
            settings[info.key] = parsed[info.infotext]
    if option("disable_weights_auto_swap"):
        settings.pop("sd_model_checkpoint", None)
    for key, value in values.items():
        if key in data and key not in fields_set:
            data[key] = value
    if "styles" not in fields_set and parsed.get("Styles array"):
        data["styles"] = list(parsed["Styles array"])
    overrides = dict(data.get("override_settings") or {})
    for key, value in settings.items():
        if key not in overrides and key in REGISTRY:
            try:
                overrides[key] = REGISTRY[key].cast(value)
            except ValueError:
                continue
    data["override_settings"] = overrides


def script_runner(services: ApiServices, kind: str) -> ScriptRunner:
    """The ScriptRunner of the txt2img or img2img tab."""
    return services.ctx.scripts.for_kind(kind)


def _jsonable(value: Any) -> Any:
    return value if isinstance(value, str | int | float | bool | type(None)) else str(value)


def script_arg_info(component: Any) -> dict[str, Any]:
    """One `script-info` argument: `{label, value, minimum, maximum, step, choices}` (A1111 `ScriptArg`)."""
    from modules.extensions.script import arg_default

    choices = getattr(component, "choices", None)
    return {"label": getattr(component, "label", None), "value": _jsonable(arg_default(component)),
            "minimum": getattr(component, "minimum", None), "maximum": getattr(component, "maximum", None),
            "step": getattr(component, "step", None),
            "choices": [_jsonable(c) for c in choices] if choices is not None else None}


def scripts_list(services: ApiServices) -> dict[str, list[str]]:
    """`GET /scripts`: lower-cased titles of every script per tab, selectable and always-on (A1111 `script.name`)."""
    out: dict[str, list[str]] = {}
    for kind in ("txt2img", "img2img"):
        runner = script_runner(services, kind)
        out[kind] = [s.title().lower() for s in runner.scripts] if runner is not None else []
    return out


def script_info_list(services: ApiServices) -> list[dict[str, Any]]:
    """`GET /script-info`: `[{name, is_alwayson, is_img2img, args}]` for every script of both tabs."""
    out: list[dict[str, Any]] = []
    for kind in ("txt2img", "img2img"):
        runner = script_runner(services, kind)
        for script in runner.scripts if runner is not None else []:
            out.append({"name": script.title().lower(), "is_alwayson": bool(script.alwayson),
                        "is_img2img": kind == "img2img", "args": [script_arg_info(c) for c in script.arg_specs()]})
    return out


def check_scripts(services: ApiServices, kind: str, data: dict[str, Any]) -> None:
    """`script_name` must be a selectable script and `alwayson_scripts` titles always-on ones (case-insensitive);
    too many or unknown arguments are refused too (A1111: 422 "Script 'x' not found")."""
    from types import SimpleNamespace

    from modules.extensions.script import ScriptArgumentError

    runner = script_runner(services, kind)
    if runner is None:
        if data.get("script_name"):
            raise ApiError(422, f"script_name: Script '{data['script_name']}' not found", field="script_name")
        for title in data.get("alwayson_scripts") or {}:
            raise ApiError(422, f"alwayson_scripts: always on script {title} not found", field="alwayson_scripts")
        return
    title = data.get("script_name")
    if title and str(title).lower() != "none" and runner.find(str(title)) is None:
        raise ApiError(422, f"script_name: Script '{title}' not found; available: "
                            f"{', '.join(runner.titles()) or 'none'}", field="script_name")
    for name in data.get("alwayson_scripts") or {}:
        if runner.find(str(name), alwayson=True) is None:
            raise ApiError(422, f"alwayson_scripts: always on script {name} not found", field="alwayson_scripts")
    p = SimpleNamespace(script_name=title, script_args=data.get("script_args") or [],
                        alwayson_scripts=data.get("alwayson_scripts") or {})
    try:
        selected, selected_values = runner.selected_args(p)
    except ScriptArgumentError as exc:
        raise ApiError(422, f"script_name: {exc}", field="script_name") from None
    if selected is not None:
        check_script_values(selected, selected_values, "script_args")
    try:
        alwayson = runner.alwayson_args(p)
    except ScriptArgumentError as exc:
        raise ApiError(422, f"alwayson_scripts: {exc}", field="alwayson_scripts") from None
    given = {str(name).lower() for name in data.get("alwayson_scripts") or {}}
    for script, values in alwayson:
        if script.title().lower() in given:  # defaults of scripts the request did not mention are the app's own
            check_script_values(script, values, f"alwayson_scripts[{script.title().lower()!r}].args")


def check_overrides(services: ApiServices, overrides: dict[str, Any]) -> None:
    """Validate `override_settings` now (unknown key → 400, bad value → 422, frozen → 403), checkpoint included."""
    if not overrides:
        return
    services.ctx.settings.snapshot(overrides, is_api=True)
    checkpoint = overrides.get("sd_model_checkpoint")
    if checkpoint:
        services.ctx.models.resolve(checkpoint)


def build_params(services: ApiServices, req: BaseModel, params_type: type[GenerationParams]) -> GenerationParams:
    """Turn a validated request into the params dataclass the pipeline runs (errors name the field)."""
    data = req.model_dump()
    if getattr(req, "infotext", None):
        apply_infotext(data, set(req.model_fields_set), req.infotext,  # type: ignore[attr-defined]
                       services.ctx.networks, services.ctx.settings)
    resolve_sampler_fields(data)
    check_scripts(services, "img2img" if params_type is Img2ImgParams else "txt2img", data)
    check_overrides(services, data.get("override_settings") or {})
    data["do_not_save_samples"] = data["do_not_save_grid"] = not data.get("save_images", False)
    settings = services.settings_view()
    if params_type is Img2ImgParams:
        data["init_images"] = [decode_image(v, f"init_images[{i}]", settings)
                               for i, v in enumerate(data["init_images"])]
    for name in ("mask", "latent_mask", "firstpass_image"):
        if data.get(name):
            data[name] = decode_image(data[name], name, settings)
    names = {f.name for f in dataclasses.fields(params_type)}
    params = params_type(**{k: v for k, v in data.items() if k in names})
    validate_params(params)
    return params


def submit_job(services: ApiServices, kind: str, params: GenerationParams, task_id: str | None,
               request: Request | None = None) -> Job:
    """Queue the pipeline function for `kind` (409 for a duplicate `force_task_id`, 429 when the queue is full).
    With API logins required, the job records the login (infotext `User:` with `add_user_name_to_info`)."""
    fn = run_txt2img if kind == "txt2img" else run_img2img
    user = None
    if request is not None and services.logins_required:
        pair = parse_basic_header(request.headers.get("authorization"))
        user = pair[0] if pair is not None else None
    try:
        return services.ctx.jobs.submit(fn, services.ctx, params, kind=kind, job_id=task_id, user=user)
    except QueueFullError as exc:
        raise ApiError(429, str(exc)) from None
    except ValueError as exc:
        raise ApiError(409, f"force_task_id: {exc}", field="force_task_id") from None


def job_result(kind: str, job: Job) -> Any:
    """The finished job's `GenerationResult` (None when interrupted early); its error as an API error."""
    try:
        return job.result(timeout=0)
    except JobFailedError as exc:
        status = JOB_ERROR_STATUS.get(exc.error.type, 500)
        raise ApiError(status, f"{kind} failed: {exc.error}") from None


async def wait_for_job(job: Job, request: Request | None, poll: float = 0.5) -> None:
    """Wait for `job` on the event loop (no worker thread is held, so `/progress` and `/interrupt` keep answering
    however long the queue is). When the client disconnects first, the job is cancelled: a queued job never
    starts, a running one stops at its next step — nobody is left to receive its images."""
    loop = asyncio.get_running_loop()
    done = loop.create_future()

    def settle() -> None:
        if not done.done():
            done.set_result(None)

    def finished(_job: Job) -> None:
        loop.call_soon_threadsafe(settle)

    job.add_done_callback(finished)
    while not done.done():
        try:
            await asyncio.wait_for(asyncio.shield(done), timeout=poll)
        except asyncio.TimeoutError:  # Python 3.10 raises asyncio's own class here, 3.11+ the builtin
            if request is not None and await request.is_disconnected():
                job.interrupt()
                services_log.info("client went away: job %s cancelled", job.id)
                await done
                return


def respond(services: ApiServices, req: BaseModel, result: Any, echo: dict[str, Any]) -> GenerationResponse:
    """A1111's response: raw base64 images (if `send_images`), the request echo and `info` as a JSON string."""
    if result is None:
        return GenerationResponse(images=[], parameters=echo, info=json.dumps({}))
    images: list[str] = []
    if getattr(req, "send_images", True):
        settings = services.settings_view()
        for index, image in enumerate(result.images):
            infotext = result.infotexts[index] if index < len(result.infotexts) else None
            images.append(encode_image(image, infotext, settings))
    return GenerationResponse(images=images, parameters=echo, info=json.dumps(result.info_dict(), default=str))


def add_routes(router: APIRouter, services: ApiServices) -> None:
    """txt2img and img2img."""

    async def txt2img_route(req: Txt2ImgRequest, request: Request) -> GenerationResponse:
        """Generate images from a prompt (A1111 `text2imgapi`)."""
        params = await run_in_threadpool(build_params, services, req, Txt2ImgParams)
        job = submit_job(services, "txt2img", params, req.force_task_id, request)
        await wait_for_job(job, request)
        result = job_result("txt2img", job)
        return await run_in_threadpool(respond, services, req, result, req.model_dump())

    async def img2img_route(req: Img2ImgRequest, request: Request) -> GenerationResponse:
        """Generate images from init images (and a mask for inpainting) (A1111 `img2imgapi`)."""
        if not req.init_images:
            raise ApiError(404, "Init image not found", field="init_images")
        params = await run_in_threadpool(build_params, services, req, Img2ImgParams)
        job = submit_job(services, "img2img", params, req.force_task_id, request)
        await wait_for_job(job, request)
        result = job_result("img2img", job)
        echo = req.model_dump()
        if not req.include_init_images:
            echo["init_images"] = None
            echo["mask"] = None
        return await run_in_threadpool(respond, services, req, result, echo)

    router.add_api_route("/txt2img", txt2img_route, methods=["POST"], response_model=GenerationResponse,
                         summary="txt2img")
    router.add_api_route("/img2img", img2img_route, methods=["POST"], response_model=GenerationResponse,
                         summary="img2img")
