"""Samplers against the k-diffusion oracle on an analytic denoiser, with identical sigmas and identical noise.

The toy data distribution is Gaussian per element, x0 ~ N(mu, s^2), so the exact denoiser is known in closed form:
``E[x0 | x0 + sigma * eps = x] = mu + s^2 / (s^2 + sigma^2) * (x - mu)``. k-diffusion 0.1.1.post1 (installed with
--no-deps as a test-only oracle) is loaded from its ``sampling.py``/``utils.py`` under a synthetic package name, so
its unused heavy imports (skimage, wandb, ...) are never needed. Our code never imports it.
"""

from __future__ import annotations

import importlib.util
import sys
import types
from pathlib import Path

import pytest
import torch

from modules.sampling import samplers_dpm_solver as dpm_solver
from modules.sampling import samplers_dpmpp as dpmpp
from modules.sampling import samplers_karras as karras
from modules.sampling.common import SamplingInterrupted
from modules.sampling.noise import BrownianTreeNoiseSampler
from modules.sampling.schedules import karras_sigmas

TOL = 1e-5


def load_kdiffusion_sampling() -> types.ModuleType:
    """Import k-diffusion's sampling.py (and the utils.py it needs) without running k_diffusion/__init__.py."""
    spec = importlib.util.find_spec("k_diffusion")
    if spec is None or not spec.submodule_search_locations:
        pytest.skip("k-diffusion (test oracle) is not installed")
    pkg_dir = Path(next(iter(spec.submodule_search_locations)))
    name = "_kdiffusion_oracle"
    if f"{name}.sampling" in sys.modules:
        return sys.modules[f"{name}.sampling"]
    pkg = types.ModuleType(name)
    pkg.__path__ = [str(pkg_dir)]
    sys.modules[name] = pkg
    stub_added = False
    if importlib.util.find_spec("torchdiffeq") is None:  # only log_likelihood() uses it
        stub = types.ModuleType("torchdiffeq")
        stub.odeint = None  # type: ignore[attr-defined]
        sys.modules["torchdiffeq"] = stub
        stub_added = True
    try:
        for sub in ("utils", "sampling"):
            sub_spec = importlib.util.spec_from_file_location(f"{name}.{sub}", pkg_dir / f"{sub}.py")
            assert sub_spec is not None and sub_spec.loader is not None
            module = importlib.util.module_from_spec(sub_spec)
            sys.modules[f"{name}.{sub}"] = module
            sub_spec.loader.exec_module(module)
    finally:
        if stub_added:
            del sys.modules["torchdiffeq"]
    return sys.modules[f"{name}.sampling"]


@pytest.fixture(scope="module")
def K() -> types.ModuleType:
    return load_kdiffusion_sampling()


class GaussianDenoiser:
    """Exact denoiser of per-element Gaussian data (mu, s); counts its calls."""

    def __init__(self, shape: tuple[int, ...] = (2, 4, 5, 6)) -> None:
        g = torch.Generator().manual_seed(1234)
        self.mu = torch.randn(shape[1:], generator=g)
        self.s = 0.5 + torch.rand(shape[1:], generator=g)
        self.calls = 0

    def __call__(self, x: torch.Tensor, sigma: torch.Tensor, **_: object) -> torch.Tensor:
        self.calls += 1
        sigma = sigma.reshape(-1, *([1] * (x.ndim - 1)))
        return self.mu + self.s**2 / (self.s**2 + sigma**2) * (x - self.mu)


class KeyedNoise:
    """Noise that depends only on the (sigma, sigma_next) pair, so call order and call count do not matter."""

    def __init__(self, x: torch.Tensor) -> None:
        self.shape = x.shape

    def __call__(self, sigma: object, sigma_next: object) -> torch.Tensor:
        key = (round(float(sigma) * 1e5), round(float(sigma_next) * 1e5))
        g = torch.Generator().manual_seed((key[0] * 1_000_003 + key[1]) % (2**62))
        return torch.randn(self.shape, generator=g)


def start(sigmas: torch.Tensor) -> torch.Tensor:
    g = torch.Generator().manual_seed(7)
    return torch.randn(2, 4, 5, 6, generator=g) * sigmas[0]


SCHEDULES = {
    "karras-1": karras_sigmas(1, 0.0292, 14.6146),
    "karras-2": karras_sigmas(2, 0.0292, 14.6146),
    "karras-3": karras_sigmas(3, 0.0292, 14.6146),
    "karras-12": karras_sigmas(12, 0.0292, 14.6146),
    "no-zero-12": karras_sigmas(13, 0.0292, 14.6146)[:-1],
}

DETERMINISTIC = [
    ("sample_euler", karras.sample_euler),
    ("sample_heun", karras.sample_heun),
    ("sample_dpm_2", karras.sample_dpm_2),
    ("sample_lms", karras.sample_lms),
    ("sample_dpmpp_2m", dpmpp.sample_dpmpp_2m),
]

ANCESTRAL = [
    ("sample_euler_ancestral", karras.sample_euler_ancestral),
    ("sample_dpm_2_ancestral", karras.sample_dpm_2_ancestral),
    ("sample_dpmpp_2s_ancestral", dpmpp.sample_dpmpp_2s_ancestral),
    ("sample_dpmpp_sde", dpmpp.sample_dpmpp_sde),
    ("sample_dpmpp_2m_sde", dpmpp.sample_dpmpp_2m_sde),
    ("sample_dpmpp_3m_sde", dpmpp.sample_dpmpp_3m_sde),
]


def oracle_crashes(name: str, sigmas: torch.Tensor) -> bool:
    """k-diffusion's 2M/3M SDE reference `h` before assignment when the first step already goes to sigma 0."""
    return name in ("sample_dpmpp_2m_sde", "sample_dpmpp_3m_sde") and len(sigmas) == 2 and sigmas[-1] == 0


@pytest.mark.parametrize("sched", list(SCHEDULES))
@pytest.mark.parametrize(("name", "ours"), DETERMINISTIC)
def test_deterministic_samplers_match_kdiffusion(K, name, ours, sched):
    sigmas = SCHEDULES[sched]
    x = start(sigmas)
    expected = getattr(K, name)(GaussianDenoiser(), x.clone(), sigmas, disable=True)
    got = ours(GaussianDenoiser(), x.clone(), sigmas, disable=True)
    torch.testing.assert_close(got, expected, atol=TOL, rtol=TOL)


@pytest.mark.parametrize("sched", list(SCHEDULES))
@pytest.mark.parametrize(("name", "ours"), ANCESTRAL)
@pytest.mark.parametrize("eta", [1.0, 0.5])
def test_stochastic_samplers_match_kdiffusion_with_same_noise(K, name, ours, sched, eta):
    sigmas = SCHEDULES[sched]
    if oracle_crashes(name, sigmas):
        pytest.skip("k-diffusion itself raises UnboundLocalError here (tested separately: ours does not)")
    x = start(sigmas)
    noise = KeyedNoise(x)
    expected = getattr(K, name)(GaussianDenoiser(), x.clone(), sigmas, disable=True, eta=eta, noise_sampler=noise)
    got = ours(GaussianDenoiser(), x.clone(), sigmas, disable=True, eta=eta, noise_sampler=noise)
    torch.testing.assert_close(got, expected, atol=TOL, rtol=TOL)


@pytest.mark.parametrize("solver_type", ["midpoint", "heun"])
def test_dpmpp_2m_sde_solver_types_match(K, solver_type):
    sigmas = SCHEDULES["karras-12"]
    x = start(sigmas)
    noise = KeyedNoise(x)
    expected = K.sample_dpmpp_2m_sde(GaussianDenoiser(), x.clone(), sigmas, disable=True, noise_sampler=noise,
                                     solver_type=solver_type)
    got = dpmpp.sample_dpmpp_2m_sde(GaussianDenoiser(), x.clone(), sigmas, noise_sampler=noise, solver_type=solver_type)
    torch.testing.assert_close(got, expected, atol=TOL, rtol=TOL)


@pytest.mark.parametrize("name", ["sample_dpmpp_sde", "sample_dpmpp_2m_sde", "sample_dpmpp_3m_sde"])
@pytest.mark.parametrize("seed", [42, [3, 4]])
def test_brownian_default_noise_matches_kdiffusion_brownian_tree(K, name, seed):
    """Our seeded Brownian tree gives the same increments as k-diffusion's for the same seed(s)."""
    sigmas = SCHEDULES["karras-12"]
    x = start(sigmas)
    lo, hi = sigmas[sigmas > 0].min(), sigmas.max()
    expected = getattr(K, name)(GaussianDenoiser(), x.clone(), sigmas, disable=True,
                                noise_sampler=K.BrownianTreeNoiseSampler(x, lo, hi, seed=seed))
    got = getattr(dpmpp, name)(GaussianDenoiser(), x.clone(), sigmas, seed=seed)
    torch.testing.assert_close(got, expected, atol=TOL, rtol=TOL)


def test_brownian_tree_is_per_image_deterministic():
    x = torch.zeros(2, 3, 4)
    a = BrownianTreeNoiseSampler(x, 0.1, 10.0, seed=[5, 6])(5.0, 2.0)
    b = BrownianTreeNoiseSampler(x[:1], 0.1, 10.0, seed=[5])(5.0, 2.0)
    torch.testing.assert_close(a[0], b[0])
    assert not torch.allclose(a[0], a[1])


@pytest.mark.parametrize(("name", "ours"), [("sample_euler", karras.sample_euler), ("sample_heun", karras.sample_heun),
                                            ("sample_dpm_2", karras.sample_dpm_2)])
def test_churn_matches_kdiffusion_with_same_global_rng(K, name, ours):
    """With s_churn both draw one torch.randn_like per step in the same order, so the same seed gives equal output."""
    sigmas = SCHEDULES["karras-12"]
    x = start(sigmas)
    opts = {"s_churn": 3.0, "s_tmin": 0.05, "s_tmax": 8.0, "s_noise": 1.003}
    torch.manual_seed(99)
    expected = getattr(K, name)(GaussianDenoiser(), x.clone(), sigmas, disable=True, **opts)
    torch.manual_seed(99)
    got = ours(GaussianDenoiser(), x.clone(), sigmas, **opts)
    torch.testing.assert_close(got, expected, atol=TOL, rtol=TOL)


@pytest.mark.parametrize("n", [1, 2, 3, 4, 9, 12])
@pytest.mark.parametrize("eta", [0.0, 1.0])
def test_dpm_fast_matches_kdiffusion(K, n, eta):
    sigmas = karras_sigmas(n, 0.0292, 14.6146)
    x = start(sigmas)
    noise = KeyedNoise(x)
    lo = 0.0292 if n == 1 else float(sigmas[-2])
    expected = K.sample_dpm_fast(GaussianDenoiser(), x.clone(), lo, float(sigmas[0]), n, disable=True, eta=eta,
                                 noise_sampler=noise)
    got = dpm_solver.sample_dpm_fast(GaussianDenoiser(), x.clone(), sigmas, eta=eta, noise_sampler=noise,
                                     sigma_min=0.0292 if n == 1 else None)
    torch.testing.assert_close(got, expected, atol=TOL, rtol=TOL)


@pytest.mark.parametrize("order", [2, 3])
@pytest.mark.parametrize("eta", [0.0, 1.0])
def test_dpm_adaptive_matches_kdiffusion(K, order, eta):
    sigmas = karras_sigmas(5, 0.0292, 14.6146)
    x = start(sigmas)
    noise = KeyedNoise(x)
    expected = K.sample_dpm_adaptive(GaussianDenoiser(), x.clone(), float(sigmas[-2]), float(sigmas[0]),
                                     disable=True, order=order,
                                     eta=eta, noise_sampler=noise)
    got = dpm_solver.sample_dpm_adaptive(GaussianDenoiser(), x.clone(), sigmas, order=order, eta=eta,
                                         noise_sampler=noise)
    torch.testing.assert_close(got, expected, atol=TOL, rtol=TOL)


def test_callback_receives_a1111_fields_every_step():
    sigmas = SCHEDULES["karras-12"]
    seen: list[dict] = []
    karras.sample_euler(GaussianDenoiser(), start(sigmas), sigmas, callback=seen.append)
    assert [d["i"] for d in seen] == list(range(12))
    assert set(seen[0]) == {"x", "i", "sigma", "sigma_hat", "denoised"}
    assert float(seen[3]["sigma"]) == pytest.approx(float(sigmas[3]))


def test_should_stop_interrupts_with_the_current_latent():
    sigmas = SCHEDULES["karras-12"]
    calls = {"n": 0}

    def stop() -> bool:
        calls["n"] += 1
        return calls["n"] > 4

    model = GaussianDenoiser()
    with pytest.raises(SamplingInterrupted) as info:
        dpmpp.sample_dpmpp_2m(model, start(sigmas), sigmas, should_stop=stop)
    assert info.value.step == 4
    assert model.calls == 4
    assert info.value.denoised is not None and torch.isfinite(info.value.x).all()


@pytest.mark.parametrize("fn", [dpmpp.sample_dpmpp_2m_sde, dpmpp.sample_dpmpp_3m_sde])
def test_sde_single_step_to_zero_returns_the_denoised_estimate(fn):
    """Where k-diffusion raises UnboundLocalError (A1111 issue), one step to sigma 0 is the denoising step."""
    sigmas = SCHEDULES["karras-1"]
    x = start(sigmas)
    expected = GaussianDenoiser()(x, sigmas[:1].expand(x.shape[0]))
    torch.testing.assert_close(fn(GaussianDenoiser(), x.clone(), sigmas, seed=1), expected)
