"""Philox4x32-10 and CUDA-``randn`` emulation (the ``NV`` noise source) against independent references.

Where every expected number comes from is written down in ``docs/rng.md``:
* Random123 ``kat_vectors`` for the raw Philox4x32-10 bijection;
* values of ``torch.randn`` printed on real NVIDIA GPUs in public issues/posts (4 decimals) and in A1111's
  ``rng_philox`` docstring (8 digits);
* regression pins of our own output where no published value exists.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from modules.processing.philox import (
    CURAND_2POW32_INV,
    CURAND_2POW32_INV_2PI,
    PhiloxGenerator,
    box_muller,
    cuda_normal_at,
    cuda_randn,
    cuda_thread_count,
    offset_increment,
    philox4x32_10,
    seed_to_key,
)

# Random123 tests/kat_vectors, "philox4x32 10" lines: counter words, key words, expected output words.
RANDOM123_KAT = [
    ((0x00000000, 0x00000000, 0x00000000, 0x00000000), (0x00000000, 0x00000000),
     (0x6627E8D5, 0xE169C58D, 0xBC57AC4C, 0x9B00DBD8)),
    ((0xFFFFFFFF, 0xFFFFFFFF, 0xFFFFFFFF, 0xFFFFFFFF), (0xFFFFFFFF, 0xFFFFFFFF),
     (0x408F276D, 0x41C83B0E, 0xA20BC7C6, 0x6D5451FD)),
    ((0x243F6A88, 0x85A308D3, 0x13198A2E, 0x03707344), (0xA4093822, 0x299F31D0),
     (0xD16CFE09, 0x94FDCCEB, 0x5001E420, 0x24126EA1)),
]  # fmt: skip


@pytest.mark.parametrize(("counter", "key", "expected"), RANDOM123_KAT)
def test_philox_matches_random123_known_answers(counter, key, expected):
    out = philox4x32_10(np.array(counter, dtype=np.uint32).reshape(4, 1), key)
    assert tuple(int(w) for w in out[:, 0]) == expected


def test_philox_batches_counters_and_keys_without_touching_inputs():
    counters = np.array([c for c, _, _ in RANDOM123_KAT], dtype=np.uint32).T.copy()
    keys = np.array([k for _, k, _ in RANDOM123_KAT], dtype=np.uint64).T.copy()
    before = counters.copy()
    out = philox4x32_10(counters, keys)
    assert [tuple(int(w) for w in out[:, i]) for i in range(3)] == [e for _, _, e in RANDOM123_KAT]
    np.testing.assert_array_equal(counters, before)


def test_philox_rejects_malformed_counters():
    with pytest.raises(ValueError, match="shape \\(4, N\\)"):
        philox4x32_10(np.zeros((3, 2), dtype=np.uint32), (0, 0))


def test_seed_to_key_splits_low_word_first_and_wraps_negative_seeds_like_torch():
    assert seed_to_key(0x0123456789ABCDEF) == (0x89ABCDEF, 0x01234567)
    assert seed_to_key(-1) == (0xFFFFFFFF, 0xFFFFFFFF)  # torch: -1 -> 2**64 - 1
    with pytest.raises(ValueError, match="64-bit range"):
        seed_to_key(2**64)


def test_box_muller_is_curand_formula():
    """u = x·2^-32 + 2^-33, v = (y·2^-32 + 2^-33)·2π with cuRAND's float32 constants; (s sin v, s cos v)."""
    words = np.array([0, 1, 0x7FFFFFFF, 0x9E3779B9, 0xFFFFFFFF], dtype=np.uint32)
    sin_part, cos_part = box_muller(words, words[::-1].copy())
    c, c2pi = float(CURAND_2POW32_INV), float(CURAND_2POW32_INV_2PI)
    assert abs(c - 2.0**-32) / 2.0**-32 < 1e-7 and abs(c2pi - 2 * math.pi * 2.0**-32) / c2pi < 1e-7
    for i, (x, y) in enumerate(zip(words.tolist(), words[::-1].tolist(), strict=True)):
        s = math.sqrt(-2.0 * math.log(x * c + c / 2))
        v = y * c2pi + c2pi / 2
        assert sin_part[i] == np.float32(s * math.sin(v)) and cos_part[i] == np.float32(s * math.cos(v))
    assert sin_part.dtype == np.float32
    assert np.all(np.isfinite(sin_part)) and np.all(np.isfinite(cos_part))  # u is never 0


def test_cuda_layout_counter_is_offset_and_subsequence_is_element_index():
    """Element i of a randn at philox offset o = sin part of Philox((o/4, 0, i, 0), key=(seed lo, seed hi))."""
    seed, offset, n = 0x1_0000_0005, 8, 10
    got = cuda_randn(seed, (n,), offset=offset)
    counter = np.zeros((4, n), dtype=np.uint32)
    counter[0], counter[2] = offset // 4, np.arange(n)
    words = philox4x32_10(counter, (5, 1))
    np.testing.assert_array_equal(got, box_muller(words[0], words[1])[0])


def test_generator_advances_offset_by_four_per_call_in_the_a1111_model():
    gen = PhiloxGenerator(123)
    first, second = gen.randn((2, 3)), gen.randn((5,))
    assert gen.offset == 8
    np.testing.assert_array_equal(first, cuda_randn(123, (2, 3), offset=0))
    np.testing.assert_array_equal(second, cuda_randn(123, (5,), offset=4))
    assert offset_increment(10**9) == 4


def test_thread_layout_uses_all_four_curand_normal4_components():
    """With T threads element i comes from thread i % T, component (i // T) % 4, loop i // 4T (counter + loop)."""
    threads, seed = 4, 9
    got = cuda_randn(seed, (40,), threads=threads)  # 40 > 4·4: two loops, the second partly filled
    for i in range(40):
        counter = np.array([[i // 16], [0], [i % threads], [0]], dtype=np.uint32)
        words = philox4x32_10(counter, seed_to_key(seed))
        pair = box_muller(words[0], words[1]) + box_muller(words[2], words[3])
        assert got[i] == pair[(i // threads) % 4][0]
    assert offset_increment(40, threads) == 12
    assert cuda_thread_count(10, 108, 2048) == 256 and cuda_thread_count(10**8, 108, 2048) == 221184


# --- values printed by real NVIDIA GPUs (torch.randn with a CUDA generator); see docs/rng.md for sources ---


def test_matches_cuda_randn_seed0_published_8x8():
    """A first CUDA randn(8, 8) printed in the CUDA-MODE "Fusing Kernels" notes (seed 0: matches A1111's example)."""
    published = np.array([
        [-0.9247, -0.4253, -2.6438, 0.1452, -0.1209, -0.5797, -0.6229, -0.3284],
        [-1.0745, -0.3631, -1.6711, 2.2655, 0.3117, -0.1842, 1.2866, 1.1820],
        [-0.1271, 1.2169, 1.4353, 1.0605, -0.4941, -1.4244, -0.7244, -1.2973],
        [0.0697, -0.0074, 1.8969, 0.6878, -0.0779, -0.8373, 1.3506, -0.2879],
        [-0.5965, -0.3283, -0.9086, -0.8059, -0.7407, -0.0504, 0.5435, 1.5150],
        [0.0141, 0.4532, 1.6349, 0.7124, -0.1806, 1.0252, -1.4622, -0.7554],
        [-0.1836, 0.3824, 0.3918, -0.0830, 0.8971, -1.1123, 0.1116, 0.4863],
        [-0.5499, -0.3231, -0.5469, 0.9049, 0.2837, 0.1210, 0.4730, -1.0823],
    ])  # fmt: skip
    np.testing.assert_allclose(PhiloxGenerator(0).randn((8, 8)), published, rtol=0, atol=5.1e-5)


def test_matches_a1111_rng_philox_docstring_seed0():
    """A1111 rng_philox's documented output for Generator(0).randn((3, 4)) (8 digits; differs by <= 3e-7)."""
    published = np.array([
        [-0.92466259, -0.42534415, -2.6438457, 0.14518388],
        [-0.12086647, -0.57972564, -0.62285122, -0.32838709],
        [-1.07454231, -0.36314407, -1.67105067, 2.26550497],
    ])  # fmt: skip
    np.testing.assert_allclose(PhiloxGenerator(0).randn((3, 4)), published, rtol=0, atol=4e-7)


@pytest.mark.parametrize(
    ("seed", "shape", "indices", "published"),
    [
        (10, (3,), [0, 1, 2], [-0.1029, 1.6810, -0.2708]),  # pytorch/pytorch#79496
        # pytorch/pytorch#158398: randn([1, 64, 2048]) seed 42, rows 0-2 (first/last three of each)
        (42, (1, 64, 2048), [0, 1, 2, 2045, 2046, 2047], [0.1940, 2.1614, -0.1721, 1.4540, -2.7733, -0.8932]),
        (42, (1, 64, 2048), [2048, 2049, 2050, 4093, 4094, 4095], [-0.4574, 0.8063, 0.1580, 0.1124, 0.2769, -1.2535]),
        (
            42,
            (1, 64, 2048),
            [4096, 4097, 4098, 6141, 6142, 6143],
            [1.1346, -0.6329, -0.9147, -1.0001, -1.1552, -0.6955],
        ),
        # pytorch/pytorch#62467: RTX A6000, normal_ of (1, 3, 128, 128), seed 43, [..., 0, 0]
        (43, (1, 3, 128, 128), [0, 16384, 32768], [1.9983, 0.8704, 2.1127]),
    ],
)
def test_matches_published_cuda_values_within_one_wave(seed, shape, indices, published):
    values = cuda_randn(seed, shape).reshape(-1)[indices]
    np.testing.assert_allclose(values, published, rtol=0, atol=5.1e-5)


def test_large_tensor_layout_matches_published_a100_and_h100_values():
    """pytorch/pytorch#143086: randn(1, 9483264), seed 1; A100 (108 SMs) and H100 SXM5 (132 SMs) differ at the end."""
    numel = 49 * 12 * 112 * 144
    last = [numel - 3, numel - 2, numel - 1]
    a100 = cuda_thread_count(numel, 108, 2048)
    h100 = cuda_thread_count(numel, 132, 2048)
    np.testing.assert_allclose(cuda_normal_at(1, [0, 1, 2], 0, a100), [-0.2963, 2.6764, -0.1408], atol=5.1e-5)
    np.testing.assert_allclose(cuda_normal_at(1, last, 0, a100), [0.1549, -0.6797, -0.1656], atol=5.1e-5)
    np.testing.assert_allclose(cuda_normal_at(1, last, 0, h100), [-0.6970, -0.7780, 0.3267], atol=5.1e-5)


# --- regression pins of our own float32 output (bit patterns), see docs/rng.md ---


@pytest.mark.parametrize(
    ("seed", "skip_shape", "bits"),
    [
        (0, None, [0xBF6CB6AD, 0xBED9C6AF, 0xC02934C5, 0x3E14AB15]),
        (0, (3, 4), [0x3E392A6C, 0xBF0D6117, 0x3F6C7F09, 0xBF3C2704]),  # second call: offset 4
        (31337, None, [0x3F19F065, 0x3D0E7A6F, 0x3C7B6D3F, 0xBFD7BC9B]),
        (4294967293, None, [0xBF8E9805, 0xBF4ED6AD, 0xBFA5A918, 0x3E115AF6]),
        (2**40 + 7, None, [0xBEF54604, 0xBFA39DB7, 0xBE775D2D, 0xBEC51EA7]),  # key high word in use
        (-1, None, [0x3F21DE90, 0x3D093850, 0x3F56CE73, 0xC0040FDD]),
    ],
)
def test_nv_regression_vectors(seed, skip_shape, bits):
    gen = PhiloxGenerator(seed)
    if skip_shape is not None:
        gen.randn(skip_shape)
    assert gen.randn((4,)).view(np.uint32).tolist() == bits


def test_nv_noise_is_standard_normal():
    sample = cuda_randn(2024, (4, 128, 128)).astype(np.float64)
    assert abs(sample.mean()) < 0.01 and abs(sample.std() - 1.0) < 0.01


def test_rejects_bad_offsets_and_shapes():
    with pytest.raises(ValueError, match="multiple of 4"):
        cuda_randn(0, (2,), offset=3)
    with pytest.raises(ValueError, match="negative"):
        cuda_randn(0, (2, -1))
