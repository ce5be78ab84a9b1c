"""The spec's error model (NUM-1, NUM-4) in one place.

Two correct implementations, or one implementation called on two inputs that
are equal in exact arithmetic, disagree by rounding.  How much depends on the
terms each sum adds up, not on the result: a context vector that is the
small difference of large products moves by eps times the products.  So
every bound here is element-wise and comes from a forward rounding analysis
of the book's algorithm on the actual weights and inputs (`rounding_bound`,
the E of NUM-4):

    projections   |x| |W|^T + |b|                 gamma(d_in + 2)
    scores        |q| |k|^T / sqrt(head_dim)       gamma(head_dim + 3), plus the
                                                   projections' errors carried through
    softmax       w * (|ds| + sum w |ds| + ...)    gamma(num_tokens + 4), the shift by the
                                                   row maximum, a log-sum-exp formulation
    context       |dw| |v| + w |dv| + w |v|        gamma(num_tokens + 1)
    out_proj      |dc| |W_out|^T + |c| |W_out|^T   gamma(d_out + 2)

with gamma(n) = n * eps(dt), first order, for any order of summation, any
blocking and any place the queries are scaled; SAFETY covers library exp and
division routines that are a few ulps off.  NUM-1 keeps its k-times rule
against a plain implementation and uses E as its floor; NUM-4 allows two
outputs E(x1) + E(x2).  Nothing compares floats exactly or against a fixed
epsilon.
"""

import math

import numpy as np
import torch

from .candidate import DTYPES
from .memo import remembered

K = 4.0
SAFETY = 2.0


def eps(dtype):
    return float(torch.finfo(DTYPES[dtype]).eps)


def tiny(dtype):
    return float(torch.finfo(DTYPES[dtype]).tiny)


def gamma(n, dtype):
    """The relative error bound of a sum of n rounded terms (first order): n * eps."""
    return n * eps(dtype)


def _project(x, W, b):
    """(value, magnitude |x| |W|^T + |b|) of x @ W.T + b."""
    value = x @ W.T
    magnitude = np.abs(x) @ np.abs(W).T
    if b is not None:
        value = value + b
        magnitude = magnitude + np.abs(b)
    return value, magnitude


def _heads(t, batch, T, H):
    """(b, T, H*hd) -> (b, H, T, hd)."""
    return t.reshape(batch, T, H, -1).transpose(0, 2, 1, 3)


@remembered
def rounding_bound(cfg, w, x, dtype, keep=None):
    """E: an element-wise bound on |impl - exact| for any correct evaluation in `dtype`.

    `w` are the canonical weights (empty for the simplified function), `x` the
    input (float64 values already rounded to dtype), `keep` an optional dropout
    keep-mask (b, H, T, T) as in the oracle; kept weights are then 1/(1-p).
    Returns a float64 array shaped like the output.
    """
    x = np.asarray(x, np.float64)
    unbatched = x.ndim == 2
    if unbatched:
        x = x[None]
    batch, T, d_in = x.shape
    u = eps(dtype)
    if cfg.kind == "simplified_self_attention":
        q = k = v = x
        qm = km = vm = np.abs(x)
        eq = ek = ev = np.zeros_like(x)
        scale = 1.0
        H = 1
    else:
        (q, qm), (k, km), (v, vm) = (_project(x, w[f"W_{r}"], w.get(f"b_{r}")) for r in ("query", "key", "value"))
        eq, ek, ev = (gamma(d_in + 2, dtype) * m for m in (qm, km, vm))
        H = cfg.heads
        scale = 1.0 / math.sqrt(q.shape[-1] // H)
    width = q.shape[-1]
    q, k, v, qm, km, vm, eq, ek, ev = (_heads(t, batch, T, H) for t in (q, k, v, qm, km, vm, eq, ek, ev))
    hd = q.shape[-1]
    kT = lambda t: t.transpose(0, 1, 3, 2)  # noqa: E731
    s = (q @ kT(k)) * scale
    s_mag = (np.abs(q) @ kT(np.abs(k))) * scale
    s_err = (eq @ kT(np.abs(k)) + np.abs(q) @ kT(ek)) * scale + gamma(hd + 3, dtype) * s_mag
    i, j = np.indices((T, T))
    visible = (j <= i) if cfg.causal else np.ones((T, T), bool)
    s = np.where(visible, s, -np.inf)
    m = s.max(axis=-1, keepdims=True)
    e = np.where(visible, np.exp(s - m), 0.0)
    weights = e / e.sum(axis=-1, keepdims=True)
    s_err = np.where(visible, s_err, 0.0)
    shift = np.where(visible, np.abs(s - m), 0.0)
    w_err = weights * (
        s_err
        + (weights * s_err).sum(axis=-1, keepdims=True)
        + gamma(T + 4, dtype)
        + u * (shift + np.abs(m) + math.log(T))  # the shift by the maximum; log-sum-exp forms
    )
    if keep is not None:
        factor = np.asarray(keep, np.float64) / (1.0 - cfg.dropout)
        weights = weights * factor
        w_err = w_err * factor + u * weights
    c_mag = weights @ np.abs(v)
    c_err = w_err @ np.abs(v) + weights @ ev + gamma(T + 1, dtype) * c_mag
    c_mag, c_err = (t.transpose(0, 2, 1, 3).reshape(batch, T, width) for t in (c_mag, c_err))
    if cfg.kind == "MultiHeadAttention":
        W_out, b_out = np.abs(w["W_out"]), np.abs(w["b_out"])
        err = c_err @ W_out.T + gamma(width + 2, dtype) * (c_mag @ W_out.T + b_out)
        terms = d_in + T + width
    else:
        err = c_err
        terms = d_in + T
    # underflow: each rounded operation may also lose an absolute tiny(dt) * eps
    err = SAFETY * err + terms * tiny(dtype)
    return err[0] if unbatched else err


def representation_floor(golden, dtype):
    """Twice the representational rounding of `golden` in dtype, element-wise.

    (golden_dt + 0.3) - 0.3 evaluated in dt, as FlashAttention's tests do: the
    error no comparison of a dt-valued output can resolve.
    """
    g = torch.tensor(np.asarray(golden, dtype=np.float64), dtype=DTYPES[dtype])
    shifted = ((g + 0.3) - 0.3).to(torch.float64).numpy()
    spread = np.abs(shifted - g.to(torch.float64).numpy())
    return 2.0 * np.where(np.isfinite(spread), spread, 0.0)


def allowed_error(golden, base, bound, dtype):
    """NUM-1's element-wise allowance: K max|base - golden| + max(representation floor, E)."""
    base_err = float(np.max(np.abs(np.asarray(base) - golden), initial=0.0))
    if not np.isfinite(base_err):
        base_err = 0.0
    return K * base_err + np.maximum(representation_floor(golden, dtype), bound)


def gradient_floor(reference_grad, direction, dtype):
    """IFACE-7's floor for a directional derivative: sqrt(eps) * |grad| * |u|.

    Fused kernels compute the softmax backward as P * (dP - D) with D summed
    separately, so a gradient that is exactly zero in exact arithmetic (one
    visible key, say) comes back as cancellation noise scaled by |q| and |k|.
    The square root of eps leaves room for that and still sees a detached
    weight or a stale cache, which change gradients by O(1).
    """
    norm = float(np.linalg.norm(np.ravel(reference_grad)) * np.linalg.norm(np.ravel(direction)))
    return float(np.sqrt(eps(dtype))) * max(1.0, norm)


def vanishing_gradient_bound(grad, cfg, num_tokens, dtype):
    """NUM-4 for a gradient that is zero in exact arithmetic (CAUSAL-1): gamma(n) * max|grad|.

    n counts the longest chain of sums in the backward pass (tokens, input
    features, projection width): cancellation there leaves at most that many
    roundings of the gradient's own magnitude.
    """
    n = num_tokens + cfg.d_in + cfg.projection_width
    finite = np.abs(np.asarray(grad))[np.isfinite(grad)]
    return SAFETY * gamma(n, dtype) * float(finite.max(initial=0.0)) + n * tiny(dtype)
