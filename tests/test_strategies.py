"""The public strategies reach the corners where bugs hide, and reject bad arguments clearly."""

import pytest
from hypothesis import find, settings
from hypothesis.errors import InvalidArgument, NoSuchExample

from attnspec import strategies

FIND = settings(database=None, max_examples=2000)


@pytest.mark.parametrize(
    "condition",
    [
        lambda c: c.cfg.num_heads == 1,
        lambda c: c.cfg.num_heads > 1,
        lambda c: c.batch == 1,
        lambda c: c.batch > 1,
        lambda c: c.cfg.d_in != c.cfg.d_out,
        lambda c: c.cfg.d_in == c.cfg.d_out,
        lambda c: c.num_tokens == 1,
        lambda c: c.num_tokens < c.cfg.context_length,
        lambda c: c.num_tokens == c.cfg.context_length > 1,
        lambda c: c.cfg.head_dim == 1,
        lambda c: c.cfg.head_dim > 1 and c.cfg.head_dim != 4,
        lambda c: c.cfg.qkv_bias,
        lambda c: c.scale > 1,
    ],
    ids=["one head", "several heads", "batch 1", "batch > 1", "d_in != d_out", "d_in == d_out", "one token",
         "num_tokens < context_length", "num_tokens == context_length", "head_dim 1", "head_dim not 1 or 4", "qkv_bias", "large inputs"],
)
def test_multihead_cases_reach_every_corner(condition):
    found = find(strategies.cases("MultiHeadAttention"), condition, settings=FIND)
    assert condition(found)


def test_square_only_keeps_d_in_equal_to_d_out():
    find(strategies.configs("MultiHeadAttention", square_only=True), lambda c: c.num_heads > 1, settings=FIND)
    with pytest.raises(NoSuchExample):
        find(strategies.configs("MultiHeadAttention", square_only=True), lambda c: c.d_in != c.d_out, settings=settings(database=None, max_examples=300))


def test_unbatched_kinds_have_two_dimensional_inputs():
    case = find(strategies.cases("SelfAttention_v2"), lambda c: c.num_tokens > 2, settings=FIND)
    assert case.input_shape == (case.num_tokens, case.cfg.d_in)


@pytest.mark.parametrize(
    "call, words",
    [
        (lambda: strategies.configs("Attention"), "not a chapter-3 class"),
        (lambda: strategies.configs("MultiHeadAttention", max_heads=0), "max_heads=0 must be an integer >= 1"),
        (lambda: strategies.configs("MultiHeadAttention", dropout=(1.5,)), "probabilities in [0, 1)"),
        (lambda: strategies.configs("MultiHeadAttention", qkv_bias=()), "non-empty selection"),
        (lambda: strategies.cases("CausalAttention", scales=(0,)), "positive numbers"),
        (lambda: strategies.cases("CausalAttention", min_tokens=20), "exceeds max_context"),
    ],
)
def test_bad_arguments_say_how_to_fix_the_call(call, words):
    with pytest.raises(InvalidArgument, match=None) as info:
        call()
    assert words in str(info.value)
