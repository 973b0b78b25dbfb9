"""Noise sources, seeds and ``ImageRNG`` behave like A1111's ``modules/rng.py`` / ``processing.py``.

References: torch's own ``manual_seed`` + ``randn`` (CPU source), ``modules.processing.philox`` (NV source, itself
checked against Random123 and published CUDA values in ``test_philox.py``), and the A1111 rules quoted in
``docs/rng.md`` for variation seeds, seed resize and ENSD.
"""

from __future__ import annotations

import random

import numpy as np
import pytest
import torch

from modules.processing.philox import cuda_randn
from modules.processing.rng import (
    RANDN_SOURCES,
    ImageRNG,
    create_generator,
    generator_device,
    paste_centered,
    randn,
    slerp,
)
from modules.processing.seeds import RANDOM_SEED_RANGE, image_seeds, resolve_seed

SHAPE = (4, 8, 8)


def torch_global_randn(seed: int, shape: tuple[int, ...]) -> torch.Tensor:
    """The reference for the CPU source: ``torch.manual_seed(seed); torch.randn(shape)``, global state restored."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return torch.randn(shape)


# --- sources ---


@pytest.mark.parametrize("seed", [0, 1, 1234567890, 4294967293, 2**40 + 3])
def test_cpu_source_equals_torch_manual_seed_randn(seed):
    assert torch.equal(randn(seed, SHAPE, "CPU"), torch_global_randn(seed, SHAPE))
    gen = create_generator(seed, "CPU")
    first, second = gen.randn(SHAPE), gen.randn(SHAPE)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        expected_first, expected_second = torch.randn(SHAPE), torch.randn(SHAPE)
    assert torch.equal(first, expected_first) and torch.equal(second, expected_second)


def test_gpu_source_on_a_cpu_machine_is_the_cpu_generator():
    assert torch.equal(randn(77, SHAPE, "GPU", "cpu"), randn(77, SHAPE, "CPU", "cpu"))
    assert generator_device("GPU", "cuda:1") == torch.device("cuda:1")
    assert generator_device("GPU", "mps") == torch.device("cpu")  # A1111: MPS always uses the CPU generator
    assert generator_device("CPU", "cuda") == torch.device("cpu")


def test_nv_source_is_the_cuda_emulation_as_float32_tensor():
    noise = randn(5, SHAPE, "NV")
    assert noise.dtype == torch.float32 and noise.device.type == "cpu"
    np.testing.assert_array_equal(noise.numpy(), cuda_randn(5, SHAPE))
    gen = create_generator(5, "NV")
    gen.randn(SHAPE)
    np.testing.assert_array_equal(gen.randn(SHAPE).numpy(), cuda_randn(5, SHAPE, offset=4))


def test_sources_differ_and_unknown_source_is_rejected():
    assert RANDN_SOURCES == ("GPU", "CPU", "NV")
    assert not torch.equal(randn(0, SHAPE, "CPU"), randn(0, SHAPE, "NV"))
    with pytest.raises(ValueError, match="expected one of GPU, CPU, NV"):
        randn(0, SHAPE, "TPU")
    with pytest.raises(ValueError, match="64-bit range"):
        randn(2**64, SHAPE, "CPU")


@pytest.mark.parametrize("source", RANDN_SOURCES)
def test_no_global_rng_state_is_touched(source):
    torch_state, python_state = torch.get_rng_state(), random.getstate()
    rng = ImageRNG(SHAPE, [1, 2], [3, 4], 0.5, 96, 32, source=source, eta_noise_seed_delta=31337)
    rng.first()
    rng.next()
    resolve_seed(-1)
    assert torch.equal(torch.get_rng_state(), torch_state) and random.getstate() == python_state


# --- seeds ---


def test_resolve_seed_follows_a1111_get_fixed_seed():
    expected = random.Random(7).randrange(RANDOM_SEED_RANGE)
    assert resolve_seed(-1, random.Random(7)) == expected
    for value in (None, "", "not a number", "-1"):
        assert 0 <= resolve_seed(value) < 4294967294
    assert resolve_seed("123") == 123 and resolve_seed(42) == 42 and resolve_seed(5.0) == 5
    assert resolve_seed(-7) == -7  # only -1 means random
    with pytest.raises(ValueError, match="whole number"):
        resolve_seed(5.5)
    with pytest.raises(ValueError, match="boolean"):
        resolve_seed(True)


def test_image_seeds_batch_rules():
    assert image_seeds(100, 7, 0.0, 3) == ([100, 101, 102], [7, 8, 9])
    assert image_seeds(100, 7, 0.4, 3) == ([100, 100, 100], [7, 8, 9])  # variation: base seed fixed
    assert image_seeds([5, 9], 1, 0.0, 2) == ([5, 9], [1, 2])
    with pytest.raises(ValueError, match="2 entries but 3 images"):
        image_seeds([5, 9], 1, 0.0, 3)


# --- slerp and variation seeds ---


def test_slerp_end_points_and_norm():
    low, high = randn(1, SHAPE, "CPU"), randn(2, SHAPE, "CPU")
    assert torch.equal(slerp(0.0, low, high), low)
    torch.testing.assert_close(slerp(1.0, low, high), high, rtol=0, atol=1e-5)
    mid = slerp(0.5, low, high)
    # spherical: the blend keeps roughly unit variance, a straight average would shrink it to ~0.5
    assert 0.8 < mid.var().item() < 1.2 and (0.5 * (low + high)).var().item() < 0.7


def test_slerp_nearly_parallel_falls_back_to_a1111_linear_blend():
    low = randn(3, SHAPE, "CPU")
    high = low * 1.0001 + 1e-6
    assert torch.equal(slerp(0.25, low, high), low * 0.25 + high * 0.75)  # A1111's weights, verbatim rule


@pytest.mark.parametrize("source", RANDN_SOURCES)
def test_variation_strength_blends_seed_and_subseed_noise(source):
    base = ImageRNG(SHAPE, [10], [20], 0.0, source=source).first()[0]
    assert torch.equal(base, randn(10, SHAPE, source))
    full = ImageRNG(SHAPE, [10], [20], 1.0, source=source).first()[0]
    torch.testing.assert_close(full, randn(20, SHAPE, source), rtol=0, atol=1e-5)
    part = ImageRNG(SHAPE, [10], [20], 0.3, source=source).first()[0]
    assert torch.equal(part, slerp(0.3, randn(10, SHAPE, source), randn(20, SHAPE, source)))
    missing = ImageRNG(SHAPE, [10, 11], [20], 0.3, source=source).first()[1]
    assert torch.equal(missing, slerp(0.3, randn(11, SHAPE, source), randn(0, SHAPE, source)))


# --- batches ---


@pytest.mark.parametrize("source", RANDN_SOURCES)
def test_batch_equals_single_generations(source):
    batch = ImageRNG(SHAPE, [50, 51, 52], source=source)
    singles = [ImageRNG(SHAPE, [s], source=source) for s in (50, 51, 52)]
    assert torch.equal(batch.first(), torch.cat([r.first() for r in singles]))
    assert torch.equal(batch.next(), torch.cat([r.next() for r in singles]))


# --- resize seed from W x H ---


@pytest.mark.parametrize("source", RANDN_SOURCES)
def test_resize_seed_pastes_old_size_noise_centred(source):
    shape = (4, 16, 16)
    noise = ImageRNG(shape, [9], seed_resize_from_h=64, seed_resize_from_w=64, source=source).first()[0]
    small, full = randn(9, (4, 8, 8), source), randn(9, shape, source)
    assert torch.equal(noise[:, 4:12, 4:12], small)
    outside = torch.ones(shape, dtype=torch.bool)
    outside[:, 4:12, 4:12] = False
    assert torch.equal(noise[outside], full[outside])


def test_resize_seed_from_bigger_size_crops_the_centre_and_handles_odd_margins():
    shape = (4, 10, 16)
    noise = ImageRNG(shape, [9], seed_resize_from_h=24 * 8, seed_resize_from_w=7 * 8, source="CPU").first()[0]
    old = randn(9, (4, 24, 7), "CPU")
    full = randn(9, shape, "CPU")
    # height: old 24 > new 10 -> dy = -7, rows 7..16 of the old noise; width: 16 - 7 = 9 -> dx = 4 (floor)
    assert torch.equal(noise[:, :, 4:11], old[:, 7:17, :])
    assert torch.equal(noise[:, :, :4], full[:, :, :4]) and torch.equal(noise[:, :, 11:], full[:, :, 11:])


def test_resize_seed_needs_both_sizes_and_combines_with_variation():
    plain = ImageRNG(SHAPE, [9], seed_resize_from_h=128, seed_resize_from_w=0, source="CPU").first()
    assert torch.equal(plain[0], randn(9, SHAPE, "CPU"))
    noise = ImageRNG(SHAPE, [9], [4], 0.5, seed_resize_from_h=32, seed_resize_from_w=32, source="CPU").first()[0]
    blended = slerp(0.5, randn(9, (4, 4, 4), "CPU"), randn(4, (4, 4, 4), "CPU"))
    assert torch.equal(noise, paste_centered(randn(9, SHAPE, "CPU"), blended))
    with pytest.raises(ValueError, match="smaller than one latent cell"):
        ImageRNG(SHAPE, [9], seed_resize_from_h=4, seed_resize_from_w=64).first()


# --- first / next and ENSD ---


@pytest.mark.parametrize("source", RANDN_SOURCES)
def test_next_continues_each_image_stream_without_ensd(source):
    rng = ImageRNG(SHAPE, [3, 4], source=source)
    first, second, third = rng.next(), rng.next(), rng.next()  # A1111: the first next() is first()
    for i, seed in enumerate((3, 4)):
        stream = create_generator(seed, source)
        assert torch.equal(first[i], stream.randn(SHAPE))
        assert torch.equal(second[i], stream.randn(SHAPE))
        assert torch.equal(third[i], stream.randn(SHAPE))


@pytest.mark.parametrize("source", RANDN_SOURCES)
def test_ensd_changes_only_the_later_draws(source):
    plain = ImageRNG(SHAPE, [3, 4], source=source)
    nai = ImageRNG(SHAPE, [3, 4], source=source, eta_noise_seed_delta=31337)
    assert torch.equal(plain.first(), nai.first())
    later = nai.next()
    assert not torch.equal(plain.next(), later)
    for i, seed in enumerate((3, 4)):
        stream = create_generator(seed + 31337, source)
        assert torch.equal(later[i], stream.randn(SHAPE))
    second = nai.next()
    for i, seed in enumerate((3, 4)):
        stream = create_generator(seed + 31337, source)
        stream.randn(SHAPE)
        assert torch.equal(second[i], stream.randn(SHAPE))


def test_invalid_image_rng_arguments_are_explained():
    with pytest.raises(ValueError, match="channels, height, width"):
        ImageRNG((4, 8), [1])
    with pytest.raises(ValueError, match="at least one seed"):
        ImageRNG(SHAPE, [])
    with pytest.raises(ValueError, match="expected one of"):
        ImageRNG(SHAPE, [1], source="cuda")
