"""The persistent cond cache's rules (`modules.processing.cond_cache`) and the job timing line
(`modules.processing.job_timing`) that reports it."""

from __future__ import annotations

import gc

import pytest

from modules.processing.cond_cache import CachedCond, CondCache, used_by
from modules.processing.job_timing import JobTimes


class Encoder:
    """Stands for a model's text encoders (the cache holds it by weak reference)."""


def test_a_hit_needs_the_same_encoder_object_and_key() -> None:
    cache, encoder = CondCache(), Encoder()
    cache.store(encoder, ("k",), ("a cat", False, False), CachedCond("cond"))
    hit = cache.lookup(encoder, ("k",), ("a cat", False, False))
    assert hit is not None and hit.cond == "cond"
    assert cache.lookup(encoder, ("k",), ("a dog", False, False)) is None
    assert cache.lookup(encoder, ("k",), ("a cat", True, False)) is None  # negative is another entry
    assert cache.lookup(Encoder(), ("k",), ("a cat", False, False)) is None  # another model: dropped
    assert len(cache) == 0


def test_another_key_drops_every_entry() -> None:
    cache, encoder = CondCache(), Encoder()
    cache.store(encoder, ("clip skip 1",), ("a cat", False, False), CachedCond("c1"))
    assert cache.lookup(encoder, ("clip skip 2",), ("a cat", False, False)) is None
    assert cache.lookup(encoder, ("clip skip 1",), ("a cat", False, False)) is None


def test_a_freed_encoder_never_matches_a_new_one() -> None:
    cache = CondCache()
    encoder = Encoder()
    cache.store(encoder, (), ("a cat", False, False), CachedCond("c"))
    del encoder
    gc.collect()
    assert cache.lookup(Encoder(), (), ("a cat", False, False)) is None


def test_only_the_last_jobs_texts_are_kept() -> None:
    cache, encoder = CondCache(), Encoder()
    cache.begin_job()
    cache.store(encoder, (), ("first", False, False), CachedCond(1))
    cache.store(encoder, (), ("both", False, False), CachedCond(2))
    cache.begin_job()  # the second job uses only "both"
    assert cache.lookup(encoder, (), ("both", False, False)) is not None
    cache.begin_job()
    assert cache.lookup(encoder, (), ("first", False, False)) is None
    assert cache.lookup(encoder, (), ("both", False, False)) is not None
    cache.clear()
    assert len(cache) == 0


def test_embeddings_of_a_batch_are_attributed_to_the_texts_naming_them() -> None:
    used = {"myEmb": "e1", "other": "e2"}
    assert used_by("anything", used, batch_size=1) == used
    assert used_by("a MYEMB cat", used, batch_size=2) == {"myEmb": "e1"}


def test_the_timing_line_separates_networks_from_the_work_around_them() -> None:
    times = JobTimes()
    times.add("prompts", 0.01)
    times.add("conditioning", 0.5)
    times.add("text encoder", 0.4, count=2)
    times.add("sampling", 10.0)
    times.add("UNet", 9.0, count=20)
    times.add("progress", 0.1, count=20)
    times.add("previews", 0.2)
    times.add("VAE", 1.0)
    times.add("saving", 0.3)
    times.cache_hits = 1
    parts = times.breakdown(12.0)
    assert parts["conditioning"] == pytest.approx(0.1) and parts["sampler"] == pytest.approx(0.7)
    assert parts["other"] == pytest.approx(12.0 - 0.01 - 0.5 - 10.0 - 1.0 - 0.3)
    line = times.summary(12.0)
    assert "networks 10.40s (text encoder 0.40s ×2 texts, UNet 9.00s ×20 calls, VAE 1.00s ×1 calls)" in line
    assert "outside 1.60s = 13.3%" in line and "1 texts from the persistent cond cache" in line
