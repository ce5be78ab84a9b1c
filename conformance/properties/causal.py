"""Causal attention (topic 4): no leak from the future, prefixes, order, long inputs."""

import numpy as np
from hypothesis import strategies as st

from .. import tolerance, weights
from ..assertions import ClauseViolation
from ..candidate import CandidateError
from ..config import CAUSAL_KINDS
from . import prop


def _perturb_after(case, x, t, salt=3):
    """x with every token after position t replaced by fresh, larger values."""
    x2 = x.copy()
    x2[:, t + 1 :] = case.rng(salt).standard_normal(x2[:, t + 1 :].shape) * 3
    return x2


@prop(clauses=("CAUSAL-1", "NUM-4"), kinds=CAUSAL_KINDS)
def future_tokens_do_not_change_the_past(ctx):
    """Changing tokens after position t leaves every output at positions <= t unchanged."""
    case = ctx.case(min_tokens=2)
    t = ctx.draw(st.integers(0, case.num_tokens - 2), label="t")
    x = ctx.inputs(case)
    x2 = _perturb_after(case, x, t)
    handle, w, out = ctx.call_loaded(case, x)
    y = out.y
    y2 = ctx.forward(handle, x2).y
    bound = ctx.bound(case.cfg, w, x, case.dtype) + ctx.bound(case.cfg, w, x2, case.dtype)
    try:
        ctx.expect_invariant(("CAUSAL-1",), f"outputs at positions 0..{t} when tokens after {t} change", y2[:, : t + 1], y[:, : t + 1], bound[:, : t + 1])
    except ClauseViolation as v:
        pos = v.positions
        v.message = f"output at position {pos[1]} changed when tokens {t + 1}..{case.num_tokens - 1} changed: the mask lets tokens see the future. " + v.message
        raise


@prop(clauses=("CAUSAL-1",), kinds=CAUSAL_KINDS, examples=0.6)
def no_gradient_flows_from_the_future(ctx):
    """The gradient of outputs 0..t with respect to tokens after t is zero."""
    case = ctx.case(min_tokens=2)
    t = ctx.draw(st.integers(0, case.num_tokens - 2), label="t")
    handle, _ = ctx.build_loaded(case)
    x = ctx.inputs(case)
    g = np.zeros(x.shape[:-1] + (case.cfg.out_features,))
    g[:, : t + 1] = case.rng(8).standard_normal(g[:, : t + 1].shape)
    grad = ctx.cand.backward(handle, x, g).grad_x
    future = np.abs(grad[:, t + 1 :])
    bound = tolerance.vanishing_gradient_bound(grad, case.cfg, case.num_tokens, ctx.info.get("internal_precision") or case.dtype)
    if not np.all(np.isfinite(grad)) or future.max(initial=0.0) > bound:
        pos = [int(i) for i in np.unravel_index(int(np.nanargmax(np.where(np.isnan(future), np.inf, future))), future.shape)]
        raise ClauseViolation(
            ("CAUSAL-1",),
            f"the gradient of outputs 0..{t} reaches token {t + 1 + pos[1]} (|grad| {future.max():.3g}): "
            "information flows backwards from the future",
            expected="0", observed=f"{future.max():.3g}", positions=pos,
        )


@prop(clauses=("CAUSAL-2",), kinds=CAUSAL_KINDS, examples=0.6, needs=("call", "weights"))
def every_visible_token_takes_part(ctx):
    """Under uniform attention, changing token j changes the output at every position i >= j."""
    case = ctx.case(min_tokens=2)
    j = ctx.draw(st.integers(0, case.num_tokens - 1), label="j")
    w = weights.zero_query_weights(case.cfg, case.rng(13), case.dtype)
    x = ctx.inputs(case)
    x2 = x.copy()
    x2[:, j] = x[:, j] + 1.0 + case.rng(14).standard_normal(x[:, j].shape)
    handle, out = ctx.call_built(case.cfg, x, weights=w)
    y, y2 = out.y, ctx.forward(handle, x2).y
    # a change counts when it exceeds what rounding alone can explain, somewhere in the row
    bound = ctx.bound(case.cfg, w, x, case.dtype) + ctx.bound(case.cfg, w, x2, case.dtype)
    changed = (np.abs(y2 - y) > bound).any(axis=(0, 2))
    # a row is judged only where the true change is too large for rounding to hide
    visible = (np.abs(ctx.oracle(case.cfg, w, x2) - ctx.oracle(case.cfg, w, x)) > 2 * bound).any(axis=(0, 2))
    finite = np.isfinite(y).all(axis=(0, 2)) & np.isfinite(y2).all(axis=(0, 2))
    for i in range(j, case.num_tokens):
        if not finite[i]:
            raise ClauseViolation(("CAUSAL-2",), f"the output at position {i} is not finite under uniform attention: a row has no visible key (is the diagonal masked?)")
        if visible[i] and not changed[i]:
            who = "itself" if i == j else f"token {j}"
            raise ClauseViolation(
                ("CAUSAL-2",),
                f"the output at position {i} did not change when token {j} changed: position {i} does not attend to {who}"
                + (" (the diagonal is masked)" if i == j else " (tokens are not mixed: are heads and tokens swapped?)"),
                positions=[i],
            )


@prop(clauses=("CAUSAL-7", "CAUSAL-5", "NUM-4"), kinds=CAUSAL_KINDS)
def prefix_outputs_do_not_depend_on_what_follows(ctx):
    """f(x[:, :k]) equals f(x)[:, :k] (k = 1 and a drawn k), so num_tokens < context_length works."""
    case = ctx.case()
    x = ctx.inputs(case)
    handle, w, out = ctx.call_loaded(case, x)
    y = out.y
    bound = ctx.bound(case.cfg, w, x, case.dtype)
    drawn = ctx.draw(st.integers(1, max(1, case.num_tokens - 1)), label="k")
    for k in sorted({1, drawn} & set(range(1, case.num_tokens))):
        try:
            short = ctx.forward(handle, x[:, :k]).y
        except CandidateError as exc:
            raise ClauseViolation(
                ("CAUSAL-5",),
                f"num_tokens={k} < context_length={case.cfg.context_length} fails: {exc.plain()} "
                "(is the mask cut to num_tokens x num_tokens?)",
            ) from None
        alone = ctx.bound(case.cfg, w, x[:, :k], case.dtype)
        ctx.expect_invariant(("CAUSAL-7",), f"the first {k} outputs run alone vs inside {case.num_tokens} tokens", short, y[:, :k], alone + bound[:, :k])


@prop(clauses=("CAUSAL-8", "NUM-4"), kinds=CAUSAL_KINDS, examples=0.6)
def earlier_token_order_does_not_matter(ctx):
    """The last output is invariant under permutations of the tokens before it."""
    case = ctx.case(min_tokens=3)
    x = ctx.inputs(case)
    order = np.concatenate([case.rng(4).permutation(case.num_tokens - 1), [case.num_tokens - 1]])
    if np.all(order == np.arange(case.num_tokens)):
        order[:2] = order[1::-1]
    handle, w, out = ctx.call_loaded(case, x)
    y = out.y
    y2 = ctx.forward(handle, x[:, order]).y
    bound = ctx.bound(case.cfg, w, x, case.dtype) + ctx.bound(case.cfg, w, x[:, order], case.dtype)
    ctx.expect_invariant(("CAUSAL-8",), "the last output after shuffling the tokens before it", y2[:, -1:], y[:, -1:], bound[:, -1:])


@prop(clauses=("CAUSAL-6",), kinds=CAUSAL_KINDS, examples=0.3)
def longer_sequences_raise_or_stay_causal(ctx):
    """num_tokens > context_length either raises or gives causal, prefix-consistent outputs."""
    # context_length >= 2: a 1x1 mask broadcasts over any length, so even the book's code computes unmasked
    case = ctx.case(min_tokens=2, max_context=6, full_length=True)
    extra = ctx.draw(st.integers(1, 3), label="extra_tokens")
    cfg = case.cfg
    handle, w = ctx.build_loaded(case)
    long_case = case.with_(num_tokens=cfg.context_length + extra)
    x = ctx.inputs(long_case)
    declared = ctx.info.get("long_sequences", "either")
    try:
        y = ctx.forward(handle, x).y
    except CandidateError as exc:
        if exc.reason != "raised":
            raise
        if declared == "compute":
            raise ClauseViolation(("CAUSAL-6",), f"declared to compute longer sequences, but {exc.plain()}") from None
        return
    if declared == "raise":
        raise ClauseViolation(("CAUSAL-6",), f"declared to raise for num_tokens > context_length, but computed an output for {long_case.num_tokens} tokens")
    T0 = cfg.context_length
    x2 = _perturb_after(long_case, x, T0 - 1)
    y2 = ctx.forward(handle, x2).y
    bound = ctx.bound(cfg, w, x, case.dtype)
    changed = bound + ctx.bound(cfg, w, x2, case.dtype)
    ctx.expect_invariant(("CAUSAL-6",), f"with {long_case.num_tokens} > context_length tokens, outputs 0..{T0 - 1} when later tokens change", y2[:, :T0], y[:, :T0], changed[:, :T0])
    short = ctx.forward(handle, x[:, :T0]).y
    alone = ctx.bound(cfg, w, x[:, :T0], case.dtype)
    ctx.expect_invariant(("CAUSAL-6",), "the first context_length outputs of a longer input vs run alone", short, y[:, :T0], alone + bound[:, :T0])
