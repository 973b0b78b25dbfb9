"""Progress bars in the console (A1111 `shared_total_tqdm.TotalTQDM` and the samplers' own tqdm bars).

* Each sampling call shows its step bar unless `--disable-console-progressbars` (A1111 runs the k-diffusion
  samplers with `disable=False`; the flag turns the console bars off).
* With `multiple_tqdm` (default on) a second bar, "Total progress", counts every sampling step of the whole job
  (all batches, hires pass included): its total is the job count times the steps of the pass when its first step
  is taken, and grows when a later pass needs more (A1111 `TotalTQDM.reset` / `updateTotal`). It is closed when the
  job ends. `--disable-console-progressbars` turns it off too.
"""

from __future__ import annotations

import sys
from typing import Any

from tqdm import tqdm

from modules.cli.flags import FlagValues
from modules.processing.conditioning import opt


def console_bars_enabled(flags: FlagValues) -> bool:
    """False with `--disable-console-progressbars`."""
    return not bool(flags.disable_console_progressbars)


class TotalProgress:
    """The job-wide "Total progress" bar (created on the first step, see module docstring)."""

    def __init__(self) -> None:
        self._bar: tqdm[Any] | None = None

    def step(self, remaining: int) -> None:
        """One sampling step done; `remaining` is how many steps the job still has to take as known now."""
        done = 0 if self._bar is None else self._bar.n
        total = done + 1 + max(0, remaining)
        if self._bar is None:
            self._bar = tqdm(desc="Total progress", total=total, position=1, file=sys.stderr, leave=False)
        elif total > (self._bar.total or 0):
            self._bar.total = total
            self._bar.refresh()
        self._bar.update(1)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None


def total_progress_for(settings: Any, flags: FlagValues) -> TotalProgress | None:
    """The job's total bar when `multiple_tqdm` is on and console bars are not disabled, else None."""
    if not console_bars_enabled(flags) or not bool(opt(settings, "multiple_tqdm", True)):
        return None
    return TotalProgress()
