"""The hardware emulations do what they claim: last bits move, results stay correct, gradients flow."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from attnspec import weights
from attnspec.adapter import BookAdapter
from attnspec.candidate import LocalCandidate
from attnspec.config import Config
from attnspec.emulation import EMULATIONS, ORDERS, Emulated, _LowerSDPA, _Reordered, emulate, sdpa_math, threads_for, ulp_noise
from attnspec.reference import MultiHeadAttention


def test_ulp_noise_is_a_few_ulps_and_a_function_of_position_and_shape():
    y = torch.randn(2, 5, 4) * 10
    noise = ulp_noise(y)
    spacing = torch.nextafter(y.abs(), torch.tensor(float("inf"))) - y.abs()
    assert torch.all(noise.abs() <= 2 * spacing)
    assert torch.count_nonzero(noise) > y.numel() // 2  # most elements move
    assert torch.equal(ulp_noise(y), noise)  # repeated calls agree
    prefix = ulp_noise(y[:, :3].contiguous())
    assert not torch.equal(prefix, noise[:, :3])  # another shape disagrees in the last bits
    one = ulp_noise(y[:1].contiguous())
    assert not torch.equal(one, noise[:1])  # so does another batch size
    rows = noise.reshape(10, 4)
    assert len({tuple(r.tolist()) for r in (rows / spacing.reshape(10, 4))}) > 1  # rows differ
    assert torch.equal(ulp_noise(torch.zeros(3)), torch.zeros(3))


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16, torch.float64])
def test_ulp_noise_keeps_the_dtype(dtype):
    y = torch.randn(3, 4).to(dtype)
    assert ulp_noise(y).dtype == dtype


@pytest.mark.parametrize("order", ORDERS)
def test_reordered_products_move_last_bits_only(order):
    torch.manual_seed(0)
    a, b = torch.randn(4, 8, 33), torch.randn(4, 33, 7)
    plain = a @ b
    with _Reordered(order):
        other = a @ b
        soft = torch.softmax(a, dim=-1)
        total = a.sum(-1)
    exact = (a.double() @ b.double())
    scale = (a.abs().double() @ b.abs().double()) * 33 * torch.finfo(torch.float32).eps
    assert torch.all((other.double() - exact).abs() <= scale)
    assert torch.allclose(soft, torch.softmax(a, dim=-1), rtol=1e-5, atol=1e-7)
    assert torch.allclose(total, a.sum(-1), rtol=1e-5, atol=1e-5)
    if order != "float64":
        assert not torch.equal(other, plain), "the emulation must actually change the order of summation"


def test_sdpa_is_lowered_to_its_math_form_with_the_same_mask():
    torch.manual_seed(1)
    q, k, v = (torch.randn(2, 3, 5, 4) for _ in range(3))
    for kwargs in ({"is_causal": True}, {"attn_mask": torch.ones(5, 5, dtype=torch.bool).tril()}, {"attn_mask": torch.zeros(5, 5)}, {"scale": 0.3}):
        fused = F.scaled_dot_product_attention(q, k, v, **kwargs)
        assert torch.allclose(sdpa_math(q, k, v, **kwargs), fused, atol=1e-6)
        with _LowerSDPA():
            assert torch.allclose(F.scaled_dot_product_attention(q, k, v, **kwargs), fused, atol=1e-6)


@pytest.mark.parametrize("how", EMULATIONS)
def test_an_emulated_candidate_still_computes_attention_and_its_gradient(how):
    cfg = Config("MultiHeadAttention", d_in=5, d_out=6, context_length=4, num_heads=2, qkv_bias=True)
    rng = np.random.default_rng(0)
    w = weights.canonical_weights(cfg, rng, "float32")
    x = weights.inputs((2, 4, 5), rng, "float32")
    cand = LocalCandidate(emulate(BookAdapter(MultiHeadAttention), how))
    h = cand.build(cfg)
    cand.load(h, w)
    y = cand.forward(h, x).y
    assert np.allclose(y, weights.oracle_output(cfg, w, x), atol=1e-5)
    back = cand.backward(h, x, np.ones_like(y))
    assert np.all(np.isfinite(back.grad_x)) and np.any(back.grad_x != 0)
    assert all(g is not None for g in back.param_grads.values())
    if how not in ("none", "threads"):
        assert isinstance(cand.adapter, Emulated) and cand.info["emulation"] == how


def test_threads_is_an_engine_setting():
    assert threads_for("threads") == 2 and threads_for("reversed") == 1
    adapter = BookAdapter(MultiHeadAttention)
    assert emulate(adapter, "threads") is adapter
    with pytest.raises(ValueError, match="unknown emulation"):
        Emulated(adapter, "quantum")
