"""Softmax and normalisation (SOFTMAX-*, CAUSAL-2/3, QKV-6) by black-box and probe checks."""

import numpy as np

from .. import weights
from ..assertions import ClauseViolation, within, worst_excess
from ..config import CAUSAL_KINDS, KINDS, TRAINABLE_KINDS, UNBATCHED_KINDS
from . import prop


@prop(clauses=("SOFTMAX-1", "NUM-4"), kinds=KINDS, examples=0.6)
def identical_tokens_give_identical_outputs(ctx):
    """When every token is the same, every output row is the same vector (rows sum to one)."""
    case = ctx.case(min_tokens=2)
    token = ctx.inputs(case)[..., :1, :]
    x = np.repeat(token, case.num_tokens, axis=-2)
    _, w, out = ctx.call_loaded(case, x)
    y = out.y
    first = np.repeat(y[..., :1, :], case.num_tokens, axis=-2)
    bound = ctx.bound(case.cfg, w, x, case.dtype)
    bound = bound + np.repeat(bound[..., :1, :], case.num_tokens, axis=-2)
    try:
        ctx.expect_invariant(("SOFTMAX-1",), "output rows for a sequence of identical tokens", y, first, bound, case.cfg.batched)
    except ClauseViolation as v:
        v.message = "with identical tokens every row must equal the same value vector; they differ, so the attention weights of a row do not sum to one. " + v.message
        raise


def _uniform_weights(T, variant):
    """Attention weights (T x T) under zero scores, for the correct rule and common mistakes."""
    i, j = np.indices((T, T))
    if variant == "causal":
        allowed = j <= i
    elif variant == "all":
        allowed = np.ones((T, T), bool)
    elif variant == "strictly_past":
        allowed = j < i
    elif variant == "one_ahead":
        allowed = j <= i + 1
    elif variant == "not_renormalised":
        return np.where(j <= i, 1.0 / T, 0.0)
    elif variant == "over_queries":
        return np.where(j <= i, 1.0 / (T - j), 0.0)
    else:
        raise ValueError(variant)
    with np.errstate(invalid="ignore", divide="ignore"):
        return allowed / allowed.sum(axis=1, keepdims=True)


VARIANTS = {
    # variant: (clauses, what it means)
    "all": (("CAUSAL-1", "CAUSAL-3"), "every token attends to every token: the future is not masked (or masked with 0 instead of -inf)"),
    "strictly_past": (("CAUSAL-2",), "no token attends to itself: the diagonal is masked (triu with diagonal=0)"),
    "one_ahead": (("CAUSAL-1",), "each token also sees the next one: the mask's diagonal is off by one"),
    "not_renormalised": (("CAUSAL-3", "SOFTMAX-1"), "masked weights were zeroed after the softmax without renormalising the rows"),
    "over_queries": (("SOFTMAX-2",), "the softmax runs over the query axis (dim=-2) instead of the keys"),
}


def _probe_output(cfg, w, x, A):
    """Context under fixed attention weights A, through the value and output projections."""
    v = x @ w["W_value"].T + (w["b_value"] if "b_value" in w else 0.0)
    ctx = np.einsum("ij,...jd->...id", A, v)
    if "W_out" in w:
        ctx = ctx @ w["W_out"].T + w["b_out"]
    return ctx


@prop(clauses={k: (("CAUSAL-2", "CAUSAL-3", "SOFTMAX-1", "SOFTMAX-2") if k in CAUSAL_KINDS else ("SOFTMAX-1", "QKV-6")) for k in TRAINABLE_KINDS}, kinds=TRAINABLE_KINDS, examples=0.6, needs=("call", "weights"))
def uniform_attention_probe(ctx):
    """With W_query = W_key = 0, output i is the mean of the values each token may see."""
    case = ctx.case()
    cfg = case.cfg
    w = weights.zero_query_weights(cfg, case.rng(11), case.dtype)
    x = ctx.inputs(case)
    y = ctx.call_built(cfg, x, weights=w)[1].y
    T = case.num_tokens
    correct = "causal" if cfg.causal else "all"
    golden = _probe_output(cfg, w, x, _uniform_weights(T, correct))
    allowed = ctx.budget(golden, cfg, w, x, case.dtype)
    ratio, err, bound, pos = worst_excess(y, golden, allowed)
    if ratio <= 1.0:
        return
    for variant, (clauses, meaning) in VARIANTS.items():
        if variant == correct or (not cfg.causal and variant != "all"):
            continue
        alt = _probe_output(cfg, w, x, _uniform_weights(T, variant))
        if np.all(np.isfinite(alt)) and not within(alt, golden, allowed) and within(y, alt, allowed):
            raise ClauseViolation(clauses, f"under uniform attention (W_query = W_key = 0) the output matches {meaning}", positions=pos)
    if not cfg.causal and within(y, _probe_output(cfg, w, x, _uniform_weights(T, "causal")), allowed):
        raise ClauseViolation(("QKV-6",), f"{cfg.kind} applies a causal mask; self-attention without a mask lets every token see every token")
    where = f"position {pos[-2]}" if len(pos) >= 2 else "some position"
    nan = " (NaN: a row with no visible key, e.g. the first token masked out)" if not np.all(np.isfinite(y)) else ""
    cited = ("CAUSAL-2",) if nan and cfg.causal else (("CAUSAL-3", "SOFTMAX-1") if cfg.causal else ("SOFTMAX-1",))
    raise ClauseViolation(
        cited,
        f"under uniform attention (W_query = W_key = 0) output {where} should be the mean of the visible values; "
        f"|error| {err:.3g}, allowed {bound:.3g} there{nan}",
        positions=pos,
    )


@prop(clauses=("QKV-6", "NUM-4"), kinds=UNBATCHED_KINDS, examples=0.6)
def unmasked_attention_is_permutation_equivariant(ctx):
    """Without a mask, permuting the tokens permutes the outputs the same way."""
    case = ctx.case(min_tokens=2)
    x = ctx.inputs(case)
    order = case.rng(5).permutation(case.num_tokens)
    if np.all(order == np.arange(case.num_tokens)):
        order = order[::-1].copy()
    handle, w, out = ctx.call_loaded(case, x, salt=12)
    y = out.y
    y2 = ctx.forward(handle, x[order]).y
    bound = ctx.bound(case.cfg, w, x, case.dtype)[order] + ctx.bound(case.cfg, w, x[order], case.dtype)
    ctx.expect_invariant(("QKV-6",), "outputs for permuted tokens vs the permuted outputs", y2, y[order], bound, batched=False)
