"""The torch profiler around a generation job (A1111 `modules/profiling.py`, Settings → System → Profiler).

With `profiling_enable` the job's `process_images` runs inside `torch.profiler.profile` with the chosen
`profiling_activities` ("CPU", "CUDA"; CUDA only where a CUDA device exists), `profiling_record_shapes`,
`profiling_profile_memory` and `profiling_with_stack`. Afterwards the table of the most expensive operations is
logged and, when `profiling_filename` is set, a Chrome trace is written there (relative names under the data folder,
where A1111 writes them beside the install) — open it in `chrome://tracing` or Perfetto. With no activity left
(none ticked, or only CUDA on a machine without it) the job runs unprofiled with a warning.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import torch
from torch.profiler import ProfilerActivity, profile

from modules.processing.conditioning import opt

log = logging.getLogger(__name__)


def profiler_activities(settings: Any) -> list[ProfilerActivity]:
    """The activities to record (`profiling_activities`); CUDA is left out without a CUDA device."""
    chosen = set(opt(settings, "profiling_activities", ["CPU"]) or [])
    activities = [ProfilerActivity.CPU] if "CPU" in chosen else []
    if "CUDA" in chosen and torch.cuda.is_available():
        activities.append(ProfilerActivity.CUDA)
    return activities


@contextmanager
def job_profiler(settings: Any, data_dir: Path) -> Iterator[Path | None]:
    """Profile the block when `profiling_enable` is on (see module docstring); yields the trace path (None when
    nothing is written)."""
    if not bool(opt(settings, "profiling_enable", False)):
        yield None
        return
    filename = str(opt(settings, "profiling_filename", "") or "").strip()
    target = (data_dir / filename) if filename and not Path(filename).is_absolute() else \
        (Path(filename) if filename else None)
    activities = profiler_activities(settings)
    if not activities:
        log.warning("Profiling is on but no profiler activity is available (profiling_activities); not profiled")
        yield None
        return
    with profile(activities=activities, record_shapes=bool(opt(settings, "profiling_record_shapes", True)),
                 profile_memory=bool(opt(settings, "profiling_profile_memory", True)),
                 with_stack=bool(opt(settings, "profiling_with_stack", True))) as prof:
        yield target
    sort = "cuda_time_total" if ProfilerActivity.CUDA in activities else "cpu_time_total"
    log.info("Profile of the job:\n%s", prof.key_averages().table(sort_by=sort, row_limit=15))
    if target is not None:
        target.parent.mkdir(parents=True, exist_ok=True)
        prof.export_chrome_trace(str(target))
        log.info("Profiler trace written to %s", target)
