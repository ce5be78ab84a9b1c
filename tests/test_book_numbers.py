"""The reference reproduces the numbers printed in chapter 3 (to 4 decimals)."""

import pytest
import torch

from attnspec.formulas import GPT2_SMALL_PARAMETERS
from attnspec.reference import (
    CausalAttention,
    MultiHeadAttention,
    MultiHeadAttentionWrapper,
    SelfAttention_v1,
    simplified_self_attention,
)

INPUTS = torch.tensor(
    [[0.43, 0.15, 0.89], [0.55, 0.87, 0.66], [0.57, 0.85, 0.64], [0.22, 0.58, 0.33], [0.77, 0.25, 0.10], [0.05, 0.80, 0.55]]
)
BATCH = torch.stack((INPUTS, INPUTS), dim=0)


def close(actual, expected):
    return torch.allclose(actual, torch.tensor(expected), atol=5e-5)


def test_simplified_attention_context_of_the_second_token():
    assert close(simplified_self_attention(INPUTS)[1], [0.4419, 0.6515, 0.5683])


def test_self_attention_v1_rows():
    torch.manual_seed(123)
    out = SelfAttention_v1(3, 2)(INPUTS)
    assert close(out[1], [0.3061, 0.8210])
    assert close(out[0], [0.2996, 0.8053])


def test_causal_attention_first_row():
    torch.manual_seed(123)
    out = CausalAttention(3, 2, 6, 0.0)(BATCH)
    assert out.shape == (2, 6, 2)
    assert close(out[0, 0], [-0.4519, 0.2216])


def test_multihead_attention_first_and_last_rows():
    torch.manual_seed(123)
    out = MultiHeadAttention(3, 2, 6, 0.0, num_heads=2)(BATCH)
    assert out.shape == (2, 6, 2)
    assert close(out[0, 0], [0.3190, 0.4858])
    assert close(out[0, -1], [0.2575, 0.4028])


def test_wrapper_shape_and_first_row():
    torch.manual_seed(123)
    out = MultiHeadAttentionWrapper(3, 2, 6, 0.0, num_heads=2)(BATCH)
    assert out.shape == (2, 6, 4)
    assert close(out[0, 0], [-0.4519, 0.2216, 0.4772, 0.1063])


@pytest.mark.parametrize("qkv_bias", [False, True])
def test_gpt2_small_parameter_count(qkv_bias):
    mha = MultiHeadAttention(768, 768, 1024, 0.0, num_heads=12, qkv_bias=qkv_bias)
    assert sum(p.numel() for p in mha.parameters()) == GPT2_SMALL_PARAMETERS[qkv_bias]
    assert GPT2_SMALL_PARAMETERS == {False: 2_360_064, True: 2_362_368}
