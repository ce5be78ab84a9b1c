"""Canonical weights and inputs, generated in float64 and rounded to a dtype.

Weights are independent per role (never tied: tied or symmetric weights hide
swapped projections), N(0, 1/fan_in), with queries and keys scaled up so the
attention is far from uniform (uniform attention hides scale and mask bugs).
"""

import numpy as np
import torch

from .candidate import DTYPES
from .memo import remembered


def round_to(array, dtype):
    """The float64 values `array` takes after a round trip through `dtype`."""
    if dtype == "float64":
        return np.asarray(array, dtype=np.float64)
    if dtype == "float32":  # IEEE round-to-nearest, exactly as torch converts (checked in the tests)
        return np.asarray(array, dtype=np.float64).astype(dtype).astype(np.float64)
    t = torch.tensor(np.asarray(array, dtype=np.float64), dtype=DTYPES[dtype])
    return t.to(torch.float64).numpy()


def canonical_weights(cfg, rng, dtype="float32", sharpness=2.0):
    """A dict of canonical weights for `cfg` (see attnspec.adapter), already dtype-rounded."""
    if cfg.kind == "simplified_self_attention":
        return {}
    width = cfg.projection_width
    w = {}
    for role, gain in (("query", sharpness), ("key", sharpness), ("value", 1.0)):
        w[f"W_{role}"] = rng.standard_normal((width, cfg.d_in)) * gain / np.sqrt(cfg.d_in)
        if cfg.qkv_bias:
            w[f"b_{role}"] = rng.standard_normal(width) * 0.5
    if cfg.kind == "MultiHeadAttention":
        w["W_out"] = rng.standard_normal((cfg.d_out, cfg.d_out)) / np.sqrt(cfg.d_out)
        w["b_out"] = rng.standard_normal(cfg.d_out) * 0.5
    return round_to_all(w, dtype)


def inputs(shape, rng, dtype="float32", scale=1.0):
    return round_to(rng.standard_normal(shape) * scale, dtype)


@remembered
def oracle_output(cfg, weights, x, keep=None):
    """The float64 oracle for any kind, from canonical weights."""
    from attnspec.reference import oracle

    if cfg.kind == "simplified_self_attention":
        return oracle.simplified_attention(x)
    return oracle.attention(
        x,
        weights["W_query"],
        weights["W_key"],
        weights["W_value"],
        weights.get("b_query"),
        weights.get("b_key"),
        weights.get("b_value"),
        weights.get("W_out"),
        weights.get("b_out"),
        num_heads=cfg.heads,
        causal=cfg.causal,
        keep=keep,
        dropout=cfg.dropout,
    )


def zero_query_weights(cfg, rng, dtype="float32"):
    """Canonical weights with W_query = W_key = 0 (and no query/key bias).

    Every score is then zero, so each query spreads its weight uniformly over
    the keys it may see, whatever the scaling: the output at position i is the
    mean of the value vectors of tokens 0..i (then out_proj).  The probe
    isolates masking and normalisation from everything else.
    """
    w = canonical_weights(cfg, rng, "float64")
    w["W_query"] = np.zeros_like(w["W_query"])
    w["W_key"] = np.zeros_like(w["W_key"])
    if cfg.qkv_bias:
        w["b_query"] = np.zeros_like(w["b_query"])
        w["b_key"] = np.zeros_like(w["b_key"])
    return round_to_all(w, dtype)


def round_to_all(ws, dtype):
    return {k: round_to(v, dtype) for k, v in ws.items()}
