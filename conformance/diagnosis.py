"""Name the mistake behind a disagreement with the oracle.

When a candidate's output differs from the oracle, the suite recomputes the
same example under the classic mistakes of chapter 3 (wrong scale, heads
split without a transpose, queries and keys swapped, ...).  If the candidate
matches one of them, the failure names that mistake and its clause instead
of a bare "numbers differ".  `mistaken_attention()` with no mistake is the
correct computation; the tests check it equals the oracle.
"""

import math

import numpy as np

# mistake -> (clauses, plain sentence); `{...}` fields are filled from the config
MISTAKES = {
    "scale:d_out": (("SCALE-1",), "scores are divided by sqrt(d_out) = {sd_out:.4g} instead of sqrt(head_dim) = {shd:.4g}"),
    "scale:d_in": (("SCALE-1",), "scores are divided by sqrt(d_in) = {sd_in:.4g} instead of sqrt(head_dim) = {shd:.4g}"),
    "scale:none": (("SCALE-1",), "scores are not scaled by 1/sqrt(head_dim) at all"),
    "scale:no_sqrt": (("SCALE-1",), "scores are divided by head_dim = {hd} instead of its square root"),
    "scale:multiply": (("SCALE-1",), "scores are multiplied by sqrt(head_dim) instead of divided"),
    "scale:half": (("SCALE-1",), "scores are divided by head_dim / 2 (the precedence slip `head_dim ** 1 / 2`)"),
    "scale:num_tokens": (("SCALE-1",), "scores are divided by sqrt(num_tokens) (keys.shape[-2]) instead of sqrt(head_dim)"),
    "scale:after_softmax": (("SCALE-1",), "the weights are scaled after the softmax instead of the scores before it"),
    "mask:diagonal": (("CAUSAL-2",), "no token attends to itself: the diagonal is masked"),
    "mask:none": (("CAUSAL-1",), "no causal mask is applied"),
    "mask:inverted": (("CAUSAL-1",), "the mask is inverted: tokens attend to the future and not the past"),
    "mask:zero_fill": (("CAUSAL-3",), "future scores are set to 0 instead of -inf, so they still get weight"),
    "mask:no_renorm": (("CAUSAL-3",), "future weights are zeroed after the softmax without renormalising"),
    "softmax:queries": (("SOFTMAX-2",), "the softmax runs over the query axis (dim=-2) instead of the keys"),
    "split:no_transpose": (("HEAD-5",), "heads are split with view(b, num_heads, T, head_dim), without the transpose"),
    "merge:no_transpose": (("HEAD-6",), "heads are merged with view(b, T, d_out) without transposing back"),
    "heads:reversed": (("HEAD-6", "HEAD-1"), "head outputs are concatenated in reverse order"),
    "out:missing": (("HEAD-7",), "out_proj is not applied"),
    "out:no_bias": (("HEAD-7",), "out_proj has no bias"),
    "qk:swapped": (("QKV-3",), "queries and keys are swapped (score[i, j] = key_i . query_j)"),
    "qk:keys_twice": (("QKV-3",), "W_key is used for the queries too"),
    "qk:queries_twice": (("QKV-3",), "W_query is used for the keys too"),
    "values:keys": (("QKV-4",), "the context is computed from the keys instead of the values"),
    "bias:ignored": (("QKV-2",), "qkv_bias=True is ignored: the projections have no bias"),
}


def mistaken_attention(cfg, w, x, mistake=None):
    """The book's attention for `cfg` with canonical weights `w` (float64), optionally with one mistake."""
    x = np.asarray(x, np.float64)
    unbatched = x.ndim == 2
    if unbatched:
        x = x[None]
    b, T, d_in = x.shape
    m = mistake or ""
    if cfg.kind == "simplified_self_attention":
        Wq = Wk = Wv = np.eye(d_in)
        bq = bk = bv = None
    else:
        Wq, Wk, Wv = w["W_query"], w["W_key"], w["W_value"]
        bq, bk, bv = w.get("b_query"), w.get("b_key"), w.get("b_value")
    if m == "bias:ignored":
        bq = bk = bv = None
    if m == "qk:swapped":
        Wq, Wk, bq, bk = Wk, Wq, bk, bq
    elif m == "qk:keys_twice":
        Wq, bq = Wk, bk
    elif m == "qk:queries_twice":
        Wk, bk = Wq, bq
    if m == "values:keys":
        Wv, bv = Wk, bk

    def proj(W, bias):
        y = x @ W.T
        return y if bias is None else y + bias

    q, k, v = proj(Wq, bq), proj(Wk, bk), proj(Wv, bv)
    H = cfg.heads
    width = q.shape[-1]
    hd = width // H

    def split(t):
        if m == "split:no_transpose":
            return t.reshape(b, H, T, hd)
        return t.reshape(b, T, H, hd).transpose(0, 2, 1, 3)

    q, k, v = split(q), split(k), split(v)
    scores = q @ k.transpose(0, 1, 3, 2)
    scale = {
        "scale:d_out": math.sqrt(cfg.d_out),
        "scale:d_in": math.sqrt(d_in),
        "scale:none": 1.0,
        "scale:no_sqrt": float(hd),
        "scale:multiply": 1.0 / math.sqrt(hd),
        "scale:half": hd / 2,
        "scale:num_tokens": math.sqrt(T),
    }.get(m, math.sqrt(hd))
    if cfg.kind == "simplified_self_attention" and not m.startswith("scale:"):
        scale = 1.0
    i, j = np.indices((T, T))
    future = j > i
    if m == "mask:diagonal":
        future = j >= i
    elif m == "mask:inverted":
        future = j < i
    causal = cfg.causal and m != "mask:none"
    if m != "scale:after_softmax":
        scores = scores / scale
    if causal and m not in ("mask:no_renorm", "mask:zero_fill"):
        with np.errstate(invalid="ignore"):
            scores = np.where(future, -np.inf, scores)
    if causal and m == "mask:zero_fill":
        scores = np.where(future, 0.0, scores)
    axis = -2 if m == "softmax:queries" else -1
    with np.errstate(invalid="ignore", over="ignore"):
        shifted = scores - np.max(scores, axis=axis, keepdims=True)
        e = np.exp(shifted)
        weights = e / e.sum(axis=axis, keepdims=True)
    if causal and m == "mask:no_renorm":
        weights = np.where(future, 0.0, weights)
    if m == "scale:after_softmax":
        weights = weights / math.sqrt(hd)
    context = weights @ v  # (b, H, T, hd)
    if m == "heads:reversed":
        context = context[:, ::-1]
    if m == "merge:no_transpose":
        merged = context.reshape(b, T, width)
    else:
        merged = context.transpose(0, 2, 1, 3).reshape(b, T, width)
    if cfg.kind == "MultiHeadAttention" and m != "out:missing":
        merged = merged @ w["W_out"].T + (0.0 if m == "out:no_bias" else w["b_out"])
    return merged[0] if unbatched else merged


def applicable(cfg):
    """The mistakes worth trying for this kind."""
    names = []
    for name in MISTAKES:
        family = name.split(":")[0]
        if cfg.kind == "simplified_self_attention" and family not in ("scale", "softmax"):
            continue
        if family in ("mask",) and not cfg.causal:
            continue
        if family in ("split", "merge") and cfg.kind != "MultiHeadAttention":
            continue
        if family == "heads" and cfg.kind not in ("MultiHeadAttention", "MultiHeadAttentionWrapper"):
            continue
        if family == "out" and cfg.kind != "MultiHeadAttention":
            continue
        if name == "bias:ignored" and not cfg.qkv_bias:
            continue
        names.append(name)
    return names


def diagnose(cfg, w, x, y, golden, allowed):
    """[(mistake, clauses, sentence)] for every mistake the output matches and the truth does not.

    `allowed` is NUM-1's element-wise allowance.  The output matches a mistake
    when it is within that allowance of the mistaken computation, or a
    thousand times closer to it than to the oracle (a mistaken algorithm can
    round more than the correct one: a missing scale sharpens the softmax).
    """
    from .assertions import worst_excess

    hd = cfg.head_dim if cfg.kind != "simplified_self_attention" else np.shape(x)[-1]
    fields = dict(sd_out=math.sqrt(cfg.d_out), sd_in=math.sqrt(cfg.d_in), shd=math.sqrt(max(hd, 1)), hd=hd)
    to_truth = worst_excess(y, golden, allowed)[0]
    found = []
    for name in applicable(cfg):
        alt = mistaken_attention(cfg, w, x, name)
        if not np.all(np.isfinite(alt)):
            continue
        if worst_excess(alt, golden, allowed)[0] <= 1.0:
            continue  # indistinguishable from the truth on this example
        to_alt = worst_excess(y, alt, allowed)[0]
        if to_alt <= 1.0 or to_alt * 1000 <= to_truth:
            clauses, sentence = MISTAKES[name]
            found.append((name, clauses, sentence.format(**fields)))
    return found
