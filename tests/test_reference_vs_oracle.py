"""The torch reference, the masking variants and the diagnosis code all equal the float64 oracle."""

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from attnspec import strategies
from attnspec.adapter import BookAdapter
from attnspec.config import KINDS
from attnspec.diagnosis import mistaken_attention
from attnspec.reference import masking, oracle
from attnspec import reference
from attnspec.context import reference_candidate
from attnspec.weights import canonical_weights, inputs, oracle_output

SETTINGS = settings(max_examples=40, deadline=None, database=None, derandomize=True)


@pytest.mark.parametrize("kind", KINDS)
@SETTINGS
@given(data=st.data())
def test_reference_equals_oracle_in_float64(kind, data):
    case = data.draw(strategies.cases(kind, dtype="float64"))
    cand = reference_candidate(kind)
    handle = cand.build(case.cfg, dtype="float64")
    w = canonical_weights(case.cfg, case.rng(1), "float64")
    cand.load(handle, w)
    x = inputs(case.input_shape, case.rng(2), "float64", case.scale)
    y = cand.forward(handle, x).y
    np.testing.assert_allclose(y, oracle_output(case.cfg, w, x), rtol=0, atol=1e-12)


@pytest.mark.parametrize("kind", KINDS)
@SETTINGS
@given(data=st.data())
def test_the_diagnosis_code_without_a_mistake_is_the_oracle(kind, data):
    case = data.draw(strategies.cases(kind, dtype="float64"))
    w = canonical_weights(case.cfg, case.rng(1), "float64")
    x = inputs(case.input_shape, case.rng(2), "float64", case.scale)
    np.testing.assert_allclose(mistaken_attention(case.cfg, w, x), oracle_output(case.cfg, w, x), rtol=0, atol=1e-12)


@SETTINGS
@given(T=st.integers(1, 9), d=st.integers(1, 6), seed=st.integers(0, 1000))
def test_every_masking_method_gives_the_oracle_weights(T, d, seed):
    """CAUSAL-4: -inf before softmax, renormalise after, bool mask, additive mask, SDPA is_causal."""
    rng = np.random.default_rng(seed)
    q, k, v = (torch.from_numpy(rng.standard_normal((2, T, d)) * 2) for _ in range(3))
    scores = q @ k.transpose(1, 2)
    expected = []  # the oracle's rule: softmax over exactly the keys 0..i of each query i
    for b in range(2):
        w_rows = []
        for i in range(T):
            s = (q[b, i].numpy() @ k[b, : i + 1].numpy().T) / np.sqrt(d)
            w_rows.append(np.pad(oracle.softmax(s), (0, T - i - 1)))
        expected.append(np.array(w_rows))
    expected = np.array(expected)
    for name, method in masking.WEIGHT_METHODS.items():
        np.testing.assert_allclose(method(scores, d).numpy(), expected, atol=1e-12, err_msg=name)
    np.testing.assert_allclose(masking.sdpa_is_causal(q, k, v).numpy(), expected @ v.numpy(), atol=1e-12)


def test_oracle_simplified_matches_the_book_number():
    x = np.array([[0.43, 0.15, 0.89], [0.55, 0.87, 0.66], [0.57, 0.85, 0.64], [0.22, 0.58, 0.33], [0.77, 0.25, 0.10], [0.05, 0.80, 0.55]])
    np.testing.assert_allclose(oracle.simplified_attention(x)[1], [0.4419, 0.6515, 0.5683], atol=5e-5)


@pytest.mark.parametrize("kind", [k for k in KINDS if k != "simplified_self_attention"])
@settings(max_examples=25, deadline=None, database=None, derandomize=True)
@given(data=st.data())
def test_parameter_counts_of_the_reference_follow_the_formulas(kind, data):
    cfg = data.draw(strategies.configs(kind, max_context=6))
    module = getattr(reference, kind)
    from attnspec.formulas import book_parameter_count

    built = BookAdapter(module, kind).build(cfg)
    assert sum(p.numel() for p in built.parameters()) == book_parameter_count(cfg) == oracle.parameter_count(kind, cfg.d_in, cfg.d_out, cfg.num_heads, cfg.qkv_bias)


@pytest.mark.parametrize("dtype", ["float32", "float16", "bfloat16"])
def test_rounding_to_a_dtype_matches_torchs_conversion(dtype):
    """The suite rounds weights and inputs exactly as the candidate's torch.from_numpy(x).to(dtype) does."""
    from attnspec.candidate import DTYPES
    from attnspec.weights import round_to

    a = np.random.default_rng(0).standard_normal(50_000) * 300
    expected = torch.from_numpy(a).to(DTYPES[dtype]).to(torch.float64).numpy()
    assert np.array_equal(round_to(a, dtype), expected)
