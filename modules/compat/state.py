"""`shared.state`, `shared.cmd_opts`, `shared.sd_model` and `shared.total_tqdm` for extensions: views over the
running app (A1111 `modules/shared_state.py`, `shared_cmd_options.py`, `sd_models.py`).

* `state` reads the progress of the job running now (`interrupted`, `skipped`, `job`, `job_no`, `job_count`,
  `sampling_step`, `sampling_steps`, `textinfo`, `current_image`, …; idle values between jobs); setting
  `job_count`/`textinfo`/… changes the running job's progress; `interrupt()`, `skip()`, `nextjob()` act on it.
* `cmd_opts.<flag>` is the command-line flag (A1111 names, including flags extensions added); read-only.
* `sd_model` is the loaded checkpoint with A1111's identifying attributes (`sd_checkpoint_info`, `sd_model_hash`,
  `sd_model_checkpoint`, `is_sdxl`, `is_sd1`, `is_sd2`, `is_sd3`); A1111's network internals (`cond_stage_model`,
  `model.diffusion_model`, `forge_objects`, …) raise AttributeError naming what is missing.
"""

from __future__ import annotations

from typing import Any

from modules.compat.host import HOST
from modules.runtime.job_state import JobState

_IDLE: dict[str, Any] = {
    "job": "", "job_no": 0, "job_count": 0, "sampling_step": 0, "sampling_steps": 0, "textinfo": None,
    "interrupted": False, "skipped": False, "stopping_generation": False, "current_image": None,
    "current_latent": None, "current_image_sampling_step": 0, "id_live_preview": 0, "time_start": None,
    "job_timestamp": "0", "processing_has_refined_job_count": False, "need_restart": False,
    "server_start": None, "server_command": None,
}


def _job_state() -> JobState | None:
    job = HOST.current().jobs.current()
    return job.state if job is not None else None


class State:
    """A1111 `shared.state` over the job queue of the running app."""

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__"):
            raise AttributeError(name)
        state = _job_state()
        if state is not None and hasattr(state, name):
            return getattr(state, name)
        if name in _IDLE:
            return _IDLE[name]
        raise AttributeError(f"shared.state has no attribute {name!r}")

    def __setattr__(self, name: str, value: Any) -> None:
        state = _job_state()
        if state is not None and name in _IDLE:
            setattr(state, name, value)

    def interrupt(self) -> None:
        """Stop the running job (A1111 "Interrupt")."""
        HOST.current().jobs.interrupt()

    def skip(self) -> None:
        """Skip the image being sampled (A1111 "Skip")."""
        HOST.current().jobs.skip()

    def stop_generating(self) -> None:
        HOST.current().jobs.stop_generating()

    def nextjob(self) -> None:
        """Count one more finished image of the running job (scripts that loop call it)."""
        state = _job_state()
        if state is not None:
            state.next_job()

    def begin(self, job: str = "(unknown)") -> None:
        """Jobs are begun by the queue; kept for scripts that call it."""

    def end(self) -> None:
        """Jobs are ended by the queue; kept for scripts that call it."""

    def set_current_image(self) -> None:
        """Live previews are made by the pipeline; kept for scripts that call it."""

    def assign_current_image(self, image: Any) -> None:
        state = _job_state()
        if state is not None:
            state.set_preview(image)

    def dict(self) -> dict[str, Any]:
        """The progress fields A1111's `/internal/progress` reads."""
        return {key: getattr(self, key) for key in ("interrupted", "skipped", "job", "job_count", "job_timestamp",
                                                    "job_no", "sampling_step", "sampling_steps")}


class CmdOpts:
    """A1111 `shared.cmd_opts` over the running app's parsed flags (read-only)."""

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__"):
            raise AttributeError(name)
        return getattr(HOST.current().flags, name)

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError(f"cmd_opts.{name} cannot be changed: command-line flags are read-only in this web UI")

    def __contains__(self, name: str) -> bool:
        return name in HOST.current().flags.as_dict()


class TotalProgress:
    """A1111 `shared.total_tqdm` (the console's total progress bar); progress is shown by the app itself."""

    def update(self) -> None:
        """No console bar here."""

    def updateTotal(self, new_total: int) -> None:
        """No console bar here."""

    def clear(self) -> None:
        """No console bar here."""


class CheckpointView:
    """A1111 `CheckpointInfo` names over this app's checkpoint info."""

    def __init__(self, info: Any) -> None:
        self._info = info

    def __getattr__(self, name: str) -> Any:
        info = self._info
        if name == "filename":
            return str(info.filename)
        if name == "hash":
            return info.legacy_hash
        if name == "ids":
            return info.ids()
        if name == "metadata":
            return info.read_metadata()
        return getattr(info, name)


class ModelView:
    """A1111 `shared.sd_model` identity over the app's loaded `StableDiffusionModel`."""

    def __init__(self, model: Any) -> None:
        self._model = model

    def __getattr__(self, name: str) -> Any:
        model = self._model
        family = str(model.family)
        if name == "sd_checkpoint_info":
            return CheckpointView(model.checkpoint)
        if name == "sd_model_hash":
            return model.checkpoint.shorthash
        if name == "sd_model_checkpoint":
            return str(model.checkpoint.filename)
        if name in ("is_sdxl", "is_sd2", "is_sd1", "is_sd3", "is_ssd"):
            return {"is_sdxl": model.is_sdxl, "is_sd2": family.startswith("sd2"),
                    "is_sd1": family.startswith("sd1") or family == "ip2p", "is_sd3": False, "is_ssd": False}[name]
        if hasattr(model, name):
            return getattr(model, name)
        raise AttributeError(f"shared.sd_model.{name} is an A1111 model internal this web UI does not provide")


def current_model() -> ModelView | None:
    """`shared.sd_model`: the loaded checkpoint, or None before one is loaded."""
    model = HOST.current().models.current
    return ModelView(model) if model is not None else None


state = State()
cmd_opts = CmdOpts()
total_tqdm = TotalProgress()
