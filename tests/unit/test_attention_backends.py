"""Every attention backend computes the same attention as PyTorch SDPA, and backend selection follows the
A1111 setting/flag rules with SDPA as the fallback."""

from __future__ import annotations

import logging

import pytest
import torch

from modules.memory import attention as attn
from modules.models.nn.transformer import CrossAttention
from modules.models.nn.vae import AttnBlock

SHAPES = [
    # (batch, q tokens, kv tokens, heads, head dim): cross-attention to 77 tokens, self-attention, one head (VAE)
    (2, 96, 77, 2, 64),
    (1, 300, 300, 5, 16),
    (2, 130, 130, 1, 32),
]


def qkv(batch, nq, nk, heads, dim, dtype=torch.float32):
    gen = torch.Generator().manual_seed(nq * 7 + nk)
    q = torch.randn(batch, nq, heads * dim, generator=gen)
    k = torch.randn(batch, nk, heads * dim, generator=gen)
    v = torch.randn(batch, nk, heads * dim, generator=gen)
    return q.to(dtype), k.to(dtype), v.to(dtype)


def reference(q, k, v, heads):
    """Textbook attention in float64: softmax(Q K^T / sqrt(d)) V per head."""
    b, nq, inner = q.shape
    d = inner // heads

    def split(t):
        return t.double().reshape(b, t.shape[1], heads, d).transpose(1, 2)

    weights = torch.softmax(split(q) @ split(k).transpose(-1, -2) / d**0.5, dim=-1)
    return (weights @ split(v)).transpose(1, 2).reshape(b, nq, inner)


def close(a, b, tol=1e-5):
    return (a.double() - b.double()).abs().max().item() <= tol * max(1.0, b.abs().max().item())


@pytest.mark.parametrize("shape", SHAPES)
def test_sdp_is_textbook_attention(shape):
    q, k, v = qkv(*shape)
    assert close(attn.sdp_attention(q, k, v, shape[3]), reference(q, k, v, shape[3]))


@pytest.mark.parametrize("name", ["sdp-no-mem", "Doggettx", "V1", "sub-quadratic", "InvokeAI", "None"])
@pytest.mark.parametrize("shape", SHAPES)
def test_registered_backends_match_sdp(name, shape):
    q, k, v = qkv(*shape)
    expected = attn.sdp_attention(q, k, v, shape[3])
    assert close(attn.get_backend(name).fn(q, k, v, shape[3]), expected)


@pytest.mark.parametrize("shape", SHAPES)
def test_chunked_paths_match_sdp(shape):
    """Force the slicing/chunking that large images trigger: uneven query slices, key chunks that do not divide
    the key count, several head groups."""
    q, k, v = qkv(*shape)
    heads = shape[3]
    expected = attn.sdp_attention(q, k, v, heads)
    assert close(attn.split_attention(q, k, v, heads, slice_size=7), expected)
    assert close(attn.split_attention_v1(q, k, v, heads, group_size=3), expected)
    for q_chunk, kv_chunk in [(32, 10), (1000, 7), (150, 1), (64, 512)]:
        got = attn.sub_quadratic_attention(q, k, v, heads, q_chunk_size=q_chunk, kv_chunk_size=kv_chunk)
        assert close(got, expected), (q_chunk, kv_chunk)
    configured = attn.make_sub_quadratic_attention(q_chunk_size=16, kv_chunk_size=9, chunk_threshold_percent=0)
    assert close(configured(q, k, v, heads), expected)


def test_sub_quadratic_is_stable_with_large_logits():
    q, k, v = qkv(1, 40, 50, 2, 8)
    q, k = q * 30, k * 30  # logits in the thousands: exp() overflows without the running maximum
    got = attn.sub_quadratic_attention(q, k, v, 2, q_chunk_size=16, kv_chunk_size=6)
    assert torch.isfinite(got).all()
    assert close(got, reference(q, k, v, 2), tol=1e-4)


def test_half_precision_chunked_attention_is_close():
    q, k, v = qkv(1, 64, 70, 2, 32, dtype=torch.bfloat16)
    expected = reference(q, k, v, 2)
    got = attn.sub_quadratic_attention(q, k, v, 2, q_chunk_size=16, kv_chunk_size=20)
    assert got.dtype == torch.bfloat16
    assert close(got, expected, tol=3e-2)


def test_split_attention_estimates_slices_from_free_memory(monkeypatch):
    q, k, v = qkv(1, 64, 64, 2, 8)
    monkeypatch.setattr(attn, "free_memory_bytes", lambda device: 10_000)  # forces 8+ slices
    assert close(attn.split_attention(q, k, v, 2), attn.sdp_attention(q, k, v, 2))
    monkeypatch.setattr(attn, "free_memory_bytes", lambda device: 10)
    with pytest.raises(RuntimeError, match="not enough memory"):
        attn.split_attention(q, k, v, 2)


@pytest.mark.skipif(not attn.get_backend("xformers").is_available(), reason="xformers with CUDA not available")
def test_xformers_matches_sdp():
    q, k, v = (t.cuda().half() for t in qkv(2, 96, 77, 2, 64))
    assert close(attn.xformers_attention(q, k, v, 2).float().cpu(), attn.sdp_attention(q, k, v, 2).float().cpu(),
                 tol=2e-3)


def test_selection_rules(caplog):
    assert attn.select_backend("Automatic").name == "sdp"
    assert attn.select_backend(None).name == "sdp"
    assert attn.select_backend("sub-quadratic").name == "sub-quadratic"
    assert attn.select_backend("Automatic", preferred="Doggettx").name == "Doggettx"
    assert attn.select_backend("V1", preferred="Doggettx").name == "V1"  # an explicit setting beats the flag
    assert attn.get_backend("split-v1").name == "V1" and attn.get_backend("SDP").name == "sdp"
    with pytest.raises(KeyError, match="known backends"):
        attn.get_backend("flash-magic")
    with caplog.at_level(logging.WARNING):
        assert attn.select_backend("flash-magic").name == "sdp"
    assert "unknown attention backend 'flash-magic'" in caplog.text


def test_xformers_flag_without_xformers_falls_back_to_sdp_with_a_warning(caplog, monkeypatch):
    xformers = attn.get_backend("xformers")
    monkeypatch.setitem(attn._REGISTRY, "xformers",
                        attn.AttentionBackend(**{**xformers.__dict__, "is_available": lambda: False}))
    preferred = attn.preferred_backend_from_flags({"xformers": True})
    assert preferred == "xformers"
    with caplog.at_level(logging.WARNING):
        assert attn.select_backend("Automatic", preferred=preferred).name == "sdp"
    assert "'xformers' is not available" in caplog.text
    assert attn.preferred_backend_from_flags({"opt_sub_quad_attention": True}) == "sub-quadratic"
    assert attn.preferred_backend_from_flags({}) is None


def test_registry_accepts_extension_backends_and_set_backend_walks_modules():
    calls = []

    def counting(q, k, v, heads):
        calls.append(heads)
        return attn.sdp_attention(q, k, v, heads)

    backend = attn.AttentionBackend("test-counting", "counting", counting, priority=-1)
    attn.register_backend(backend)
    try:
        with pytest.raises(ValueError, match="already registered"):
            attn.register_backend(backend)
        model = torch.nn.Sequential(CrossAttention(32, 2, 16, context_dim=24), AttnBlock(32))
        assert attn.set_attention_backend(model, "test-counting") is backend
        model[0](torch.randn(1, 5, 32), torch.randn(1, 3, 24))
        model[1](torch.randn(1, 32, 4, 4))
        assert calls == [2, 1]
        assert attn.list_backends()[-1].name == "test-counting"
    finally:
        attn._REGISTRY.pop("test-counting")


@pytest.mark.parametrize("max_bytes", [10**9, 20_000, 3_000])
def test_invokeai_slices_match_sdp(max_bytes):
    q, k, v = qkv(*SHAPES[0])  # 2x2 heads of 96x77 scores: whole, sliced over batch·heads, sliced over queries
    assert close(attn.invokeai_attention(q, k, v, 2, max_bytes=max_bytes), attn.sdp_attention(q, k, v, 2))


def test_invokeai_flag_and_sub_quad_flags_configure_the_backends(monkeypatch):
    assert attn.preferred_backend_from_flags({"opt_split_attention_invokeai": True}) == "InvokeAI"
    seen = {}

    def fake(q, k, v, heads, **kw):
        seen.update(kw)
        return q

    monkeypatch.setattr(attn, "sub_quadratic_attention", fake)
    original = attn.get_backend("sub-quadratic")
    try:
        attn.configure_backends({"sub_quad_q_chunk_size": 256, "sub_quad_kv_chunk_size": 64,
                                 "sub_quad_chunk_threshold": 0})
        q, k, v = qkv(*SHAPES[0])
        attn.get_backend("sub-quadratic").fn(q, k, v, 2)
    finally:
        attn.register_backend(original, replace=True)
    assert seen["q_chunk_size"] == 256 and seen["kv_chunk_size"] == 64 and seen["chunk_threshold_bytes"] is None


def test_upcast_attn_computes_half_inputs_in_float32():
    seen = []

    def backend_fn(q, k, v, heads):
        seen.append(q.dtype)
        return attn.sdp_attention(q, k, v, heads)

    flag = {"on": False}
    wrapped = attn.upcast_when(backend_fn, lambda: flag["on"])
    q, k, v = qkv(*SHAPES[0], dtype=torch.bfloat16)
    assert wrapped(q, k, v, 2).dtype == torch.bfloat16 and seen == [torch.bfloat16]
    flag["on"] = True
    assert wrapped(q, k, v, 2).dtype == torch.bfloat16 and seen[-1] == torch.float32
    selector = attn.AttentionSelector(None, lambda: "sdp", upcast=lambda: True)
    layer = CrossAttention(64, heads=2, dim_head=32)
    selector.apply(layer)
    assert layer.attention_fn is not attn.sdp_attention and selector.current().name == "sdp"
