"""Progress, preview and stop flags of one job — A1111's ``shared.state``, made per job and thread-safe.

Field names follow A1111's ``State`` object and its ``GET /sdapi/v1/progress`` response so that the API layer can
report them unchanged: ``job``, ``job_count`` (batch count), ``job_no`` (finished batches), ``sampling_step``,
``sampling_steps``, ``job_timestamp``, ``textinfo``, ``interrupted``, ``skipped``, ``stopping_generation``,
``id_live_preview`` and the live preview image.
"""

from __future__ import annotations

import datetime
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any

__all__ = ["Interrupted", "JobState", "Skipped"]


class Interrupted(Exception):
    """Raised by :meth:`JobState.check` once the job was interrupted; the queue records the job as interrupted."""


class Skipped(Interrupted):
    """Raised by :meth:`JobState.sampler_callback` to abandon the current image after a skip request.

    Processing catches it, keeps going with the next image of the batch count and calls :meth:`JobState.next_job`
    (A1111 raises the same ``InterruptedException`` for both and tells them apart by ``state.skipped``).  Left
    uncaught it ends the job like an interrupt.
    """


class JobState:
    """Thread-safe progress record of one job; the sampler thread writes, API/UI threads read."""

    def __init__(self, job: str = "", *, clock: Callable[[], float] = time.time) -> None:
        self.clock = clock
        self._lock = threading.Lock()
        self.job = job
        self.job_timestamp = "0"
        self.job_count = 0
        self.job_no = 0
        self.sampling_step = 0
        self.sampling_steps = 0
        self.textinfo: str | None = None
        self.time_start: float | None = None
        self.time_end: float | None = None
        self.interrupted = False
        self.skipped = False
        self.stopping_generation = False
        self.current_latent: Any = None
        self.current_image: Any = None
        self.current_image_sampling_step = 0
        self.id_live_preview = 0

    # -- life cycle (called by the queue) -------------------------------------------------------------------------

    def begin(self) -> None:
        """Start the clock; A1111 stamps ``job_timestamp`` as ``%Y%m%d%H%M%S`` (used in file names)."""
        with self._lock:
            self.time_start = self.clock()
            self.job_timestamp = datetime.datetime.now().strftime("%Y%m%d%H%M%S")

    def end(self) -> None:
        """Stop the clock and drop the latent (the last preview image stays for late pollers)."""
        with self._lock:
            self.time_end = self.clock()
            self.current_latent = None

    # -- progress (called by processing and samplers) -------------------------------------------------------------

    def set_job_count(self, count: int) -> None:
        """Number of batches (A1111 ``n_iter``, "Batch count"); ``job_no`` counts the finished ones."""
        with self._lock:
            self.job_count = max(0, int(count))
            self.job_no = 0

    def next_job(self) -> None:
        """One batch is done: advance ``job_no``, reset the step counter and clear a pending skip."""
        with self._lock:
            self.job_no += 1
            self.sampling_step = 0
            self.current_image_sampling_step = 0
            self.skipped = False

    def set_sampling_steps(self, steps: int) -> None:
        """Steps of the sampling pass that starts now (a hires pass starts its own count)."""
        with self._lock:
            self.sampling_steps = max(0, int(steps))
            self.sampling_step = 0
            self.current_image_sampling_step = 0

    def step(self, step: int | None = None) -> None:
        """Record progress: ``step`` steps done, or one more than before."""
        with self._lock:
            self.sampling_step = self.sampling_step + 1 if step is None else int(step)

    def set_textinfo(self, text: str | None) -> None:
        """Short status text shown under the progress bar ("Loading model…", "Saving…")."""
        with self._lock:
            self.textinfo = text

    def sampler_callback(self, info: Mapping[str, Any]) -> None:
        """k-diffusion style per-step callback: ``info`` has ``i`` (0-based step) and ``denoised``.

        Records the step and latest denoised latent, then checks the stop flags: raises :class:`Interrupted` after
        an interrupt and :class:`Skipped` after a skip request.
        """
        with self._lock:
            self.sampling_step = int(info.get("i", self.sampling_step)) + 1
            if "denoised" in info:
                self.current_latent = info["denoised"]
        if self.check():
            raise Skipped(f"skipped at step {self.sampling_step} of {self.sampling_steps}")

    # -- stop flags ---------------------------------------------------------------------------------------------

    def interrupt(self) -> None:
        """Stop the whole job at the next check (A1111 "Interrupt")."""
        with self._lock:
            self.interrupted = True

    def skip(self) -> None:
        """Abandon the current image, continue with the next batch (A1111 "Skip")."""
        with self._lock:
            self.skipped = True

    def stop_generating(self) -> None:
        """Finish the current image, then stop (A1111 1.9: "stop generating" after a second Interrupt click)."""
        with self._lock:
            self.stopping_generation = True

    def check(self) -> bool:
        """Call once per sampling step: raises :class:`Interrupted` if interrupted; True if a skip is pending."""
        with self._lock:
            interrupted, skipped = self.interrupted, self.skipped
        if interrupted:
            raise Interrupted(f"interrupted at step {self.sampling_step} of {self.sampling_steps}")
        return skipped

    @property
    def should_stop(self) -> bool:
        """True when no further image should be started (interrupted, or stop-after-current requested)."""
        with self._lock:
            return self.interrupted or self.stopping_generation

    # -- live preview ---------------------------------------------------------------------------------------------

    def preview_due(self, every_n_steps: int) -> bool:
        """Whether a new preview should be decoded from ``current_latent``.

        A1111 setting ``show_progress_every_n_steps`` (default 10): -1 means only at the end (never during
        sampling); otherwise a new preview once that many steps passed since the last one.
        """
        with self._lock:
            if every_n_steps < 0 or self.current_latent is None:
                return False
            return self.sampling_step - self.current_image_sampling_step >= every_n_steps

    def set_preview(self, image: Any, step: int | None = None) -> int:
        """Store the latest preview image; returns its new ``id_live_preview``."""
        with self._lock:
            self.current_image = image
            self.current_image_sampling_step = self.sampling_step if step is None else int(step)
            self.id_live_preview += 1
            return self.id_live_preview

    def latest_preview(self, since_id: int = -1) -> tuple[int, Any] | None:
        """``(id_live_preview, image)`` if there is a preview newer than ``since_id`` (A1111 ``/internal/progress``)."""
        with self._lock:
            if self.current_image is None or self.id_live_preview == since_id:
                return None
            return self.id_live_preview, self.current_image

    # -- progress and ETA ---------------------------------------------------------------------------------------

    def progress(self) -> float:
        """Fraction done in [0, 1], A1111's formula: ``job_no/job_count + sampling_step/sampling_steps/job_count``."""
        with self._lock:
            return self._progress_locked()

    def _progress_locked(self) -> float:
        value = 0.0
        if self.job_count > 0:
            value += self.job_no / self.job_count
            if self.sampling_steps > 0:
                value += self.sampling_step / self.sampling_steps / self.job_count
        return min(value, 1.0)

    def elapsed(self, now: float | None = None) -> float:
        """Seconds since the job started (0 before it starts; frozen once it ended)."""
        with self._lock:
            return self._elapsed_locked(now)

    def _elapsed_locked(self, now: float | None) -> float:
        if self.time_start is None:
            return 0.0
        end = self.time_end if self.time_end is not None else (self.clock() if now is None else now)
        return max(0.0, end - self.time_start)

    def eta_relative(self, now: float | None = None) -> float | None:
        """Seconds left: ``elapsed / progress - elapsed`` (A1111 ``eta_relative``); None before any progress.

        A1111's API adds 0.01 to the progress to avoid dividing by zero, which reports a huge ETA at the first
        poll; an unknown ETA is None here instead.
        """
        with self._lock:
            progress = self._progress_locked()
            if progress <= 0:
                return None
            elapsed = self._elapsed_locked(now)
            return elapsed / progress - elapsed

    def progress_info(self, now: float | None = None) -> dict[str, Any]:
        """The A1111 ``GET /sdapi/v1/progress`` body (``current_image`` is the raw image; the API encodes it)."""
        eta = self.eta_relative(now)
        with self._lock:
            return {
                "progress": self._progress_locked(),
                "eta_relative": eta,
                "state": {
                    "skipped": self.skipped,
                    "interrupted": self.interrupted,
                    "stopping_generation": self.stopping_generation,
                    "job": self.job,
                    "job_count": self.job_count,
                    "job_timestamp": self.job_timestamp,
                    "job_no": self.job_no,
                    "sampling_step": self.sampling_step,
                    "sampling_steps": self.sampling_steps,
                },
                "current_image": self.current_image,
                "textinfo": self.textinfo,
            }

    @staticmethod
    def idle_progress_info() -> dict[str, Any]:
        """The progress body when nothing runs: A1111 reports progress 0 and an empty state."""
        return JobState().progress_info() | {"eta_relative": 0.0}
