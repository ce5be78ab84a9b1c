"""Dropout on the attention weights (topic 5): where, when, how much, how scaled.

Dropout is judged by behaviour and statistics, never by replaying a seed:
implementations consume the random stream in different orders.
"""

import math

import numpy as np
from hypothesis import strategies as st

from ..assertions import ClauseViolation, assert_close
from ..config import DROPOUT_KINDS
from . import prop

P = (0.3, 0.5)


def _twin(ctx, case, p):
    """A module with dropout p and a p = 0 twin holding the same parameters."""
    main = ctx.build(case.cfg.with_(dropout=p), seed=3)
    twin = ctx.build(case.cfg.with_(dropout=0.0), seed=3)
    ctx.cand.copy_parameters(main, twin)
    return main, twin


@prop(clauses=("DROP-2", "IFACE-4"), kinds=DROPOUT_KINDS, examples=0.4)
def eval_mode_ignores_dropout(ctx):
    """In eval mode, dropout p > 0 changes nothing: the output equals the p = 0 twin's."""
    case = ctx.case()
    p = ctx.draw(st.sampled_from(P), label="p")
    main, twin = _twin(ctx, case, p)
    x = ctx.inputs(case)
    a, b, ref = ctx.forward(main, x).y, ctx.forward(main, x).y, ctx.forward(twin, x).y
    ctx.expect_invariant(("DROP-2",), f"eval output with dropout={p} vs the same module with dropout=0", a, ref, case.dtype)
    ctx.expect_invariant(("DROP-2", "IFACE-4"), "two eval calls", b, a, case.dtype)


@prop(clauses=("DROP-4",), kinds=DROPOUT_KINDS, examples=0.3)
def zero_dropout_training_equals_eval(ctx):
    """With p = 0, train() and eval() give the same output."""
    case = ctx.case(dropout=(0.0,))
    handle = ctx.build(case.cfg)
    x = ctx.inputs(case)
    ctx.expect_invariant(("DROP-4",), "train-mode output with dropout=0 vs eval", ctx.forward(handle, x, train=True).y, ctx.forward(handle, x).y, case.dtype)


@prop(clauses=("DROP-7", "DROP-1"), kinds=DROPOUT_KINDS, examples=0.4)
def training_output_is_random(ctx):
    """With p > 0 in training mode, repeated calls differ."""
    case = ctx.case()
    p = ctx.draw(st.sampled_from(P), label="p")
    ctx.reach("training with p > 0")
    handle = ctx.build(case.cfg.with_(dropout=p))
    x = ctx.inputs(case)
    copies = np.tile(x, (16, 1, 1))  # 16 copies per call: an all-kept draw is then vanishingly rare
    ys = [ctx.forward(handle, copies, train=True).y for _ in range(3)]
    if all(np.array_equal(ys[0], y) for y in ys[1:]):
        raise ClauseViolation(
            ("DROP-7", "DROP-1") if case.num_tokens == 1 else ("DROP-7",),
            f"3 training-mode calls with dropout={p} gave identical outputs: dropout is never applied"
            + (" to the attention weights (at num_tokens=1 dropout on the scores has no effect)" if case.num_tokens == 1 else ""),
        )


@prop(clauses=("DROP-1", "DROP-3", "DROP-6"), kinds=DROPOUT_KINDS, examples=0.4)
def single_token_dropout_has_two_outcomes_per_head(ctx):
    """At num_tokens = 1 each head's only weight is kept (x 1/(1-p)) or dropped: at most 2^H outputs."""
    case = ctx.case(max_context=1, max_heads=2)
    p = ctx.draw(st.sampled_from(P), label="p")
    ctx.reach("training with p > 0")
    cfg = case.cfg.with_(dropout=p)
    handle, _ = ctx.build_loaded(case.with_(cfg=cfg))
    x = ctx.inputs(case)
    eval_y = ctx.forward(handle, x).y
    # 48 copies of batch element 0 in one call: each copy gets its own dropout draw
    ys = ctx.forward(handle, np.repeat(x[:1], 48, axis=0), train=True).y
    distinct = np.unique(np.round(ys.reshape(len(ys), -1), 5), axis=0)
    eval_y = eval_y[:1]
    heads = cfg.heads
    if len(distinct) > 2 ** heads:
        raise ClauseViolation(
            ("DROP-1",),
            f"at num_tokens=1 training outputs took {len(distinct)} distinct values, more than 2^num_heads = {2 ** heads}: "
            "dropout acts on something other than the attention weights (the outputs or context vectors?)",
        )
    if len(distinct) == 1:
        raise ClauseViolation(("DROP-1",), "at num_tokens=1 dropout never changed the output: it is not applied to the attention weights")
    if heads == 1 and len(distinct) == 2:
        e = eval_y.reshape(-1)
        # the dropped outcome is the one farther from the eval output
        a, b = distinct
        dropped, kept = (a, b) if np.abs(a - e).max() > np.abs(b - e).max() else (b, a)
        want = dropped + (e - dropped) / (1 - p)
        assert_close(("DROP-3",), "the kept outcome vs dropped + (eval - dropped) / (1 - p)", kept, want, 1e-3 * max(1.0, float(np.abs(want).max())), batched=False,
                     hint=f"kept weights must be rescaled by 1/(1-p) = {1 / (1 - p):.4g}.")
        n_dropped = int(np.sum(np.all(np.round(ys.reshape(len(ys), -1), 5) == dropped, axis=1)))
        z = (n_dropped - len(ys) * p) / math.sqrt(len(ys) * p * (1 - p))
        if abs(z) > 5:
            raise ClauseViolation(("DROP-6",), f"the single attention weight was dropped in {n_dropped} of {len(ys)} draws, {z:.1f} standard deviations from p = {p}")


@prop(clauses=("DROP-5",), kinds=DROPOUT_KINDS, examples=0.12)
def training_mean_equals_eval(ctx):
    """The mean of many training-mode outputs is the eval output (6 standard errors)."""
    case = ctx.case(max_context=5, max_batch=2)
    p = ctx.draw(st.sampled_from(P), label="p")
    ctx.reach("training with p > 0")
    cfg = case.cfg.with_(dropout=p)
    handle, _ = ctx.build_loaded(case.with_(cfg=cfg), dtype="float64")
    x = ctx.inputs(case, dtype="float64")
    eval_y = ctx.forward(handle, x).y
    n = 400
    # n copies of the batch in one call: each copy gets its own dropout draw (SHAPE-8)
    ys = ctx.forward(handle, np.tile(x, (n, 1, 1)), train=True).y.reshape((n,) + x.shape[:-1] + (-1,))
    mean, se = ys.mean(axis=0), ys.std(axis=0, ddof=1) / math.sqrt(n)
    z = np.abs(mean - eval_y) / np.maximum(se, 1e-12)
    bad = (np.abs(mean - eval_y) > 6 * se + 1e-9 * np.maximum(1, np.abs(eval_y))) & (z > 6)
    if bad.any():
        pos = [int(i) for i in np.argwhere(bad)[0]]
        raise ClauseViolation(
            ("DROP-5",),
            f"the mean of {n} training outputs is {float(z[tuple(pos)]):.1f} standard errors from the eval output at {pos}: "
            "dropout is biased (applied before the softmax, or kept weights not rescaled by 1/(1-p))",
            positions=pos,
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
    allowed = 2 * ctx.budget(ctx.oracle(cfg, w, x), cfg, w, x, case.dtype) + 1e-6
    try:
        assert_close(("DROP-1", "DROP-3"), "training output vs the oracle with the recorded dropout mask", out.y, golden, allowed)
    except ClauseViolation as v:
        unscaled = ctx.oracle(cfg.with_(dropout=0.0), w, x, keep=keep)
        if np.max(np.abs(out.y - unscaled)) <= allowed:
            v.clauses, v.message = ("DROP-3",), "the output matches dropped weights without the 1/(1-p) rescaling: " + v.message
        raise
    i, j = np.indices((case.num_tokens, case.num_tokens))
    allowed_keys = np.broadcast_to(j <= i, keep.shape)
    n = int(allowed_keys.sum())
    kept = float(keep[allowed_keys].sum())
    z = (kept - n * (1 - p)) / math.sqrt(n * p * (1 - p))
    if abs(z) > 5:
        raise ClauseViolation(("DROP-6",), f"{kept:.0f} of {n} visible weights were kept, {z:.1f} standard deviations from {1 - p:.2f} x {n}: the keep rate is not 1 - p")
