"""Hypothesis strategies for attention configurations and inputs.

Public and reusable: `configs(kind)` draws constructor arguments, `cases(kind)`
draws a configuration together with a batch size, a sequence length and an
input seed.  The defaults reach the corners where bugs hide: one head and
several, batch 1 and more, d_in != d_out, num_tokens from 1 to
context_length (and below it), head_dim 1, large-magnitude inputs.  Inputs
are drawn as a seed and a scale, not element by element, so shrinking
minimises the shapes and the counterexample stays small and replayable.

Arguments are validated once, with an error that says how to fix the call.
"""

import dataclasses
from dataclasses import dataclass

import numpy as np
from hypothesis import strategies as st
from hypothesis.errors import InvalidArgument

from .config import KINDS, MULTIHEAD_KINDS, UNBATCHED_KINDS, Config

__all__ = ["Case", "configs", "cases"]


@dataclass(frozen=True)
class Case:
    """One generated example: a configuration, input sizes, and the seed of its values."""

    cfg: Config
    batch: int
    num_tokens: int
    seed: int
    scale: float = 1.0
    dtype: str = "float32"

    @property
    def input_shape(self):
        if self.cfg.batched:
            return (self.batch, self.num_tokens, self.cfg.d_in)
        return (self.num_tokens, self.cfg.d_in)

    def with_(self, **changes):
        return dataclasses.replace(self, **changes)

    def rng(self, salt=0):
        return np.random.default_rng([self.seed, salt])

    def describe(self):
        """A plain dict for reports: everything needed to replay the example."""
        return {
            "call": self.cfg.constructor_call(),
            "config": self.cfg.as_dict(),
            "input_shape": list(self.input_shape),
            "batch": self.batch,
            "num_tokens": self.num_tokens,
            "seed": self.seed,
            "scale": self.scale,
            "dtype": self.dtype,
        }


def _check_range(name, value, low=1):
    if not isinstance(value, int) or isinstance(value, bool) or value < low:
        raise InvalidArgument(f"{name}={value!r} must be an integer >= {low}")


def _check_kind(kind):
    if kind not in KINDS:
        raise InvalidArgument(f"kind={kind!r} is not a chapter-3 class; use one of {', '.join(KINDS)}")


def _check_choices(name, values, allowed):
    values = tuple(values)
    if not values or any(v not in allowed for v in values):
        raise InvalidArgument(f"{name}={values!r} must be a non-empty selection of {allowed!r}")
    return values


def configs(
    kind,
    *,
    max_heads=4,
    max_head_dim=8,
    max_d_in=12,
    max_context=10,
    square_only=False,
    qkv_bias=(False, True),
    dropout=(0.0,),
    min_tokens_slack=0,
):
    """Constructor arguments for `kind`.

    max_heads, max_head_dim   bounds for num_heads and the per-head size
    max_d_in                  bound for d_in (drawn independently of d_out)
    max_context               bound for context_length
    square_only               force d_in == d_out (nn.MultiheadAttention, GPT-2 layouts)
    qkv_bias, dropout         the values to choose from
    """
    options = _validated(kind, max_heads, max_head_dim, max_d_in, max_context, square_only, qkv_bias, dropout)
    return st.tuples(*_config_parts(kind, **options, slack=min_tokens_slack)).map(lambda parts: _config(kind, square_only, *parts))


def _validated(kind, max_heads, max_head_dim, max_d_in, max_context, square_only, qkv_bias, dropout):
    """The configuration options, checked once, as keyword arguments for `_config_parts`."""
    _check_kind(kind)
    for name, value in (("max_heads", max_heads), ("max_head_dim", max_head_dim), ("max_d_in", max_d_in), ("max_context", max_context)):
        _check_range(name, value)
    qkv_bias = _check_choices("qkv_bias", qkv_bias, (False, True))
    dropout = tuple(dropout)
    if not dropout or any(not (0.0 <= p < 1.0) for p in dropout):
        raise InvalidArgument(f"dropout={dropout!r} must hold probabilities in [0, 1)")
    return dict(max_heads=max_heads, max_head_dim=max_head_dim, max_d_in=max_d_in, max_context=max_context,
                square_only=square_only, qkv_bias=qkv_bias, dropout=dropout)


def _config_parts(kind, *, max_heads, max_head_dim, max_d_in, max_context, square_only, qkv_bias, dropout, slack):
    """One prebuilt strategy per constructor argument, drawn together as a tuple.

    A flat tuple costs hypothesis a fraction of nested composite draws, and
    shrinks each argument on its own just the same.  An argument the kind
    does not take is `just` its default, which costs no draw.
    """
    return (
        st.integers(1, max_heads) if kind in MULTIHEAD_KINDS else st.just(1),
        st.integers(1, max_head_dim),
        st.just(None) if kind == "simplified_self_attention" or square_only else st.integers(1, max_d_in),
        st.integers(1 + slack, max_context + slack) if max_context > 1 else st.just(1 + slack),
        st.sampled_from(dropout),
        st.sampled_from(qkv_bias) if kind not in ("SelfAttention_v1", "simplified_self_attention") else st.just(False),
    )


def _config(kind, square_only, heads, head_dim, d_in, context, dropout, qkv_bias):
    d_out = heads * head_dim if kind == "MultiHeadAttention" else head_dim
    if kind == "simplified_self_attention":
        d_in = d_out = head_dim  # one size: the input is the output
    elif square_only:
        d_in = d_out
    return Config(kind=kind, d_in=d_in, d_out=d_out, context_length=context, dropout=dropout, num_heads=heads, qkv_bias=qkv_bias)


def cases(
    kind,
    *,
    max_batch=3,
    scales=(1.0, 3.0),
    dtype="float32",
    min_tokens=1,
    full_length=False,
    **config_options,
):
    """A configuration plus batch size, num_tokens <= context_length, and an input seed.

    num_tokens is drawn first and context_length = num_tokens + slack, with
    slack shrinking to 0, so both num_tokens < context_length and
    num_tokens == context_length are reached and counterexamples stay short.
    `full_length=True` pins num_tokens to context_length.
    """
    _check_range("max_batch", max_batch)
    _check_range("min_tokens", min_tokens)
    scales = tuple(scales)
    if not scales or any(not (s > 0) for s in scales):
        raise InvalidArgument(f"scales={scales!r} must be positive numbers")
    max_context = config_options.pop("max_context", 10)
    if min_tokens > max_context:
        raise InvalidArgument(f"min_tokens={min_tokens} exceeds max_context={max_context}")
    defaults = dict(max_heads=4, max_head_dim=8, max_d_in=12, square_only=False, qkv_bias=(False, True), dropout=(0.0,))
    unknown = set(config_options) - set(defaults)
    if unknown:
        raise InvalidArgument(f"cases() got unknown options {sorted(unknown)}; it takes those of configs() and {', '.join(('max_batch', 'scales', 'dtype', 'min_tokens', 'full_length'))}")
    options = _validated(kind, max_context=max_context, **(defaults | {k: v for k, v in config_options.items() if k in defaults}))
    square_only = options["square_only"]
    # context_length is num_tokens + slack below; the configuration's own is a placeholder
    parts = _config_parts(kind, **(options | {"max_context": 1}), slack=0)
    sizes = (
        st.integers(min_tokens, max_context),  # num_tokens
        st.just(0) if full_length else st.integers(0, 3),  # context_length - num_tokens
        st.integers(1, max_batch) if kind not in UNBATCHED_KINDS else st.just(1),
        st.integers(0, 2**16),  # the input seed
        st.sampled_from(scales),
    )

    def case(values):
        cfg = _config(kind, square_only, *values[: len(parts)])
        num_tokens, slack, batch, seed, scale = values[len(parts):]
        if cfg.batched:
            cfg = cfg.with_(context_length=num_tokens + slack)
        return Case(cfg=cfg, batch=batch, num_tokens=num_tokens, seed=seed, scale=scale, dtype=dtype)

    return st.tuples(*parts, *sizes).map(case)

