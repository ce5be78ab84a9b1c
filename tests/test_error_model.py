"""The error model (NUM-1, NUM-4) is sound on every machine and still sees bugs.

Soundness: the book's algorithm, computed in torch in any order of summation
the emulations produce (plain, reversed, blocked, float64-accumulated, last-bit
noise), stays within the rounding bound E of the float64 oracle, element-wise,
in float32, float64 and bfloat16.  Sharpness: the classic mistakes exceed E by
orders of magnitude wherever they change the output at all.
"""

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from attnspec import diagnosis, tolerance, weights
from attnspec.baseline import plain_attention
from attnspec.config import Config
from attnspec.emulation import ORDERS, _LowerSDPA, _Reordered, ulp_noise
from attnspec.strategies import cases

KINDS = ("SelfAttention_v2", "CausalAttention", "MultiHeadAttentionWrapper", "MultiHeadAttention", "simplified_self_attention")
DTYPES = ("float32", "float64", "bfloat16")


def _example(case, dtype):
    w = weights.canonical_weights(case.cfg, case.rng(1000), dtype)
    x = weights.inputs(case.input_shape, case.rng(0), dtype, case.scale)
    return w, x


def _in_order(cfg, w, x, dtype, order, prescale):
    if order == "plain":
        return plain_attention(cfg, w, x, dtype, prescale)
    with _LowerSDPA(), _Reordered(order):
        return plain_attention(cfg, w, x, dtype, prescale)


@settings(max_examples=40, deadline=None, database=None, derandomize=True)
@given(data=st.data(), kind=st.sampled_from(KINDS), dtype=st.sampled_from(DTYPES))
def test_every_order_of_summation_stays_within_the_bound(data, kind, dtype):
    case = data.draw(cases(kind, scales=(1.0, 3.0, 10.0)))
    w, x = _example(case, dtype)
    golden = weights.oracle_output(case.cfg, w, x)
    bound = tolerance.rounding_bound(case.cfg, w, x, dtype)
    for order in ("plain",) + ORDERS:
        for prescale in (False, True):
            y = _in_order(case.cfg, w, x, dtype, order, prescale)
            ratio = np.max(np.abs(y - golden) / bound)
            assert ratio <= 1.0, f"{order}, prescale={prescale}: error {ratio:.3g} x E on {case.describe()}"


@settings(max_examples=20, deadline=None, database=None, derandomize=True)
@given(data=st.data(), dtype=st.sampled_from(DTYPES))
def test_last_bit_noise_stays_within_the_bound(data, dtype):
    case = data.draw(cases("MultiHeadAttention", scales=(1.0, 3.0)))
    w, x = _example(case, dtype)
    golden = weights.oracle_output(case.cfg, w, x)
    y = plain_attention(case.cfg, w, x, dtype)
    noisy = torch.tensor(y, dtype=getattr(torch, dtype))
    noisy = (noisy + ulp_noise(noisy)).to(torch.float64).numpy()
    assert np.all(np.abs(noisy - golden) <= tolerance.rounding_bound(case.cfg, w, x, dtype))


def test_the_bound_follows_the_terms_summed_not_the_result():
    """Large products that cancel: the result is small, the bound is not (revision 1 of NUM-4 failed here)."""
    cfg = Config("SelfAttention_v2", d_in=4, d_out=2)
    rng = np.random.default_rng(0)
    w = weights.canonical_weights(cfg, rng, "float32")
    w["W_value"] = weights.round_to(np.array([[1e3, -1e3, 1e3, -1e3], [1.0, 1.0, 1.0, 1.0]]), "float32")
    x = weights.round_to(np.ones((3, 4)) + rng.standard_normal((3, 4)) * 1e-4, "float32")
    golden = weights.oracle_output(cfg, w, x)
    bound = tolerance.rounding_bound(cfg, w, x, "float32")
    terms = np.abs(x) @ np.abs(w["W_value"]).T  # what the value projection adds up
    revision_1 = 16 * tolerance.eps("float32") * max(1.0, np.abs(golden).max())
    assert np.abs(golden[:, 0]).max() < 1.0 < terms[:, 0].min()
    assert np.all(bound[:, 0] >= tolerance.eps("float32") * terms[:, 0])
    assert bound[:, 0].min() > 10 * revision_1


MISTAKES = ("scale:d_out", "scale:none", "mask:none", "split:no_transpose", "merge:no_transpose", "qk:swapped", "heads:reversed", "out:no_bias")


@settings(max_examples=30, deadline=None, database=None, derandomize=True)
@given(data=st.data(), mistake=st.sampled_from(MISTAKES))
def test_mistakes_exceed_the_bound_by_orders_of_magnitude(data, mistake):
    case = data.draw(cases("MultiHeadAttention", max_heads=4))
    w, x = _example(case, "float32")
    golden = weights.oracle_output(case.cfg, w, x)
    alt = diagnosis.mistaken_attention(case.cfg, w, x, mistake)
    change = np.abs(alt - golden)
    if change.max() <= 1e-3 * max(1.0, np.abs(golden).max()):
        return  # this example hardly shows the mistake (one head, head_dim 1, near-uniform attention, ...)
    bound = tolerance.rounding_bound(case.cfg, w, x, "float32")
    assert np.max(change / bound) > 10, f"{mistake} is within 10 x E on {case.describe()}"


@pytest.mark.parametrize("dtype", DTYPES)
def test_nan_and_inf_never_pass(dtype):
    cfg = Config("CausalAttention", d_in=3, d_out=2, context_length=4)
    rng = np.random.default_rng(1)
    w = weights.canonical_weights(cfg, rng, dtype)
    x = weights.inputs((1, 4, 3), rng, dtype)
    golden = weights.oracle_output(cfg, w, x)
    from attnspec.assertions import within

    bound = tolerance.rounding_bound(cfg, w, x, dtype)
    bad = golden.copy()
    bad[0, 1, 0] = np.nan
    assert not within(bad, golden, bound)
    bad[0, 1, 0] = np.inf
    assert not within(bad, golden, bound)
    assert within(golden, golden, bound)
