"""Multi-head clauses (topic 6): construction, head-split invariance, concatenation order."""

import numpy as np
from hypothesis import strategies as st

from .. import weights
from ..assertions import ClauseViolation, assert_close
from ..candidate import CandidateError
from ..config import Config
from ..declarations import PREFIX as DECLARED
from . import prop


@prop(clauses=("HEAD-3",), kinds=("MultiHeadAttention",), examples=0.2)
def indivisible_head_count_is_rejected(ctx):
    """MultiHeadAttention(d_in, d_out, ..., num_heads) raises when d_out % num_heads != 0."""
    heads = ctx.draw(st.integers(2, 5), label="num_heads")
    d_out = ctx.draw(st.integers(1, 12).filter(lambda d: d % heads != 0), label="d_out")
    cfg = Config("MultiHeadAttention", d_in=ctx.draw(st.integers(1, 6), label="d_in"), d_out=d_out, context_length=4, num_heads=heads)
    ctx.note(call=cfg.constructor_call())
    try:
        ctx.build(cfg)
    except CandidateError as exc:
        if exc.reason == "raised":
            return
        raise
    raise ClauseViolation(
        ("HEAD-3",),
        f"{cfg.constructor_call()} was accepted although {d_out} % {heads} != 0: the constructor must reject it "
        "(the book asserts d_out % num_heads == 0)",
    )


def _head_slices(cfg, w, h):
    """Canonical weights of head h alone, as a one-head module of the same kind."""
    size = cfg.head_dim
    rows = slice(h * size, (h + 1) * size)
    out = {k: v[rows] for k, v in w.items() if k[2:] in ("query", "key", "value")}
    if cfg.kind == "MultiHeadAttention":
        out["W_out"] = np.eye(size)
        out["b_out"] = np.zeros(size)
    return out


@prop(clauses={"MultiHeadAttention": ("HEAD-8",), "MultiHeadAttentionWrapper": ("HEAD-1",)}, kinds=("MultiHeadAttention", "MultiHeadAttentionWrapper"), needs=("call", "weights"))
def heads_split_into_independent_single_heads(ctx):
    """H heads equal H one-head modules on the weight slices, concatenated in order (then out_proj)."""
    if ctx.info.get("square_only") and ctx.kind == "MultiHeadAttention":
        ctx.not_applicable(f"{DECLARED} (square_only = True): the layout needs d_in == d_out, so one-head modules of size head_dim cannot be built")
    case = ctx.case()
    cfg = case.cfg
    if cfg.num_heads < 2:
        case = case.with_(cfg=cfg.with_(num_heads=2, d_out=2 * cfg.head_dim if cfg.kind == "MultiHeadAttention" else cfg.d_out))
        cfg = case.cfg
        ctx.note(case=case)
    ctx.reach("num_heads > 1")
    x = ctx.inputs(case)
    _, w, out = ctx.call_loaded(case, x)
    y = out.y
    one = cfg.with_(num_heads=1, d_out=cfg.head_dim)
    parts, allowances = [], []
    for h in range(cfg.num_heads):
        sliced = weights.round_to_all(_head_slices(cfg, w, h), case.dtype)
        parts.append(ctx.call_built(one, x, case.dtype, weights=sliced)[1].y)
        allowances.append(ctx.budget(ctx.oracle(one, sliced, x), one, sliced, x, case.dtype))
    merged, allowed_heads = np.concatenate(parts, axis=-1), np.concatenate(allowances, axis=-1)
    if cfg.kind == "MultiHeadAttention":
        # the suite applies out_proj in float64: the heads' allowances pass through |W_out|
        merged = merged @ w["W_out"].T + w["b_out"]
        allowed_heads = allowed_heads @ np.abs(w["W_out"]).T
        what = "MultiHeadAttention vs out_proj(concatenated one-head modules on the weight slices)"
        clause = "HEAD-8"
    else:
        what = "the wrapper's output vs its heads' outputs concatenated in head order"
        clause = "HEAD-1"
    # each side meets NUM-1 against the same oracle, so they differ by at most the sum
    allowed = ctx.budget(ctx.oracle(cfg, w, x), cfg, w, x, case.dtype) + allowed_heads
    assert_close((clause,), what, y, merged, allowed)
