"""Per-stage wall time of one generation job, split into the networks and the work around them (issue 16).

A1111 prints one "Time taken" per job; to see where the time goes *outside* the networks, each job here books its
stages in a `JobTimes` and logs one line at DEBUG level (`--loglevel DEBUG`) when the job ends:

    Job timings: 61.20s total; networks 60.71s (text encoder 0.21s ×2 texts, UNet 59.10s ×20 calls, VAE 1.40s);
    outside 0.49s = 0.8% (prompts 0.001s, conditioning 0.002s, sampler 0.050s, progress 0.001s, previews 0.100s,
    to PIL 0.010s, infotext 0.002s, saving 0.250s, other 0.074s); 0 texts from the persistent cond cache

Network stages (`NETWORK_STAGES`) are the model calls; every other booked stage is overhead, and "other" is the
job's total minus everything booked (setup, hooks, copies). Booking costs two `perf_counter` calls per stage.
`bench/bench_job.py` reads this line to report the overhead per stage.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

log = logging.getLogger(__name__)

NETWORK_STAGES = ("text encoder", "UNet", "VAE")
"""Stages that are network evaluations; the rest of a job's time is the pipeline's own work."""

OVERHEAD_STAGES = ("prompts", "conditioning", "sampler", "progress", "previews", "to PIL", "infotext", "saving")
"""Stages around the networks, in pipeline order (listed even when zero so the line always has the same shape)."""

COUNT_UNITS = {"text encoder": "texts", "UNet": "calls", "VAE": "calls"}


@dataclass
class JobTimes:
    """Seconds and call counts booked per stage name during one job.

    Nested stages: "conditioning" and "sampler" are booked as wall time of their whole block and the network time
    inside them is subtracted in `breakdown` (so "sampler" is the sampler maths and CFG combination, without the
    UNet calls, progress and previews)."""

    seconds: dict[str, float] = field(default_factory=dict)
    counts: dict[str, int] = field(default_factory=dict)
    cache_hits: int = 0
    """Prompt texts whose conds came from the persistent cond cache instead of the text encoder."""

    def add(self, name: str, seconds: float, count: int = 1) -> None:
        """Book `seconds` (and `count` calls) under `name`."""
        self.seconds[name] = self.seconds.get(name, 0.0) + seconds
        self.counts[name] = self.counts.get(name, 0) + count

    @contextmanager
    def measure(self, name: str, count: int = 1) -> Iterator[None]:
        """Book the block's wall time under `name`, also when it raises."""
        start = time.perf_counter()
        try:
            yield
        finally:
            self.add(name, time.perf_counter() - start, count)

    def breakdown(self, total: float) -> dict[str, float]:
        """Stage → seconds with nested network/progress time taken out of the enclosing stages, plus "other"
        (total minus everything booked at the top level)."""
        s = dict(self.seconds)
        out = {name: s.get(name, 0.0) for name in NETWORK_STAGES}
        out["prompts"] = s.get("prompts", 0.0)
        out["conditioning"] = max(0.0, s.get("conditioning", 0.0) - s.get("text encoder", 0.0))
        inner = s.get("UNet", 0.0) + s.get("progress", 0.0) + s.get("previews", 0.0)
        out["sampler"] = max(0.0, s.get("sampling", 0.0) - inner)
        out["progress"] = s.get("progress", 0.0)
        out["previews"] = s.get("previews", 0.0)
        for name in ("to PIL", "infotext", "saving"):
            out[name] = s.get(name, 0.0)
        booked = (s.get("prompts", 0.0) + s.get("conditioning", 0.0) + s.get("sampling", 0.0) + s.get("VAE", 0.0)
                  + s.get("to PIL", 0.0) + s.get("infotext", 0.0) + s.get("saving", 0.0))
        out["other"] = max(0.0, total - booked)
        return out

    def summary(self, total: float) -> str:
        """The one-line report (see module docstring)."""
        parts = self.breakdown(total)
        networks = sum(parts[name] for name in NETWORK_STAGES)
        outside = total - networks
        shown_networks = ", ".join(
            f"{name} {parts[name]:.2f}s ×{self.counts.get(name, 0)} {COUNT_UNITS[name]}" for name in NETWORK_STAGES)
        shown_outside = ", ".join(f"{name} {parts[name]:.3f}s" for name in (*OVERHEAD_STAGES, "other"))
        share = 100.0 * outside / total if total > 0 else 0.0
        return (f"Job timings: {total:.2f}s total; networks {networks:.2f}s ({shown_networks}); outside "
                f"{outside:.2f}s = {share:.1f}% ({shown_outside}); {self.cache_hits} texts from the persistent cond "
                f"cache")

    def log(self, total: float) -> None:
        """Log `summary` at DEBUG (`--loglevel DEBUG`)."""
        if log.isEnabledFor(logging.DEBUG):
            log.debug("%s", self.summary(total))
