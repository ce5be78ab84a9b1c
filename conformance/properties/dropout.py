"""Dropout on the attention weights (topic 5): where, when, how much, how scaled.

Dropout is judged by behaviour and statistics, never by replaying a seed:
implementations consume the random stream in different orders.
"""

import itertools
import math

import numpy as np
from hypothesis import strategies as st

from .. import tolerance
from ..assertions import ClauseViolation, assert_close, within
from ..config import DROPOUT_KINDS
from . import prop

P = (0.3, 0.5)


def _twin(ctx, case, p):
    """A module with dropout p and a p = 0 twin, both holding the canonical weights."""
    main, w = ctx.build_loaded(case.with_(cfg=case.cfg.with_(dropout=p)))
    twin, _ = ctx.build_loaded(case.with_(cfg=case.cfg.with_(dropout=0.0)))
    return main, twin, w


def _all_kept(cfg, batch, T):
    """The keep-mask that keeps every weight: E under it bounds E under any other draw."""
    return np.ones((batch, cfg.heads, T, T))


@prop(clauses=("DROP-2", "IFACE-4"), kinds=DROPOUT_KINDS, examples=0.4, needs=("call", "weights"))
def eval_mode_ignores_dropout(ctx):
    """In eval mode, dropout p > 0 changes nothing: the output equals the p = 0 twin's."""
    case = ctx.case()
    p = ctx.draw(st.sampled_from(P), label="p")
    main, twin, w = _twin(ctx, case, p)
    x = ctx.inputs(case)
    a, b, ref = ctx.forward(main, x).y, ctx.forward(main, x).y, ctx.forward(twin, x).y
    bound = 2 * ctx.bound(case.cfg, w, x, case.dtype)
    ctx.expect_invariant(("DROP-2",), f"eval output with dropout={p} vs the same module with dropout=0", a, ref, bound)
    ctx.expect_invariant(("DROP-2", "IFACE-4"), "two eval calls", b, a, bound)


@prop(clauses=("DROP-4",), kinds=DROPOUT_KINDS, examples=0.3, needs=("call", "weights"))
def zero_dropout_training_equals_eval(ctx):
    """With p = 0, train() and eval() give the same output."""
    case = ctx.case(dropout=(0.0,))
    handle, w = ctx.build_loaded(case)
    x = ctx.inputs(case)
    bound = 2 * ctx.bound(case.cfg, w, x, case.dtype)
    ctx.expect_invariant(("DROP-4",), "train-mode output with dropout=0 vs eval", ctx.forward(handle, x, train=True).y, ctx.forward(handle, x).y, bound)


@prop(clauses=("DROP-7", "DROP-1"), kinds=DROPOUT_KINDS, examples=0.4, needs=("call", "weights"))
def training_output_is_random(ctx):
    """With p > 0 in training mode, repeated calls differ by more than rounding can explain."""
    case = ctx.case()
    p = ctx.draw(st.sampled_from(P), label="p")
    ctx.reach("training with p > 0")
    cfg = case.cfg.with_(dropout=p)
    handle, w = ctx.build_loaded(case.with_(cfg=cfg))
    x = ctx.inputs(case)
    copies = np.tile(x, (16, 1, 1))  # 16 copies per call: an all-kept draw is then vanishingly rare
    ys = [ctx.forward(handle, copies, train=True).y for _ in range(3)]
    bound = 2 * ctx.bound(cfg, w, copies, case.dtype, keep=_all_kept(cfg, len(copies), case.num_tokens))
    # judged only where two dropout draws would differ by more than the error model allows
    rng = case.rng(41)
    draws = [ctx.oracle(cfg, w, copies, keep=rng.random((len(copies), cfg.heads, case.num_tokens, case.num_tokens)) >= p) for _ in range(2)]
    if within(draws[0], draws[1], 2 * bound):
        return
    if all(within(ys[0], y, bound) for y in ys[1:]):
        raise ClauseViolation(
            ("DROP-7", "DROP-1") if case.num_tokens == 1 else ("DROP-7",),
            f"3 training-mode calls with dropout={p} gave the same outputs (to within rounding): dropout is never applied"
            + (" to the attention weights (at num_tokens=1 dropout on the scores has no effect)" if case.num_tokens == 1 else ""),
        )


def _outcome(ctx, cfg, w, x, pattern, dropout):
    """(oracle output, E) at num_tokens = 1 when head h keeps its weight iff pattern[h]."""
    keep = np.asarray(pattern, float).reshape(1, cfg.heads, 1, 1)
    c = cfg.with_(dropout=dropout)
    return ctx.oracle(c, w, x, keep=keep)[0], ctx.bound(c, w, x, ctx.default_dtype, keep=keep)[0]


def _match(ctx, cfg, w, x, ys, patterns, dropout):
    """For each draw (row of ys), the patterns whose oracle outcome it equals within E."""
    hits = np.zeros((len(ys), len(patterns)), bool)
    for k, pattern in enumerate(patterns):
        want, bound = _outcome(ctx, cfg, w, x, pattern, dropout)
        hits[:, k] = [within(y, want, bound) for y in ys]
    return hits


@prop(clauses=("DROP-1", "DROP-3", "DROP-6"), kinds=DROPOUT_KINDS, examples=0.4, needs=("call", "weights"))
def single_token_dropout_has_two_outcomes_per_head(ctx):
    """At num_tokens = 1 each head's only weight is kept (x 1/(1-p)) or dropped: every draw is one of 2^H oracle outcomes."""
    case = ctx.case(max_context=1, max_heads=2)
    p = ctx.draw(st.sampled_from(P), label="p")
    ctx.reach("training with p > 0")
    cfg = case.cfg.with_(dropout=p)
    handle, w = ctx.build_loaded(case.with_(cfg=cfg))
    x = ctx.inputs(case)[:1]
    # 48 copies of batch element 0 in one call: each copy gets its own dropout draw
    ys = ctx.forward(handle, np.repeat(x, 48, axis=0), train=True).y
    heads = cfg.heads
    patterns = list(itertools.product((0, 1), repeat=heads))
    hits = _match(ctx, cfg, w, x, ys, patterns, p)
    eval_y = ctx.oracle(cfg, w, x)[0]
    eval_bound = ctx.bound(cfg, w, x, ctx.default_dtype)[0]
    # draws that all equal the eval output are impossible when every outcome is told apart from it
    apart = all(not within(_outcome(ctx, cfg, w, x, k, p)[0], eval_y, _outcome(ctx, cfg, w, x, k, p)[1] + eval_bound) for k in patterns)
    if apart and all(within(y, eval_y, eval_bound) for y in ys):
        raise ClauseViolation(("DROP-1",), f"at num_tokens=1 dropout={p} never changed the output in 48 draws: it is not applied to the attention weights")
    lost = np.flatnonzero(~hits.any(axis=1))
    if len(lost):
        unscaled = _match(ctx, cfg, w, x, ys[lost], patterns, 0.0)
        if unscaled.any(axis=1).all():
            raise ClauseViolation(("DROP-3",), f"at num_tokens=1 the training outputs equal attention weights kept or dropped, but kept weights are not rescaled by 1/(1-p) = {1 / (1 - p):.4g}")
        raise ClauseViolation(
            ("DROP-1",),
            f"at num_tokens=1, {len(lost)} of {len(ys)} training outputs equal none of the 2^num_heads = {2 ** heads} outcomes of keeping "
            "or dropping each head's single attention weight: dropout acts on something other than the attention weights (the outputs or context vectors?)",
        )
    outcomes = [_outcome(ctx, cfg, w, x, k, p) for k in patterns]
    for h in range(heads):
        # count head h only where its kept and dropped outcomes cannot be confused: choosing
        # draws by how clearly they match would bias the count towards the sharper outcome
        pairs = [(a, b) for a in range(len(patterns)) for b in range(len(patterns)) if patterns[a][h] == 1 and patterns[b][h] == 0]
        if any(within(outcomes[a][0], outcomes[b][0], outcomes[a][1] + outcomes[b][1]) for a, b in pairs):
            continue
        kept = hits[:, [k for k, pattern in enumerate(patterns) if pattern[h] == 1]].any(axis=1)
        n = len(ys)
        dropped = int(n - kept.sum())
        z = (dropped - n * p) / math.sqrt(n * p * (1 - p))
        if abs(z) > 5:
            raise ClauseViolation(("DROP-6",), f"head {h}'s single attention weight was dropped in {dropped} of {n} draws, {z:.1f} standard deviations from p = {p}")


@prop(clauses=("DROP-5",), kinds=DROPOUT_KINDS, examples=0.12, needs=("call", "weights"))
def training_mean_equals_eval(ctx):
    """The mean of many training-mode outputs is the eval output (6 standard errors, plus rounding)."""
    case = ctx.case(max_context=5, max_batch=2)
    p = ctx.draw(st.sampled_from(P), label="p")
    ctx.reach("training with p > 0")
    cfg = case.cfg.with_(dropout=p)
    dtype = ctx.precise_dtype
    handle, w = ctx.build_loaded(case.with_(cfg=cfg), dtype=dtype)
    x = ctx.inputs(case, dtype=dtype)
    eval_y = ctx.forward(handle, x).y
    n = 400
    # n copies of the batch in one call: each copy gets its own dropout draw (SHAPE-8)
    ys = ctx.forward(handle, np.tile(x, (n, 1, 1)), train=True).y.reshape((n,) + x.shape[:-1] + (-1,))
    mean, se = ys.mean(axis=0), ys.std(axis=0, ddof=1) / math.sqrt(n)
    # each output is within E of its exact value, and so is their mean; the mean itself sums n terms
    rounding = (
        ctx.bound(cfg, w, x, dtype, keep=_all_kept(cfg, case.batch, case.num_tokens))
        + ctx.bound(cfg, w, x, dtype)
        + tolerance.gamma(n, "float64") * np.abs(ys).mean(axis=0)
    )
    gap = np.abs(mean - eval_y)
    bad = gap > 6 * se + rounding
    if bad.any():
        pos = tuple(int(i) for i in np.argwhere(bad)[0])
        z = gap[pos] / se[pos] if se[pos] > 0 else math.inf
        raise ClauseViolation(
            ("DROP-5",),
            f"the mean of {n} training outputs is {z:.1f} standard errors from the eval output at {list(pos)}: "
            "dropout is biased (applied before the softmax, or kept weights not rescaled by 1/(1-p))",
            positions=list(pos),
        )


def _assemble_keep(masks, cfg, batch, T):
    """The recorded dropout draws as a (batch, heads, T, T) keep-mask, or a reason why not."""
    heads = cfg.heads
    shapes = [m.shape for m in masks]
    if not masks:
        return None, "no dropout draw was seen"
    if any(s[-2:] != (T, T) for s in shapes):
        return None, f"dropout drew masks of shape {shapes}, not shaped like the attention weights (..., {T}, {T})"
    total = sum(int(np.prod(s)) for s in shapes)
    if total != batch * heads * T * T:
        return None, f"dropout drew {total} values in masks {shapes}; the attention weights have {batch}x{heads}x{T}x{T} = {batch * heads * T * T}"
    if len(masks) == heads and heads > 1:  # one draw per head (the wrapper)
        keep = np.stack([m.reshape(batch, T, T) for m in masks], axis=1)
    else:
        keep = np.concatenate([m.reshape(-1) for m in masks]).reshape(batch, heads, T, T)
    return keep, ""


@prop(clauses=("DROP-1", "DROP-3", "DROP-6"), kinds=DROPOUT_KINDS, examples=0.3, needs=("call", "weights"))
def dropout_masks_act_on_the_attention_weights(ctx):
    """The recorded dropout draw, applied to the oracle's weights, reproduces the output."""
    if ctx.profile != "thorough":  # intercepting torch's dispatcher costs over a second to set up
        ctx.not_applicable("dropout masks are intercepted only in the thorough profile")
    case = ctx.case(min_tokens=2)
    p = ctx.draw(st.sampled_from(P), label="p")
    ctx.reach("training with p > 0")
    cfg = case.cfg.with_(dropout=p)
    dcase = case.with_(cfg=cfg)
    handle, w = ctx.build_loaded(dcase)
    x = ctx.inputs(case)
    out = ctx.forward(handle, x, train=True, capture_dropout=True)
    keep, why = _assemble_keep(out.masks or [], cfg, case.batch, case.num_tokens)
    if keep is None:
        if not out.masks:
            ctx.not_applicable("no dropout draw is visible (a custom random source or a fused kernel)")
        raise ClauseViolation(("DROP-1",), why + ": dropout is not applied to the attention weights")
    golden = ctx.oracle(cfg, w, x, keep=keep)
    # NUM-1 for the eval output, its weights scaled by up to 1/(1-p), and E under this very mask
    allowed = np.maximum(ctx.budget(ctx.oracle(cfg, w, x), cfg, w, x, case.dtype) / (1 - p), ctx.bound(cfg, w, x, case.dtype, keep=keep))
    try:
        assert_close(("DROP-1", "DROP-3"), "training output vs the oracle with the recorded dropout mask", out.y, golden, allowed)
    except ClauseViolation as v:
        unscaled = ctx.oracle(cfg.with_(dropout=0.0), w, x, keep=keep)
        if within(out.y, unscaled, allowed):
            v.clauses, v.message = ("DROP-3",), "the output matches dropped weights without the 1/(1-p) rescaling: " + v.message
        raise
    i, j = np.indices((case.num_tokens, case.num_tokens))
    allowed_keys = np.broadcast_to(j <= i, keep.shape)
    n = int(allowed_keys.sum())
    kept = float(keep[allowed_keys].sum())
    z = (kept - n * (1 - p)) / math.sqrt(n * p * (1 - p))
    if abs(z) > 5:
        raise ClauseViolation(("DROP-6",), f"{kept:.0f} of {n} visible weights were kept, {z:.1f} standard deviations from {1 - p:.2f} x {n}: the keep rate is not 1 - p")
