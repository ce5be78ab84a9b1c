"""An independent float64 statement of chapter 3's attention, in NumPy.

Written from the mathematics, not ported from the torch classes: each query
sums over exactly the keys it may see (no -inf masking), heads are explicit
column slices, and the softmax is taken over those keys only.  The suite
trusts this file, so it stays small enough to check by hand.

Weights follow the `nn.Linear` convention: a projection matrix has shape
(out_features, in_features) and is applied as x @ W.T + b.  Head h owns rows
h*head_dim:(h+1)*head_dim of the query, key and value matrices.
"""

import math

import numpy as np


def softmax(scores):
    """Softmax over the last axis, shifted by the maximum for stability."""
    shifted = scores - scores.max(axis=-1, keepdims=True)
    e = np.exp(shifted)
    return e / e.sum(axis=-1, keepdims=True)


def simplified_attention(x):
    """Section 3.3: scores x x^T (no scaling), row softmax, weights @ x.  x: (T, d)."""
    x = np.asarray(x, dtype=np.float64)
    out = np.empty_like(x)
    for i in range(x.shape[0]):
        weights = softmax(x @ x[i])
        out[i] = weights @ x
    return out


def attention(
    x,
    W_query,
    W_key,
    W_value,
    b_query=None,
    b_key=None,
    b_value=None,
    W_out=None,
    b_out=None,
    *,
    num_heads=1,
    causal=True,
    keep=None,
    dropout=0.0,
):
    """Scaled dot-product attention over x of shape (b, T, d_in) or (T, d_in).

    `keep`, when given, is a 0/1 array of shape (b, num_heads, T, T) that says
    which attention weights dropout kept; kept weights are scaled by 1/(1-p).
    Returns an array of shape (b, T, d_out) (or (T, d_out) for 2-D input).
    """
    x = np.asarray(x, dtype=np.float64)
    unbatched = x.ndim == 2
    if unbatched:
        x = x[None]
    batch, T, _ = x.shape

    def project(W, b):
        y = x @ np.asarray(W, np.float64).T
        return y if b is None else y + np.asarray(b, np.float64)

    q, k, v = project(W_query, b_query), project(W_key, b_key), project(W_value, b_value)
    width = q.shape[-1]
    head_dim = width // num_heads
    scale = 1.0 / math.sqrt(head_dim)
    # (batch, T, heads, head_dim): head h is the column slice h*head_dim:(h+1)*head_dim
    q, k, v = (t.reshape(batch, T, num_heads, head_dim) for t in (q, k, v))
    context = np.zeros((batch, T, num_heads, head_dim))
    for i in range(T):
        visible = i + 1 if causal else T
        scores = np.einsum("bhd,bjhd->bhj", q[:, i], k[:, :visible]) * scale
        weights = softmax(scores)
        if keep is not None:
            weights = weights * keep[:, :, i, :visible] / (1.0 - dropout)
        context[:, i] = np.einsum("bhj,bjhd->bhd", weights, v[:, :visible])
    context = context.reshape(batch, T, width)
    if W_out is not None:
        context = context @ np.asarray(W_out, np.float64).T + np.asarray(b_out, np.float64)
    return context[0] if unbatched else context


def attention_weights(x, W_query, W_key, b_query=None, b_key=None, *, num_heads=1, causal=True):
    """The attention weights `attention` uses, shape (b, num_heads, T, T); 0 where a key is hidden.

    Row i of head h is the softmax over keys 0..i (all keys when not causal)
    of q_i . k_j / sqrt(head_dim), exactly as in `attention`.
    """
    x = np.asarray(x, dtype=np.float64)
    if x.ndim == 2:
        x = x[None]
    batch, T, _ = x.shape
    q = x @ np.asarray(W_query, np.float64).T + (0.0 if b_query is None else np.asarray(b_query, np.float64))
    k = x @ np.asarray(W_key, np.float64).T + (0.0 if b_key is None else np.asarray(b_key, np.float64))
    head_dim = q.shape[-1] // num_heads
    q, k = (t.reshape(batch, T, num_heads, head_dim) for t in (q, k))
    weights = np.zeros((batch, num_heads, T, T))
    for i in range(T):
        visible = i + 1 if causal else T
        scores = np.einsum("bhd,bjhd->bhj", q[:, i], k[:, :visible]) / math.sqrt(head_dim)
        weights[:, :, i, :visible] = softmax(scores)
    return weights


def parameter_count(kind, d_in, d_out, num_heads=1, qkv_bias=False):
    """Trainable parameters of the book's class `kind` (clauses PARAM-1 to PARAM-4)."""
    projections = 3 * d_in * d_out + (3 * d_out if qkv_bias else 0)
    if kind == "SelfAttention_v1":
        return 3 * d_in * d_out
    if kind in ("SelfAttention_v2", "CausalAttention"):
        return projections
    if kind == "MultiHeadAttentionWrapper":
        return num_heads * projections
    if kind == "MultiHeadAttention":
        return projections + d_out * d_out + d_out
    if kind == "simplified_self_attention":
        return 0
    raise ValueError(f"unknown kind {kind!r}")
