"""Seed resolution and per-image seed lists, with A1111's rules (``modules/processing.py``).

* ``get_fixed_seed``: an empty, missing or non-numeric seed means ``-1``; ``-1`` becomes
  ``int(random.randrange(4294967294))``, i.e. a value in ``[0, 4294967293]``; any other value is kept.
* ``process_images_inner``: image ``i`` of a job (over ``batch_size * n_iter`` images) gets ``seed + i``; when a
  variation is used (``subseed_strength != 0``) every image keeps the base seed and the *subseed* varies instead:
  ``subseed + i``. A list of seeds is used as given.

``-1`` is drawn from a private ``random.Random`` instance so that resolving a seed never touches the interpreter's
global ``random`` state (nor torch's).
"""

from __future__ import annotations

import random
from collections.abc import Sequence

RANDOM_SEED = -1
"""The seed value that asks for a random seed (A1111 UI / API default)."""
RANDOM_SEED_RANGE = 4294967294
"""A1111 draws random seeds with ``random.randrange(4294967294)``."""

SeedLike = int | float | str | None


def resolve_seed(seed: SeedLike, rng: random.Random | None = None) -> int:
    """Return a concrete seed: ``-1`` / ``None`` / ``""`` / non-numeric text → a random seed, else ``int(seed)``.

    A1111 ``get_fixed_seed``. ``rng`` lets callers make the random choice reproducible (tests, X/Y/Z "keep -1");
    by default a fresh OS-seeded ``random.Random`` is used. Floats must be whole numbers (JSON clients sometimes
    send ``1234.0``).
    """
    if isinstance(seed, bool):
        raise ValueError(f"seed must be an integer, got the boolean {seed!r}")
    if seed is None:
        value = RANDOM_SEED
    elif isinstance(seed, str):
        try:
            value = int(seed.strip())
        except ValueError:
            value = RANDOM_SEED  # A1111: text that is not a number means "random"
    elif isinstance(seed, float):
        if not seed.is_integer():
            raise ValueError(f"seed must be a whole number, got {seed!r}")
        value = int(seed)
    elif isinstance(seed, int):
        value = seed
    else:
        raise ValueError(f"seed must be an integer, a numeric string or None, got {type(seed).__name__}")
    if value == RANDOM_SEED:
        return int((rng or random.Random()).randrange(RANDOM_SEED_RANGE))
    return value


def image_seeds(
    seed: int | Sequence[int], subseed: int | Sequence[int], subseed_strength: float, count: int
) -> tuple[list[int], list[int]]:
    """Per-image ``(seeds, subseeds)`` for ``count`` images from already-resolved seeds.

    A1111 ``process_images_inner``: ``all_seeds = [seed + (i if subseed_strength == 0 else 0)]`` and
    ``all_subseeds = [subseed + i]``; a list is taken as the per-image values (and must cover ``count`` images).
    """
    if count < 0:
        raise ValueError(f"image count must not be negative, got {count}")

    def expand(value: int | Sequence[int], step: int, name: str) -> list[int]:
        if isinstance(value, Sequence) and not isinstance(value, str):
            if len(value) < count:
                raise ValueError(f"{name} list has {len(value)} entries but {count} images are generated")
            return [int(v) for v in value[:count]]
        return [int(value) + i * step for i in range(count)]

    seeds = expand(seed, 1 if subseed_strength == 0 else 0, "seed")
    subseeds = expand(subseed, 1, "subseed")
    return seeds, subseeds
